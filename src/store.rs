//! The store: revocations, approvals, tool pins, and the upstreams and agents registered at run time (decision
//! records have their own writer, in `audit`). One interface, two places: the embedded SQLite file (the default,
//! one gateway) or PostgreSQL (several replicas sharing it). Reads at start load the in-memory state; with
//! PostgreSQL, [`follow`](crate::gateway) reads it again whenever another replica changes it. Tables of opaque
//! JSON take any `Serialize` type, so the store names no type of the steps above it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod approvals;
pub mod migrate;
pub mod postgres;
mod sqlite;

pub use approvals::{Approval, ApprovalStatus, Escalation, Held};
pub use postgres::{Postgres, Shared};
pub use sqlite::Sqlite;

/// Errors of the store: it could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub(crate) String);

impl StoreError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevocationTarget {
    /// One token, by `jti` (of one issuer, or of any when `issuer` is absent).
    Token {
        jti: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
    },
    /// A subject of an issuer: every token of `(iss, sub)`.
    Subject { issuer: String, subject: String },
    /// An agent, wherever it appears in a chain.
    Agent { agent: String },
}

/// A stored revocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    pub id: i64,
    #[serde(flatten)]
    pub target: RevocationTarget,
    /// Only tokens issued (`iat`) before this time (Unix seconds); `None` revokes them all.
    pub issued_before: Option<i64>,
    pub reason: Option<String>,
    /// When it was revoked (Unix seconds).
    pub created_at: i64,
    /// Admin subject that revoked it.
    pub created_by: String,
}

impl RevocationTarget {
    /// As stored: kind and two keys.
    fn columns(&self) -> (&'static str, String, Option<String>) {
        match self {
            Self::Token { jti, issuer } => ("token", jti.clone(), issuer.clone()),
            Self::Subject { issuer, subject } => ("subject", issuer.clone(), Some(subject.clone())),
            Self::Agent { agent } => ("agent", agent.clone(), None),
        }
    }

    fn from_columns(kind: &str, key1: String, key2: Option<String>) -> Result<Self, StoreError> {
        Ok(match kind {
            "token" => Self::Token {
                jti: key1,
                issuer: key2,
            },
            "subject" => Self::Subject {
                issuer: key1,
                subject: key2.unwrap_or_default(),
            },
            "agent" => Self::Agent { agent: key1 },
            other => return Err(StoreError(format!("unknown revocation kind `{other}`"))),
        })
    }
}

/// The store, in one place or the other.
#[derive(Clone)]
pub enum Store {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// Dispatches a call to the store's place.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

fn body(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

fn parse<T: DeserializeOwned>(
    rows: Vec<(String, String)>,
    what: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    rows.into_iter()
        .map(|(key, body)| {
            let value = serde_json::from_str(&body)
                .map_err(|e| StoreError(format!("{what} `{key}` is not readable: {e}")))?;
            Ok((key, value))
        })
        .collect()
}

impl Store {
    /// Opens the store the config names: PostgreSQL (connecting and migrating; refused when unreachable or of a
    /// newer schema) or the SQLite file.
    pub async fn open(config: &crate::config::StorageConfig) -> Result<Self, StoreError> {
        match &config.postgres {
            Some(postgres) => Ok(Self::Postgres(Postgres::open(postgres).await?)),
            None => Ok(Self::Sqlite(Sqlite::open(&config.path)?)),
        }
    }

    /// A store that lives in memory only (for checks and tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self::Sqlite(Sqlite::in_memory()?))
    }

    /// Stores a revocation and returns it with its id.
    pub async fn add_revocation(&self, revocation: Revocation) -> Result<Revocation, StoreError> {
        each!(self, s => s.add_revocation(revocation).await)
    }

    /// Every stored revocation.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.revocations_after(0).await
    }

    /// Stored revocations of an id above `after`, in id order.
    pub async fn revocations_after(&self, after: i64) -> Result<Vec<Revocation>, StoreError> {
        each!(self, s => s.revocations_after(after).await)
    }

    /// `(key, body)` of every row `sql` selects, each body parsed; `what` names a row in errors.
    async fn rows<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        what: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let rows = each!(self, s => s.bodies(sql).await)?;
        parse(rows, what)
    }

    /// Every stored pin.
    pub async fn pins<T: DeserializeOwned + Send + 'static>(&self) -> Result<Vec<T>, StoreError> {
        let rows = self
            .rows("SELECT tool, body FROM pins ORDER BY tool", "pin")
            .await?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    /// Stores (or replaces) a tool's pin.
    pub async fn put_pin<T: Serialize + Send + 'static>(
        &self,
        tool: String,
        pin: T,
    ) -> Result<(), StoreError> {
        let body = body(&pin)?;
        each!(self, s => s.put_pin(tool, body).await)
    }

    /// Upstreams registered at run time (with their credentials: the store is as sensitive as the config).
    pub async fn registered_upstreams<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self
            .rows(
                "SELECT name, body FROM registered_upstreams ORDER BY created_at, name",
                "registered upstream",
            )
            .await?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    pub async fn put_upstream<T: Serialize + Send + 'static>(
        &self,
        name: String,
        upstream: T,
        by: String,
    ) -> Result<(), StoreError> {
        let body = body(&upstream)?;
        each!(self, s => s.put_upstream(name, body, by).await)
    }

    pub async fn delete_upstream(&self, name: String) -> Result<(), StoreError> {
        each!(self, s => s.delete_upstream(name).await)
    }

    /// Names of registered upstreams an admin disabled.
    pub async fn disabled_upstreams(&self) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.disabled_upstreams().await)
    }

    pub async fn set_upstream_disabled(
        &self,
        name: String,
        disabled: bool,
    ) -> Result<(), StoreError> {
        each!(self, s => s.set_upstream_disabled(name, disabled).await)
    }

    /// Agents registered at run time.
    pub async fn registered_agents<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<std::collections::BTreeMap<String, T>, StoreError> {
        let rows = self
            .rows(
                "SELECT id, body FROM registered_agents ORDER BY id",
                "registered agent",
            )
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Stores (or replaces) an agent registered at run time; `None` removes it.
    pub async fn put_agent<T: Serialize + Send + 'static>(
        &self,
        id: String,
        spec: Option<T>,
        by: String,
    ) -> Result<(), StoreError> {
        let body = spec.as_ref().map(body).transpose()?;
        each!(self, s => s.put_agent(id, body, by).await)
    }

    /// For an escalated call: consumes a granted, unexpired approval of this exact request if there is one (once
    /// only, atomically, wherever it was granted); otherwise returns the pending approval of the same request, or
    /// stores `request` as a new pending one.
    pub async fn escalate(
        &self,
        request: Approval,
        now: i64,
        max_pending: usize,
    ) -> Result<Escalation, StoreError> {
        each!(self, s => s.escalate(request, now, max_pending).await)
    }

    /// Approvals, newest first (at most 1,000), optionally of one status.
    pub async fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        now: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        each!(self, s => s.approvals(status, now).await)
    }

    pub async fn approval(&self, id: String, now: i64) -> Result<Option<Approval>, StoreError> {
        each!(self, s => s.approval(id, now).await)
    }

    /// Approves (usable until `usable_until`) or denies (the refusal standing until then) a pending, unexpired
    /// approval. `None` when there is no such pending approval.
    pub async fn decide_approval(
        &self,
        id: String,
        approve: bool,
        by: String,
        now: i64,
        usable_until: i64,
    ) -> Result<Option<Approval>, StoreError> {
        each!(self, s => s.decide_approval(id, approve, by, now, usable_until).await)
    }

    /// Remembers that a client ended the session `id` (kept as long as a session can be resumed, a day).
    pub async fn end_session(&self, id: String) -> Result<(), StoreError> {
        let key = session_key(&id);
        let forget_before = crate::clock::unix_now() - 24 * 3600;
        each!(self, s => s.end_session(key, forget_before).await)
    }

    /// Whether a client ended the session `id`.
    pub async fn session_ended(&self, id: String) -> Result<bool, StoreError> {
        let key = session_key(&id);
        each!(self, s => s.session_ended(key).await)
    }
}

/// What is kept of an ended session's id: its SHA-256.
fn session_key(id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(id.as_bytes()))
}
