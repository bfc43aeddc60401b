//! Decision records in PostgreSQL: one chain per replica (named by `storage.postgres.replica`), so that replicas
//! never wait for each other's chain head. The writer's connection holds a lock on its chain: a second running
//! replica of the same name is refused rather than forking the chain. Each batch is one statement, durable when
//! it returns (`synchronous_commit` as the server has it; on by default).

use postgres::Client;

use super::store::{
    AGENT_USAGE, AgentUse, AuditStore, RawRow, RecordFilter, Sealed, StoredRecord, principal_key,
    seal,
};
use super::{ChainHead, ChainKey, DecisionRecord};
use crate::config::PostgresConfig;
use crate::store::StoreError;

/// Connects (a blocking client: call off the async runtime).
pub fn connect(config: &PostgresConfig) -> Result<Client, StoreError> {
    let pg_config = crate::store::postgres::connection_config(config)?;
    let at = crate::store::postgres::describe(&pg_config);
    let mut sync = postgres::Config::from(pg_config);
    sync.connect_timeout(config.connect_timeout);
    sync.connect(crate::store::postgres::tls(config)?)
        .map_err(|e| {
            StoreError::new(format!(
                "cannot reach postgres at {at}: {}",
                crate::store::postgres::cause(&e)
            ))
        })
}

/// Runs `f` on a thread of its own: the blocking client must not run on the async runtime's threads.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The writer's side: appends to this replica's chain.
pub struct PgAuditStore {
    config: PostgresConfig,
    chain: String,
    client: Option<Client>,
    /// After reconnecting: the head as the database has it (a batch may have committed before its answer was
    /// lost), used instead of the one the caller knows.
    resync: Option<ChainHead>,
}

impl PgAuditStore {
    /// Connects, takes this replica's chain (refused while another running replica holds it) and reads its head.
    pub fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let mut store = Self {
            config: config.clone(),
            chain: config.replica_name(),
            client: None,
            resync: None,
        };
        store.reconnect()?;
        Ok(store)
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    fn reconnect(&mut self) -> Result<&mut Client, StoreError> {
        self.client = None;
        let mut client = connect(&self.config)?;
        // A replica killed a moment ago may still hold its lock until the server sees its connection gone.
        let deadline = std::time::Instant::now() + self.config.connect_timeout;
        loop {
            let locked: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended('toolgate chain ' || $1, 0))",
                    &[&self.chain],
                )?
                .get(0);
            if locked {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::new(format!(
                    "decision-record chain `{}` is being written by another running replica: give each replica \
                     its own storage.postgres.replica",
                    self.chain
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        client
            .execute(
                "INSERT INTO chains (chain, replica, started_ms) VALUES ($1, $1, $2) ON CONFLICT (chain) DO NOTHING",
                &[&self.chain, &crate::clock::now_ms()],
            )
            ?;
        self.resync = Some(head_of(&mut client, &self.chain)?);
        Ok(self.client.insert(client))
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        match self.client.take() {
            Some(client) if !client.is_closed() => Ok(self.client.insert(client)),
            _ => self.reconnect(),
        }
    }
}

/// The blocking client closes its connection on a runtime of its own, which cannot start on the async runtime's
/// threads: it is dropped on a thread of its own.
impl Drop for PgAuditStore {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new()
                .name("toolgate-audit-close".into())
                .spawn(move || drop(client));
        }
    }
}

fn head_of(client: &mut Client, chain: &str) -> Result<ChainHead, StoreError> {
    Ok(client
        .query_opt(
            "SELECT seq, id, mac, time_ms FROM decisions WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
            &[&chain],
        )
        ?
        .map(|row| ChainHead {
            seq: row.get(0),
            id: row.get(1),
            mac: row.get(2),
            time_ms: row.get(3),
            chain: Some(chain.to_string()),
        })
        .unwrap_or_else(|| ChainHead {
            mac: super::chain::genesis(Some(chain)),
            chain: Some(chain.to_string()),
            ..ChainHead::default()
        }))
}

impl AuditStore for PgAuditStore {
    fn append(
        &mut self,
        records: &[&DecisionRecord],
        key: &ChainKey,
        head: &ChainHead,
    ) -> Result<ChainHead, StoreError> {
        let chain = self.chain.clone();
        self.client()?;
        let mut current = match self.resync.take() {
            Some(stored) => {
                if stored.seq < head.seq {
                    tracing::error!(
                        chain = %chain, stored = stored.seq, committed = head.seq,
                        "the database's chain ends before records this replica committed: they were lost (a \
                         failover?); the chain goes on from the database's head, and audit verify will report the gap \
                         against the published head"
                    );
                }
                stored
            }
            None => head.clone(),
        };
        current.chain = Some(chain.clone());
        let (sealed, new_head) = seal(records, key, &current)?;
        let column = |f: for<'s> fn(&'s Sealed<'_>) -> Option<&'s str>| {
            sealed.iter().map(f).collect::<Vec<_>>()
        };
        let seqs: Vec<i64> = sealed.iter().map(|s| s.seq).collect();
        let times: Vec<i64> = sealed.iter().map(|s| s.record.time_ms).collect();
        let principals: Vec<Option<String>> =
            sealed.iter().map(|s| principal_key(s.record)).collect();
        let ids = column(|s| Some(&s.record.id));
        let kinds = column(|s| Some(&s.record.kind));
        let tools = column(|s| s.record.tool.as_deref());
        let agents = column(|s| s.record.agent.as_deref());
        let decisions = column(|s| Some(&s.record.decision));
        let outcomes = column(|s| Some(&s.record.outcome));
        let bodies = column(|s| Some(&s.body));
        let macs = column(|s| Some(&s.mac));
        let n = sealed.len();
        let chains = vec![chain.as_str(); n];
        let result = self.client()?.execute(
            "INSERT INTO decisions (chain, seq, id, time_ms, kind, tool, principal, agent, decision, outcome, body, mac)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])",
            &[
                &chains, &seqs, &ids, &times, &kinds, &tools, &principals, &agents, &decisions, &outcomes, &bodies,
                &macs,
            ],
        );
        match result {
            Ok(_) => Ok(new_head),
            Err(e) => {
                // Whether it committed is unknown: the next batch starts from the head the database has.
                self.client = None;
                self.resync = None;
                Err(e.into())
            }
        }
    }

    fn head(&mut self) -> Result<ChainHead, StoreError> {
        let chain = self.chain.clone();
        head_of(self.client()?, &chain)
    }
}

/// The reading side: reports, the admin API, verification.
pub struct PgRecords {
    client: Client,
}

impl PgRecords {
    pub fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        Ok(Self {
            client: connect(config)?,
        })
    }

    /// Records matching `filter`, across chains, in the order their transactions began (then position); `after`
    /// pages by `position`. Replicas commit concurrently, so a record whose transaction is older than one still
    /// in flight waits until that one ends: a page never skips a record that commits after it was read.
    pub fn query(&mut self, filter: &RecordFilter) -> Result<Vec<StoredRecord>, StoreError> {
        let (cursor, order, from) = if filter.newest() {
            ("<", "DESC", filter.before.unwrap_or(0))
        } else {
            (">", "ASC", filter.after.unwrap_or(0))
        };
        let rows = self
            .client
            .query(
                &format!("SELECT position, chain, seq, body, mac FROM decisions
                 WHERE ($1::text IS NULL OR tool = $1)
                   AND ($2::text IS NULL OR principal = $2)
                   AND ($3::text IS NULL OR agent = $3)
                   AND ($4::text IS NULL OR decision = $4)
                   AND ($5::text IS NULL OR kind = $5)
                   AND ($6::bigint IS NULL OR time_ms >= $6)
                   AND ($7::bigint IS NULL OR time_ms < $7)
                   AND tx < pg_snapshot_xmin(pg_current_snapshot())
                   AND ($8::bigint = 0 OR (tx, position) {cursor} (SELECT tx, position FROM decisions WHERE position = $8::bigint))
                   AND ($10::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(body::jsonb -> 'reasons') r
                        WHERE strpos(r, $10) > 0))
                 ORDER BY tx {order}, position {order} LIMIT $9"),
                &[
                    &filter.tool,
                    &filter.principal,
                    &filter.agent,
                    &filter.decision,
                    &filter.kind,
                    &filter.since,
                    &filter.until,
                    &from,
                    &filter.limit(),
                    &filter.reason,
                ],
            )
            ?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.get(2);
                let body: &str = row.get(3);
                let record: DecisionRecord = serde_json::from_str(body)
                    .map_err(|e| StoreError::new(format!("record {seq} is not readable: {e}")))?;
                Ok(StoredRecord {
                    position: row.get(0),
                    chain_id: Some(row.get(1)),
                    seq,
                    mac: row.get(4),
                    record,
                })
            })
            .collect()
    }

    /// Every chain's rows, each in sequence order.
    pub fn chains(&mut self) -> Result<Vec<(String, Vec<RawRow>)>, StoreError> {
        let names: Vec<String> = self
            .client
            .query(
                "SELECT chain FROM chains UNION SELECT DISTINCT chain FROM decisions ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for chain in names {
            let rows = self
                .client
                .query(
                    "SELECT seq, id, time_ms, kind, tool, principal, agent, decision, outcome, body, mac
                     FROM decisions WHERE chain = $1 ORDER BY seq",
                    &[&chain],
                )
                ?
                .iter()
                .map(raw_row)
                .collect();
            out.push((chain, rows));
        }
        Ok(out)
    }

    /// Per agent and tool: the calls recorded and the time of the last one (see the SQLite store's).
    pub fn agent_usage(&mut self) -> Result<Vec<AgentUse>, StoreError> {
        let rows = self.client.query(AGENT_USAGE, &[])?;
        Ok(rows
            .iter()
            .map(|r| AgentUse {
                agent: r.get(0),
                tool: r.get(1),
                calls: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                last_ms: r.get(3),
            })
            .collect())
    }

    /// Records per minute (Unix minute) and decision since `since_ms`, every chain's.
    pub fn per_minute(&mut self, since_ms: i64) -> Result<Vec<(i64, String, u64)>, StoreError> {
        let rows = self.client.query(
            "SELECT time_ms / 60000, decision, count(*) FROM decisions WHERE time_ms >= $1 GROUP BY 1, 2",
            &[&since_ms],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let count: i64 = r.get(2);
                (r.get(0), r.get(1), u64::try_from(count).unwrap_or(0))
            })
            .collect())
    }

    pub fn agent_activity(
        &mut self,
    ) -> Result<std::collections::HashMap<String, (u64, i64)>, StoreError> {
        let rows = self.client.query(
            "SELECT agent, count(*), max(time_ms) FROM decisions
                 WHERE kind = 'tools/call' AND agent IS NOT NULL GROUP BY agent",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let count: i64 = r.get(1);
                (r.get(0), (u64::try_from(count).unwrap_or(0), r.get(2)))
            })
            .collect())
    }

    /// The row at `position`, its chain, and the MAC of the one before it in that chain (the chain's start for
    /// the first).
    pub fn row_at(
        &mut self,
        position: i64,
    ) -> Result<Option<(String, RawRow, String)>, StoreError> {
        let Some(row) = self.client.query_opt(
            "SELECT seq, id, time_ms, kind, tool, principal, agent, decision, outcome, body, mac, chain
             FROM decisions WHERE position = $1",
            &[&position],
        )?
        else {
            return Ok(None);
        };
        let chain: String = row.get(11);
        let raw = raw_row(&row);
        let previous = if raw.seq <= 1 {
            super::chain::genesis(Some(&chain))
        } else {
            self.client
                .query_opt(
                    "SELECT mac FROM decisions WHERE chain = $1 AND seq = $2",
                    &[&chain, &(raw.seq - 1)],
                )?
                .map(|r| r.get(0))
                .unwrap_or_default()
        };
        Ok(Some((chain, raw, previous)))
    }
}

/// A row of `seq, id, time_ms, kind, tool, principal, agent, decision, outcome, body, mac`.
fn raw_row(row: &postgres::Row) -> RawRow {
    RawRow {
        seq: row.get(0),
        id: row.get(1),
        time_ms: row.get(2),
        kind: row.get(3),
        tool: row.get(4),
        principal: row.get(5),
        agent: row.get(6),
        decision: row.get(7),
        outcome: row.get(8),
        body: row.get(9),
        mac: row.get(10),
    }
}
