//! The registry of upstreams and agents at run time, as admins change it: every change checked, applied to the
//! catalog or the policy bundle, and kept in the store.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::catalog::ChangeError;
use crate::catalog::allow::AllowError;
use crate::config::UpstreamConfig;
use crate::gateway::Gateway;
use crate::identity::{AgentSpec, InventoryError};
use crate::names::NameError;
use crate::store::StoreError;

/// Why the registry refused a change. What the admin sent is named back; the gateway's own failures (the store,
/// the policy loader) are told by kind only, their details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Url(#[from] AllowError),
    #[error(transparent)]
    Catalog(#[from] ChangeError),
    #[error("no upstream `{0}` registered at run time (config-file upstreams are read-only)")]
    NotRegistered(String),
    #[error("no agent `{0}` registered at run time (file agents are read-only)")]
    NoAgent(String),
    #[error("no agent inventory configured")]
    NoInventory,
    #[error(transparent)]
    Agent(#[from] InventoryError),
    #[error("the policy bundle did not load with this change: {0}")]
    Policy(String),
    #[error("the registry cannot be kept right now: {0}")]
    Store(#[from] StoreError),
    #[error("the agent registry is unavailable")]
    Unavailable,
}

impl RegistryError {
    /// What the admin client is told: the refusal itself, never the text of a failure inside the gateway.
    pub fn public(&self) -> String {
        match self {
            Self::Policy(_) => {
                "the policy bundle did not load with this change (see `last_error` of GET /admin/policy)".into()
            }
            Self::Store(_) => "the registry cannot be kept right now (see the gateway log)".into(),
            Self::Agent(InventoryError::Read { .. }) => {
                "the agent inventory file cannot be read (see the gateway log)".into()
            }
            other => other.to_string(),
        }
    }

    /// The part of the request refused: `name`, `url` (the address, by the allowlist), `connection` (the
    /// upstream could not be reached or listed), or none.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Name(_) | Self::NotRegistered(_) | Self::NoAgent(_) => Some("name"),
            Self::Url(_) => Some("url"),
            Self::Catalog(ChangeError::Exists(_) | ChangeError::Unknown(_)) => Some("name"),
            Self::Catalog(_) => Some("connection"),
            _ => None,
        }
    }

    /// Whether the gateway failed, rather than the request being wrong.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::Unavailable | Self::Agent(InventoryError::Read { .. })
        )
    }
}

impl Gateway {
    /// Registers an upstream at run time: checked (name, allowlist), connected and listed once, then kept in the
    /// store. Nothing is left behind when any step fails.
    pub async fn register_upstream(
        &self,
        upstream: UpstreamConfig,
        by: &str,
    ) -> Result<usize, RegistryError> {
        // One registry change at a time on this replica, and none while changes from others are applied.
        let _registry = self.registry_lock.lock().await;
        crate::names::validate_upstream_name(&upstream.name)?;
        let client = self.allowlist.client_for(&upstream)?;
        let tools = self.catalog.add(&upstream, client).await?;
        if let Err(e) = self
            .store
            .put_upstream(upstream.name.clone(), upstream.clone(), by.to_string())
            .await
        {
            let _ = self.catalog.remove(&upstream.name);
            return Err(e.into());
        }
        self.applied.set(&upstream);
        tracing::info!(upstream = %upstream.name, admin = by, tools, "upstream registered");
        Ok(tools)
    }

    /// The stored configuration of an upstream registered at run time.
    async fn registered(&self, name: &str) -> Result<UpstreamConfig, RegistryError> {
        self.store
            .registered_upstreams::<UpstreamConfig>()
            .await?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| RegistryError::NotRegistered(name.to_string()))
    }

    /// Disables (stops, keeping it registered) or enables (connects and lists it again) a registered upstream.
    pub async fn set_upstream_enabled(
        &self,
        name: &str,
        enabled: bool,
        by: &str,
    ) -> Result<(), RegistryError> {
        // One registry change at a time on this replica, and none while changes from others are applied.
        let _registry = self.registry_lock.lock().await;
        let config = self.registered(name).await?;
        let disabled = self.store.disabled_upstreams().await?;
        let is_disabled = disabled.iter().any(|d| d == name);
        match (enabled, is_disabled) {
            (true, true) => {
                let client = self.allowlist.client_for(&config)?;
                self.catalog.add(&config, client).await?;
            }
            (false, false) => self.catalog.remove(name)?,
            _ => return Ok(()),
        }
        self.store
            .set_upstream_disabled(name.to_string(), !enabled)
            .await?;
        if enabled {
            self.applied.set(&config);
        } else {
            self.applied.forget(name);
        }
        tracing::info!(
            upstream = name,
            enabled,
            admin = by,
            "upstream enabled or disabled"
        );
        Ok(())
    }

    /// Replaces a registered upstream's configuration: the new one must connect and list first, else the old one
    /// stays.
    pub async fn update_upstream(
        &self,
        upstream: UpstreamConfig,
        by: &str,
    ) -> Result<usize, RegistryError> {
        // One registry change at a time on this replica, and none while changes from others are applied.
        let _registry = self.registry_lock.lock().await;
        let old = self.registered(&upstream.name).await?;
        let client = self.allowlist.client_for(&upstream)?;
        let disabled = self.store.disabled_upstreams().await?;
        let tools = if disabled.contains(&upstream.name) {
            0
        } else {
            self.catalog.remove(&upstream.name)?;
            match self.catalog.add(&upstream, client).await {
                Ok(tools) => tools,
                Err(e) => {
                    let old_client = self.allowlist.client_for(&old)?;
                    self.catalog.restart(&old, old_client)?;
                    return Err(e.into());
                }
            }
        };
        self.store
            .put_upstream(upstream.name.clone(), upstream.clone(), by.to_string())
            .await?;
        if !disabled.contains(&upstream.name) {
            self.applied.set(&upstream);
        }
        tracing::info!(upstream = %upstream.name, admin = by, "upstream updated");
        Ok(tools)
    }

    /// Removes an upstream registered at run time.
    pub async fn remove_upstream(&self, name: &str, by: &str) -> Result<(), RegistryError> {
        // One registry change at a time on this replica, and none while changes from others are applied.
        let _registry = self.registry_lock.lock().await;
        if let Err(e) = self.registered(name).await {
            // A config-file upstream says it is read-only.
            self.catalog.remove(name)?;
            return Err(e);
        }
        // Already stopped when disabled.
        let _ = self.catalog.remove(name);
        self.store.delete_upstream(name.to_string()).await?;
        self.applied.forget(name);
        tracing::info!(upstream = name, admin = by, "upstream removed");
        Ok(())
    }

    /// Adds, changes (`Some`) or removes (`None`) an agent registered at run time: validated with the inventory
    /// file's agents and put in force by a policy reload; nothing changes when either fails.
    pub async fn put_agent(
        &self,
        id: &str,
        spec: Option<AgentSpec>,
        by: &str,
    ) -> Result<(), RegistryError> {
        // One registry change at a time on this replica, and none while changes from others are applied.
        let _registry = self.registry_lock.lock().await;
        let agents = Arc::clone(self.policy.registered_agents());
        let previous = {
            let mut map = agents.write().map_err(|_| RegistryError::Unavailable)?;
            if spec.is_none() && !map.contains_key(id) {
                return Err(RegistryError::NoAgent(id.to_string()));
            }
            let previous = map.get(id).cloned();
            match &spec {
                Some(spec) => map.insert(id.to_string(), spec.clone()),
                None => map.remove(id),
            };
            previous
        };
        let restore = |agents: &RwLock<BTreeMap<String, AgentSpec>>| {
            if let Ok(mut map) = agents.write() {
                match &previous {
                    Some(p) => map.insert(id.to_string(), p.clone()),
                    None => map.remove(id),
                };
            }
        };
        // Validated with the file's agents first, so that a bad agent never reaches the policy loader.
        if let Err(e) = self.check_agents(&agents) {
            restore(&agents);
            return Err(e);
        }
        let policy = Arc::clone(&self.policy);
        let reloaded = tokio::task::spawn_blocking(move || policy.reload("agent inventory change"))
            .await
            .map_err(|e| RegistryError::Policy(e.to_string()))
            .and_then(|r| r.map_err(|e| RegistryError::Policy(e.to_string())));
        if let Err(e) = reloaded {
            restore(&agents);
            return Err(e);
        }
        if let Err(e) = self
            .store
            .put_agent(id.to_string(), spec, by.to_string())
            .await
        {
            restore(&agents);
            let policy = Arc::clone(&self.policy);
            let _ =
                tokio::task::spawn_blocking(move || policy.reload("agent change not stored")).await;
            return Err(e.into());
        }
        tracing::info!(agent = id, admin = by, "agent inventory changed");
        Ok(())
    }

    /// The inventory file's agents and those registered at run time, validated together.
    fn check_agents(
        &self,
        agents: &RwLock<BTreeMap<String, AgentSpec>>,
    ) -> Result<(), RegistryError> {
        let auth = self
            .config
            .auth
            .as_ref()
            .ok_or(RegistryError::NoInventory)?;
        let path = self.config.base.join(&auth.agents_file);
        let text = std::fs::read_to_string(&path).map_err(|e| InventoryError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let snapshot = agents.read().map(|m| m.clone()).unwrap_or_default();
        crate::identity::Inventory::merged(&text, &snapshot)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::UpstreamError;

    #[test]
    fn the_gateways_own_failures_are_told_by_kind_only() {
        let store =
            RegistryError::Store(StoreError::new("database /var/lib/secret-path is locked"));
        assert!(store.is_internal());
        assert!(
            !store.public().contains("secret-path"),
            "{}",
            store.public()
        );
        let policy = RegistryError::Policy("policies/x.rego:3: rego_parse_error".into());
        assert!(!policy.public().contains("rego_parse_error"));
        assert!(policy.public().contains("last_error"));
    }

    #[test]
    fn an_upstreams_words_stay_in_the_log() {
        let unusable = RegistryError::Catalog(ChangeError::Unusable {
            name: "web".into(),
            source: UpstreamError::Connect("401 body: token=hunter2".into()),
        });
        let public = unusable.public();
        assert!(public.contains("`web` cannot be used"), "{public}");
        assert!(public.contains("upstream_unavailable"), "{public}");
        assert!(!public.contains("hunter2"), "{public}");
        // The whole story is in the source chain, for the log.
        let source = std::error::Error::source(&unusable).map(ToString::to_string);
        assert!(source.is_some_and(|s| s.contains("hunter2")));
    }

    #[test]
    fn what_the_admin_sent_is_named_back() {
        let name = RegistryError::from(NameError::Upstream("Bad_Name".into()));
        assert!(name.public().contains("Bad_Name"));
        assert!(!name.is_internal());
        let exists = RegistryError::from(ChangeError::Exists("hr".into()));
        assert!(exists.public().contains("exists already"));
    }
}
