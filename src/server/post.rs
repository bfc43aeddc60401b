//! `POST /mcp`: one JSON-RPC message, checked before its body is read (identity, size, media types), then
//! answered: `initialize` opens a session, a `tools/call` runs in its own task and is answered as JSON or as an
//! event stream, anything else as JSON.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::sync::mpsc;

use crate::identity::Caller;
use crate::telemetry;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, RequestId, ServerJsonRpcMessage, ServerResult,
};

use super::handlers::{
    accepts, authenticate, check_version, http_error, json_response, session_limit, session_of,
};
use super::probes::origin_of;
use super::stream::{sse_frame_with_id, sse_response};
use super::{AppState, Session, dispatch, jsonrpc};

/// `POST /mcp`: one JSON-RPC message, in its own span. The span's parent is the trace context of the HTTP
/// headers (`traceparent`), which is known before the body is read; a different context in the message's
/// `_meta` is linked.
pub(super) async fn post_message(
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

pub(super) async fn answer_post(
    state: AppState,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: http::Uri,
    headers: HeaderMap,
    body: Body,
    remote: opentelemetry::Context,
) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Identity is checked on every request, before the body is read.
    let caller = match authenticate(&state, &headers, &http::Method::POST, &uri, peer) {
        Ok(caller) => caller,
        Err(response) => return refused_before_body(response, body, declared).await,
    };
    let limit = state.gateway.config.limits.max_request_bytes;
    if declared.is_some_and(|n| n > limit) {
        return refused_before_body(too_large(limit), body, declared).await;
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
        let refusal = http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::INVALID_REQUEST,
            "Content-Type must be application/json",
        );
        return refused_before_body(refusal, body, declared).await;
    }
    if headers.contains_key(header::ACCEPT)
        && !accepts(&headers, "application/json")
        && !accepts(&headers, "text/event-stream")
    {
        let refusal = http_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::INVALID_REQUEST,
            "Accept must include application/json and text/event-stream",
        );
        return refused_before_body(refusal, body, declared).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        // Part of the body is still unread: the connection cannot carry another request.
        return closing(too_large(limit));
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
            // Without a session, a request that names a modern version is answered statelessly.
            let modern = (!headers.contains_key(super::SESSION_HEADER))
                .then(|| super::modern::envelope(&headers, &bytes))
                .flatten();
            // A trace context in `_meta` (SEP-414) is linked, and carried upstream when the headers had none.
            let meta = telemetry::from_meta(&rmcp::model::GetMeta::get_meta(&request.request).0.0);
            telemetry::link(&span, &meta, &remote);
            let remote = telemetry::ambient_or(meta);
            match modern {
                // Boxed: a session's requests do not carry the modern path's state in their own future.
                Some(envelope) => {
                    telemetry::with_remote(
                        Box::pin(super::modern::answer(
                            state, caller, headers, envelope, request,
                        )),
                        remote,
                    )
                    .await
                }
                None => {
                    telemetry::with_remote(answer_request(state, caller, headers, request), remote)
                        .await
                }
            }
        }
        ClientJsonRpcMessage::Notification(notification) => {
            telemetry::name_notification(&span, &notification.notification);
            if let Err(response) = check_version(&headers) {
                return response;
            }
            match session_of(&state, &headers, &caller).await {
                Ok(session) => {
                    dispatch::handle_notification(&session, notification.notification);
                    StatusCode::ACCEPTED.into_response()
                }
                Err(response) => response,
            }
        }
        ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) => {
            match session_of(&state, &headers, &caller).await {
                Ok(session) => {
                    // An answer to a request relayed to this client; one nobody waits for is dropped.
                    dispatch::handle_answer(&session, message);
                    StatusCode::ACCEPTED.into_response()
                }
                Err(response) => response,
            }
        }
    }
}

/// A JSON-RPC request of an authenticated caller.
pub(super) async fn answer_request(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    request: rmcp::model::JsonRpcRequest<ClientRequest>,
) -> Response {
    if let ClientRequest::InitializeRequest(init) = &request.request {
        let result = dispatch::initialize(&init.params);
        let session = super::tickets::open(
            &state,
            result.protocol_version.to_string(),
            &caller,
            serde_json::to_value(&init.params.capabilities).unwrap_or_default(),
        );
        let session = match state.sessions.insert(session) {
            Ok(session) => session,
            Err(limit) => return session_limit(limit),
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
    let session = match session_of(&state, &headers, &caller).await {
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
        call_in_task(
            state,
            &headers,
            session,
            caller,
            request.id,
            request.request,
            stream,
        )
        .await
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

/// Most of a refused request's body read (and dropped) so that its connection can carry the next request.
const DRAIN_MAX: usize = 64 * 1024;
/// How long draining a refused request's body may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// A refusal answered before the body was read: a small body (declared, up to [`DRAIN_MAX`]) is read and dropped
/// within [`DRAIN_TIME`] so that the connection stays usable; otherwise the refusal closes the connection
/// (`Connection: close`), so that the unread bytes are never taken for the next request.
async fn refused_before_body(refusal: Response, body: Body, declared: Option<usize>) -> Response {
    if declared.is_some_and(|n| n <= DRAIN_MAX) {
        let drained = tokio::time::timeout(DRAIN_TIME, axum::body::to_bytes(body, DRAIN_MAX)).await;
        if matches!(drained, Ok(Ok(_))) {
            return refusal;
        }
    }
    closing(refusal)
}

/// The response, telling the client the connection ends with it.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pub(super) fn too_large(limit: usize) -> Response {
    http_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::INVALID_REQUEST,
        &format!("request body exceeds {limit} bytes"),
    )
}

/// The HTTP answer of a call that sent no notification: JSON, or a step-up refusal.
fn only_answer(
    state: &AppState,
    headers: &HeaderMap,
    answer: Result<ServerJsonRpcMessage, tokio::sync::oneshot::error::RecvError>,
) -> Response {
    match answer {
        Ok(answer) => {
            step_up(state, headers, &answer).unwrap_or_else(|| json_response(&answer, None))
        }
        Err(_) => http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::INTERNAL_ERROR,
            "call ended without an answer",
        ),
    }
}

/// A step-up refusal (the token's `scope` leaves the tool out) as the MCP authorization spec answers it: 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`. It always comes before any notification, so
/// the status can still be chosen.
pub(super) fn step_up(
    state: &AppState,
    headers: &HeaderMap,
    answer: &ServerJsonRpcMessage,
) -> Option<Response> {
    let ServerJsonRpcMessage::Error(error) = answer else {
        return None;
    };
    let scope = crate::gateway::step_up_scope(&error.error)?;
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource",
        origin_of(state, headers)
    );
    let challenge = format!(
        "Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\", scope=\"{scope}\", \
         error_description=\"the token's scope leaves this tool out\""
    );
    telemetry::failed(&tracing::Span::current(), StatusCode::FORBIDDEN.as_str());
    let mut response = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(answer),
    )
        .into_response();
    // Tool names are printable ASCII without quotes, so the challenge is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    Some(response)
}

/// The receiving ends of a request run in its own task: its notifications (none without a stream), its answer.
pub(super) type Running = (
    mpsc::Receiver<Box<ServerJsonRpcMessage>>,
    tokio::sync::oneshot::Receiver<ServerJsonRpcMessage>,
);

/// Runs a request in its own task, with its request's span and trace context, so that it ends (and is recorded)
/// however its client goes. Its notifications go to the first receiver only when `stream` (without a stream the
/// sender is dropped here, and the answer goes back as plain JSON).
pub(super) fn spawn_request(
    state: &AppState,
    session: Arc<Session>,
    caller: Caller,
    id: RequestId,
    request: ClientRequest,
    stream: bool,
) -> Running {
    // Boxed: a channel allocates its slots in blocks, and a message is large.
    let (tx, rx) = mpsc::channel::<Box<ServerJsonRpcMessage>>(64);
    let notify = stream.then_some(tx);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let gateway = Arc::clone(&state.gateway);
    let call = async move {
        let answer =
            dispatch::handle_request(&gateway, &session, &caller, id, request, notify).await;
        let _ = done_tx.send(answer);
    };
    tokio::spawn(telemetry::within(
        call,
        tracing::Span::current(),
        telemetry::current(),
    ));
    (rx, done_rx)
}

/// A `tools/call`, run in its own task so that it ends (and is recorded) even when its client goes away. Its
/// answer is JSON when it arrives before any notification (always, when the client takes no `stream`), else an
/// SSE stream carrying the call's notifications and then its answer.
pub(super) async fn call_in_task(
    state: AppState,
    headers: &HeaderMap,
    session: Arc<Session>,
    caller: Caller,
    id: RequestId,
    request: ClientRequest,
    stream: bool,
) -> Response {
    let keeper = Arc::clone(&session);
    let (mut rx, mut done_rx) = spawn_request(&state, session, caller, id, request, stream);
    let first = tokio::select! {
        biased;
        answer = &mut done_rx => {
            return only_answer(&state, headers, answer);
        }
        first = rx.recv() => first,
    };
    let Some(first) = first else {
        return only_answer(&state, headers, done_rx.await);
    };
    // An event stream: its events are kept with ids, so that a client that lost the connection can resume it
    // (`GET` with `Last-Event-ID`); the call's notifications and answer go into it whether or not anyone reads.
    let (name, replay) = keeper.open_replay();
    let events = replay.events_after(None);
    tokio::spawn(pump(keeper, name, replay, first, rx, done_rx));
    sse_response(Body::from_stream(events.map(Ok::<_, Infallible>)))
}

/// Moves a call's notifications, then its answer, into its kept event stream; forgets the stream a while after.
async fn pump(
    session: Arc<Session>,
    name: String,
    replay: Arc<super::replay::Replay>,
    first: Box<ServerJsonRpcMessage>,
    mut rx: mpsc::Receiver<Box<ServerJsonRpcMessage>>,
    mut done: tokio::sync::oneshot::Receiver<ServerJsonRpcMessage>,
) {
    let add = |message: &ServerJsonRpcMessage, retry: Option<u64>| {
        let id = super::replay::event_id(&name, replay.next_sequence());
        replay.push(sse_frame_with_id(message, &id, retry));
    };
    add(&first, Some(super::replay::RETRY_MS));
    loop {
        tokio::select! {
            biased;
            Some(message) = rx.recv() => add(&message, None),
            answer = &mut done => {
                // Notifications sent before the answer, then the answer.
                while let Ok(message) = rx.try_recv() {
                    add(&message, None);
                }
                let answer = answer.ok().map(|answer| {
                    let id = super::replay::event_id(&name, replay.next_sequence());
                    sse_frame_with_id(&answer, &id, None)
                });
                replay.finish(answer);
                break;
            }
        }
    }
    // Requests relayed after the answer find no reader: they fail at once instead of waiting.
    drop(rx);
    // Kept for resumption by the session only (it may forget it sooner, when it keeps too many).
    drop(replay);
    tokio::time::sleep(super::replay::KEEP_AFTER_ANSWER).await;
    session.drop_replay(&name);
}
