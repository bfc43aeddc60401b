//! Downstream sessions: ids, negotiated version, calls in flight (for cancellation) and the GET stream.

// Logging, sampling and roots are deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate
// speaks still use them.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rmcp::model::{ErrorData, LoggingLevel, RequestId, ServerJsonRpcMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One client's MCP session.
pub struct Session {
    pub id: Arc<str>,
    pub protocol_version: String,
    /// The subject (`iss` and `sub`) that opened the session; no other subject may use it.
    pub subject: String,
    /// The agent (current actor) it was opened through.
    pub agent: String,
    epoch: Instant,
    last_seen_ms: AtomicU64,
    initialized: AtomicBool,
    log_level: Mutex<Option<LoggingLevel>>,
    calls: DashMap<RequestId, CancellationToken>,
    /// Boxed: a channel allocates its slots in blocks, and a message is large.
    stream: Mutex<Option<mpsc::Sender<Box<ServerJsonRpcMessage>>>>,
    /// A tool-list change happened while no GET stream was open: announced as soon as one opens.
    list_changed_pending: std::sync::atomic::AtomicBool,
    closed: CancellationToken,
    /// What the client declared it can do at `initialize` (`sampling`, `elicitation`, `roots` …), as JSON.
    capabilities: Mutex<serde_json::Value>,
    /// Requests relayed to the client (sampling, elicitation, roots) waiting for its answer, by toolgate's id.
    asked: DashMap<String, oneshot::Sender<Result<serde_json::Value, ErrorData>>>,
    next_ask: AtomicU64,
    /// Calls answered as event streams, kept for resumption (`Last-Event-ID`), by stream name.
    replays: DashMap<String, Arc<super::replay::Replay>>,
    next_stream: AtomicU64,
    /// The session subscribed to a resource at least once: its requests renew the caller updates are decided for.
    pub subscribed: AtomicBool,
    /// A modern tool call's questions to its client (the session is the call's own).
    questions: std::sync::OnceLock<Arc<super::parked::Questions>>,
}

/// Most answered event streams one session keeps for resumption; beyond, finished ones are forgotten first.
const MAX_REPLAYS: usize = 16;

/// Most relayed requests one session may have waiting for its client's answer.
const MAX_ASKED: usize = 64;

impl Session {
    /// A new session with a random, unguessable id.
    pub fn new(protocol_version: String, subject: String, agent: String) -> Arc<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self::with_id(id, protocol_version, subject, agent)
    }

    /// A session of that id (one toolgate sealed: see `tickets`).
    pub fn with_id(
        id: String,
        protocol_version: String,
        subject: String,
        agent: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: Arc::from(id),
            protocol_version,
            subject,
            agent,
            epoch: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            initialized: AtomicBool::new(false),
            log_level: Mutex::new(None),
            calls: DashMap::new(),
            stream: Mutex::new(None),
            list_changed_pending: std::sync::atomic::AtomicBool::new(false),
            closed: CancellationToken::new(),
            capabilities: Mutex::new(serde_json::Value::Null),
            asked: DashMap::new(),
            next_ask: AtomicU64::new(1),
            replays: DashMap::new(),
            next_stream: AtomicU64::new(1),
            subscribed: AtomicBool::new(false),
            questions: std::sync::OnceLock::new(),
        })
    }

    /// Starts keeping a call's event stream for resumption; its name goes into every event id.
    pub(super) fn open_replay(&self) -> (String, Arc<super::replay::Replay>) {
        if self.replays.len() >= MAX_REPLAYS {
            let finished: Vec<String> = self
                .replays
                .iter()
                .filter(|r| r.value().is_done())
                .map(|r| r.key().clone())
                .collect();
            for name in finished {
                self.replays.remove(&name);
            }
        }
        let name = format!("c{}", self.next_stream.fetch_add(1, Ordering::Relaxed));
        let replay = Arc::new(super::replay::Replay::default());
        self.replays.insert(name.clone(), Arc::clone(&replay));
        (name, replay)
    }

    /// A call's event stream kept for resumption.
    pub(super) fn replay(&self, name: &str) -> Option<Arc<super::replay::Replay>> {
        self.replays.get(name).map(|r| Arc::clone(r.value()))
    }

    /// Stops keeping a call's event stream.
    pub(super) fn drop_replay(&self, name: &str) {
        self.replays.remove(name);
    }

    /// Keeps what the client declared at `initialize`.
    pub fn set_client_capabilities(&self, capabilities: &rmcp::model::ClientCapabilities) {
        if let Ok(mut c) = self.capabilities.lock() {
            *c = serde_json::to_value(capabilities).unwrap_or_default();
        }
    }

    /// Where a modern tool call's upstream asks its client: held for the client's retry.
    pub(super) fn set_questions(&self, questions: Arc<super::parked::Questions>) {
        let _ = self.questions.set(questions);
    }

    /// A modern tool call's questions to its client.
    pub(super) fn questions(&self) -> Option<Arc<super::parked::Questions>> {
        self.questions.get().cloned()
    }

    /// Keeps what a modern request declared in its `_meta`.
    pub fn set_client_capabilities_value(&self, capabilities: serde_json::Value) {
        if let Ok(mut c) = self.capabilities.lock() {
            *c = capabilities;
        }
    }

    /// What the client declared it can do, as JSON.
    pub fn capabilities(&self) -> serde_json::Value {
        self.capabilities
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Whether the client declared the capability at this JSON pointer (`/sampling`, `/elicitation/url` …).
    pub fn declared(&self, pointer: &str) -> bool {
        self.capabilities
            .lock()
            .map(|c| c.pointer(pointer).is_some_and(|v| !v.is_null()))
            .unwrap_or(false)
    }

    /// A fresh id for a request relayed to the client, and where its answer will arrive; `None` when too many are
    /// waiting already.
    pub fn expect_answer(
        &self,
    ) -> Option<(
        String,
        oneshot::Receiver<Result<serde_json::Value, ErrorData>>,
    )> {
        if self.asked.len() >= MAX_ASKED {
            return None;
        }
        let id = format!("toolgate-{}", self.next_ask.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.asked.insert(id.clone(), tx);
        Some((id, rx))
    }

    /// Stops waiting for an answer (the request timed out or its call ended).
    pub fn forget_answer(&self, id: &str) {
        self.asked.remove(id);
    }

    /// Takes the client's answer to a relayed request; false when no request of this session waits for it.
    pub fn answer(&self, id: &RequestId, answer: Result<serde_json::Value, ErrorData>) -> bool {
        let rmcp::model::NumberOrString::String(id) = id else {
            return false;
        };
        match self.asked.remove(id.as_ref()) {
            Some((_, waiting)) => waiting.send(answer).is_ok(),
            None => false,
        }
    }

    /// Notes activity, for idle expiry.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_seen_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last request.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Relaxed);
    }

    /// The level this session's client set with `logging/setLevel`, if any.
    pub fn log_level(&self) -> Option<LoggingLevel> {
        self.log_level.lock().ok().and_then(|l| *l)
    }

    pub fn set_log_level(&self, level: LoggingLevel) {
        if let Ok(mut l) = self.log_level.lock() {
            *l = Some(level);
        }
    }

    /// Registers a call so that `notifications/cancelled` can reach it.
    pub fn begin_call(&self, id: &RequestId) -> CancellationToken {
        let token = self.closed.child_token();
        self.calls.insert(id.clone(), token.clone());
        token
    }

    pub fn end_call(&self, id: &RequestId) {
        self.calls.remove(id);
    }

    /// Registers a call and unregisters it when the guard drops, even if the request is abandoned.
    pub fn track_call(&self, id: &RequestId) -> CallGuard<'_> {
        CallGuard {
            session: self,
            id: id.clone(),
            token: self.begin_call(id),
        }
    }

    /// Cancels a call in flight, if there is one with that id.
    pub fn cancel_call(&self, id: &RequestId) {
        if let Some((_, token)) = self.calls.remove(id) {
            token.cancel();
        }
    }

    /// Ends the session: calls in flight are cancelled, the GET stream closed.
    pub fn close(&self) {
        self.closed.cancel();
        if let Ok(mut stream) = self.stream.lock() {
            *stream = None;
        }
    }

    /// Resolves when the session is closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Opens the session's GET stream; `None` when one is already open.
    pub fn open_stream(&self) -> Option<mpsc::Receiver<Box<ServerJsonRpcMessage>>> {
        let mut stream = self.stream.lock().ok()?;
        if stream.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return None;
        }
        let (tx, rx) = mpsc::channel(64);
        // What changed while nobody listened is announced first.
        if self
            .list_changed_pending
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            for message in super::list_changes() {
                let _ = tx.try_send(Box::new(message));
            }
        }
        *stream = Some(tx);
        Some(rx)
    }

    /// Whether a GET stream is open (a listening client keeps its session alive).
    pub fn has_stream(&self) -> bool {
        self.stream
            .lock()
            .map(|s| s.as_ref().is_some_and(|tx| !tx.is_closed()))
            .unwrap_or(false)
    }

    /// Tells the client its tools, resources and prompts may have changed: on the GET stream, or as soon as one
    /// opens.
    pub fn announce_list_changed(&self) {
        let sent = self
            .stream
            .lock()
            .ok()
            .and_then(|stream| {
                stream.as_ref().map(|tx| {
                    super::list_changes()
                        .into_iter()
                        .all(|message| tx.try_send(Box::new(message)).is_ok())
                })
            })
            .unwrap_or(false);
        if !sent {
            self.list_changed_pending
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Sends a message on the GET stream, if one is open; never blocks.
    pub fn push(&self, message: ServerJsonRpcMessage) {
        if let Ok(stream) = self.stream.lock()
            && let Some(tx) = stream.as_ref()
        {
            let _ = tx.try_send(Box::new(message));
        }
    }
}

/// A call in flight; dropping it unregisters the call.
pub struct CallGuard<'a> {
    session: &'a Session,
    id: RequestId,
    pub token: CancellationToken,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.session.end_call(&self.id);
    }
}

pub use super::sessions::{SessionLimit, Sessions};
