//! Routing of an upstream's notifications back to the one downstream client whose call caused them.
//!
//! Progress notifications carry the token toolgate put on the forwarded call, so they are matched exactly and
//! their token is put back to the client's own. Log messages that arrive on a call's own response stream
//! (streamable-HTTP upstreams) go to that call's client. Log messages with no such tie (a shared stdio session,
//! an HTTP upstream's GET stream) cannot be attributed: a log emitted during one call can arrive after it ended,
//! while another client's call is running. They are kept in toolgate's own log and never sent to a client.

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
        if self
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

/// The calls in flight on one upstream session that asked for progress, by the token toolgate gave them.
#[derive(Default, Debug)]
pub struct Routes {
    next: AtomicU64,
    progress: DashMap<ProgressToken, CallSink>,
    /// Every call in flight, by a number of toolgate's: a request from an upstream whose session carries no
    /// tie to a call (stdio) can be attributed only while exactly one call is in flight.
    calls: DashMap<u64, CallSink>,
}

/// Removes a call's routes when the call ends, however it ends.
pub struct RouteGuard {
    routes: Arc<Routes>,
    token: Option<ProgressToken>,
    call: u64,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(token) = &self.token {
            self.routes.progress.remove(token);
        }
        self.routes.calls.remove(&self.call);
    }
}

impl Routes {
    /// Routes progress under `token` (the token the upstream sees) to `sink`, if the client asked for progress;
    /// calls that did not are not tracked at all.
    pub fn register(self: &Arc<Self>, sink: CallSink, token: ProgressToken) -> RouteGuard {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        self.calls.insert(call, sink.clone());
        let token = sink.wants_progress().then(|| {
            self.progress.insert(token.clone(), sink);
            token
        });
        RouteGuard {
            routes: Arc::clone(self),
            token,
            call,
        }
    }

    /// The one call in flight, when there is exactly one; `Err` says why not.
    pub fn sole_call(&self) -> Result<CallSink, &'static str> {
        match self.calls.len() {
            0 => Err("no call is in flight on this upstream"),
            1 => self
                .calls
                .iter()
                .next()
                .map(|e| e.value().clone())
                .ok_or("no call is in flight on this upstream"),
            _ => Err(
                "several calls are in flight on this upstream, so toolgate cannot tell which one asked",
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
}
