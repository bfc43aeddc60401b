//! The gateway core: what every request needs, built once (catalog, identity, policy, store, records,
//! redaction), and the pipeline in [`pipeline`] that `tools/list` and `tools/call` walk. MCP dispatch lives in
//! `server::dispatch`; the pipeline sees a [`CallContext`], never the transport's session.

mod approval;
mod contents;
mod items;
mod listing;
mod obligations;
mod pipeline;
mod record;
mod refusal;
mod relay;
mod requests;
mod rounds;
mod shared;
mod subscriptions;
mod surface;

pub use crate::policy::input::ItemKind;
pub use subscriptions::Delivery;

pub use refusal::step_up_scope;
pub use rounds::{Opened, arguments_digest, interim_of};

use std::sync::Arc;

use rmcp::model::RequestId;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::identity::{Caller, Identity, Revocations};
use crate::policy::{PolicyEngine, Sources};
use crate::store::Store;

/// What the pipeline needs of the request it serves: who is asking (verified for this very request), in which
/// session, under which request id. Never the transport's session itself.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    pub caller: &'a Caller,
    pub session: &'a str,
    pub request_id: &'a RequestId,
}

impl<'a> CallContext<'a> {
    pub fn new(caller: &'a Caller, session: &'a str, request_id: &'a RequestId) -> Self {
        Self {
            caller,
            session,
            request_id,
        }
    }
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the config has no `auth` section: toolgate authenticates every request, so it needs trusted issuers and \
         an agent inventory"
    )]
    NoAuth,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Audit(#[from] crate::audit::StartError),
    #[error(transparent)]
    Redaction(#[from] crate::redact::DetectorError),
    #[error(transparent)]
    Identity(#[from] crate::identity::LoadError),
    #[error(transparent)]
    Policy(#[from] crate::policy::LoadError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::UpstreamError),
    #[error("registry.allowed_networks: {0}")]
    Allowlist(#[source] crate::catalog::allow::AllowError),
    #[error("cannot build the JWKS client: {0}")]
    Http(String),
    #[error("no randomness for the cursor key: {0}")]
    Random(String),
    #[error(
        "issuer `{0}` is a development issuer (its signing key is public): it is trusted only in development mode, \
         `toolgate serve --dev`; remove it from a gateway anyone else can reach"
    )]
    DevIssuer(String),
}

/// Everything a request needs, built once at start.
pub struct Gateway {
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub identity: Arc<Identity>,
    pub policy: Arc<PolicyEngine>,
    pub store: Store,
    pub audit: Arc<crate::audit::Audit>,
    pub redactor: Arc<crate::redact::Redactor>,
    pub pins: Arc<crate::catalog::pins::Pins>,
    /// Where upstreams registered at run time may be reached.
    pub allowlist: Arc<crate::catalog::allow::Allowlist>,
    /// Fires whenever what a caller may see in `tools/list` may have changed: the catalog, the policy bundle,
    /// a revocation.
    changes: tokio::sync::broadcast::Sender<()>,
    /// Cancelled when the gateway starts shutting down: `/readyz` answers unready and GET streams end, while
    /// calls in flight finish.
    pub draining: tokio_util::sync::CancellationToken,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Pagination cursors, bound to the caller and the listing.
    cursors: listing::Cursors,
    /// Which session listens to which resource.
    subscriptions: subscriptions::Subscriptions,
    /// Sealed `requestState`s of multi round-trip requests.
    rounds: rounds::Rounds,
    /// Seals session ids, so that a session can be resumed on any replica sharing the key.
    pub sessions: crate::secret::Sealer,
    /// Registered upstreams as this replica runs them.
    pub(crate) applied: shared::Applied,
    /// Held by every change of registered upstreams and agents, made here or read from other replicas.
    pub(crate) registry_lock: tokio::sync::Mutex<()>,
}

impl Gateway {
    /// Builds the gateway and starts connecting its upstreams.
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let auth = config.auth.as_ref().ok_or(StartError::NoAuth)?;
        if let Some(dev) = auth.issuers.iter().find(|i| i.dev) {
            if !config.dev_mode {
                return Err(StartError::DevIssuer(dev.issuer.clone()));
            }
            let banner = format!(
                "DEVELOPMENT MODE: issuer `{}` signs with a public key, so anyone can mint its tokens; they are \
                 accepted on loopback only and never through a proxy. Never run this way where others can reach it.",
                dev.issuer
            );
            // A log line, so that JSON logs stay JSON; at `warn`, it shows whatever the level.
            tracing::warn!("{banner}");
        }
        let store = Store::open(&config.storage).await?;
        // With replicas: the change counters as they stand before anything is read, so that whatever changes
        // from here on is read again.
        let seen = match &store {
            Store::Postgres(pg) => Some(pg.changes().await?.into_iter().collect::<shared::Seen>()),
            Store::Sqlite(_) => None,
        };
        let keys = shared::Keys::of(
            &store,
            &crate::audit::ChainKey::load_or_create(&config.audit.key_file)
                .map_err(crate::audit::StartError::from)?,
        )
        .await?;
        // Records go to the same database, through the writer's own connection.
        let audit = crate::audit::Audit::start(&config.storage, config.audit.clone())?;
        let redactor = Arc::new(crate::redact::Redactor::new(&config.redaction)?);
        let pins = Arc::new(
            crate::catalog::pins::Pins::load(store.clone(), config.pinning.first_sight).await?,
        );
        // Revocations must be readable before anything is served: fail closed.
        let revocations = Arc::new(Revocations::load(store.clone()).await?);
        let identity = Arc::new(
            Identity::load(auth, &config.base, revocations)?
                .with_admin_audience(&config.admin.audience),
        );
        let jwks_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        identity
            .start_key_refresh(jwks_client, config.timeouts.connect)
            .await;
        // A bundle that does not compile or fails its tests refuses the start, naming file and line.
        // The agent inventory is part of the bundle: reloaded with it, and swapped into identity with it.
        let policy = {
            let identity = Arc::clone(&identity);
            let sources = Sources::new(config.policy.clone(), config.base.join(&auth.agents_file));
            // Agents registered at run time join the file's.
            let registered = store.registered_agents().await?;
            if let Ok(mut agents) = sources.registered_agents.write() {
                *agents = registered;
            }
            PolicyEngine::load(
                sources,
                Box::new(move |bundle| identity.set_inventory(Arc::clone(&bundle.inventory))),
            )?
        };
        policy.watch();
        let catalog = Catalog::new(&config)?;
        let allowlist = Arc::new(
            crate::catalog::allow::Allowlist::parse(&config.registry.allowed_networks)
                .map_err(StartError::Allowlist)?,
        );
        // Upstreams registered at run time come back after a restart (checked again against the allowlist).
        let applied = shared::Applied::default();
        let disabled = store.disabled_upstreams().await?;
        for upstream in store
            .registered_upstreams::<crate::config::UpstreamConfig>()
            .await?
        {
            if disabled.contains(&upstream.name) {
                continue;
            }
            let restored = match allowlist.client_for(&upstream) {
                Ok(client) => catalog
                    .restore(&upstream, client)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if restored.is_ok() {
                applied.set(&upstream);
            }
            if let Err(e) = restored {
                tracing::error!(upstream = %upstream.name, "registered upstream not restored: {e}");
            }
        }
        let (changes, _) = tokio::sync::broadcast::channel(16);
        // Every change of the upstreams' tools is checked against the pins (new tools pinned or quarantined,
        // changed definitions quarantined) before clients are told to list again.
        {
            let mut tool_changes = catalog.subscribe();
            let (catalog, pins, changes) =
                (Arc::clone(&catalog), Arc::clone(&pins), changes.clone());
            tokio::spawn(async move {
                loop {
                    match tool_changes.recv().await {
                        Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            if let Err(e) = pins.observe(&catalog.tools()).await {
                                tracing::error!("cannot record tool pins: {e}");
                            }
                            let _ = changes.send(());
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        catalog.start();
        {
            let mut source = policy.subscribe();
            let changes = changes.clone();
            tokio::spawn(async move {
                loop {
                    match source.recv().await {
                        Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            let _ = changes.send(());
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        let gateway = Arc::new(Self {
            config: Arc::new(config),
            catalog,
            identity,
            policy,
            store,
            audit,
            redactor,
            pins,
            allowlist,
            changes,
            draining: tokio_util::sync::CancellationToken::new(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            cursors: listing::Cursors::new(keys.cursors),
            rounds: rounds::Rounds::new(&keys.rounds),
            sessions: crate::secret::Sealer::new(&keys.sessions),
            subscriptions: subscriptions::Subscriptions::default(),
            applied,
            registry_lock: tokio::sync::Mutex::new(()),
        });
        gateway.follow_surface();
        if let (Some(seen), Some(postgres)) = (seen, &gateway.config.storage.postgres) {
            gateway.follow_shared(postgres.clone(), seen);
        }
        Ok(gateway)
    }

    /// Authenticates one request's token. Refusals are recorded: those of credentials that verified (a revoked
    /// token, a lineage or binding refusal) one by one with who presented them; those of bad tokens aggregated
    /// per source and reason, so that a flood of junk cannot flood the store.
    pub fn authenticate(
        &self,
        token: Result<&str, crate::identity::AuthError>,
        proof: Option<&crate::identity::ProofRequest<'_>>,
        source: &str,
        forwarded: bool,
    ) -> Result<Caller, crate::identity::AuthError> {
        let request = tracing::Span::current();
        let _step = tracing::info_span!("authenticate").entered();
        let started = std::time::Instant::now();
        let result = token.and_then(|t| {
            self.identity
                .authenticate(t, forwarded, proof)
                .map_err(|e| (e, crate::identity::peek_subject(t)))
                .map_err(|(error, who)| {
                    let attributable = error.is_forbidden()
                        || matches!(error, crate::identity::AuthError::Revoked(_));
                    match who.filter(|_| attributable) {
                        Some((issuer, subject)) => {
                            let mut record = crate::audit::DecisionRecord::new("authentication");
                            record.source = Some(source.to_string());
                            record.issuer = Some(issuer);
                            record.subject = Some(subject);
                            record.decision = "deny".into();
                            record.outcome = error.reason_id().into();
                            record.reasons = vec![error.to_string()];
                            record.latency.total_us = elapsed_us(started);
                            self.audit.append_detached(record);
                        }
                        None => self
                            .audit
                            .count_auth_failure(source, error.reason_id().as_str()),
                    }
                    error
                })
        });
        self.metrics.step("authenticate", started.elapsed());
        match result {
            Ok(mut caller) => {
                caller.authenticated_us = elapsed_us(started);
                Ok(caller)
            }
            Err(error) => {
                crate::telemetry::refused(&request, error.reason_id().as_str());
                self.metrics.refused(
                    error.reason_id().as_str(),
                    matches!(error, crate::identity::AuthError::Revoked(_)),
                    error.is_forbidden(),
                );
                if matches!(
                    error,
                    crate::identity::AuthError::Missing | crate::identity::AuthError::InQuery
                ) {
                    self.audit
                        .count_auth_failure(source, error.reason_id().as_str());
                }
                Err(error)
            }
        }
    }

    /// Ready (every required upstream has listed its tools, and not draining), and draining.
    pub fn readiness(&self) -> (bool, bool) {
        let draining = self.draining.is_cancelled();
        (!draining && self.catalog.ready(), draining)
    }

    /// Fires whenever connected clients should list their tools again.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.changes.subscribe()
    }

    /// Tells connected clients that what they may see may have changed (after a revocation, say).
    pub fn announce_change(&self) {
        let _ = self.changes.send(());
    }

    /// Closes the upstream sessions and flushes decision records (publishing the chain head).
    pub async fn shutdown(&self) {
        self.catalog.shutdown();
        self.audit.close().await;
    }
}

pub fn elapsed_us(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
