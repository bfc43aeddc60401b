//! The embedded store (one SQLite file): revocations today; decision records, registered upstreams and pins
//! later. Writes go through one connection on a blocking thread; reads at start load the in-memory state.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// Errors of the store: it could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

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
            );",
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
}
