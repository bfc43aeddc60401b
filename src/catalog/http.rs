//! Streamable-HTTP upstreams: toolgate's own client over one pooled keep-alive `reqwest` client, so calls
//! reuse connections instead of opening one each.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, JsonRpcMessage, ListToolsResult, RequestId,
    ServerNotification, ServerRequest, Tool,
};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::UpstreamError;
use super::routing::{CallSink, Routes};
use super::surface::SurfaceEvents;
use crate::config::HttpUpstream;

mod asked;
mod events;
mod modern;
mod wire;

use wire::{TooLarge, content_type, limited, request_body, without_url};

/// Idle keep-alive connections kept per upstream host.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// Protocol version toolgate asks HTTP upstreams for.
const PROTOCOL_VERSION: &str = "2025-11-25";

type UpstreamMessage = JsonRpcMessage<ServerRequest, Value, ServerNotification>;

/// One initialized session with a streamable-HTTP upstream.
pub struct HttpConn {
    upstream: Arc<str>,
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    next_id: AtomicI64,
    routes: Arc<Routes>,
    closed: CancellationToken,
    refresh: Arc<Notify>,
    events: SurfaceEvents,
    /// The upstream speaks protocol 2026-07-28: stateless requests, no session.
    modern: bool,
    /// A modern upstream's listen streams for subscribed resources, by the upstream's URI (with an id of the task).
    listens: dashmap::DashMap<String, (i64, CancellationToken)>,
    /// The argument mirrors of its tools that have some, by the upstream's tool name (its last listing's).
    mirrored: dashmap::DashMap<String, Arc<[super::schema::mirrors::Mirror]>>,
}

/// Builds the pooled client shared by every HTTP upstream.
pub fn pooled_client() -> Result<reqwest::Client, UpstreamError> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        // A burst of calls opens as many connections as it needs; past the burst, only this many stay open.
        .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("toolgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| UpstreamError::Connect(format!("cannot build HTTP client: {e}")))
}

impl HttpConn {
    /// Initializes a session with the upstream and starts listening on its GET stream.
    pub async fn connect(
        upstream: Arc<str>,
        config: &HttpUpstream,
        client: reqwest::Client,
        refresh: Arc<Notify>,
        events: SurfaceEvents,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Arc<Self>, UpstreamError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| UpstreamError::Connect(format!("bad url: {e}")))?;
        let mut headers = HeaderMap::new();
        for (key, value) in &config.headers {
            let name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| UpstreamError::Connect(format!("bad header name `{key}`")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| UpstreamError::Connect(format!("bad value for header `{key}`")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut conn = Self {
            upstream,
            client,
            url,
            headers,
            next_id: AtomicI64::new(1),
            routes: Arc::new(Routes::default()),
            closed: CancellationToken::new(),
            refresh,
            events,
            modern: false,
            listens: dashmap::DashMap::new(),
            mirrored: dashmap::DashMap::new(),
        };
        // An upstream that speaks 2026-07-28 is spoken to in it; any other answer to `server/discover` means
        // `initialize`.
        let modern = conn
            .speaks_modern(config.protocol, timeout, max_bytes)
            .await?;
        if modern {
            conn.modern = true;
            conn.headers.insert(
                HeaderName::from_static("mcp-protocol-version"),
                HeaderValue::from_static(modern::MODERN_VERSION),
            );
            tracing::info!(upstream = %conn.upstream, "upstream speaks protocol {}", modern::MODERN_VERSION);
            let conn = Arc::new(conn);
            tokio::spawn(Arc::clone(&conn).listen_modern(None, CancellationToken::new()));
            return Ok(conn);
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": super::relayed_capabilities(),
            "clientInfo": {"name": "toolgate", "version": env!("CARGO_PKG_VERSION")},
        });
        let id = conn.fresh_id();
        let body = request_body(id, "initialize", &params)?;
        let answer = tokio::time::timeout(timeout, async {
            let response = conn.post(body).await?;
            let session = response.headers().get("mcp-session-id").cloned();
            let result = conn.read_answer(response, id, None, max_bytes).await?;
            Ok::<_, UpstreamError>((session, result))
        })
        .await
        .map_err(|_| UpstreamError::Connect("initialize timed out".into()))?;
        let (session, result) = answer?;
        if let Some(session) = session {
            conn.headers
                .insert(HeaderName::from_static("mcp-session-id"), session);
        }
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                UpstreamError::Malformed("initialize result has no protocolVersion".into())
            })?;
        let version = HeaderValue::from_str(version)
            .map_err(|_| UpstreamError::Malformed("bad protocolVersion".into()))?;
        conn.headers
            .insert(HeaderName::from_static("mcp-protocol-version"), version);
        let initialized =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .map_err(|e| UpstreamError::Malformed(e.to_string()))?;
        let response = conn.post(initialized).await?;
        drop(response);
        let conn = Arc::new(conn);
        tokio::spawn(Arc::clone(&conn).listen());
        Ok(conn)
    }

    /// A fresh id for a request to the upstream.
    fn fresh_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Cancelled once the session is known to be gone.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Ends the session (best effort DELETE).
    pub fn shutdown(self: &Arc<Self>) {
        self.closed.cancel();
        let conn = Arc::clone(self);
        tokio::spawn(async move {
            if conn.headers.contains_key("mcp-session-id") {
                let _ = conn
                    .client
                    .delete(conn.url.clone())
                    .headers(conn.headers.clone())
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
            }
        });
    }

    /// Lists every tool, following pagination.
    pub async fn list_tools(
        &self,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Vec<Tool>, UpstreamError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = if self.modern {
                // Toolgate's own request: no client's side.
                let client = crate::catalog::ClientSide::default();
                let params = modern::modern_params("tools/list", params, &client);
                let never = CancellationToken::new();
                self.exchange("tools/list", &params, None, &never, timeout, max_bytes)
                    .await?
            } else {
                let id = self.fresh_id();
                let body = request_body(id, "tools/list", &params)?;
                tokio::time::timeout(timeout, async {
                    let response = self.post(body).await?;
                    self.read_answer(response, id, None, max_bytes).await
                })
                .await
                .map_err(|_| UpstreamError::Timeout(timeout))??
            };
            let page: ListToolsResult = serde_json::from_value(result)
                .map_err(|e| UpstreamError::Malformed(format!("tools/list result: {e}")))?;
            tools.extend(page.tools);
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => {
                    self.remember_mirrors(&tools);
                    return Ok(tools);
                }
            }
            if tools.len() > 100_000 {
                return Err(UpstreamError::Malformed("more than 100000 tools".into()));
            }
        }
    }

    /// Calls a tool; progress and log notifications on the call's stream go to `sink`.
    pub async fn call_tool(
        &self,
        mut params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<CallToolResult, UpstreamError> {
        if self.closed.is_cancelled() {
            return Err(UpstreamError::Unavailable);
        }
        // Ask the upstream for progress only when the client asked for it, under a token of toolgate's own.
        let _route = if sink.wants_progress() {
            let token = self.routes.fresh_token();
            params
                .meta
                .get_or_insert_with(Default::default)
                .set_progress_token(token.clone());
            Some(self.routes.register(sink.clone(), token))
        } else {
            None
        };
        let result = if self.modern {
            let params = serde_json::to_value(&params)
                .map_err(|e| UpstreamError::Malformed(e.to_string()))?;
            self.modern_exchange(
                "tools/call",
                params,
                Some(&sink),
                cancel,
                timeout,
                max_bytes,
            )
            .await?
        } else {
            self.exchange(
                "tools/call",
                &params,
                Some(&sink),
                cancel,
                timeout,
                max_bytes,
            )
            .await?
        };
        serde_json::from_value(result)
            .map_err(|e| UpstreamError::Malformed(format!("tools/call result: {e}")))
    }

    /// Sends any request and returns its result (resources, prompts, completion).
    pub async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        cancel: &CancellationToken,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Value, UpstreamError> {
        if self.closed.is_cancelled() {
            return Err(UpstreamError::Unavailable);
        }
        if self.modern {
            if let Some(answer) = self.subscription(method, &params) {
                return Ok(answer);
            }
            return self
                .modern_exchange(method, params, None, cancel, timeout, max_bytes)
                .await;
        }
        self.exchange(method, &params, None, cancel, timeout, max_bytes)
            .await
    }

    /// One request and its answer; notifications on its stream go to `sink`; a timeout or the client's
    /// cancellation ends it and tells the upstream so.
    async fn exchange(
        &self,
        method: &str,
        params: &(impl serde::Serialize + modern::Named),
        sink: Option<&CallSink>,
        cancel: &CancellationToken,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Value, UpstreamError> {
        let id = self.fresh_id();
        let body = request_body(id, method, params)?;
        // A modern request's routing headers come from the body toolgate sends.
        let extra = match self.modern {
            true => self.modern_headers(method, params),
            false => Vec::new(),
        };
        let work = async {
            let response = self.post_with(body, &extra).await?;
            self.read_answer(response, id, sink, max_bytes).await
        };
        // A modern request ends by closing its stream (dropping `work`); a legacy one is told.
        tokio::select! {
            result = work => result,
            () = tokio::time::sleep(timeout) => {
                if !self.modern {
                    self.send_cancel(id, "timeout");
                }
                Err(UpstreamError::Timeout(timeout))
            }
            () = cancel.cancelled() => {
                if !self.modern {
                    self.send_cancel(id, "cancelled by client");
                }
                Err(UpstreamError::Cancelled)
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<reqwest::Response, UpstreamError> {
        self.post_with(body, &[]).await
    }

    /// Posts a message with `extra` headers (a modern request's routing headers).
    async fn post_with(
        &self,
        body: Vec<u8>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut headers = self.headers.clone();
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        crate::telemetry::to_headers(&mut headers);
        let response = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    self.closed.cancel();
                    UpstreamError::Unavailable
                } else {
                    UpstreamError::Transport(without_url(&e))
                }
            })?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && self.headers.contains_key("mcp-session-id") {
            // The upstream forgot our session: reconnect.
            self.closed.cancel();
            return Err(UpstreamError::Closed);
        }
        if !status.is_success() {
            // A refusal may say why as a JSON-RPC error (2026-07-28 answers its own errors with 400 and 404).
            if let Some(error) = wire::refusal_error(response).await {
                return Err(UpstreamError::Rpc(error));
            }
            return Err(UpstreamError::Transport(format!(
                "upstream answered HTTP {status}"
            )));
        }
        Ok(response)
    }

    /// Reads the answer to request `id` from a JSON or SSE response, routing notifications to `sink`.
    async fn read_answer(
        &self,
        response: reqwest::Response,
        id: i64,
        sink: Option<&CallSink>,
        max_bytes: usize,
    ) -> Result<Value, UpstreamError> {
        let content_type = content_type(&response);
        if content_type.starts_with("text/event-stream") {
            self.read_events(response, id, sink, max_bytes).await
        } else if content_type.starts_with("application/json") {
            let mut body = Vec::new();
            let mut bytes = std::pin::pin!(limited(response.bytes_stream(), max_bytes));
            while let Some(chunk) = bytes.next().await {
                match chunk {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(TooLarge(limit)) => return Err(UpstreamError::TooLarge(limit)),
                }
            }
            let message: UpstreamMessage = serde_json::from_slice(&body)
                .map_err(|e| UpstreamError::Malformed(format!("answer is not JSON-RPC: {e}")))?;
            self.handle_message(message, &body, id, sink)?
                .ok_or_else(|| {
                    UpstreamError::Malformed("answer does not answer the request".into())
                })
        } else {
            Err(UpstreamError::Malformed(format!(
                "answer has content type `{content_type}`"
            )))
        }
    }

    /// Returns the result when `message` answers request `id`; routes notifications; answers requests (relayed to
    /// the call's client when they came on the call's own stream).
    /// `raw` is the message as received: a request's parameters are relayed from it as they were sent (the typed
    /// form would round numbers such as a sampling `temperature`).
    fn handle_message(
        &self,
        message: UpstreamMessage,
        raw: &[u8],
        id: i64,
        sink: Option<&CallSink>,
    ) -> Result<Option<Value>, UpstreamError> {
        match message {
            JsonRpcMessage::Response(response) if response.id == RequestId::Number(id) => {
                Ok(Some(response.result))
            }
            JsonRpcMessage::Error(error)
                if error
                    .id
                    .as_ref()
                    .is_none_or(|e| *e == RequestId::Number(id)) =>
            {
                Err(UpstreamError::Rpc(error.error))
            }
            JsonRpcMessage::Notification(notification) => {
                self.notification(notification.notification, sink);
                Ok(None)
            }
            JsonRpcMessage::Request(request) => {
                let params = serde_json::from_slice::<Value>(raw)
                    .ok()
                    .and_then(|mut r| r.get_mut("params").map(Value::take));
                self.answer_request(request.id, request.request, params, sink);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn notification(&self, notification: ServerNotification, sink: Option<&CallSink>) {
        match notification {
            ServerNotification::ProgressNotification(progress) => {
                self.routes.progress(progress.params)
            }
            ServerNotification::LoggingMessageNotification(log) => match sink {
                Some(sink) => sink.log(log.params),
                None => self.routes.untied_log(&self.upstream, &log.params),
            },
            ServerNotification::ToolListChangedNotification(_) => self.refresh.notify_one(),
            ServerNotification::ResourceUpdatedNotification(n) => {
                self.events.resource_updated(n.params.uri)
            }
            ServerNotification::ResourceListChangedNotification(_)
            | ServerNotification::PromptListChangedNotification(_) => self.events.list_changed(),
            _ => {}
        }
    }
}
