//! A modern client's tool call whose legacy upstream asks the client something (sampling, elicitation, roots)
//! during the call. The 2026-07-28 client takes no request on a response stream; so the call's answer is an
//! `input_required` result carrying the upstream's questions (decided and redacted on the way, as every relayed
//! request is), with toolgate's sealed state naming the call, which keeps running, held here. The client's retry
//! (same request, its answers, that state) gives each question its answer and is answered as the call goes on:
//! with the call's result, or with the next questions. A held call belongs to the caller it was sealed for, ends
//! when its call times out or nobody comes back for it, and is bounded per caller and in all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use futures::future::BoxFuture;
use rmcp::model::{ErrorCode, ErrorData, ServerJsonRpcMessage};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};

use super::Session;
use super::post::Running;
use crate::catalog::Asker;

/// Most calls held for one caller.
const MAX_PER_CALLER: usize = 16;
/// Most calls held in all.
const MAX_HELD: usize = 4096;

/// One question of the upstream, waiting for the client's answer.
struct Question {
    method: String,
    params: Value,
    answer: oneshot::Sender<Result<Value, ErrorData>>,
}

/// The client's side of one modern tool call: what the upstream asks waits here for the client's retry.
pub(super) struct Questions {
    /// The call's session (which holds these questions: not kept alive by them).
    session: std::sync::Weak<Session>,
    waiting: Arc<Mutex<BTreeMap<String, Question>>>,
    asked: Notify,
    next: AtomicU64,
    timeout: Duration,
}

impl Questions {
    pub(super) fn new(session: &Arc<Session>, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            session: Arc::downgrade(session),
            waiting: Arc::default(),
            asked: Notify::new(),
            next: AtomicU64::new(1),
            timeout,
        })
    }

    /// Resolves when a question is asked (at once if one waits).
    pub(super) async fn asked(&self) {
        loop {
            let notified = self.asked.notified();
            if self.waiting.lock().is_ok_and(|w| !w.is_empty()) {
                return;
            }
            notified.await;
        }
    }

    /// The questions waiting, as `inputRequests`.
    pub(super) fn input_requests(&self) -> Map<String, Value> {
        self.waiting
            .lock()
            .map(|waiting| {
                waiting
                    .iter()
                    .map(|(key, q)| (key.clone(), json!({"method": q.method, "params": q.params})))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Gives the questions the client answered their answers; the others keep waiting.
    pub(super) fn answer(&self, responses: &Map<String, Value>) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        for (key, response) in responses {
            if let Some(question) = waiting.remove(key) {
                let _ = question.answer.send(Ok(response.clone()));
            }
        }
    }
}

impl Asker for Questions {
    fn ask(&self, method: String, params: Value) -> BoxFuture<'static, Result<Value, ErrorData>> {
        let missing = match self.session.upgrade() {
            Some(session) => super::asker::refusal_for(&session, &method, &params),
            None => Some(ErrorData::internal_error("the call has ended", None)),
        };
        let (tx, rx) = oneshot::channel();
        let key = format!(
            "{}-{}",
            method.replace('/', "-"),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        if missing.is_none()
            && let Ok(mut waiting) = self.waiting.lock()
        {
            waiting.insert(
                key.clone(),
                Question {
                    method: method.clone(),
                    params,
                    answer: tx,
                },
            );
            self.asked.notify_waiters();
        }
        let (timeout, waiting) = (self.timeout, Arc::clone(&self.waiting));
        Box::pin(async move {
            if let Some(refusal) = missing {
                return Err(refusal);
            }
            let answer = tokio::time::timeout(timeout, rx).await;
            // A question nobody answered in time is not asked again.
            if let Ok(mut waiting) = waiting.lock() {
                waiting.remove(&key);
            }
            match answer {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(ErrorData::internal_error(
                    "the client did not come back for this call",
                    None,
                )),
                Err(_) => Err(ErrorData::internal_error(
                    format!("the client did not answer `{method}` in time"),
                    None,
                )),
            }
        })
    }
}

/// A call held while its client gathers answers. Dropped (forgotten, or never taken back), it cancels its call.
pub(super) struct HeldCall {
    pub subject: String,
    pub questions: Arc<Questions>,
    pub running: Running,
    pub cancel: super::modern::CancelOnDrop,
    /// The exposed name of the tool called.
    pub tool: String,
}

/// The calls held for their clients' retries, by id.
#[derive(Default)]
pub struct Held {
    calls: DashMap<String, HeldCall>,
}

impl Held {
    /// Holds a call; `None` (and the call is dropped, which ends its questions) when its caller or the gateway
    /// holds as many as it may.
    pub(super) fn hold(self: &Arc<Self>, call: HeldCall, keep: Duration) -> Option<String> {
        let of_caller = self
            .calls
            .iter()
            .filter(|c| c.subject == call.subject)
            .count();
        if of_caller >= MAX_PER_CALLER || self.calls.len() >= MAX_HELD {
            tracing::warn!(subject = %call.subject, "a call waiting for its client's input was dropped: too many held");
            return None;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.calls.insert(id.clone(), call);
        // Forgotten when nobody comes back for it in time.
        let (held, key) = (Arc::downgrade(self), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(keep).await;
            if let Some(held) = held.upgrade() {
                held.calls.remove(&key);
            }
        });
        Some(id)
    }

    /// Takes a held call back for its caller's retry.
    pub(super) fn take(&self, id: &str, subject: &str) -> Option<HeldCall> {
        self.calls
            .remove_if(id, |_, call| call.subject == subject)
            .map(|(_, call)| call)
    }
}

/// What comes next of a running modern call.
pub(super) enum Next {
    /// A notification for the client (the answer will be an event stream).
    Note(Box<ServerJsonRpcMessage>),
    /// The call's answer.
    Answer(Option<Box<ServerJsonRpcMessage>>),
    /// The upstream asked the client something: the call is to be held.
    Asked,
}

/// Waits for what comes next of a running call.
pub(super) async fn next(running: &mut Running, questions: Option<&Questions>) -> Next {
    let (rx, done) = running;
    // A request that cannot ask its client anything never is.
    let asked = async {
        match questions {
            Some(questions) => questions.asked().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        Some(message) = rx.recv() => Next::Note(message),
        answer = &mut *done => Next::Answer(answer.ok().map(Box::new)),
        () = asked => {
            // Questions asked together go back together.
            tokio::time::sleep(Duration::from_millis(5)).await;
            Next::Asked
        }
    }
}

/// The refusal of a retry whose held call is gone.
pub(super) fn call_gone() -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_PARAMS,
        "requestState integrity check failed: the call it continues is no longer held (it ended, or \
         lapsed); call the tool again",
        Some(json!({"reason": crate::reason::Reason::RequestStateInvalid.as_str()})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stateless call's session holds its questions; the questions must not keep the session (and so every
    /// stateless call's session) alive once the call is done.
    #[test]
    fn questions_do_not_keep_their_session_alive() {
        let session = Session::new("2026-07-28".into(), "iss\u{1f}sub".into(), "agent".into());
        let questions = Questions::new(&session, Duration::from_secs(1));
        session.set_questions(Arc::clone(&questions));
        let weak = Arc::downgrade(&session);
        drop(session);
        assert!(weak.upgrade().is_none(), "the session outlived its call");
        drop(questions);
    }
}
