//! Stdio upstreams: a child process driven by rmcp's child-process client, one session shared by all calls.

// Logging, sampling and roots are deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate
// speaks still use them.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
    CancelledNotificationParam, ClientCapabilities, ClientInfo, ClientNotification, ClientRequest,
    CreateMessageRequestParams, CreateMessageResult, CustomRequest, ElicitRequestParams,
    ElicitResult, ErrorData, Implementation, ListRootsResult, ListToolsRequest,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ResourceUpdatedNotificationParam, ServerResult, Tool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient, ServiceError,
};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::UpstreamError;
use super::routing::{CallSink, RouteGuard, Routes};
use super::surface::SurfaceEvents;
use crate::config::StdioUpstream;

/// Variables a stdio upstream inherits from the gateway; everything else comes from its `env` config.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TMPDIR", "TZ",
];

/// Handles what a stdio upstream sends on its own: notifications are routed; requests towards the client
/// (sampling, elicitation, roots) are relayed to the client of the one call in flight, and refused when there is
/// not exactly one (a stdio session carries no tie between the upstream's request and the call that caused it).
struct Handler {
    upstream: Arc<str>,
    routes: Arc<Routes>,
    refresh: Arc<Notify>,
    events: SurfaceEvents,
}

impl Handler {
    async fn relay<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: impl serde::Serialize,
    ) -> Result<T, ErrorData> {
        let sink = self.routes.sole_call().map_err(|why| {
            tracing::info!(upstream = %self.upstream, method, "refused a request from upstream: {why}");
            ErrorData::internal_error(format!("`{method}` was not relayed: {why}"), None)
        })?;
        let params = serde_json::to_value(params)
            .map_err(|e| ErrorData::internal_error(format!("`{method}` params: {e}"), None))?;
        let result = sink.ask(method, params).await?;
        serde_json::from_value(result).map_err(|e| {
            ErrorData::internal_error(format!("the client's answer to `{method}`: {e}"), None)
        })
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientInfo {
        ClientInfo::new(
            // What a client may be asked for, relayed to the client whose call asks (refused when that client did
            // not declare it).
            serde_json::from_value::<ClientCapabilities>(super::relayed_capabilities())
                .unwrap_or_default(),
            Implementation::new("toolgate", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.relay("sampling/createMessage", params).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.relay("elicitation/create", params).await
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.relay("roots/list", serde_json::json!({})).await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.routes.progress(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.routes.untied_log(&self.upstream, &params);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.events.resource_updated(params.uri);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.events.list_changed();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.events.list_changed();
    }
}

impl Drop for StdioConn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A running stdio upstream session.
pub struct StdioConn {
    upstream: Arc<str>,
    peer: Peer<RoleClient>,
    routes: Arc<Routes>,
    closed: CancellationToken,
    stop: CancellationToken,
}

impl StdioConn {
    /// Spawns the child, initializes the MCP session and watches it until it ends.
    pub async fn connect(
        upstream: Arc<str>,
        config: &StdioUpstream,
        refresh: Arc<Notify>,
        events: SurfaceEvents,
        timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        let mut command = tokio::process::Command::new(&config.command);
        // A child gets a minimal environment plus its own configured variables, never the gateway's secrets.
        command.env_clear();
        for name in PASSTHROUGH_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .args(&config.args)
            .envs(&config.env)
            .kill_on_drop(true);
        if let Some(cwd) = &config.cwd {
            command.current_dir(cwd);
        }
        if let Some(run_as) = &config.run_as {
            // Supplementary groups are dropped too when the gateway runs as root.
            let (uid, gid) = run_as.resolve().map_err(UpstreamError::Connect)?;
            command.uid(uid).gid(gid);
        }
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                UpstreamError::Connect(format!("cannot start `{}`: {e}", config.command))
            })?;
        if let Some(stderr) = stderr {
            let name = Arc::clone(&upstream);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(upstream = %name, "stderr: {line}");
                }
            });
        }
        let routes = Arc::new(Routes::default());
        let handler = Handler {
            upstream: Arc::clone(&upstream),
            routes: Arc::clone(&routes),
            refresh,
            events,
        };
        // Dropping the half-started service on timeout drops the transport, which kills the child.
        let running = tokio::time::timeout(timeout, handler.serve(transport))
            .await
            .map_err(|_| UpstreamError::Connect("initialize timed out".into()))?
            .map_err(|e| UpstreamError::Connect(format!("initialize failed: {e}")))?;
        let peer = running.peer().clone();
        let closed = CancellationToken::new();
        let stop = CancellationToken::new();
        {
            let closed = closed.clone();
            let stop = stop.clone();
            let name = Arc::clone(&upstream);
            tokio::spawn(async move {
                // Dropping the running service (when `stop` fires) cancels it and kills the child.
                tokio::select! {
                    reason = running.waiting() => {
                        tracing::warn!(upstream = %name, ?reason, "upstream session ended");
                    }
                    () = stop.cancelled() => {}
                }
                closed.cancel();
            });
        }
        Ok(Self {
            upstream,
            peer,
            routes,
            closed,
            stop,
        })
    }

    /// Cancelled once the session has ended.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Ends the session and the child process.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Lists every tool, following pagination.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, UpstreamError> {
        let mut tools = Vec::new();
        let mut cursor = None;
        loop {
            let params = PaginatedRequestParams::default().with_cursor(cursor);
            // Sent as a plain request: rmcp's `list_tools` helper may answer from its response cache.
            let request = ClientRequest::ListToolsRequest(ListToolsRequest::with_param(params));
            let result = match self
                .peer
                .send_request(request)
                .await
                .map_err(|e| self.service_error(e))?
            {
                ServerResult::ListToolsResult(result) => result,
                _ => {
                    return Err(UpstreamError::Malformed(
                        "answer to tools/list is not a tool list".into(),
                    ));
                }
            };
            tools.extend(result.tools);
            match result.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => return Ok(tools),
            }
            if tools.len() > 100_000 {
                return Err(UpstreamError::Malformed("more than 100000 tools".into()));
            }
        }
    }

    /// Calls a tool; the call's notifications go to `sink`; `cancel` and `timeout` end it early and tell the
    /// upstream so.
    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<CallToolResult, UpstreamError> {
        if self.closed.is_cancelled() {
            return Err(UpstreamError::Unavailable);
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let wants_progress = sink.wants_progress();
        // In flight before it is sent: the upstream may ask the client at once.
        let mut route = self.routes.enter(sink);
        let handle = self
            .peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| self.service_error(e))?;
        route.with_progress(handle.progress_token.clone());
        let outcome = self.answer(handle, &mut route, cancel, timeout).await?;
        if wants_progress {
            // rmcp hands notifications to the handler on spawned tasks but delivers the response inline, so
            // progress sent just before the result may not have been routed yet: give those tasks a moment
            // before the route goes away.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        match outcome {
            ServerResult::CallToolResult(result) => {
                let size = serialized_len(&result);
                if size > max_bytes {
                    return Err(UpstreamError::TooLarge(max_bytes));
                }
                Ok(result)
            }
            _ => Err(UpstreamError::Malformed(
                "answer is not a tool result".into(),
            )),
        }
    }

    /// Sends any request and returns its result (resources, prompts, completion).
    pub async fn request(
        &self,
        method: &str,
        params: serde_json::Value,
        cancel: &CancellationToken,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<serde_json::Value, UpstreamError> {
        if self.closed.is_cancelled() {
            return Err(UpstreamError::Unavailable);
        }
        let request = ClientRequest::CustomRequest(CustomRequest::new(method, Some(params)));
        // In flight, with no client to ask: while it is, no request of the upstream is relayed to anyone.
        let mut route = self.routes.enter(CallSink::discard());
        let handle = self
            .peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| self.service_error(e))?;
        let result = self.answer(handle, &mut route, cancel, timeout).await?;
        if serialized_len(&result) > max_bytes {
            return Err(UpstreamError::TooLarge(max_bytes));
        }
        serde_json::to_value(&result)
            .map_err(|e| UpstreamError::Malformed(format!("{method} result: {e}")))
    }

    /// The answer to a request sent; a timeout or the client's cancellation ends it and tells the upstream so.
    /// A request ended early stays counted in flight (`route`, reaching no client) for another `timeout`, as the
    /// upstream may still be working on it.
    async fn answer(
        &self,
        handle: rmcp::service::RequestHandle<RoleClient>,
        route: &mut RouteGuard,
        cancel: &CancellationToken,
        timeout: Duration,
    ) -> Result<ServerResult, UpstreamError> {
        let id = handle.id.clone();
        tokio::select! {
            response = handle.await_response() => response.map_err(|e| self.service_error(e)),
            () = tokio::time::sleep(timeout) => {
                route.abandon(timeout);
                self.send_cancel(id, "timeout").await;
                Err(UpstreamError::Timeout(timeout))
            }
            () = cancel.cancelled() => {
                route.abandon(timeout);
                self.send_cancel(id, "cancelled by client").await;
                Err(UpstreamError::Cancelled)
            }
            () = self.closed.cancelled() => Err(UpstreamError::Closed),
        }
    }

    /// Tells the upstream to stop a call, without waiting on a child that may be stuck.
    async fn send_cancel(&self, id: rmcp::model::RequestId, reason: &str) {
        let notification = ClientNotification::CancelledNotification(CancelledNotification::new(
            CancelledNotificationParam::new(Some(id), Some(reason.to_string())),
        ));
        let peer = self.peer.clone();
        let upstream = Arc::clone(&self.upstream);
        tokio::spawn(async move {
            let sent =
                tokio::time::timeout(Duration::from_secs(5), peer.send_notification(notification))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::debug!(upstream = %upstream, "could not send cancellation");
            }
        });
    }

    fn service_error(&self, e: ServiceError) -> UpstreamError {
        match e {
            ServiceError::McpError(error) => UpstreamError::Rpc(error),
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                self.closed.cancel();
                UpstreamError::Closed
            }
            ServiceError::UnexpectedResponse => {
                UpstreamError::Malformed("unexpected answer type".into())
            }
            ServiceError::Timeout { timeout } => UpstreamError::Timeout(timeout),
            ServiceError::Cancelled { .. } => UpstreamError::Closed,
            other => UpstreamError::Malformed(other.to_string()),
        }
    }
}

/// Length of a value's JSON form, counted without building it.
fn serialized_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}
