//! Upstreams added and removed at run time: a new one must connect and list first, names never collide, and
//! upstreams from the config file are read-only.

use std::sync::Arc;

use super::{Catalog, Upstream, UpstreamError};
use crate::config::UpstreamConfig;
use crate::names;

/// Why the catalog refused a change. The text names only what the admin sent; an upstream's own words stay in
/// [`ChangeError::Unusable`]'s source, for the log.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("an upstream named `{0}` exists already")]
    Exists(String),
    #[error("tool name `{0}` is taken")]
    ToolTaken(String),
    #[error("upstream `{name}` cannot be used: it did not connect and list its tools (reason `{}`)", .source.reason_id())]
    Unusable {
        name: String,
        #[source]
        source: UpstreamError,
    },
    #[error("no upstream named `{0}`")]
    Unknown(String),
    #[error("upstream `{0}` comes from the config file and is read-only")]
    ReadOnly(String),
}

impl Catalog {
    /// Adds an upstream registered earlier (from the store) without connecting first; [`Catalog::start`] starts
    /// it with the others.
    pub fn restore(
        &self,
        config: &UpstreamConfig,
        client: Option<reqwest::Client>,
    ) -> Result<(), ChangeError> {
        let upstream = self.registered(config)?;
        self.insert(upstream, client);
        Ok(())
    }

    /// Puts an upstream back without checking it first (the previous configuration after a failed update).
    pub fn restart(
        self: &Arc<Self>,
        config: &UpstreamConfig,
        client: Option<reqwest::Client>,
    ) -> Result<(), ChangeError> {
        let upstream = self.registered(config)?;
        self.insert(Arc::clone(&upstream), client);
        tokio::spawn(Arc::clone(self).supervise(upstream));
        Ok(())
    }

    /// A new registered upstream, if its name is free.
    fn registered(&self, config: &UpstreamConfig) -> Result<Arc<Upstream>, ChangeError> {
        if self
            .upstreams
            .load()
            .iter()
            .any(|u| *u.name == *config.name)
        {
            return Err(ChangeError::Exists(config.name.clone()));
        }
        let prefix = config.naming.unwrap_or(self.naming).prefixes(0, true);
        Ok(Self::upstream(config, &self.shutdown, true, prefix))
    }

    fn insert(&self, upstream: Arc<Upstream>, client: Option<reqwest::Client>) {
        if let Some(client) = client
            && let Ok(mut clients) = self.registered_clients.lock()
        {
            clients.insert(Arc::clone(&upstream.name), client);
        }
        self.upstreams.rcu(|list| {
            let mut list = (**list).clone();
            list.push(Arc::clone(&upstream));
            list
        });
    }

    /// Adds an upstream at run time. It must first connect and answer `tools/list` within the connect timeout
    /// with tools that do not collide with the catalog's; otherwise nothing is added. `client` is the HTTP client
    /// for it (registered HTTP upstreams get one whose resolver checks every address against the allowlist).
    pub async fn add(
        self: &Arc<Self>,
        config: &UpstreamConfig,
        client: Option<reqwest::Client>,
    ) -> Result<usize, ChangeError> {
        let upstream = self.registered(config)?;
        let (conn, tools) =
            self.connect_with(&upstream, client.clone())
                .await
                .map_err(|source| ChangeError::Unusable {
                    name: config.name.clone(),
                    source,
                })?;
        conn.shutdown();
        // Names must be free: an upstream never takes tools another one exposes.
        let taken = self.index.load();
        for tool in &tools {
            if let Ok(exposed) =
                names::exposed_name(&upstream.name, &self.separator, &tool.name, upstream.prefix)
                && taken.tools.contains_key(exposed.as_str())
            {
                return Err(ChangeError::ToolTaken(exposed));
            }
        }
        let count = tools.len();
        self.insert(Arc::clone(&upstream), client);
        tokio::spawn(Arc::clone(self).supervise(upstream));
        Ok(count)
    }

    /// Removes an upstream registered at run time: its session ends and its tools leave the catalog.
    pub fn remove(&self, name: &str) -> Result<(), ChangeError> {
        let Some(upstream) = self
            .upstreams
            .load()
            .iter()
            .find(|u| *u.name == *name)
            .cloned()
        else {
            return Err(ChangeError::Unknown(name.to_string()));
        };
        if !upstream.registered {
            return Err(ChangeError::ReadOnly(name.to_string()));
        }
        upstream.stop.cancel();
        if let Some(conn) = upstream.conn.swap(None) {
            conn.shutdown();
        }
        self.upstreams.rcu(|list| {
            list.iter()
                .filter(|u| *u.name != *name)
                .cloned()
                .collect::<Vec<_>>()
        });
        if let Ok(mut map) = self.accepted.lock() {
            map.remove(name);
        }
        self.rebuild();
        Ok(())
    }
}
