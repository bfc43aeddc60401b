//! Routing of an upstream's notifications back to the one downstream client whose call caused them.
//!
//! Progress notifications carry the token toolgate put on the forwarded call, so they are matched exactly and
//! their token is put back to the client's own. Log messages that arrive on a call's own response stream
//! (streamable-HTTP upstreams) go to that call's client. Log messages with no such tie (a shared stdio session,
//! an HTTP upstream's GET stream) cannot be attributed: a log emitted during one call can arrive after it ended,
//! while another client's call is running. They are kept in toolgate's own log and never sent to a client.
//!
//! An upstream's requests of the client (sampling, elicitation, roots) go to the [`Asker`] of the call they are
//! tied to: the call on whose response stream they arrive (HTTP), or the one request in flight (stdio, see
//! [`Routes::sole_call`]).

// Logging, sampling and roots are deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate
// speaks still use them.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotification, LoggingMessageNotificationParam, NumberOrString,
    ProgressNotification, ProgressNotificationParam, ProgressToken, ServerJsonRpcMessage,
    ServerNotification,
};
use tokio::sync::mpsc;

/// Masks what a notification may not carry to this client (its JSON form, in place); `false` drops it.
pub type NotificationFilter = Arc<dyn Fn(&mut serde_json::Value) -> bool + Send + Sync>;

/// Asks the client whose call is in flight (`sampling/createMessage`, `elicitation/create`, `roots/list`) and
/// returns its answer's result.
pub trait Asker: Send + Sync {
    fn ask(
        &self,
        method: String,
        params: serde_json::Value,
    ) -> futures::future::BoxFuture<'static, Result<serde_json::Value, rmcp::model::ErrorData>>;
}

/// Where one call's notifications go: the downstream client's channel and its own progress token.
#[derive(Clone)]
pub struct CallSink {
    tx: Option<mpsc::Sender<Box<ServerJsonRpcMessage>>>,
    progress_token: Option<ProgressToken>,
    filter: Option<NotificationFilter>,
    /// Least severe log level the client asked for (`logging/setLevel`); none asked: every level.
    min_log_level: Option<LoggingLevel>,
    /// No log message is forwarded (a 2026-07-28 request that named no log level).
    no_logs: bool,
    /// The client's side of the call, for the upstream's requests; none: they are refused.
    asker: Option<Arc<dyn Asker>>,
}

impl std::fmt::Debug for CallSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSink")
            .field("progress_token", &self.progress_token)
            .field("filtered", &self.filter.is_some())
            .field("asks", &self.asker.is_some())
            .finish()
    }
}

impl CallSink {
    /// A sink delivering to `tx`; progress is delivered only if the client asked for it with a token.
    pub fn new(
        tx: mpsc::Sender<Box<ServerJsonRpcMessage>>,
        progress_token: Option<ProgressToken>,
    ) -> Self {
        Self {
            tx: Some(tx),
            progress_token,
            filter: None,
            min_log_level: None,
            no_logs: false,
            asker: None,
        }
    }

    /// A sink that drops everything (the client cannot receive notifications).
    pub fn discard() -> Self {
        Self {
            tx: None,
            progress_token: None,
            filter: None,
            min_log_level: None,
            no_logs: false,
            asker: None,
        }
    }

    /// Every notification passes `filter` (redaction to the caller's clearance) before it is sent.
    pub fn with_filter(mut self, filter: NotificationFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Log messages less severe than `level` (the session's `logging/setLevel`) are not forwarded.
    pub fn with_log_level(mut self, level: Option<LoggingLevel>) -> Self {
        self.min_log_level = level;
        self
    }

    /// Forwards no log message at all.
    pub fn without_logs(mut self) -> Self {
        self.no_logs = true;
        self
    }

    /// The upstream's requests go to `asker` (the client's side of the call).
    pub fn with_asker(mut self, asker: Arc<dyn Asker>) -> Self {
        self.asker = Some(asker);
        self
    }

    /// The client's side of the call, if requests can reach it.
    pub fn asker(&self) -> Option<Arc<dyn Asker>> {
        self.asker.clone()
    }

    /// Relays an upstream's request to the client: its parameters pass the sink's filter (redaction to the
    /// caller's clearance) first; a request that cannot be redacted, or a client that cannot be asked, is refused.
    pub async fn ask(
        &self,
        method: &str,
        mut params: serde_json::Value,
    ) -> Result<serde_json::Value, rmcp::model::ErrorData> {
        let Some(asker) = &self.asker else {
            return Err(rmcp::model::ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                format!("`{method}` cannot reach the client: it receives no requests on this call"),
                None,
            ));
        };
        if let Some(filter) = &self.filter
            && !filter(&mut params)
        {
            return Err(rmcp::model::ErrorData::internal_error(
                format!("`{method}` was not relayed: its parameters could not be redacted"),
                None,
            ));
        }
        asker.ask(method.to_string(), params).await
    }

    /// Whether the client asked for progress (and can receive it).
    pub fn wants_progress(&self) -> bool {
        self.tx.is_some() && self.progress_token.is_some()
    }

    /// Forwards a progress notification under the client's own token.
    pub fn progress(&self, mut params: ProgressNotificationParam) {
        let Some(token) = &self.progress_token else {
            return;
        };
        params.progress_token = token.clone();
        self.send(ServerNotification::ProgressNotification(
            ProgressNotification::new(params),
        ));
    }

    /// Forwards a log message, unless it is less severe than the level the client set.
    pub fn log(&self, params: LoggingMessageNotificationParam) {
        if self.no_logs
            || self
                .min_log_level
                .is_some_and(|min| severity(params.level) < severity(min))
        {
            return;
        }
        self.send(ServerNotification::LoggingMessageNotification(
            LoggingMessageNotification::new(params),
        ));
    }

    fn send(&self, notification: ServerNotification) {
        let notification = match &self.filter {
            None => notification,
            Some(filter) => {
                let Ok(mut value) = serde_json::to_value(&notification) else {
                    return;
                };
                // A notification that cannot be redacted is not sent.
                if !filter(&mut value) {
                    return;
                }
                match serde_json::from_value(value) {
                    Ok(n) => n,
                    Err(_) => return,
                }
            }
        };
        if let Some(tx) = &self.tx {
            // Never block the shared upstream reader on one slow client: a full channel drops the notification.
            if tx
                .try_send(Box::new(ServerJsonRpcMessage::notification(notification)))
                .is_err()
            {
                tracing::debug!("dropped a notification for a slow or gone client");
            }
        }
    }
}

/// What is in flight on one upstream session: the calls that asked for progress, by the token toolgate gave
/// them, and every request (for a stdio session, which carries no tie between the upstream's own requests and the
/// call that caused them: one can be attributed only while exactly one request is in flight).
#[derive(Default, Debug)]
pub struct Routes {
    next: AtomicU64,
    progress: DashMap<ProgressToken, CallSink>,
    /// Every request in flight (a call's sink, or a sink that reaches no client), by a number of toolgate's; one
    /// lock, so that counting and taking the one request are one step.
    in_flight: std::sync::Mutex<std::collections::HashMap<u64, CallSink>>,
}

/// Removes a request's routes when it ends, however it ends.
pub struct RouteGuard {
    routes: Arc<Routes>,
    token: Option<ProgressToken>,
    call: u64,
    /// Left in flight a while after the request ended (see [`RouteGuard::abandon`]).
    lingers: bool,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(token) = &self.token {
            self.routes.progress.remove(token);
        }
        if !self.lingers
            && let Ok(mut in_flight) = self.routes.in_flight.lock()
        {
            in_flight.remove(&self.call);
        }
    }
}

impl RouteGuard {
    /// Routes progress under `token` (the token the upstream sees) to the request's sink, if its client asked
    /// for progress.
    pub fn with_progress(&mut self, token: ProgressToken) {
        let sink = self
            .routes
            .in_flight
            .lock()
            .ok()
            .and_then(|f| f.get(&self.call).cloned());
        if let Some(sink) = sink.filter(CallSink::wants_progress) {
            self.routes.progress.insert(token.clone(), sink);
            self.token = Some(token);
        }
    }

    /// The request ended early (timeout, cancellation) while the upstream may still be working on it: for
    /// `linger`, it still counts as in flight (reaching no client), so that what the upstream asks for it is
    /// never taken for another request's.
    pub fn abandon(&mut self, linger: std::time::Duration) {
        self.lingers = true;
        if let Ok(mut in_flight) = self.routes.in_flight.lock() {
            in_flight.insert(self.call, CallSink::discard());
        }
        let (routes, call) = (Arc::clone(&self.routes), self.call);
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            if let Ok(mut in_flight) = routes.in_flight.lock() {
                in_flight.remove(&call);
            }
        });
    }
}

impl Routes {
    /// Counts a request as in flight (before it is sent), its upstream's requests going to `sink`.
    pub fn enter(self: &Arc<Self>, sink: CallSink) -> RouteGuard {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.insert(call, sink);
        }
        RouteGuard {
            routes: Arc::clone(self),
            token: None,
            call,
            lingers: false,
        }
    }

    /// [`Routes::enter`], with progress routed under `token`.
    pub fn register(self: &Arc<Self>, sink: CallSink, token: ProgressToken) -> RouteGuard {
        let mut guard = self.enter(sink);
        guard.with_progress(token);
        guard
    }

    /// The one request in flight, when there is exactly one; `Err` says why not.
    pub fn sole_call(&self) -> Result<CallSink, &'static str> {
        let in_flight = self
            .in_flight
            .lock()
            .map_err(|_| "the upstream's requests cannot be told apart")?;
        let mut sinks = in_flight.values();
        match (sinks.next(), sinks.next()) {
            (None, _) => Err("no call is in flight on this upstream"),
            (Some(sink), None) => Ok(sink.clone()),
            (Some(_), Some(_)) => Err(
                "several requests are in flight on this upstream, so toolgate cannot tell which one asked",
            ),
        }
    }

    /// A fresh progress token unique on this upstream session.
    pub fn fresh_token(&self) -> ProgressToken {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        ProgressToken(NumberOrString::String(format!("tg-{n}").into()))
    }

    /// Routes a progress notification by its token.
    pub fn progress(&self, params: ProgressNotificationParam) {
        let sink = self.progress.get(&params.progress_token).map(|s| s.clone());
        match sink {
            Some(sink) => sink.progress(params),
            None => tracing::debug!("progress notification for no call in flight"),
        }
    }

    /// A log message not tied to a request: recorded in toolgate's log, never sent to a client.
    pub fn untied_log(&self, upstream: &str, params: &LoggingMessageNotificationParam) {
        tracing::debug!(upstream, level = ?params.level, data = %params.data, "upstream log message (not forwarded)");
    }
}

/// A log level's rank, least severe first (RFC 5424 order, as MCP's levels).
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_messages_below_the_sessions_level_are_not_forwarded() {
        let (tx, mut rx) = mpsc::channel(8);
        let sink = CallSink::new(tx, None).with_log_level(Some(LoggingLevel::Warning));
        for level in [
            LoggingLevel::Debug,
            LoggingLevel::Info,
            LoggingLevel::Notice,
            LoggingLevel::Warning,
            LoggingLevel::Error,
            LoggingLevel::Emergency,
        ] {
            sink.log(LoggingMessageNotificationParam::new(
                level,
                serde_json::json!("m"),
            ));
        }
        let mut forwarded = Vec::new();
        while let Ok(message) = rx.try_recv() {
            forwarded.push(serde_json::to_value(&*message).unwrap()["params"]["level"].clone());
        }
        assert_eq!(
            forwarded,
            vec![
                serde_json::json!("warning"),
                serde_json::json!("error"),
                serde_json::json!("emergency")
            ]
        );
        // No level set: everything goes.
        let (tx, mut rx) = mpsc::channel(8);
        CallSink::new(tx, None).log(LoggingMessageNotificationParam::new(
            LoggingLevel::Debug,
            serde_json::json!("m"),
        ));
        assert!(rx.try_recv().is_ok());
    }

    #[tokio::test]
    async fn an_upstreams_request_is_attributed_only_while_one_request_is_in_flight() {
        use std::time::Duration;
        let routes = Arc::new(Routes::default());
        assert!(routes.sole_call().is_err());
        let (tx, _rx) = mpsc::channel(8);
        let call = routes.enter(CallSink::new(tx, None));
        assert!(routes.sole_call().is_ok());
        // A read of another client's in flight (its sink reaches no client): nobody is asked.
        let read = routes.enter(CallSink::discard());
        assert!(routes.sole_call().is_err());
        drop(read);
        assert!(routes.sole_call().is_ok());
        // The call times out while the upstream may go on with it: it still counts, reaching no client.
        let mut call = call;
        call.abandon(Duration::from_millis(200));
        drop(call);
        let (tx, _rx2) = mpsc::channel(8);
        let next = routes.enter(CallSink::new(tx, None));
        assert!(routes.sole_call().is_err());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(routes.sole_call().is_ok());
        drop(next);
        assert!(routes.sole_call().is_err());
    }
}
