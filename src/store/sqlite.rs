//! The embedded store in one SQLite file. Writes go through one connection on a blocking thread.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use super::{Revocation, RevocationTarget, StoreError, migrate};
use crate::clock::unix_now;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// The SQLite store.
#[derive(Clone)]
pub struct Sqlite {
    pub(super) conn: Arc<Mutex<Connection>>,
}

impl Sqlite {
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
        migrate::sqlite(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(super) async fn with<T: Send + 'static>(
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

    pub async fn add_revocation(
        &self,
        mut revocation: Revocation,
    ) -> Result<Revocation, StoreError> {
        self.with(move |conn| {
            let (kind, key1, key2) = revocation.target.columns();
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

    pub async fn revocations_after(&self, after: i64) -> Result<Vec<Revocation>, StoreError> {
        self.with(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, kind, key1, key2, issued_before, reason, created_at, created_by FROM revocations
                 WHERE id > ?1 ORDER BY id",
            )?;
            let rows = statement.query_map(params![after], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ))
            })?;
            rows.map(|row| {
                let (id, kind, key1, key2, issued_before, reason, created_at, created_by) = row?;
                Ok(Revocation {
                    id,
                    target: RevocationTarget::from_columns(&kind, key1, key2)?,
                    issued_before,
                    reason,
                    created_at,
                    created_by,
                })
            })
            .collect()
        })
        .await
    }

    /// `(key, body)` of every row `sql` selects.
    pub async fn bodies(&self, sql: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        self.with(move |conn| {
            let mut statement = conn.prepare(sql)?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn put_pin(&self, tool: String, body: String) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO pins (tool, body) VALUES (?1, ?2) ON CONFLICT(tool) DO UPDATE SET body = excluded.body",
                params![tool, body],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn put_upstream(
        &self,
        name: String,
        body: String,
        by: String,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
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

    pub async fn put_agent(
        &self,
        id: String,
        body: Option<String>,
        by: String,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            match body {
                Some(body) => {
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

    pub async fn end_session(&self, key: String, forget_before: i64) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM ended_sessions WHERE ended_at < ?1",
                params![forget_before],
            )?;
            conn.execute(
                "INSERT OR IGNORE INTO ended_sessions (id, ended_at) VALUES (?1, ?2)",
                params![key, unix_now()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn session_ended(&self, key: String) -> Result<bool, StoreError> {
        self.with(move |conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM ended_sessions WHERE id = ?1",
                params![key],
                |row| row.get::<_, i64>(0),
            )? > 0)
        })
        .await
    }
}
