//! Replicas sharing PostgreSQL: each keeps in memory what every request needs (revocations, registered
//! upstreams, agents, pins) and reads it again when another replica changes it. A change bumps its counter and
//! notifies channel `toolgate` in the same transaction; this replica's listener reads the counters at every
//! notification and every `poll` (should a notification be lost), and whatever moved is read again. Revocations
//! count as confirmed at each successful read: unconfirmed for longer than `stale_after` (the listener's
//! connection lost and not back), every credential is refused.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio_postgres::AsyncMessage;

use super::Gateway;
use crate::config::{PostgresConfig, UpstreamConfig};
use crate::store::{Shared, StoreError, postgres::CHANNEL};

/// What this replica last read of each change counter.
pub type Seen = HashMap<String, i64>;

/// Registered upstreams as this replica runs them: name → the stored configuration (JSON), so that a change made
/// through another replica is told from one made here.
#[derive(Default)]
pub struct Applied(std::sync::Mutex<HashMap<String, String>>);

impl Applied {
    pub fn set(&self, upstream: &UpstreamConfig) {
        if let (Ok(mut map), Ok(body)) = (self.0.lock(), serde_json::to_string(upstream)) {
            map.insert(upstream.name.clone(), body);
        }
    }

    pub fn forget(&self, name: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(name);
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.lock().ok().and_then(|map| map.get(name).cloned())
    }

    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Keys of what toolgate seals for clients to bring back (listing cursors, `requestState`s, session ids): with
/// PostgreSQL, keys every replica derives alike (whichever replica the client reaches next can open them); else
/// this process's own.
pub struct Keys {
    pub cursors: [u8; 32],
    pub rounds: [u8; 32],
    pub sessions: [u8; 32],
}

impl Keys {
    pub async fn of(
        store: &crate::store::Store,
        chain_key: &crate::audit::ChainKey,
    ) -> Result<Self, super::StartError> {
        let key = |bytes: Vec<u8>| -> Result<[u8; 32], super::StartError> {
            bytes
                .try_into()
                .map_err(|_| super::StartError::Random("a shared key is not 32 bytes".into()))
        };
        match store {
            // The database's random material, keyed by the chain key every replica has (never in the database):
            // reading the database is not enough to forge a session id, a cursor or a `requestState`.
            crate::store::Store::Postgres(pg) => {
                let derive = async |name: &str| -> Result<[u8; 32], super::StartError> {
                    let material = key(pg.shared_key(name).await?)?;
                    Ok(chain_key.derive(name, &material))
                };
                Ok(Self {
                    cursors: derive("cursors").await?,
                    rounds: derive("request-state").await?,
                    sessions: derive("sessions").await?,
                })
            }
            crate::store::Store::Sqlite(_) => {
                let mut keys = [[0u8; 32]; 3];
                for k in &mut keys {
                    getrandom::fill(k).map_err(|e| super::StartError::Random(e.to_string()))?;
                }
                let [cursors, rounds, sessions] = keys;
                Ok(Self {
                    cursors,
                    rounds,
                    sessions,
                })
            }
        }
    }
}

/// The listener's connection, its notifications forwarded to a channel (coalesced: one pending is enough).
async fn listen(
    config: &PostgresConfig,
) -> Result<(tokio_postgres::Client, tokio::sync::mpsc::Receiver<()>), StoreError> {
    let (client, mut connection) = crate::store::postgres::connection(config).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("shared-change listener lost its connection: {e}");
                    break;
                }
            }
        }
        // Dropping `tx` tells the follower the channel is gone.
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, rx))
}

impl Gateway {
    /// Follows changes made through other replicas, for as long as the gateway lives.
    pub(super) fn follow_shared(self: &Arc<Self>, config: PostgresConfig, mut seen: Seen) {
        self.identity
            .revocations()
            .require_confirmation(config.stale_after);
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let (client, mut notified) = match listen(&config).await {
                    Ok(connection) => connection,
                    Err(e) => {
                        tracing::error!("cannot listen for shared changes: {e}");
                        tokio::time::sleep(config.poll.min(std::time::Duration::from_secs(1)))
                            .await;
                        if gateway.strong_count() == 0 {
                            return;
                        }
                        continue;
                    }
                };
                loop {
                    let Some(this) = gateway.upgrade() else {
                        return;
                    };
                    // A connection that hangs (half open, a stalled server) is dropped and made again.
                    match tokio::time::timeout(
                        config.stale_after,
                        this.catch_up(&client, &mut seen),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!("cannot read shared changes: {e}");
                            break;
                        }
                        Err(_) => {
                            tracing::error!("reading shared changes hangs: connecting again");
                            break;
                        }
                    }
                    drop(this);
                    tokio::select! {
                        received = notified.recv() => if received.is_none() { break },
                        () = tokio::time::sleep(config.poll) => {}
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
    }

    /// Reads every change counter and whatever moved since `seen`. Each kind on its own: one that cannot be
    /// read again (a row this build cannot parse, agents that do not load) keeps its old count and is tried again
    /// next round, without holding up the others. Fails only when revocations cannot be read, which is what leaves
    /// them unconfirmed.
    async fn catch_up(
        &self,
        client: &tokio_postgres::Client,
        seen: &mut Seen,
    ) -> Result<(), StoreError> {
        let rows = client.query("SELECT kind, n FROM changes", &[]).await?;
        for kind in Shared::ALL {
            let Some(n) = rows
                .iter()
                .find(|r| r.get::<_, &str>(0) == kind.as_str())
                .map(|r| r.get::<_, i64>(1))
            else {
                continue;
            };
            // Revocations are read at every round: a successful read is what confirms them.
            if kind == Shared::Revocations {
                let new = self.identity.revocations().catch_up().await?;
                if new > 0 {
                    tracing::info!(new, "revocations read from the shared store are in force");
                    self.announce_change();
                }
            } else if seen.get(kind.as_str()) != Some(&n)
                && let Err(e) = self.reread(kind).await
            {
                tracing::error!(
                    what = kind.as_str(),
                    "a shared change is not in force here yet: {e}"
                );
                continue;
            }
            seen.insert(kind.as_str().to_string(), n);
        }
        Ok(())
    }

    async fn reread(&self, kind: Shared) -> Result<(), StoreError> {
        // Never between a change made here and its being stored (what is read is what was stored last), and
        // never waiting for one: a registration may take as long as its upstream does, while this loop confirms
        // revocations. Busy: read again next round.
        let _registry = match kind {
            Shared::Upstreams | Shared::Agents => {
                Some(self.registry_lock.try_lock().map_err(|_| {
                    StoreError::new(
                        "a registry change is under way on this replica; read again next round",
                    )
                })?)
            }
            Shared::Revocations | Shared::Pins => None,
        };
        match kind {
            Shared::Revocations => {}
            Shared::Pins => {
                if self.pins.reload().await? {
                    self.announce_change();
                }
            }
            Shared::Agents => {
                let registered = self.store.registered_agents().await?;
                let agents = Arc::clone(self.policy.registered_agents());
                let same = agents.read().map(|a| *a == registered).unwrap_or(false);
                if !same {
                    let previous = agents
                        .write()
                        .ok()
                        .map(|mut map| std::mem::replace(&mut *map, registered));
                    let policy = Arc::clone(&self.policy);
                    let reloaded = tokio::task::spawn_blocking(move || {
                        policy.reload("agent inventory change")
                    })
                    .await;
                    if !matches!(reloaded, Ok(Ok(_))) {
                        // As before, so that the next round finds them different and tries again.
                        if let (Some(previous), Ok(mut map)) = (previous, agents.write()) {
                            *map = previous;
                        }
                        return Err(StoreError::new(
                            "the agents changed through another replica do not load with the inventory file",
                        ));
                    }
                }
            }
            Shared::Upstreams => self.reconcile_upstreams().await?,
        }
        Ok(())
    }

    /// Runs the registered upstreams the store lists (not disabled), as stored; stops the others.
    async fn reconcile_upstreams(&self) -> Result<(), StoreError> {
        let disabled = self.store.disabled_upstreams().await?;
        let wanted: Vec<UpstreamConfig> = self
            .store
            .registered_upstreams::<UpstreamConfig>()
            .await?
            .into_iter()
            .filter(|u| !disabled.contains(&u.name))
            .collect();
        for name in self.applied.names() {
            if !wanted.iter().any(|u| u.name == name) {
                let _ = self.catalog.remove(&name);
                self.applied.forget(&name);
                tracing::info!(upstream = %name, "upstream removed or disabled through another replica");
            }
        }
        for upstream in wanted {
            let body = serde_json::to_string(&upstream).ok();
            if body.is_some() && self.applied.get(&upstream.name) == body {
                continue;
            }
            let client = match self.allowlist.client_for(&upstream) {
                Ok(client) => client,
                Err(e) => {
                    tracing::error!(upstream = %upstream.name, "registered upstream not run: {e}");
                    continue;
                }
            };
            let _ = self.catalog.remove(&upstream.name);
            match self.catalog.restart(&upstream, client) {
                Ok(()) => {
                    self.applied.set(&upstream);
                    tracing::info!(upstream = %upstream.name, "upstream registered or changed through another replica");
                }
                Err(e) => {
                    tracing::error!(upstream = %upstream.name, "registered upstream not run: {e}")
                }
            }
        }
        Ok(())
    }
}
