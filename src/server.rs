//! The downstream MCP endpoint: toolgate's own streamable-HTTP session layer on axum, and stdio mode.

pub mod dispatch;
mod guard;
mod jsonrpc;
mod session;
mod stdio;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, RequestId, ServerJsonRpcMessage,
    ServerNotification, ServerResult, ToolListChangedNotification,
};
use tokio::sync::mpsc;

pub use guard::HostGuard;
pub use session::{Session, Sessions};
pub use stdio::serve_stdio;

use crate::gateway::Gateway;
use crate::identity::{AuthError, Caller, Identity};
use crate::telemetry;
use dispatch::SUPPORTED_PROTOCOL_VERSIONS;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Shared state of the HTTP listener.
#[derive(Clone)]
pub struct AppState {
    gateway: Arc<Gateway>,
    sessions: Arc<Sessions>,
    guard: Arc<HostGuard>,
}

/// Builds the router: `/mcp`, `/healthz`, `/readyz`, behind the Host/Origin guard.
pub fn router(gateway: Arc<Gateway>) -> (Router, Arc<Sessions>) {
    let config = Arc::clone(&gateway.config);
    let sessions = Sessions::new(config.limits.max_sessions);
    let state = AppState {
        gateway,
        sessions: Arc::clone(&sessions),
        guard: Arc::new(HostGuard::new(
            &config.allowed_hosts,
            &config.allowed_origins,
        )),
    };
    let router = Router::new()
        .route(
            "/mcp",
            get(get_stream).post(post_message).delete(delete_session),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .with_state(state);
    (router, sessions)
}

/// The admin listener's router: the admin API behind the same Host/Origin guard as `/mcp`, refusing in the admin
/// API's own error form.
pub fn admin_router(gateway: Arc<Gateway>, bootstrap: String) -> Router {
    let guard = Arc::new(HostGuard::new(
        &gateway.config.allowed_hosts,
        &gateway.config.allowed_origins,
    ));
    crate::admin::router(gateway, bootstrap).layer(middleware::from_fn(
        move |request: Request, next: Next| {
            let guard = Arc::clone(&guard);
            async move {
                match guard.check(request.headers()) {
                    Ok(()) => next.run(request).await,
                    Err(reason) => (
                        StatusCode::FORBIDDEN,
                        axum::Json(
                            serde_json::json!({"error": reason, "reason": "host_not_allowed"}),
                        ),
                    )
                        .into_response(),
                }
            }
        },
    ))
}

/// Serves HTTP until `shutdown` resolves; also runs session expiry and tool-list-change fan-out.
pub async fn serve_http(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, sessions) = router(Arc::clone(&gateway));
    let idle = gateway.config.timeouts.session_idle;
    {
        let sessions = Arc::clone(&sessions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10).min(idle));
            loop {
                tick.tick().await;
                sessions.expire(idle);
            }
        });
    }
    {
        let sessions = Arc::clone(&sessions);
        let mut changes = gateway.subscribe_changes();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        sessions.for_each(|s| s.announce_list_changed(list_changed()));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    // On shutdown: `/readyz` turns unready and GET streams end (they would hold the drain forever) while
    // everything is still served for `timeouts.unready`; then no new connection is accepted and calls in flight
    // finish, for at most `timeouts.drain`; then the sessions are closed, which cancels what is left (each
    // cancelled call is still recorded).
    let draining = gateway.draining.clone();
    let unready = gateway.config.timeouts.unready;
    let shutdown = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: unready, then draining calls in flight");
            draining.cancel();
            tokio::time::sleep(unready).await;
        }
    };
    let serve = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .into_future();
    tokio::pin!(serve);
    let limit = gateway.config.timeouts.drain;
    tokio::select! {
        result = &mut serve => result,
        () = async { draining.cancelled().await; tokio::time::sleep(unready + limit).await } => {
            tracing::warn!("calls still in flight after {limit:?}: cancelling them");
            sessions.for_each(|s| s.close());
            tokio::time::timeout(Duration::from_secs(5), serve)
                .await
                .unwrap_or(Ok(()))
        }
    }
}

/// `notifications/tools/list_changed`.
pub fn list_changed() -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::notification(ServerNotification::ToolListChangedNotification(
        ToolListChangedNotification::default(),
    ))
}

async fn host_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.guard.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::warn!(reason, "request refused by the Host/Origin guard");
            http_error(StatusCode::FORBIDDEN, ErrorCode::INVALID_REQUEST, reason)
        }
    }
}

/// Liveness, with the policy bundle in force and why the last reload was refused (if it was).
async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "policy": state.gateway.policy.status(),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Response {
    let gateway = &state.gateway;
    let statuses = gateway.catalog.statuses();
    let policy = gateway.policy.status();
    let quarantined = gateway
        .pins
        .list()
        .iter()
        .filter(|p| p.status == crate::catalog::pins::PinStatus::Quarantined)
        .count();
    let text = gateway.metrics.render(&crate::metrics::Snapshot {
        upstreams: statuses
            .iter()
            .map(|u| (u.name.as_str(), u.state == "ready", u.reconnects, u.tools))
            .collect(),
        bundle_version: &policy.version,
        evaluator: policy.evaluator,
        reload_failures: policy.reload_failures,
        quarantined,
        sessions: state.sessions.len(),
    });
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.gateway.draining.is_cancelled();
    let ready = !draining && state.gateway.catalog.ready();
    let body = serde_json::json!({
        "ready": ready,
        "draining": draining,
        "upstreams": state.gateway.catalog.statuses(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// RFC 9728 protected-resource metadata for `/mcp`.
async fn resource_metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let origin = origin_of(&state, &headers);
    let body = serde_json::json!({
        "resource": format!("{origin}/mcp"),
        "authorization_servers": state.gateway.identity.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "toolgate",
    });
    axum::Json(body).into_response()
}

/// `http://host[:port]` of this gateway as the client addressed it (the Host header passed the guard).
fn origin_of(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(public) = &state.gateway.identity.public_url {
        return public.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Authenticates a request from its Authorization header; the refusal is the HTTP answer itself.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Result<Caller, Response> {
    let source = peer.0.ip().to_string();
    state
        .gateway
        .authenticate(jsonrpc::bearer(headers, query), &source)
        .map_err(|error| auth_refusal(state, &error, headers))
}

/// 401 (with the `WWW-Authenticate` challenge) or 403, with a JSON-RPC error naming the reason id.
fn auth_refusal(state: &AppState, error: &AuthError, headers: &HeaderMap) -> Response {
    let message = jsonrpc::auth_refusal(None, error);
    let mut response = (
        jsonrpc::auth_status(error),
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(&message),
    )
        .into_response();
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource",
        origin_of(state, headers)
    );
    let challenge = match (jsonrpc::auth_status(error), error) {
        (StatusCode::UNAUTHORIZED, AuthError::Missing) => {
            format!("Bearer resource_metadata=\"{metadata}\"")
        }
        (StatusCode::UNAUTHORIZED, _) => format!(
            "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\"{}\"",
            error.reason_id()
        ),
        _ => format!("Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\""),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn http_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    telemetry::failed(&tracing::Span::current(), status.as_str());
    let body = jsonrpc::to_bytes(&jsonrpc::error_message(None, code, message.to_string()));
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_response(message: &ServerJsonRpcMessage, session: Option<&str>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(message),
    )
        .into_response();
    if let Some(id) = session
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

fn sse_frame(message: &ServerJsonRpcMessage) -> Bytes {
    let mut frame = b"event: message\ndata: ".to_vec();
    frame.extend_from_slice(&jsonrpc::to_bytes(message));
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .any(|v| v == mime || v == "*/*")
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn session_of(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Arc<Session>, Response> {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_REQUEST,
            "missing Mcp-Session-Id header; send initialize first",
        ));
    };
    let session = state.sessions.get(id).ok_or_else(|| {
        http_error(
            StatusCode::NOT_FOUND,
            ErrorCode::INVALID_REQUEST,
            "unknown or expired session",
        )
    })?;
    // A session belongs to the subject that opened it.
    if session.subject != caller.subject_key() {
        return Err(auth_refusal(state, &AuthError::SessionSubject, headers));
    }
    Ok(session)
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn check_version(headers: &HeaderMap) -> Result<(), Response> {
    match headers.get(VERSION_HEADER).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(v)) if SUPPORTED_PROTOCOL_VERSIONS.contains(&v) => Ok(()),
        Some(_) => Err(http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_REQUEST,
            "unsupported MCP-Protocol-Version",
        )),
    }
}

/// `POST /mcp`: one JSON-RPC message, in its own span. The span's parent is the trace context of the HTTP
/// headers (`traceparent`), which is known before the body is read; a different context in the message's
/// `_meta` is linked.
async fn post_message(
    State(state): State<AppState>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = telemetry::request_span("tcp");
    let remote = telemetry::from_headers(&headers);
    telemetry::adopt(&span, &remote);
    telemetry::within(
        answer_post(state, peer, uri, headers, body, remote.clone()),
        span,
        remote,
    )
    .await
}

async fn answer_post(
    state: AppState,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
    body: Body,
    remote: opentelemetry::Context,
) -> Response {
    // Identity is checked on every request, before the body is read.
    let caller = match authenticate(&state, &headers, uri.query(), peer) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let limit = state.gateway.config.limits.max_request_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::INVALID_REQUEST,
            "Content-Type must be application/json",
        );
    }
    if headers.contains_key(header::ACCEPT)
        && !accepts(&headers, "application/json")
        && !accepts(&headers, "text/event-stream")
    {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::INVALID_REQUEST,
            "Accept must include application/json and text/event-stream",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return too_large(limit);
    };
    let message = match jsonrpc::parse(&bytes) {
        Ok(message) => message,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                jsonrpc::to_bytes(&error),
            )
                .into_response();
        }
    };
    let span = tracing::Span::current();
    match message {
        ClientJsonRpcMessage::Request(request) => {
            telemetry::name_request(&span, &request.request, &request.id);
            // A trace context in `_meta` (SEP-414) is linked, and carried upstream when the headers had none.
            let meta = telemetry::from_meta(&rmcp::model::GetMeta::get_meta(&request.request).0.0);
            telemetry::link(&span, &meta, &remote);
            let remote = telemetry::ambient_or(meta);
            telemetry::with_remote(answer_request(state, caller, headers, request), remote).await
        }
        ClientJsonRpcMessage::Notification(notification) => {
            telemetry::name_notification(&span, &notification.notification);
            if let Err(response) = check_version(&headers) {
                return response;
            }
            match session_of(&state, &headers, &caller) {
                Ok(session) => {
                    dispatch::handle_notification(&session, notification.notification);
                    StatusCode::ACCEPTED.into_response()
                }
                Err(response) => response,
            }
        }
        ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) => {
            match session_of(&state, &headers, &caller) {
                Ok(_) => StatusCode::ACCEPTED.into_response(),
                Err(response) => response,
            }
        }
    }
}

/// A JSON-RPC request of an authenticated caller.
async fn answer_request(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    request: rmcp::model::JsonRpcRequest<ClientRequest>,
) -> Response {
    if let ClientRequest::InitializeRequest(init) = &request.request {
        let result = dispatch::initialize(&init.params);
        let session = Session::new(result.protocol_version.to_string(), caller.subject_key());
        let Some(session) = state.sessions.insert(session) else {
            return http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::INTERNAL_ERROR,
                "too many sessions",
            );
        };
        telemetry::in_session(
            &tracing::Span::current(),
            &session.id,
            &session.protocol_version,
        );
        tracing::info!(
            session = %session.id, client = %init.params.client_info.name,
            version = %result.protocol_version, subject = %caller.subject, actor = %caller.actor,
            "session opened"
        );
        let message =
            ServerJsonRpcMessage::response(ServerResult::InitializeResult(result), request.id);
        return json_response(&message, Some(&session.id));
    }
    if let Err(response) = check_version(&headers) {
        return response;
    }
    let session = match session_of(&state, &headers, &caller) {
        Ok(s) => s,
        Err(response) => return response,
    };
    telemetry::in_session(
        &tracing::Span::current(),
        &session.id,
        &session.protocol_version,
    );
    if matches!(request.request, ClientRequest::CallToolRequest(_)) {
        let stream = accepts(&headers, "text/event-stream");
        call_in_task(state, session, caller, request.id, request.request, stream).await
    } else {
        let answer = dispatch::handle_request(
            &state.gateway,
            &session,
            &caller,
            request.id,
            request.request,
            None,
        )
        .await;
        json_response(&answer, None)
    }
}

fn too_large(limit: usize) -> Response {
    http_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::INVALID_REQUEST,
        &format!("request body exceeds {limit} bytes"),
    )
}

/// A `tools/call`, run in its own task so that it ends (and is recorded) even when its client goes away. Its
/// answer is JSON when it arrives before any notification (always, when the client takes no `stream`), else an
/// SSE stream carrying the call's notifications and then its answer.
async fn call_in_task(
    state: AppState,
    session: Arc<Session>,
    caller: Caller,
    id: RequestId,
    request: ClientRequest,
    stream: bool,
) -> Response {
    // Boxed: a channel allocates its slots in blocks, and a message is large.
    let (tx, mut rx) = mpsc::channel::<Box<ServerJsonRpcMessage>>(64);
    // Without a stream the sender is dropped here, and the answer goes back as plain JSON.
    let notify = stream.then_some(tx);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let gateway = Arc::clone(&state.gateway);
        let call = async move {
            let answer =
                dispatch::handle_request(&gateway, &session, &caller, id, request, notify).await;
            let _ = done_tx.send(answer);
        };
        // The call keeps its request's span and trace context in its own task.
        tokio::spawn(telemetry::within(
            call,
            tracing::Span::current(),
            telemetry::current(),
        ));
    }
    let mut done_rx = done_rx;
    let first = tokio::select! {
        biased;
        answer = &mut done_rx => {
            return match answer {
                Ok(answer) => json_response(&answer, None),
                Err(_) => http_error(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::INTERNAL_ERROR, "call ended without an answer"),
            };
        }
        first = rx.recv() => first,
    };
    let Some(first) = first else {
        return match done_rx.await {
            Ok(answer) => json_response(&answer, None),
            Err(_) => http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::INTERNAL_ERROR,
                "call ended without an answer",
            ),
        };
    };
    let head = futures::stream::once(async move { sse_frame(&first) });
    let rest = futures::stream::unfold((rx, Some(done_rx)), |(mut rx, done)| async move {
        let mut done = done?;
        tokio::select! {
            biased;
            Some(message) = rx.recv() => Some((sse_frame(&message), (rx, Some(done)))),
            answer = &mut done => {
                // Flush notifications sent before the answer, then the answer.
                let mut frames = Vec::new();
                while let Ok(message) = rx.try_recv() {
                    frames.extend_from_slice(&sse_frame(&message));
                }
                if let Ok(answer) = answer {
                    frames.extend_from_slice(&sse_frame(&answer));
                }
                Some((Bytes::from(frames), (rx, None)))
            }
        }
    });
    let stream = head.chain(rest).map(Ok::<_, Infallible>);
    sse_response(Body::from_stream(stream))
}

async fn get_stream(
    State(state): State<AppState>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match authenticate(&state, &headers, uri.query(), peer) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if !accepts(&headers, "text/event-stream") {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::INVALID_REQUEST,
            "Accept must include text/event-stream",
        );
    }
    if let Err(response) = check_version(&headers) {
        return response;
    }
    let session = match session_of(&state, &headers, &caller) {
        Ok(s) => s,
        Err(response) => return response,
    };
    let Some(rx) = session.open_stream() else {
        return http_error(
            StatusCode::CONFLICT,
            ErrorCode::INVALID_REQUEST,
            "this session already has a GET stream",
        );
    };
    let messages = futures::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        Some((sse_frame(&message), rx))
    });
    let keepalive = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some((Bytes::from_static(b": keepalive\n\n"), ()))
    });
    let stream = futures::stream::select(messages.map(Some), keepalive.map(Some))
        .take_while(|m| std::future::ready(m.is_some()))
        .filter_map(std::future::ready)
        .map(Ok::<_, Infallible>);
    // End the stream when the session closes, the token expires or its credential is revoked.
    let identity = Arc::clone(&state.gateway.identity);
    let draining = state.gateway.draining.clone();
    let ended = async move {
        tokio::select! {
            () = session_closed(session) => {}
            () = credential_lapses(identity, caller) => {}
            () = draining.cancelled() => {}
        }
    };
    let stream = stream.take_until(ended);
    sse_response(Body::from_stream(stream))
}

/// Resolves when the caller's token expires or one of its credentials is revoked.
async fn credential_lapses(identity: Arc<Identity>, caller: Caller) {
    loop {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if now >= caller.expires_at || identity.revocations().check(&caller).is_err() {
            return;
        }
        let until_expiry = Duration::from_secs(caller.expires_at.saturating_sub(now).max(0) as u64);
        tokio::time::sleep(until_expiry.min(Duration::from_secs(2))).await;
    }
}

async fn session_closed(session: Arc<Session>) {
    session.closed().await;
}

async fn delete_session(
    State(state): State<AppState>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match authenticate(&state, &headers, uri.query(), peer) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if let Err(response) = session_of(&state, &headers, &caller) {
        return response;
    }
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_REQUEST,
            "missing Mcp-Session-Id header",
        );
    };
    match state.sessions.remove(id) {
        Some(session) => {
            tracing::info!(session = %session.id, "session closed by client");
            StatusCode::NO_CONTENT.into_response()
        }
        None => http_error(
            StatusCode::NOT_FOUND,
            ErrorCode::INVALID_REQUEST,
            "unknown or expired session",
        ),
    }
}
