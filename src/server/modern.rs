//! Protocol revision 2026-07-28 over HTTP ("modern"): stateless requests, each carrying its protocol version and
//! its client's capabilities in `_meta`, with no `initialize` and no session. A request is modern when it comes
//! without `Mcp-Session-Id`, is not `initialize`, and names its version in `_meta` (or a version other than the
//! legacy ones in `MCP-Protocol-Version`). It is checked here (version, required `_meta`, the `Mcp-Method` and
//! `Mcp-Name` headers against the body), then answered through the same dispatch and pipeline as a session's
//! request, in a session of its own that ends with it: identity, policy, redaction and records mean the same.
//! Authorization reads the body only; headers are checked against it, never used instead of it.

// Logging is deprecated by SEP-2577 (protocol 2026-07-28); its per-request level lives on in `_meta`.
#![allow(deprecated)]

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use rmcp::model::{
    ClientRequest, ErrorCode, ErrorData, JsonRpcRequest, RequestId, ServerJsonRpcMessage,
};
use serde_json::{Map, Value, json};

use super::handlers::{accepts, json_response};
use super::stream::{sse_frame, sse_response};
use super::{AppState, Session, dispatch, jsonrpc};
use crate::identity::Caller;
use crate::telemetry;

mod checks;

use checks::check;
pub(super) use checks::{Envelope, envelope};

/// The modern protocol revision toolgate speaks.
pub const MODERN_VERSION: &str = "2026-07-28";

pub(crate) const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub(crate) const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub(crate) const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub(crate) const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub(crate) const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// `HeaderMismatch`: a routing header is missing, malformed or disagrees with the body.
pub const HEADER_MISMATCH: ErrorCode = ErrorCode(-32020);
/// `MissingRequiredClientCapability`.
pub const MISSING_CAPABILITY: ErrorCode = ErrorCode(-32021);
/// `UnsupportedProtocolVersion`.
pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(-32022);

/// How long a client may keep a listing (tools, resources, templates, prompts) before asking again. Lists are
/// filtered per caller, so they are `private`; a change is announced on `subscriptions/listen` streams, and every
/// use is decided again whatever a client kept.
const LIST_TTL_MS: u64 = 30_000;
/// The longest a client may keep a resource it read; a read's own `ttlMs` from its upstream is kept when shorter.
const READ_TTL_MS: u64 = 30_000;

/// Every protocol version toolgate speaks, the modern one first.
pub fn supported_versions() -> Vec<&'static str> {
    std::iter::once(MODERN_VERSION)
        .chain(dispatch::LEGACY_PROTOCOL_VERSIONS.iter().copied())
        .collect()
}

/// Answers a modern request.
pub(super) async fn answer(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    envelope: Envelope,
    request: JsonRpcRequest<ClientRequest>,
) -> Response {
    let id = request.id;
    let declared = match check(&headers, &envelope) {
        Ok(declared) => declared,
        Err((status, error)) => {
            tracing::info!(
                code = error.code.0,
                "modern request refused: {}",
                error.message
            );
            return refusal(status, error, id);
        }
    };
    telemetry::in_session(&tracing::Span::current(), "", MODERN_VERSION);
    // Methods of the legacy revisions only, whatever their params.
    if matches!(
        envelope.method.as_str(),
        "initialize"
            | "ping"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe"
    ) {
        return refusal(
            StatusCode::NOT_FOUND,
            ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!(
                    "`{}` is not a method of protocol {MODERN_VERSION}",
                    envelope.method
                ),
                None,
            ),
            id,
        );
    }
    match request.request {
        ClientRequest::DiscoverRequest(_) => {
            let message = ServerJsonRpcMessage::response(
                rmcp::model::ServerResult::CustomResult(rmcp::model::CustomResult::new(discover())),
                id,
            );
            json_response(&message, None)
        }
        ClientRequest::SubscriptionsListenRequest(listen) => {
            super::listen::listen(state, caller, id, listen.params).await
        }
        request => {
            let session = Session::new(
                MODERN_VERSION.to_string(),
                caller.subject_key(),
                caller.actor.clone(),
            );
            session.set_client_capabilities_value(declared.capabilities);
            if let Some(level) = declared.log_level {
                session.set_log_level(level);
            }
            let stream = matches!(request, ClientRequest::CallToolRequest(_))
                && accepts(&headers, "text/event-stream");
            run(state, &headers, session, caller, id, request, stream).await
        }
    }
}

/// `server/discover`: the versions toolgate speaks, its capabilities and its identity (the same for every caller).
pub(super) fn discover() -> Value {
    let capabilities = dispatch::capabilities();
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": supported_versions(),
        "capabilities": capabilities,
        "instructions": dispatch::INSTRUCTIONS,
        "ttlMs": LIST_TTL_MS,
        "cacheScope": "public",
    });
    add_server_info(&mut result);
    result
}

fn add_server_info(result: &mut Value) {
    if let Some(object) = result.as_object_mut() {
        let meta = object
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(
                META_SERVER_INFO.into(),
                json!({"name": "toolgate", "version": env!("CARGO_PKG_VERSION")}),
            );
        }
    }
}

/// A request's answer in the modern form: results say their `resultType` (`complete` unless the upstream said
/// otherwise) and toolgate's `serverInfo`; listings and reads carry caching hints (`private`: they are decided per
/// caller); a missing resource is `-32602` (the legacy `-32002` is not a code of this revision).
pub fn finish(message: ServerJsonRpcMessage, method: &str) -> ServerJsonRpcMessage {
    match message {
        ServerJsonRpcMessage::Response(response) => {
            let mut result = serde_json::to_value(&response.result).unwrap_or_else(|_| json!({}));
            if let Some(object) = result.as_object_mut() {
                let kind = object
                    .entry("resultType")
                    .or_insert_with(|| json!("complete"))
                    .clone();
                if kind == json!("complete") {
                    let ttl = match method {
                        "tools/list"
                        | "prompts/list"
                        | "resources/list"
                        | "resources/templates/list" => Some(LIST_TTL_MS),
                        "resources/read" => Some(
                            object
                                .get("ttlMs")
                                .and_then(Value::as_u64)
                                .map_or(0, |t| t.min(READ_TTL_MS)),
                        ),
                        _ => None,
                    };
                    if let Some(ttl) = ttl {
                        object.insert("ttlMs".into(), json!(ttl));
                        object.insert("cacheScope".into(), json!("private"));
                    }
                } else {
                    // Interim results are not cacheable.
                    object.remove("ttlMs");
                    object.remove("cacheScope");
                }
            }
            add_server_info(&mut result);
            ServerJsonRpcMessage::response(
                rmcp::model::ServerResult::CustomResult(rmcp::model::CustomResult::new(result)),
                response.id,
            )
        }
        ServerJsonRpcMessage::Error(mut error) => {
            if error.error.code == ErrorCode::RESOURCE_NOT_FOUND {
                error.error.code = ErrorCode::INVALID_PARAMS;
            }
            ServerJsonRpcMessage::Error(error)
        }
        other => other,
    }
}

/// The HTTP status of a modern answer: 400 for the revision's own refusals, 404 for an unknown method.
fn status_of(message: &ServerJsonRpcMessage) -> StatusCode {
    match message {
        ServerJsonRpcMessage::Error(error) => match error.error.code {
            HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    }
}

fn refusal(status: StatusCode, error: ErrorData, id: RequestId) -> Response {
    telemetry::failed(&tracing::Span::current(), status.as_str());
    let message = ServerJsonRpcMessage::error(error, Some(id));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(&message),
    )
        .into_response()
}

/// A JSON answer with its modern status (a step-up refusal is answered as the authorization spec says).
fn answer_json(state: &AppState, headers: &HeaderMap, message: &ServerJsonRpcMessage) -> Response {
    if let Some(response) = super::post::step_up(state, headers, message) {
        return response;
    }
    let status = status_of(message);
    if status == StatusCode::OK {
        return json_response(message, None);
    }
    telemetry::failed(&tracing::Span::current(), status.as_str());
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(message),
    )
        .into_response()
}

/// Cancels a request's work when dropped before it was disarmed: closing a modern request's connection or event
/// stream cancels it.
struct CancelOnDrop {
    session: Arc<Session>,
    id: Option<RequestId>,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.session.cancel_call(&id);
        }
    }
}

/// Runs a modern request in its own task (so that it is recorded however its client goes); answers JSON when
/// the answer comes before any notification, else an event stream of the request's notifications and answer.
async fn run(
    state: AppState,
    headers: &HeaderMap,
    session: Arc<Session>,
    caller: Caller,
    id: RequestId,
    request: ClientRequest,
    stream: bool,
) -> Response {
    let mut cancel = CancelOnDrop {
        session: Arc::clone(&session),
        id: Some(id.clone()),
    };
    let (mut rx, mut done_rx) =
        super::post::spawn_request(&state, session, caller, id, request, stream);
    let first = tokio::select! {
        biased;
        answer = &mut done_rx => {
            cancel.disarm();
            return match answer {
                Ok(answer) => answer_json(&state, headers, &answer),
                Err(_) => ended_without_answer(),
            };
        }
        first = rx.recv() => first,
    };
    let Some(first) = first else {
        let answer = done_rx.await;
        cancel.disarm();
        return match answer {
            Ok(answer) => answer_json(&state, headers, &answer),
            Err(_) => ended_without_answer(),
        };
    };
    // An event stream: the request's notifications, then its answer. Not resumable in this revision; closing it
    // cancels the request.
    let state = Some((Some(first), rx, done_rx, cancel));
    let events = futures::stream::unfold(state, |state| async move {
        let (first, mut rx, mut done, mut cancel) = state?;
        if let Some(first) = first {
            return Some((sse_frame(&first), Some((None, rx, done, cancel))));
        }
        tokio::select! {
            biased;
            Some(message) = rx.recv() => Some((sse_frame(&message), Some((None, rx, done, cancel)))),
            answer = &mut done => {
                cancel.disarm();
                // Notifications sent before the answer, then the answer.
                let mut frames = Vec::new();
                while let Ok(message) = rx.try_recv() {
                    frames.extend_from_slice(&sse_frame(&message));
                }
                if let Ok(answer) = answer {
                    frames.extend_from_slice(&sse_frame(&answer));
                }
                Some((axum::body::Bytes::from(frames), None))
            }
        }
    })
    .map(Ok::<_, Infallible>);
    sse_response(Body::from_stream(events))
}

fn ended_without_answer() -> Response {
    super::handlers::http_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::INTERNAL_ERROR,
        "request ended without an answer",
    )
}
