//! Reading decision records wherever they are kept: reports, the admin API, verification. Reading PostgreSQL
//! blocks: call these off the async runtime (`spawn_blocking`, or [`off_runtime`](super::postgres::off_runtime)).

use super::postgres::PgRecords;
use super::store::{AgentUse, RawRow, RecordFilter, SqliteAuditStore, StoredRecord};
use crate::config::StorageConfig;
use crate::store::StoreError;

/// One chain's rows: its name (none for the embedded store's one chain) and its rows in sequence order.
pub type Chain = (Option<String>, Vec<RawRow>);

/// The records of one store.
pub enum Records {
    Sqlite(SqliteAuditStore),
    Postgres(PgRecords),
}

impl Records {
    /// Opens the records the config names, to read only.
    pub fn open(storage: &StorageConfig) -> Result<Self, StoreError> {
        match &storage.postgres {
            Some(postgres) => Ok(Self::Postgres(PgRecords::open(postgres)?)),
            None => Ok(Self::Sqlite(SqliteAuditStore::open_read_only(
                &storage.path,
            )?)),
        }
    }

    /// Records matching `filter`; `after` pages by [`StoredRecord::position`].
    pub fn query(&mut self, filter: &RecordFilter) -> Result<Vec<StoredRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.query(filter),
            Self::Postgres(s) => s.query(filter),
        }
    }

    /// Every chain's rows in sequence order (the embedded store has one chain, unnamed).
    pub fn chains(&mut self) -> Result<Vec<Chain>, StoreError> {
        match self {
            Self::Sqlite(s) => Ok(vec![(None, s.raw_rows()?)]),
            Self::Postgres(s) => Ok(s
                .chains()?
                .into_iter()
                .map(|(chain, rows)| (Some(chain), rows))
                .collect()),
        }
    }

    /// Per agent and tool: the tool calls recorded (whatever was decided) and the time of the last one.
    pub fn agent_usage(&mut self) -> Result<Vec<AgentUse>, StoreError> {
        match self {
            Self::Sqlite(s) => s.agent_usage(),
            Self::Postgres(s) => s.agent_usage(),
        }
    }

    /// Records per minute (Unix minute) and decision since `since_ms`.
    pub fn per_minute(&mut self, since_ms: i64) -> Result<Vec<(i64, String, u64)>, StoreError> {
        match self {
            Self::Sqlite(s) => s.per_minute(since_ms),
            Self::Postgres(s) => s.per_minute(since_ms),
        }
    }

    /// The row at `position` (as [`StoredRecord::position`] says), its chain's name, and the MAC of the row before
    /// it in that chain: what checking its seal needs.
    pub fn row_at(
        &mut self,
        position: i64,
    ) -> Result<Option<(Option<String>, RawRow, String)>, StoreError> {
        match self {
            Self::Sqlite(s) => Ok(s
                .row_at(position)?
                .map(|(row, previous)| (None, row, previous))),
            Self::Postgres(s) => Ok(s
                .row_at(position)?
                .map(|(chain, row, previous)| (Some(chain), row, previous))),
        }
    }

    /// Per agent: calls recorded and the time of the last one (Unix ms).
    pub fn agent_activity(
        &mut self,
    ) -> Result<std::collections::HashMap<String, (u64, i64)>, StoreError> {
        match self {
            Self::Sqlite(s) => s.agent_activity(),
            Self::Postgres(s) => s.agent_activity(),
        }
    }
}
