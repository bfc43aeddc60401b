//! Protocol revision 2026-07-28 over HTTP ("modern"): stateless requests, each carrying its protocol version and
//! its client's capabilities in `_meta`, with no `initialize` and no session. A request is modern when it comes
//! without `Mcp-Session-Id`, is not `initialize`, and names its version in `_meta` (or a version other than the
//! legacy ones in `MCP-Protocol-Version`). It is checked here (version, required `_meta`, the `Mcp-Method` and
//! `Mcp-Name` headers against the body), then answered through the same dispatch and pipeline as a session's
//! request, in a session of its own that ends with it: identity, policy, redaction and records mean the same.
//! Authorization reads the body only; headers are checked against it, never used instead of it.

// Logging is deprecated by SEP-2577 (protocol 2026-07-28); its per-request level lives on in `_meta`.
#![allow(deprecated)]

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use rmcp::model::{
    ClientRequest, ErrorCode, ErrorData, JsonRpcRequest, RequestId, ServerJsonRpcMessage,
};
use serde_json::{Map, Value, json};

use super::handlers::{accepts, json_response};
use super::{AppState, dispatch, jsonrpc};
use crate::gateway::{CallContext, Opened};
use crate::identity::Caller;
use crate::telemetry;

mod calls;
mod checks;

pub(super) use calls::CancelOnDrop;

use checks::check;
pub(super) use checks::{Envelope, envelope, stdio_envelope};

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
    let declared = match check(Some(&headers), &envelope) {
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
    if let Some(error) = legacy_only(&envelope) {
        return refusal(StatusCode::NOT_FOUND, error, id);
    }
    // A retry that continues a call toolgate holds for this caller goes on with that call.
    if let ClientRequest::CallToolRequest(call) = &request.request
        && let Some(sealed) = &call.params.request_state
    {
        let context = CallContext::new(&caller, "", &id);
        let opened = state
            .gateway
            .open_state(&context, ("tools/call", &call.params.name, None), sealed)
            .await;
        match opened {
            Ok(Opened::Held(held)) => {
                // The caller must still be able to use the tool; if not, the held call ends here.
                if let Err(error) = state
                    .gateway
                    .may_continue(&context, &call.params.name)
                    .await
                {
                    drop(state.held.take(&held, &caller.subject_key()));
                    let error = ServerJsonRpcMessage::error(error, Some(id));
                    return answer_json(&state, &headers, &finish(error, "tools/call"));
                }
                let responses = call
                    .params
                    .input_responses
                    .as_ref()
                    .and_then(|r| serde_json::to_value(r).ok());
                return calls::resume(state, &headers, caller, id, &held, responses).await;
            }
            // The upstream's own state: opened again on the way to the upstream.
            Ok(Opened::Upstream { .. }) => {}
            Err(error) => {
                let error = ServerJsonRpcMessage::error(error, Some(id));
                return answer_json(&state, &headers, &finish(error, "tools/call"));
            }
        }
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
            let session = declared.session(&caller);
            let stream = matches!(request, ClientRequest::CallToolRequest(_))
                && accepts(&headers, "text/event-stream");
            calls::run(state, &headers, session, caller, id, request, stream).await
        }
    }
}

/// The refusal of a method of the legacy revisions only, whatever its params.
fn legacy_only(envelope: &Envelope) -> Option<ErrorData> {
    matches!(
        envelope.method.as_str(),
        "initialize"
            | "ping"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe"
    )
    .then(|| {
        ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "`{}` is not a method of protocol {MODERN_VERSION}",
                envelope.method
            ),
            None,
        )
    })
}

/// Answers a modern request over stdio (no headers to check, no event streams: notifications go to `out` as they
/// come). `subscriptions/listen` and holding a call for a legacy upstream's questions are HTTP's only.
pub(super) async fn answer_stdio(
    gateway: &crate::gateway::Gateway,
    caller: Caller,
    envelope: Envelope,
    request: JsonRpcRequest<ClientRequest>,
    out: tokio::sync::mpsc::Sender<Box<ServerJsonRpcMessage>>,
) -> ServerJsonRpcMessage {
    let id = request.id;
    let declared = match check(None, &envelope) {
        Ok(declared) => declared,
        Err((_, error)) => return ServerJsonRpcMessage::error(error, Some(id)),
    };
    if let Some(error) = legacy_only(&envelope) {
        return ServerJsonRpcMessage::error(error, Some(id));
    }
    if let ClientRequest::SubscriptionsListenRequest(_) = request.request {
        let error = ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            "toolgate serves `subscriptions/listen` over HTTP only",
            None,
        );
        return ServerJsonRpcMessage::error(error, Some(id));
    }
    let session = declared.session(&caller);
    dispatch::handle_request(gateway, &session, &caller, id, request.request, Some(out)).await
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
                // Only these requests may be answered `input_required` (toolgate's own, decided and sealed); every
                // other answer is complete, whatever an upstream wrote in it.
                let interim = crate::catalog::may_ask_for_input(method);
                let kind = object
                    .entry("resultType")
                    .or_insert_with(|| json!("complete"));
                if !interim {
                    *kind = json!("complete");
                }
                let kind = kind.clone();
                if !interim {
                    object.remove("inputRequests");
                    object.remove("requestState");
                }
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

/// The HTTP status of a modern answer: 400 for the revision's own refusals, 404 for a method toolgate does not have
/// (an upstream's own "method not found", for a method toolgate serves, stays a JSON-RPC error of a 200).
fn status_of(message: &ServerJsonRpcMessage) -> StatusCode {
    match message {
        ServerJsonRpcMessage::Error(error) => match error.error.code {
            HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND if dispatch::is_unknown_method(&error.error) => {
                StatusCode::NOT_FOUND
            }
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
pub(super) fn answer_json(
    state: &AppState,
    headers: &HeaderMap,
    message: &ServerJsonRpcMessage,
) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CustomResult, RequestId, ServerResult};

    fn answer(result: Value) -> Value {
        serde_json::to_value(ServerJsonRpcMessage::response(
            ServerResult::CustomResult(CustomResult::new(result)),
            RequestId::Number(1),
        ))
        .unwrap_or_default()
    }

    /// Only a tool call, a read or a prompt may be answered `input_required` (toolgate's own, decided and sealed);
    /// an upstream's interim answer to anything else never reaches a client as one.
    #[test]
    fn only_requests_that_may_ask_for_input_are_answered_input_required() {
        let interim = json!({"resultType": "input_required", "inputRequests": {"k": {"method": "sampling/createMessage"}},
                             "requestState": "s", "completion": {"values": []}});
        for method in [
            "completion/complete",
            "tools/list",
            "prompts/list",
            "resources/list",
            "server/discover",
        ] {
            let message = ServerJsonRpcMessage::response(
                ServerResult::CustomResult(CustomResult::new(interim.clone())),
                RequestId::Number(1),
            );
            let finished = serde_json::to_value(finish(message, method)).unwrap_or_default();
            assert_eq!(finished["result"]["resultType"], "complete", "{method}");
            assert!(
                finished["result"].get("inputRequests").is_none(),
                "{method}"
            );
            assert!(finished["result"].get("requestState").is_none(), "{method}");
        }
        for method in ["tools/call", "prompts/get", "resources/read"] {
            let message = ServerJsonRpcMessage::response(
                ServerResult::CustomResult(CustomResult::new(interim.clone())),
                RequestId::Number(1),
            );
            let finished = serde_json::to_value(finish(message, method)).unwrap_or_default();
            assert_eq!(
                finished["result"]["resultType"], "input_required",
                "{method}"
            );
            assert!(
                finished["result"].get("ttlMs").is_none(),
                "{method}: interim answers are not cacheable"
            );
        }
        // Every answer says toolgate.
        let finished = serde_json::to_value(finish(
            serde_json::from_value(answer(json!({"tools": []}))).unwrap_or_else(|_| unreachable!()),
            "tools/list",
        ))
        .unwrap_or_default();
        assert_eq!(
            finished["result"]["_meta"][META_SERVER_INFO]["name"],
            "toolgate"
        );
        assert_eq!(finished["result"]["cacheScope"], "private");
    }
}
