//! Decision records: one for every request that reaches a decision, committed before the answer leaves: by a
//! writer thread that batches waiting records into one transaction (group commit), or, when nothing waits and
//! nobody commits, by the caller itself. Each record carries an HMAC (key kept outside
//! the database) over its content and the previous record's HMAC, so that altering, removing, inserting or cutting
//! off records is detected by [`verify`]; the chain head is published to a file and the log.

mod bound;
mod chain;
pub mod postgres;
mod records;
mod store;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use chain::{ChainError, ChainHead, ChainKey};
pub use records::Records;
pub use store::{
    AgentUse, AuditStore, Order, RecordFilter, SqliteAuditStore, StoredRecord, principal_key,
};

use crate::config::{AuditConfig, Durability};

/// Why the recorder cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot start the decision-record {which}: {reason}")]
    Thread { which: &'static str, reason: String },
}

/// Why a record could not be kept: the call it belongs to is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("decision records cannot be written: {0}")]
pub struct AuditError(pub String);

/// Time taken by each pipeline step, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Latencies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticate_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact_us: Option<u64>,
    pub total_us: u64,
}

/// One decision, as recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DecisionRecord {
    /// UUID v7: time-ordered.
    pub id: String,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// `tools/call`, `tools/list`, `authentication`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Where the request came from (peer address, or `stdio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The token's issuer and subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The human, in principal-context mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The acting agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// As the `audit.arguments` rule says: the arguments, or `{"sha256": …}` of their canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// `allow`, `deny`, `escalate` or `error`.
    pub decision: String,
    /// What happened, as a stable reason id (`allowed`, `policy_denied`, `token_expired`, `upstream_timeout` …).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obligations: Option<Value>,
    /// The argument facts the decision used (SQL statement kinds, tables and columns read and written, paths),
    /// redacted like arguments and bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Pin hash of the tool's definition, once pinning exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// `ok`, `tool_error` (the tool's own `isError`) or the upstream failure's reason id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_outcome: Option<String>,
    /// Counts per class and field paths of what was masked; never values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redactions: Option<Value>,
    /// How many requests this record stands for (aggregated refusals of bad tokens; 1 otherwise).
    #[serde(default = "one")]
    pub count: u64,
    /// For `tools/list`: how many tools were shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<u64>,
    /// Fields cut to their bound (each keeps a prefix and the SHA-256 of the whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    pub latency: Latencies,
}

fn one() -> u64 {
    1
}

impl DecisionRecord {
    /// A new record of `kind`, stamped now.
    pub fn new(kind: &str) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            time_ms: now_ms(),
            kind: kind.to_string(),
            count: 1,
            ..Self::default()
        }
    }
}

use crate::clock::now_ms;

/// SHA-256 of the arguments' canonical JSON (RFC 8785), so that key order never matters: what records keep when
/// arguments are `hashed`, and what binds an approval to the exact call.
pub fn arguments_hash(arguments: Option<&serde_json::Map<String, Value>>) -> String {
    use sha2::Digest;
    let empty = serde_json::Map::new();
    let canonical = serde_jcs::to_vec(arguments.unwrap_or(&empty)).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&canonical))
}

struct Job {
    record: DecisionRecord,
    done: Option<oneshot::Sender<Result<(), AuditError>>>,
}

/// Most bad-token refusals kept apart (source × reason) within one interval; beyond, they share one bucket.
const MAX_FAILURE_BUCKETS: usize = 4096;

/// The store and the chain key, used by whoever commits: the writer thread, or a caller while the writer is idle.
type Committer = std::sync::Mutex<(Box<dyn AuditStore>, ChainKey)>;

/// The recorder: a handle to the writer thread.
pub struct Audit {
    tx: mpsc::Sender<Job>,
    committer: Arc<Committer>,
    /// Whether a caller may commit its own record (`normal` durability: a commit does not sync).
    inline: bool,
    healthy: Arc<AtomicBool>,
    head: Arc<std::sync::Mutex<ChainHead>>,
    head_file: PathBuf,
    published: AtomicU64,
    failures: DashMap<(String, String), u64>,
    pub config: AuditConfig,
}

impl Audit {
    /// Opens the store, reads the chain key and starts the writer thread and the periodic tasks (publishing the
    /// chain head, flushing aggregated refusals).
    pub fn start(
        storage: &crate::config::StorageConfig,
        config: AuditConfig,
    ) -> Result<Arc<Self>, StartError> {
        let key = ChainKey::load_or_create(&config.key_file)?;
        let database = storage.path.as_path();
        let (store, head): (Box<dyn AuditStore>, ChainHead) = match &storage.postgres {
            // The blocking client works on a thread of its own, off the runtime.
            Some(pg) => postgres::off_runtime(|| {
                let mut store = postgres::PgAuditStore::open(pg)?;
                let head = store.head()?;
                Ok::<_, crate::store::StoreError>((Box::new(store) as Box<dyn AuditStore>, head))
            })?,
            None => {
                let mut store =
                    SqliteAuditStore::open(database, config.durability, config.busy_timeout)?;
                let head = store.head()?;
                (Box::new(store), head)
            }
        };
        let committer: Arc<Committer> = Arc::new(std::sync::Mutex::new((store, key)));
        let head = Arc::new(std::sync::Mutex::new(head));
        let healthy = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel::<Job>(config.queue);
        {
            let head = Arc::clone(&head);
            let healthy = Arc::clone(&healthy);
            let committer = Arc::clone(&committer);
            let batch_max = config.batch_max;
            std::thread::Builder::new()
                .name("toolgate-audit".into())
                .spawn(move || writer(rx, &committer, &head, &healthy, batch_max))
                .map_err(|e| StartError::Thread {
                    which: "writer",
                    reason: e.to_string(),
                })?;
        }
        let audit = Arc::new(Self {
            tx,
            committer,
            // PostgreSQL commits always go through the writer thread (the blocking client needs it).
            inline: config.durability == Durability::Normal && storage.postgres.is_none(),
            healthy,
            head,
            head_file: config.head_file.clone(),
            published: AtomicU64::new(0),
            failures: DashMap::new(),
            config,
        });
        let weak = Arc::downgrade(&audit);
        if audit.config.durability == Durability::Normal && storage.postgres.is_none() {
            let weak = weak.clone();
            let checkpointer = store::Checkpointer::open(database, audit.config.busy_timeout)?;
            std::thread::Builder::new()
                .name("toolgate-checkpoint".into())
                .spawn(move || {
                    while weak.strong_count() > 0 {
                        std::thread::sleep(CHECKPOINT_EVERY);
                        if let Err(e) = checkpointer.run() {
                            tracing::warn!("cannot checkpoint the decision records: {e}");
                        }
                    }
                })
                .map_err(|e| StartError::Thread {
                    which: "checkpointer",
                    reason: e.to_string(),
                })?;
        }
        let interval = audit.config.flush_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(audit) = weak.upgrade() else { return };
                audit.flush_failures();
                audit.publish_head();
            }
        });
        Ok(audit)
    }

    /// Whether the last write succeeded; calls are refused before reaching an upstream while it did not.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Appends a record and waits until it is committed.
    pub async fn append(&self, mut record: DecisionRecord) -> Result<(), AuditError> {
        record.bound();
        if let Some(result) = self.commit_here(&record) {
            return result;
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                record,
                done: Some(done),
            })
            .await
            .map_err(|_| AuditError("the writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditError("the writer has stopped".into()))?
    }

    /// Commits `record` on the caller's thread when nothing is waiting for the writer and nobody is committing
    /// (with `normal` durability only, where a commit does not sync): at low load, this saves handing the record
    /// to the writer thread and the answer back. `None` when the writer thread must take it.
    fn commit_here(&self, record: &DecisionRecord) -> Option<Result<(), AuditError>> {
        if !self.inline || self.tx.capacity() != self.tx.max_capacity() {
            return None;
        }
        let mut committer = self.committer.try_lock().ok()?;
        let (store, key) = &mut *committer;
        Some(commit(store, key, &[record], &self.head, &self.healthy))
    }

    /// Appends a record without waiting (refusals, whose answer does not depend on it).
    pub fn append_detached(&self, mut record: DecisionRecord) {
        record.bound();
        if let Err(mpsc::error::TrySendError::Full(job)) =
            self.tx.try_send(Job { record, done: None })
        {
            // Back-pressure: wait for room on a task rather than dropping the record.
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(job).await;
            });
        }
    }

    /// Counts a refused bad token; these are recorded aggregated per source and reason, once per interval.
    pub fn count_auth_failure(&self, source: &str, reason: &str) {
        let key = if self.failures.len() >= MAX_FAILURE_BUCKETS
            && !self
                .failures
                .contains_key(&(source.to_string(), reason.to_string()))
        {
            ("other".to_string(), reason.to_string())
        } else {
            (source.to_string(), reason.to_string())
        };
        *self.failures.entry(key).or_insert(0) += 1;
    }

    /// Writes the aggregated refusals counted since the last flush.
    pub fn flush_failures(&self) {
        let keys: Vec<(String, String)> = self.failures.iter().map(|e| e.key().clone()).collect();
        for key in keys {
            if let Some(((source, reason), count)) = self.failures.remove(&key) {
                let mut record = DecisionRecord::new("authentication");
                record.source = Some(source);
                record.decision = "deny".into();
                record.outcome = reason;
                record.count = count;
                self.append_detached(record);
            }
        }
    }

    /// The chain head as committed now.
    pub fn head(&self) -> ChainHead {
        self.head
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Publishes the chain head to the head file and the log, when it moved.
    pub fn publish_head(&self) {
        let head = self.head();
        let seq = u64::try_from(head.seq).unwrap_or(0);
        if seq == 0 || self.published.swap(seq, Ordering::AcqRel) == seq {
            return;
        }
        match head.publish(&self.head_file) {
            Ok(()) => {
                tracing::info!(seq = head.seq, id = %head.id, mac = %head.mac, "decision-record chain head")
            }
            Err(e) => {
                tracing::error!(file = %self.head_file.display(), "cannot publish the chain head: {e}")
            }
        }
    }

    /// Flushes aggregated refusals, waits until everything sent so far is committed, and publishes the head.
    pub async fn close(&self) {
        self.flush_failures();
        let mut marker = DecisionRecord::new("audit");
        marker.decision = "none".into();
        marker.outcome = "shutdown".into();
        let _ = self.append(marker).await;
        self.publish_head();
    }
}

/// The writer thread: takes every record waiting (up to `batch_max`), commits them in one transaction, then answers
/// each. A failed commit fails every record of the batch.
fn writer(
    mut rx: mpsc::Receiver<Job>,
    committer: &Committer,
    head: &std::sync::Mutex<ChainHead>,
    healthy: &AtomicBool,
    batch_max: usize,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let records: Vec<&DecisionRecord> = jobs.iter().map(|j| &j.record).collect();
        let result = {
            let mut committer = committer.lock().unwrap_or_else(|e| e.into_inner());
            let (store, key) = &mut *committer;
            commit(store, key, &records, head, healthy)
        };
        for job in jobs {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

/// Commits `records` in one transaction after the chain head, and moves the head.
fn commit(
    store: &mut Box<dyn AuditStore>,
    key: &ChainKey,
    records: &[&DecisionRecord],
    head: &std::sync::Mutex<ChainHead>,
    healthy: &AtomicBool,
) -> Result<(), AuditError> {
    let current = head
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    match store.append(records, key, &current) {
        Ok(new_head) => {
            if let Ok(mut h) = head.lock() {
                *h = new_head;
            }
            healthy.store(true, Ordering::Release);
            Ok(())
        }
        Err(e) => {
            healthy.store(false, Ordering::Release);
            tracing::error!(
                "decision records not written ({} in the batch): {e}",
                records.len()
            );
            Err(AuditError(e.to_string()))
        }
    }
}

/// Arguments as the record keeps them: whole, hashed, or redacted by the result rules at `clearance` (hashed when
/// they cannot be redacted).
pub fn recorded_arguments(
    rule: crate::config::ArgumentsRule,
    arguments: Option<&serde_json::Map<String, Value>>,
    redactor: &crate::redact::Redactor,
    clearance: crate::classification::Classification,
) -> Option<Value> {
    let hashed = || {
        serde_json::json!({
            "sha256": arguments_hash(arguments)
        })
    };
    match rule {
        crate::config::ArgumentsRule::Full => {
            Some(Value::Object(arguments.cloned().unwrap_or_default()))
        }
        crate::config::ArgumentsRule::Hashed => Some(hashed()),
        crate::config::ArgumentsRule::Redacted => {
            let mut value = Value::Object(arguments.cloned().unwrap_or_default());
            match redactor.redact_value(&mut value, &crate::redact::Rules::plain(clearance)) {
                Ok(_) => Some(value),
                Err(_) => Some(hashed()),
            }
        }
    }
}

/// `Normal` or `Full` as SQLite's `synchronous` setting.
pub(crate) fn synchronous(durability: Durability) -> &'static str {
    match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    }
}

/// How often the write-ahead log of the records is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// How long to wait between head publications by default.
pub const DEFAULT_FLUSH: Duration = Duration::from_secs(5);
