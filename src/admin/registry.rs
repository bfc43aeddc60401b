//! The registry of upstreams and agents at run time, as admins change it: every change checked, applied to the
//! catalog or the policy bundle, and kept in the store.

use std::sync::Arc;

use crate::gateway::{Gateway, registered_client};

impl Gateway {
    /// Registers an upstream at run time: checked (name, allowlist), connected and listed once, then kept in the
    /// store. Nothing is left behind when any step fails.
    pub async fn register_upstream(
        &self,
        upstream: crate::config::UpstreamConfig,
        by: &str,
    ) -> Result<usize, String> {
        crate::catalog::validate_upstream_name(&upstream.name)?;
        let client = registered_client(&self.allowlist, &upstream)?;
        let tools = self.catalog.add(&upstream, client).await?;
        if let Err(e) = self
            .store
            .put_upstream(upstream.name.clone(), upstream.clone(), by.to_string())
            .await
        {
            let _ = self.catalog.remove(&upstream.name);
            return Err(format!("cannot keep the upstream: {e}"));
        }
        tracing::info!(upstream = %upstream.name, admin = by, tools, "upstream registered");
        Ok(tools)
    }

    /// The stored configuration of an upstream registered at run time.
    async fn registered(&self, name: &str) -> Result<crate::config::UpstreamConfig, String> {
        self.store
            .registered_upstreams::<crate::config::UpstreamConfig>()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| {
                format!("no upstream `{name}` registered at run time (config-file upstreams are read-only)")
            })
    }

    /// Disables (stops, keeping it registered) or enables (connects and lists it again) a registered upstream.
    pub async fn set_upstream_enabled(
        &self,
        name: &str,
        enabled: bool,
        by: &str,
    ) -> Result<(), String> {
        let config = self.registered(name).await?;
        let disabled = self
            .store
            .disabled_upstreams()
            .await
            .map_err(|e| e.to_string())?;
        let is_disabled = disabled.iter().any(|d| d == name);
        match (enabled, is_disabled) {
            (true, true) => {
                let client = registered_client(&self.allowlist, &config)?;
                self.catalog.add(&config, client).await?;
            }
            (false, false) => self.catalog.remove(name)?,
            _ => return Ok(()),
        }
        self.store
            .set_upstream_disabled(name.to_string(), !enabled)
            .await
            .map_err(|e| e.to_string())?;
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
        upstream: crate::config::UpstreamConfig,
        by: &str,
    ) -> Result<usize, String> {
        let old = self.registered(&upstream.name).await?;
        let client = registered_client(&self.allowlist, &upstream)?;
        let disabled = self
            .store
            .disabled_upstreams()
            .await
            .map_err(|e| e.to_string())?;
        let tools = if disabled.contains(&upstream.name) {
            0
        } else {
            self.catalog.remove(&upstream.name)?;
            match self.catalog.add(&upstream, client).await {
                Ok(tools) => tools,
                Err(e) => {
                    let old_client = registered_client(&self.allowlist, &old)?;
                    self.catalog.restart(&old, old_client)?;
                    return Err(e);
                }
            }
        };
        self.store
            .put_upstream(upstream.name.clone(), upstream.clone(), by.to_string())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(upstream = %upstream.name, admin = by, "upstream updated");
        Ok(tools)
    }

    /// Removes an upstream registered at run time.
    pub async fn remove_upstream(&self, name: &str, by: &str) -> Result<(), String> {
        if let Err(e) = self.registered(name).await {
            // A config-file upstream says it is read-only.
            self.catalog.remove(name)?;
            return Err(e);
        }
        // Already stopped when disabled.
        let _ = self.catalog.remove(name);
        self.store
            .delete_upstream(name.to_string())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(upstream = name, admin = by, "upstream removed");
        Ok(())
    }

    /// Adds, changes (`Some`) or removes (`None`) an agent registered at run time: validated with the inventory
    /// file's agents and put in force by a policy reload; nothing changes when either fails.
    pub async fn put_agent(
        &self,
        id: &str,
        spec: Option<crate::identity::AgentSpec>,
        by: &str,
    ) -> Result<(), String> {
        let agents = Arc::clone(self.policy.registered_agents());
        let previous = {
            let mut map = agents
                .write()
                .map_err(|_| "agent registry unavailable".to_string())?;
            if spec.is_none() && !map.contains_key(id) {
                return Err(format!(
                    "no agent `{id}` registered at run time (file agents are read-only)"
                ));
            }
            let previous = map.get(id).cloned();
            match &spec {
                Some(spec) => map.insert(id.to_string(), spec.clone()),
                None => map.remove(id),
            };
            previous
        };
        let restore = |agents: &std::sync::RwLock<
            std::collections::BTreeMap<String, crate::identity::AgentSpec>,
        >| {
            if let Ok(mut map) = agents.write() {
                match &previous {
                    Some(p) => map.insert(id.to_string(), p.clone()),
                    None => map.remove(id),
                };
            }
        };
        // Validated with the file's agents first, so that a bad agent never reaches the policy loader.
        let checked = self
            .config
            .auth
            .as_ref()
            .ok_or_else(|| "no agent inventory configured".to_string())
            .and_then(|auth| {
                let path = self.config.base.join(&auth.agents_file);
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read agent inventory `{}`: {e}", path.display()))
            })
            .and_then(|text| {
                let snapshot = agents.read().map(|m| m.clone()).unwrap_or_default();
                crate::identity::Inventory::merged(&text, &snapshot).map(|_| ())
            });
        if let Err(e) = checked {
            restore(&agents);
            return Err(e);
        }
        let policy = Arc::clone(&self.policy);
        let reloaded = tokio::task::spawn_blocking(move || policy.reload("agent inventory change"))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
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
            return Err(e.to_string());
        }
        tracing::info!(agent = id, admin = by, "agent inventory changed");
        Ok(())
    }
}
