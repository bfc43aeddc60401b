//! Where decision records are kept. [`AuditStore`] is the storage interface; [`SqliteAuditStore`] keeps them in the
//! embedded SQLite file (the same database as revocations and approvals), through its own connection owned by the
//! writer thread.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{ChainHead, ChainKey, DecisionRecord};
use crate::config::Durability;
pub use crate::store::StoreError;

/// A record as stored: its place in the chain and its MAC.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRecord {
    /// Where it stands among every chain's records: what `after` pages by.
    pub position: i64,
    /// The record chain it belongs to (a replica's, with PostgreSQL); `chain` is the record's delegation chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    pub seq: i64,
    pub mac: String,
    #[serde(flatten)]
    pub record: DecisionRecord,
}

/// Filters of a record query; all optional. `after` pages by sequence number.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFilter {
    pub tool: Option<String>,
    /// `issuer/subject` of the human (principal-context) or of the token.
    pub principal: Option<String>,
    pub agent: Option<String>,
    pub decision: Option<String>,
    pub kind: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
    /// Only records one of whose reasons contains this text.
    pub reason: Option<String>,
    /// `newest`: newest first, paged with `before` (the last `position` of the page before) instead of `after`.
    pub order: Option<Order>,
    pub before: Option<i64>,
}

/// The order records are read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Oldest,
    Newest,
}

impl RecordFilter {
    /// The longest text a search looks for in reasons (each search by reason reads every record's reasons).
    pub const MAX_REASON: usize = 200;

    /// Whether the reason to look for is longer than [`Self::MAX_REASON`] characters.
    pub fn reason_too_long(&self) -> bool {
        self.reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > Self::MAX_REASON)
    }

    pub(super) fn newest(&self) -> bool {
        self.order == Some(Order::Newest)
    }

    pub(super) fn limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(100).clamp(1, 10_000))
    }
}

/// Storage of decision records.
pub trait AuditStore: Send {
    /// Appends records after `head`, chaining each to the one before; returns the new head. All or nothing.
    fn append(
        &mut self,
        records: &[&DecisionRecord],
        key: &ChainKey,
        head: &ChainHead,
    ) -> Result<ChainHead, StoreError>;
    /// The last record's place in the chain (seq 0 when empty).
    fn head(&mut self) -> Result<ChainHead, StoreError>;
}

/// Decision records in SQLite.
pub struct SqliteAuditStore {
    conn: Connection,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS decisions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        tool TEXT,
        principal TEXT,
        agent TEXT,
        decision TEXT NOT NULL,
        outcome TEXT NOT NULL,
        body TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time_ms);
    CREATE INDEX IF NOT EXISTS decisions_tool ON decisions (tool, time_ms);";

/// `issuer/subject` of the person a record is about: the human in principal-context mode, else the token's.
pub fn principal_key(record: &DecisionRecord) -> Option<String> {
    match (&record.principal, &record.issuer, &record.subject) {
        (Some(p), Some(i), _) => Some(format!("{i}/{p}")),
        (None, Some(i), Some(s)) => Some(format!("{i}/{s}")),
        _ => None,
    }
}

impl SqliteAuditStore {
    /// Opens the database for writing records, with the durability asked for.
    pub fn open(
        path: &Path,
        durability: Durability,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        crate::secret::private_database(path)
            .map_err(|e| StoreError::new(format!("{}: {e}", path.display())))?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", super::synchronous(durability))?;
        conn.busy_timeout(busy_timeout)?;
        // With `normal`, the log is copied into the database by [`Checkpointer`], never by a commit, so a commit
        // never waits for a checkpoint's writes and syncs. With `full`, every commit syncs anyway, and a
        // checkpoint syncing from another thread would contend with it: commits checkpoint, as SQLite does.
        if durability == Durability::Normal {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// Opens the database to read records (reports, verification); never creates it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::new(format!(
                "no database at `{}`",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Self { conn })
    }

    /// Per agent: calls recorded and the time of the last one (Unix ms).
    pub fn agent_activity(
        &self,
    ) -> Result<std::collections::HashMap<String, (u64, i64)>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT agent, count(*), max(time_ms) FROM decisions
             WHERE kind = 'tools/call' AND agent IS NOT NULL GROUP BY agent",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                (row.get::<_, i64>(1)?, row.get::<_, i64>(2)?),
            ))
        })?;
        rows.map(|r| r.map(|(a, (n, t))| (a, (u64::try_from(n).unwrap_or(0), t))))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// Per agent and tool (`None` for a call that named none): the calls recorded and the time of the last one
    /// (Unix ms): what the console's agents page shows, in one read of the records.
    pub fn agent_usage(&self) -> Result<Vec<AgentUse>, StoreError> {
        let mut statement = self.conn.prepare(AGENT_USAGE)?;
        let rows = statement.query_map([], |row| {
            Ok(AgentUse {
                agent: row.get(0)?,
                tool: row.get(1)?,
                calls: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                last_ms: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records per minute (Unix minute) and decision since `since_ms`.
    pub fn per_minute(&self, since_ms: i64) -> Result<Vec<(i64, String, u64)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT time_ms / 60000, decision, count(*) FROM decisions WHERE time_ms >= ?1 GROUP BY 1, 2",
        )?;
        let rows = statement.query_map([since_ms], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)?))
        })?;
        rows.map(|r| r.map(|(m, d, n)| (m, d, u64::try_from(n).unwrap_or(0))))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// The row at `seq` and the MAC of the one before it (the chain's start for the first).
    pub fn row_at(&self, seq: i64) -> Result<Option<(RawRow, String)>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!("{RAW} WHERE seq = ?1"))?;
        let Some(row) = statement.query_map([seq], raw_row)?.next().transpose()? else {
            return Ok(None);
        };
        let previous = if seq <= 1 {
            super::chain::genesis(None)
        } else {
            let mut statement = self
                .conn
                .prepare_cached("SELECT mac FROM decisions WHERE seq = ?1")?;
            statement
                .query_map([seq - 1], |row| row.get::<_, String>(0))?
                .next()
                .transpose()?
                .unwrap_or_default()
        };
        Ok(Some((row, previous)))
    }

    /// Every row in sequence order, as stored (for verification): `(seq, id column, body, mac)`.
    pub fn raw_rows(&self) -> Result<Vec<RawRow>, StoreError> {
        let mut statement = self.conn.prepare(&format!("{RAW} ORDER BY seq"))?;
        let rows = statement.query_map([], raw_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Records matching `filter`, in chain order.
    pub fn query(&self, filter: &RecordFilter) -> Result<Vec<StoredRecord>, StoreError> {
        let (cursor, order, from) = if filter.newest() {
            ("seq < ?8", "DESC", filter.before.unwrap_or(i64::MAX))
        } else {
            ("seq > ?8", "ASC", filter.after.unwrap_or(0))
        };
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT seq, body, mac FROM decisions
             WHERE (?1 IS NULL OR tool = ?1)
               AND (?2 IS NULL OR principal = ?2)
               AND (?3 IS NULL OR agent = ?3)
               AND (?4 IS NULL OR decision = ?4)
               AND (?5 IS NULL OR kind = ?5)
               AND (?6 IS NULL OR time_ms >= ?6)
               AND (?7 IS NULL OR time_ms < ?7)
               AND {cursor}
               AND (?10 IS NULL OR EXISTS
                    (SELECT 1 FROM json_each(body, '$.reasons') WHERE instr(value, ?10) > 0))
             ORDER BY seq {order} LIMIT ?9"
        ))?;
        let rows = statement.query_map(
            params![
                filter.tool,
                filter.principal,
                filter.agent,
                filter.decision,
                filter.kind,
                filter.since,
                filter.until,
                from,
                filter.limit(),
                filter.reason
            ],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body, mac) = row?;
            let record: DecisionRecord = serde_json::from_str(&body)
                .map_err(|e| StoreError::new(format!("record {seq} is not readable: {e}")))?;
            out.push(StoredRecord {
                position: seq,
                chain_id: None,
                seq,
                mac,
                record,
            });
        }
        Ok(out)
    }
}

/// Tool calls per agent and tool, with the last one's time: the same SQL for both stores.
pub(super) const AGENT_USAGE: &str = "SELECT agent, tool, count(*), max(time_ms) FROM decisions
     WHERE kind = 'tools/call' AND agent IS NOT NULL GROUP BY agent, tool";

/// One agent's calls of one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUse {
    pub agent: String,
    pub tool: Option<String>,
    pub calls: u64,
    pub last_ms: i64,
}

const RAW: &str =
    "SELECT seq, id, time_ms, kind, tool, principal, agent, decision, outcome, body, mac
     FROM decisions";

fn raw_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        time_ms: row.get(2)?,
        kind: row.get(3)?,
        tool: row.get(4)?,
        principal: row.get(5)?,
        agent: row.get(6)?,
        decision: row.get(7)?,
        outcome: row.get(8)?,
        body: row.get(9)?,
        mac: row.get(10)?,
    })
}

/// One stored row, untouched.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub seq: i64,
    pub id: String,
    pub time_ms: i64,
    pub kind: String,
    pub tool: Option<String>,
    pub principal: Option<String>,
    pub agent: Option<String>,
    pub decision: String,
    pub outcome: String,
    pub body: String,
    pub mac: String,
}

/// A record sealed into its chain: its place, its JSON exactly as stored, its MAC.
pub(super) struct Sealed<'a> {
    pub record: &'a DecisionRecord,
    pub seq: i64,
    pub body: String,
    pub mac: String,
}

/// Seals `records` in order after `head`, each over the one before; returns them and the new head (of `head`'s
/// chain). Whatever stores them stores exactly these bodies: verification never re-serializes.
pub(super) fn seal<'a>(
    records: &[&'a DecisionRecord],
    key: &ChainKey,
    head: &ChainHead,
) -> Result<(Vec<Sealed<'a>>, ChainHead), StoreError> {
    let mut current = head.clone();
    let mut sealed = Vec::with_capacity(records.len());
    for record in records {
        let body = serde_json::to_string(record).map_err(|e| StoreError::new(e.to_string()))?;
        let seq = current.seq + 1;
        let mac = key.seal(&current.mac, seq, &body);
        current = ChainHead {
            seq,
            id: record.id.clone(),
            mac: mac.clone(),
            time_ms: record.time_ms,
            chain: current.chain,
        };
        sealed.push(Sealed {
            record,
            seq,
            body,
            mac,
        });
    }
    Ok((sealed, current))
}

impl AuditStore for SqliteAuditStore {
    fn append(
        &mut self,
        records: &[&DecisionRecord],
        key: &ChainKey,
        head: &ChainHead,
    ) -> Result<ChainHead, StoreError> {
        let (sealed, new_head) = seal(records, key, head)?;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO decisions (seq, id, time_ms, kind, tool, principal, agent, decision, outcome, body, mac)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for Sealed {
                record,
                seq,
                body,
                mac,
            } in &sealed
            {
                insert.execute(params![
                    seq,
                    record.id,
                    record.time_ms,
                    record.kind,
                    record.tool,
                    principal_key(record),
                    record.agent,
                    record.decision,
                    record.outcome,
                    body,
                    mac
                ])?;
            }
        }
        tx.commit()?;
        Ok(new_head)
    }

    fn head(&mut self) -> Result<ChainHead, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, id, mac, time_ms FROM decisions ORDER BY seq DESC LIMIT 1",
                [],
                |row| {
                    Ok(ChainHead {
                        seq: row.get(0)?,
                        id: row.get(1)?,
                        mac: row.get(2)?,
                        time_ms: row.get(3)?,
                        chain: None,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }
}

/// Copies the write-ahead log of the records database into the database proper, off the writer's path.
pub struct Checkpointer {
    conn: Connection,
}

impl Checkpointer {
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        Ok(Self { conn })
    }

    /// A passive checkpoint: copies what it can without waiting for, or blocking, the writer.
    pub fn run(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}
