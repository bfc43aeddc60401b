//! The embedded store (one SQLite file): revocations today; decision records, registered upstreams and pins
//! later. Writes go through one connection on a blocking thread; reads at start load the in-memory state.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Errors of the store: it could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Now, in Unix seconds.
use crate::clock::unix_now;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
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

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an approver.
    Pending,
    /// Granted: the caller's next identical call goes through, once.
    Approved,
    Denied,
    /// Granted and consumed by a call.
    Used,
    /// Not decided or not used in time.
    Expired,
}

impl ApprovalStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Used => "used",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "used" => Self::Used,
            "expired" => Self::Expired,
            other => return Err(StoreError(format!("unknown approval status `{other}`"))),
        })
    }
}

/// A call held for human approval, bound to its exact caller, chain, tool (and pin) and arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub status: ApprovalStatus,
    pub issuer: String,
    pub subject: String,
    /// Agents, oldest first.
    pub chain: Vec<String>,
    pub tool: String,
    pub pin: Option<String>,
    /// SHA-256 of the arguments' canonical JSON (RFC 8785).
    pub arguments_hash: String,
    pub reasons: Vec<String>,
    pub policy_version: String,
    pub created_at: i64,
    /// Pending: until when an approver may decide. Approved: until when the call may be made.
    pub expires_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub used_at: Option<i64>,
}

/// What an escalated call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escalation {
    /// A granted approval matched and was consumed.
    Granted(String),
    /// The call waits for this approval (new, or the same call asked before).
    Pending { id: String, expires_at: i64 },
    /// An approver refused this very call; it is not held again until the refusal expires.
    Denied { id: String, expires_at: i64 },
}

const APPROVAL_COLUMNS: &str = "id, status, issuer, subject, chain, tool, pin, arguments_hash, reasons, policy_version, created_at, expires_at, decided_by, decided_at, used_at";

fn approval_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Approval, String, String, String)> {
    Ok((
        Approval {
            id: row.get(0)?,
            status: ApprovalStatus::Pending,
            issuer: row.get(2)?,
            subject: row.get(3)?,
            chain: Vec::new(),
            tool: row.get(5)?,
            pin: row.get(6)?,
            arguments_hash: row.get(7)?,
            reasons: Vec::new(),
            policy_version: row.get(9)?,
            created_at: row.get(10)?,
            expires_at: row.get(11)?,
            decided_by: row.get(12)?,
            decided_at: row.get(13)?,
            used_at: row.get(14)?,
        },
        row.get(1)?,
        row.get(4)?,
        row.get(8)?,
    ))
}

fn finish_approval(
    (mut approval, status, chain, reasons): (Approval, String, String, String),
    now: i64,
) -> Result<Approval, StoreError> {
    approval.status = ApprovalStatus::parse(&status)?;
    if matches!(
        approval.status,
        ApprovalStatus::Pending | ApprovalStatus::Approved
    ) && approval.expires_at <= now
    {
        approval.status = ApprovalStatus::Expired;
    }
    approval.chain = serde_json::from_str(&chain).map_err(|e| StoreError(e.to_string()))?;
    approval.reasons = serde_json::from_str(&reasons).map_err(|e| StoreError(e.to_string()))?;
    Ok(approval)
}

/// The SQLite store.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError(format!("{}: {e}", parent.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// A store that lives in memory only (for checks and tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS revocations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,
                key1 TEXT NOT NULL,
                key2 TEXT,
                issued_before INTEGER,
                reason TEXT,
                created_at INTEGER NOT NULL,
                created_by TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS approvals (
                id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                issuer TEXT NOT NULL,
                subject TEXT NOT NULL,
                chain TEXT NOT NULL,
                tool TEXT NOT NULL,
                pin TEXT,
                arguments_hash TEXT NOT NULL,
                reasons TEXT NOT NULL,
                policy_version TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                decided_by TEXT,
                decided_at INTEGER,
                used_at INTEGER
            );
            CREATE TABLE IF NOT EXISTS registered_upstreams (
                name TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS disabled_upstreams (
                name TEXT PRIMARY KEY
            );
            CREATE TABLE IF NOT EXISTS registered_agents (
                id TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                updated_by TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS pins (
                tool TEXT PRIMARY KEY,
                body TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS approvals_match
                ON approvals (issuer, subject, tool, arguments_hash, status);",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| StoreError("connection poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
    }

    /// Stores a revocation and returns it with its id.
    pub async fn add_revocation(
        &self,
        mut revocation: Revocation,
    ) -> Result<Revocation, StoreError> {
        self.with(move |conn| {
            let (kind, key1, key2) = match &revocation.target {
                RevocationTarget::Token { jti, issuer } => ("token", jti.clone(), issuer.clone()),
                RevocationTarget::Subject { issuer, subject } => ("subject", issuer.clone(), Some(subject.clone())),
                RevocationTarget::Agent { agent } => ("agent", agent.clone(), None),
            };
            conn.execute(
                "INSERT INTO revocations (kind, key1, key2, issued_before, reason, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    kind,
                    key1,
                    key2,
                    revocation.issued_before,
                    revocation.reason,
                    revocation.created_at,
                    revocation.created_by
                ],
            )?;
            revocation.id = conn.last_insert_rowid();
            Ok(revocation)
        })
        .await
    }

    /// Every stored revocation.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.with(|conn| {
            let mut statement = conn.prepare(
                "SELECT id, kind, key1, key2, issued_before, reason, created_at, created_by FROM revocations ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                let kind: String = row.get(1)?;
                let key1: String = row.get(2)?;
                let key2: Option<String> = row.get(3)?;
                Ok((row.get::<_, i64>(0)?, kind, key1, key2, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind, key1, key2, issued_before, reason, created_at, created_by) = row?;
                let target = match kind.as_str() {
                    "token" => RevocationTarget::Token {
                        jti: key1,
                        issuer: key2,
                    },
                    "subject" => RevocationTarget::Subject {
                        issuer: key1,
                        subject: key2.unwrap_or_default(),
                    },
                    "agent" => RevocationTarget::Agent { agent: key1 },
                    other => return Err(StoreError(format!("unknown revocation kind `{other}`"))),
                };
                out.push(Revocation {
                    id,
                    target,
                    issued_before,
                    reason,
                    created_at,
                    created_by,
                });
            }
            Ok(out)
        })
        .await
    }

    /// For an escalated call: consumes a granted, unexpired approval of this exact request if there is one (once
    /// only, atomically); otherwise returns the pending approval of the same request, or stores `request` as a new
    /// pending one.
    pub async fn escalate(&self, request: Approval, now: i64) -> Result<Escalation, StoreError> {
        self.with(move |conn| {
            let chain = serde_json::to_string(&request.chain).map_err(|e| StoreError(e.to_string()))?;
            let matching = "issuer = ?1 AND subject = ?2 AND chain = ?3 AND tool = ?4 AND arguments_hash = ?5
                 AND pin IS ?6 AND expires_at > ?7";
            let used: Option<String> = conn
                .query_row(
                    &format!(
                        "UPDATE approvals SET status = 'used', used_at = ?7 WHERE id = (
                            SELECT id FROM approvals WHERE status = 'approved' AND {matching}
                            ORDER BY decided_at LIMIT 1) RETURNING id"
                    ),
                    params![request.issuer, request.subject, chain, request.tool, request.arguments_hash, request.pin, now],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = used {
                return Ok(Escalation::Granted(id));
            }
            let pending: Option<(String, i64)> = conn
                .query_row(
                    &format!(
                        "SELECT id, expires_at FROM approvals WHERE status = 'pending' AND {matching}
                         ORDER BY created_at LIMIT 1"
                    ),
                    params![request.issuer, request.subject, chain, request.tool, request.arguments_hash, request.pin, now],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((id, expires_at)) = pending {
                return Ok(Escalation::Pending { id, expires_at });
            }
            // A refusal stands for its lifetime: asking again does not reach an approver again.
            let denied: Option<(String, i64)> = conn
                .query_row(
                    &format!(
                        "SELECT id, expires_at FROM approvals WHERE status = 'denied' AND {matching}
                         ORDER BY decided_at DESC LIMIT 1"
                    ),
                    params![request.issuer, request.subject, chain, request.tool, request.arguments_hash, request.pin, now],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((id, expires_at)) = denied {
                return Ok(Escalation::Denied { id, expires_at });
            }
            let reasons = serde_json::to_string(&request.reasons).map_err(|e| StoreError(e.to_string()))?;
            conn.execute(
                &format!("INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL, NULL)"),
                params![
                    request.id, request.issuer, request.subject, chain, request.tool, request.pin,
                    request.arguments_hash, reasons, request.policy_version, request.created_at, request.expires_at
                ],
            )?;
            Ok(Escalation::Pending { id: request.id, expires_at: request.expires_at })
        })
        .await
    }

    /// Approvals, newest first (at most 1,000), optionally of one status.
    pub async fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        now: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        self.with(move |conn| {
            // Pending and approved rows past their time are expired: the filter is applied in SQL so that the
            // limit never hides what was asked for.
            let filter = match status {
                None => "1",
                Some(ApprovalStatus::Pending) => "status = 'pending' AND expires_at > ?1",
                Some(ApprovalStatus::Approved) => "status = 'approved' AND expires_at > ?1",
                Some(ApprovalStatus::Expired) => {
                    "(status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= ?1))"
                }
                Some(ApprovalStatus::Denied) => "status = 'denied'",
                Some(ApprovalStatus::Used) => "status = 'used'",
            };
            let mut statement = conn.prepare(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {filter} AND ?1 = ?1
                 ORDER BY created_at DESC, id DESC LIMIT 1000"
            ))?;
            let rows = statement.query_map(params![now], approval_row)?;
            rows.map(|row| finish_approval(row?, now)).collect()
        })
        .await
    }

    pub async fn approval(&self, id: String, now: i64) -> Result<Option<Approval>, StoreError> {
        self.with(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                    params![id],
                    approval_row,
                )
                .optional()?;
            row.map(|r| finish_approval(r, now)).transpose()
        })
        .await
    }

    /// Approves (usable until `usable_until`) or denies (the refusal standing until then) a pending, unexpired
    /// approval. `None` when there is no
    /// such pending approval.
    pub async fn decide_approval(
        &self,
        id: String,
        approve: bool,
        by: String,
        now: i64,
        usable_until: i64,
    ) -> Result<Option<Approval>, StoreError> {
        let store = self.clone();
        let changed = self
            .with({
                let id = id.clone();
                move |conn| {
                    let status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Denied };
                    // Granted: usable until then. Denied: the refusal stands until then.
                    let expires = usable_until;
                    Ok(conn.execute(
                        "UPDATE approvals SET status = ?1, decided_by = ?2, decided_at = ?3, expires_at = ?4
                         WHERE id = ?5 AND status = 'pending' AND expires_at > ?3",
                        params![status.as_str(), by, now, expires, id],
                    )?)
                }
            })
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        store.approval(id, now).await
    }

    /// Every stored pin.
    pub async fn pins<T: DeserializeOwned + Send + 'static>(&self) -> Result<Vec<T>, StoreError> {
        self.with(|conn| json_bodies(conn, "SELECT body FROM pins ORDER BY tool", "a pin"))
            .await
    }

    /// Stores (or replaces) a tool's pin.
    pub async fn put_pin<T: Serialize + Send + 'static>(
        &self,
        tool: String,
        pin: T,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            let body = serde_json::to_string(&pin).map_err(|e| StoreError(e.to_string()))?;
            conn.execute(
                "INSERT INTO pins (tool, body) VALUES (?1, ?2) ON CONFLICT(tool) DO UPDATE SET body = excluded.body",
                params![tool, body],
            )?;
            Ok(())
        })
        .await
    }

    /// Upstreams registered at run time (with their credentials: the store is as sensitive as the config).
    pub async fn registered_upstreams<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<Vec<T>, StoreError> {
        self.with(|conn| {
            json_bodies(
                conn,
                "SELECT body FROM registered_upstreams ORDER BY created_at, name",
                "a registered upstream",
            )
        })
        .await
    }

    pub async fn put_upstream<T: Serialize + Send + 'static>(
        &self,
        name: String,
        upstream: T,
        by: String,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            let body = serde_json::to_string(&upstream).map_err(|e| StoreError(e.to_string()))?;
            conn.execute(
                "INSERT INTO registered_upstreams (name, body, created_by, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET body = excluded.body",
                params![name, body, by, unix_now()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn delete_upstream(&self, name: String) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM registered_upstreams WHERE name = ?1",
                params![name],
            )?;
            conn.execute(
                "DELETE FROM disabled_upstreams WHERE name = ?1",
                params![name],
            )?;
            Ok(())
        })
        .await
    }

    /// Names of registered upstreams an admin disabled.
    pub async fn disabled_upstreams(&self) -> Result<Vec<String>, StoreError> {
        self.with(|conn| {
            let mut statement =
                conn.prepare("SELECT name FROM disabled_upstreams ORDER BY name")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn set_upstream_disabled(
        &self,
        name: String,
        disabled: bool,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            if disabled {
                conn.execute(
                    "INSERT OR IGNORE INTO disabled_upstreams (name) VALUES (?1)",
                    params![name],
                )?;
            } else {
                conn.execute(
                    "DELETE FROM disabled_upstreams WHERE name = ?1",
                    params![name],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Agents registered at run time.
    pub async fn registered_agents<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<std::collections::BTreeMap<String, T>, StoreError> {
        self.with(|conn| {
            let mut statement =
                conn.prepare("SELECT id, body FROM registered_agents ORDER BY id")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (id, body) = row?;
                let spec = serde_json::from_str(&body).map_err(|e| {
                    StoreError(format!("registered agent `{id}` is not readable: {e}"))
                })?;
                Ok((id, spec))
            })
            .collect()
        })
        .await
    }

    /// Stores (or replaces) an agent registered at run time; `None` removes it.
    pub async fn put_agent<T: Serialize + Send + 'static>(
        &self,
        id: String,
        spec: Option<T>,
        by: String,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            match spec {
                Some(spec) => {
                    let body = serde_json::to_string(&spec).map_err(|e| StoreError(e.to_string()))?;
                    conn.execute(
                        "INSERT INTO registered_agents (id, body, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(id) DO UPDATE SET body = excluded.body, updated_by = excluded.updated_by,
                         updated_at = excluded.updated_at",
                        params![id, body, by, unix_now()],
                    )?;
                }
                None => {
                    conn.execute("DELETE FROM registered_agents WHERE id = ?1", params![id])?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// The `body` column (JSON) of every row `sql` selects, parsed; `what` names a row in errors.
fn json_bodies<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.map(|body| {
        serde_json::from_str(&body?).map_err(|e| StoreError(format!("{what} is not readable: {e}")))
    })
    .collect()
}
