//! MCP dispatch, shared by the HTTP and stdio transports: `initialize`, the `ClientRequest` match and client
//! notifications. Requests that reach tools go to the gateway's pipeline with a [`CallContext`].

// Logging, sampling and roots are deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate
// speaks still use them.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::GetMeta;
use rmcp::model::{
    ClientNotification, ClientRequest, EmptyResult, ErrorCode, ErrorData, Implementation,
    InitializeRequestParams, InitializeResult, ProtocolVersion, RequestId, ServerCapabilities,
    ServerJsonRpcMessage, ServerResult,
};
use tokio::sync::mpsc;

use super::Session;
use crate::catalog::CallSink;
use crate::gateway::{CallContext, Gateway};
use crate::identity::Caller;

/// Protocol versions toolgate speaks downstream, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Answers `initialize`: the client's version when toolgate speaks it, else toolgate's newest.
pub fn initialize(params: &InitializeRequestParams) -> InitializeResult {
    let requested = params.protocol_version.to_string();
    let versions = [
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2024_11_05,
    ];
    let version = versions
        .iter()
        .find(|v| v.to_string() == requested)
        .cloned()
        .unwrap_or(ProtocolVersion::V_2025_11_25);
    let capabilities = ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_logging()
        .build();
    InitializeResult::new(capabilities)
        .with_protocol_version(version)
        .with_server_info(Implementation::new("toolgate", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "toolgate: one governed endpoint for the tools of several MCP servers, named <upstream>__<tool>.",
        )
}

/// Answers one request of an initialized session. Notifications caused by the request (progress, logs) go
/// to `notify` when the transport can carry them.
pub async fn handle_request(
    gateway: &Gateway,
    session: &Arc<Session>,
    caller: &Caller,
    id: RequestId,
    request: ClientRequest,
    notify: Option<mpsc::Sender<Box<ServerJsonRpcMessage>>>,
) -> ServerJsonRpcMessage {
    // rmcp keeps a request's `_meta` beside its params.
    let progress = request.get_meta().get_progress_token();
    let result = match request {
        ClientRequest::PingRequest(_) => Ok(ServerResult::EmptyResult(EmptyResult {})),
        ClientRequest::InitializeRequest(r) => {
            Ok(ServerResult::InitializeResult(initialize(&r.params)))
        }
        ClientRequest::SetLevelRequest(r) => {
            session.set_log_level(r.params.level);
            Ok(ServerResult::EmptyResult(EmptyResult {}))
        }
        ClientRequest::ListToolsRequest(r) => {
            let cursor = r.params.and_then(|p| p.cursor);
            let call = CallContext::new(caller, &session.id, &id);
            gateway
                .list_tools(&call, cursor.as_deref())
                .await
                .map(ServerResult::ListToolsResult)
        }
        ClientRequest::CallToolRequest(r) => {
            // The call's notifications go back to this client only, under its own progress token.
            let sink = match notify {
                Some(tx) => CallSink::new(tx, progress).with_log_level(session.log_level()),
                None => CallSink::discard(),
            };
            let tracked = session.track_call(&id);
            let call = CallContext::new(caller, &session.id, &id);
            let result = gateway
                .call_tool(&call, r.params, sink, &tracked.token)
                .await;
            drop(tracked);
            result.map(ServerResult::CallToolResult)
        }
        ClientRequest::CustomRequest(r) => Err(match r.method.as_str() {
            "tools/call" | "tools/list" | "initialize" | "logging/setLevel" => {
                ErrorData::invalid_params(format!("invalid params for `{}`", r.method), None)
            }
            other => method_not_found(other),
        }),
        other => Err(method_not_found(other.method())),
    };
    match result {
        Ok(result) => ServerJsonRpcMessage::response(result, id),
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    }
}

/// Takes a notification from the client.
pub fn handle_notification(session: &Session, notification: ClientNotification) {
    match notification {
        ClientNotification::CancelledNotification(n) => {
            if let Some(id) = n.params.request_id {
                session.cancel_call(&id);
            }
        }
        ClientNotification::InitializedNotification(_) => session.mark_initialized(),
        _ => {}
    }
}

fn method_not_found(method: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("method `{method}` is not supported by toolgate"),
        None,
    )
}
