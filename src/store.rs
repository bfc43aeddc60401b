//! The embedded store (one SQLite file): revocations, approvals, tool pins, and the upstreams and agents
//! registered at run time (decision records share the file through their own writer, in `audit`). Writes go
//! through one connection on a blocking thread; reads at start load the in-memory state. Tables of opaque JSON
//! take any `Serialize` type, so the store names no type of the steps above it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod approvals;

pub use approvals::{Approval, ApprovalStatus, Escalation, Held};

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
        crate::secret::private_database(path)
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
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
                used_at INTEGER,
                details TEXT
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
        // Databases made before approvals kept what the approver is shown.
        let has_details: bool = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('approvals') WHERE name = 'details'",
            [],
            |row| row.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_details {
            conn.execute_batch("ALTER TABLE approvals ADD COLUMN details TEXT")?;
        }
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
