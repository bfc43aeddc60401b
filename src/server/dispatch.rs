//! MCP dispatch, shared by the HTTP and stdio transports: `initialize`, the `ClientRequest` match and client
//! notifications. Requests that reach tools go to the gateway's pipeline with a [`CallContext`].

// Logging, sampling and roots are deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate
// speaks still use them.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::GetMeta;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, CustomResult, EmptyResult, ErrorCode,
    ErrorData, Implementation, InitializeRequestParams, InitializeResult, ProtocolVersion,
    RequestId, ServerCapabilities, ServerJsonRpcMessage, ServerResult,
};
use tokio::sync::mpsc;

use super::Session;
use crate::catalog::{CallSink, ClientSide};
use crate::gateway::{CallContext, Gateway, ItemKind, Opened};
use crate::identity::Caller;
use crate::reason::Reason;

/// The legacy protocol versions (sessions opened with `initialize`) toolgate speaks downstream, newest first;
/// revision 2026-07-28 is spoken beside them (`modern`).
pub const LEGACY_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What toolgate tells clients of itself at `initialize` and `server/discover`.
pub const INSTRUCTIONS: &str =
    "toolgate: one governed endpoint for the tools, resources and prompts of several MCP servers.";

/// What toolgate serves, the same for every client.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_resources_list_changed()
        .enable_prompts()
        .enable_prompts_list_changed()
        .enable_completions()
        .enable_logging()
        .build()
}

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
    InitializeResult::new(capabilities())
        .with_protocol_version(version)
        .with_server_info(Implementation::new("toolgate", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
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
    // A modern request's answer is given in its revision's form, which depends on the method.
    let modern = (session.protocol_version == super::modern::MODERN_VERSION)
        .then(|| request.method().to_string());
    // A legacy session that set no log level has nothing to carry to a modern upstream (it gets every level, as
    // from a legacy one): answered as it is.
    if modern.is_none() && session.log_level().is_none() {
        return answer(gateway, session, caller, id, request, notify).await;
    }
    // What the client declared goes with the request to its upstream; a retry's state is checked first.
    let answer = match client_side(gateway, session, caller, &id, &request).await {
        Ok(client) => {
            client
                .scope(answer(gateway, session, caller, id, request, notify))
                .await
        }
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    };
    match modern {
        Some(method) => super::modern::finish(answer, &method),
        None => answer,
    }
}

/// The client's side of a request: what its session (legacy) or the request itself (modern) declared; a modern
/// retry's input, and its upstream state once toolgate's seal around it is checked.
async fn client_side(
    gateway: &Gateway,
    session: &Session,
    caller: &Caller,
    id: &RequestId,
    request: &ClientRequest,
) -> Result<ClientSide, ErrorData> {
    let modern = session.protocol_version == super::modern::MODERN_VERSION;
    let mut client = ClientSide {
        // A legacy client's capabilities are checked by toolgate when it relays (its upstreams are told all).
        capabilities: if modern {
            session.capabilities()
        } else {
            serde_json::Value::Null
        },
        log_level: session
            .log_level()
            .and_then(|level| serde_json::to_value(level).ok())
            .and_then(|level| level.as_str().map(str::to_string)),
        modern,
        ..ClientSide::default()
    };
    if !modern {
        return Ok(client);
    }
    let (method, name, arguments, responses, state) = match request {
        ClientRequest::CallToolRequest(r) => (
            "tools/call",
            r.params.name.as_ref(),
            r.params.arguments.as_ref(),
            &r.params.input_responses,
            &r.params.request_state,
        ),
        ClientRequest::GetPromptRequest(r) => (
            "prompts/get",
            r.params.name.as_str(),
            r.params.arguments.as_ref(),
            &r.params.input_responses,
            &r.params.request_state,
        ),
        ClientRequest::ReadResourceRequest(r) => (
            "resources/read",
            r.params.uri.as_str(),
            None,
            &r.params.input_responses,
            &r.params.request_state,
        ),
        _ => return Ok(client),
    };
    // A state sealed for this request is bound to its arguments: a retry must send the same.
    let digest = crate::gateway::arguments_digest(arguments);
    // Only answers to input requests toolgate let through in the sealed state reach the upstream: none without one.
    if let Some(sealed) = state {
        let call = CallContext::new(caller, &session.id, id);
        match gateway
            .open_state(&call, (method, name, Some(&digest)), sealed)
            .await?
        {
            Opened::Upstream { state, keys } => {
                client.request_state = state;
                client.input_responses = responses.as_ref().and_then(|responses| {
                    let responses = serde_json::to_value(responses).ok()?;
                    let kept: serde_json::Map<String, serde_json::Value> = responses
                        .as_object()?
                        .iter()
                        .filter(|(key, _)| keys.contains(key))
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect();
                    Some(serde_json::Value::Object(kept))
                });
            }
            // The call it continues would have been found before the request got here.
            Opened::Held(_) => return Err(super::parked::call_gone()),
        }
    }
    client.arguments = Some(digest);
    Ok(client)
}

/// Answers one request, in its client's side.
async fn answer(
    gateway: &Gateway,
    session: &Arc<Session>,
    caller: &Caller,
    id: RequestId,
    request: ClientRequest,
    notify: Option<mpsc::Sender<Box<ServerJsonRpcMessage>>>,
) -> ServerJsonRpcMessage {
    // rmcp keeps a request's `_meta` beside its params.
    let progress = request.get_meta().get_progress_token();
    let modern = session.protocol_version == super::modern::MODERN_VERSION;
    // Updates of the session's subscriptions are decided for its latest caller (a later token, say).
    if session
        .subscribed
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        gateway.renew_subscriber(&session.id, caller);
    }
    let result = match request {
        ClientRequest::PingRequest(_) => Ok(ServerResult::EmptyResult(EmptyResult {})),
        ClientRequest::DiscoverRequest(_) => custom(Ok(super::modern::discover())),
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
            // Its upstream's requests (sampling, elicitation, roots) are asked of this client only, on the call's
            // own stream.
            let sink = match notify {
                // A modern client takes no requests on a response stream: what an upstream would ask it comes
                // back as an `input_required` result, from a modern upstream.
                Some(tx) if modern => match session.log_level() {
                    Some(level) => CallSink::new(tx, progress).with_log_level(Some(level)),
                    // A modern request without a log level asks for no log messages.
                    None => CallSink::new(tx, progress).without_logs(),
                },
                Some(tx) => {
                    let asker = super::asker::SessionAsker::new(
                        Arc::clone(session),
                        tx.clone(),
                        gateway.config.timeouts.call,
                    );
                    CallSink::new(tx, progress)
                        .with_log_level(session.log_level())
                        .with_asker(Arc::new(asker))
                }
                None => CallSink::discard(),
            };
            // A modern client is asked in its call's answer (`input_required`), and answers with its retry.
            let sink = match session.questions() {
                Some(questions) if modern => sink.with_asker(questions),
                _ => sink,
            };
            let tracked = session.track_call(&id);
            let call = CallContext::new(caller, &session.id, &id);
            let result = gateway
                .call_tool(&call, r.params, sink, &tracked.token)
                .await;
            drop(tracked);
            // An interim answer (`input_required`) is given in its own form.
            result.map(|result| match crate::gateway::interim_of(&result) {
                Some(interim) => ServerResult::CustomResult(CustomResult::new(interim.clone())),
                None => ServerResult::CallToolResult(result),
            })
        }
        ClientRequest::ListResourcesRequest(r) => {
            let call = CallContext::new(caller, &session.id, &id);
            list(gateway, &call, ItemKind::Resource, r.params).await
        }
        ClientRequest::ListResourceTemplatesRequest(r) => {
            let call = CallContext::new(caller, &session.id, &id);
            list(gateway, &call, ItemKind::Template, r.params).await
        }
        ClientRequest::ListPromptsRequest(r) => {
            let call = CallContext::new(caller, &session.id, &id);
            list(gateway, &call, ItemKind::Prompt, r.params).await
        }
        ClientRequest::ReadResourceRequest(r) => {
            let tracked = session.track_call(&id);
            let call = CallContext::new(caller, &session.id, &id);
            custom(
                gateway
                    .read_resource(&call, &r.params.uri, &tracked.token)
                    .await,
            )
        }
        ClientRequest::SubscribeRequest(r) => {
            let tracked = session.track_call(&id);
            let call = CallContext::new(caller, &session.id, &id);
            let answer = gateway
                .subscribe_resource(&call, &r.params.uri, &tracked.token)
                .await;
            if answer.is_ok() {
                session
                    .subscribed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            custom(answer)
        }
        ClientRequest::UnsubscribeRequest(r) => {
            let call = CallContext::new(caller, &session.id, &id);
            custom(gateway.unsubscribe_resource(&call, &r.params.uri).await)
        }
        ClientRequest::GetPromptRequest(r) => {
            let tracked = session.track_call(&id);
            let call = CallContext::new(caller, &session.id, &id);
            custom(
                gateway
                    .get_prompt(&call, &r.params.name, r.params.arguments, &tracked.token)
                    .await,
            )
        }
        ClientRequest::CompleteRequest(r) => {
            let tracked = session.track_call(&id);
            let call = CallContext::new(caller, &session.id, &id);
            match serde_json::to_value(&r.params) {
                Ok(params) => custom(gateway.complete(&call, params, &tracked.token).await),
                Err(e) => Err(ErrorData::invalid_params(e.to_string(), None)),
            }
        }
        ClientRequest::CustomRequest(r) => Err(match r.method.as_str() {
            "tools/call"
            | "tools/list"
            | "initialize"
            | "logging/setLevel"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "prompts/list"
            | "prompts/get"
            | "completion/complete" => {
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

/// Takes the client's answer to a request relayed to it (a response or an error); one nobody waits for is
/// dropped.
pub fn handle_answer(session: &Session, message: ClientJsonRpcMessage) {
    let (id, answer) = match message {
        ClientJsonRpcMessage::Response(response) => (
            response.id,
            serde_json::to_value(&response.result)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None)),
        ),
        ClientJsonRpcMessage::Error(error) => match error.id {
            Some(id) => (id, Err(error.error)),
            None => return,
        },
        _ => return,
    };
    if !session.answer(&id, answer) {
        tracing::debug!(session = %session.id, ?id, "an answer no relayed request waits for");
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

/// A listing of resources, resource templates or prompts.
async fn list(
    gateway: &Gateway,
    call: &CallContext<'_>,
    kind: ItemKind,
    params: Option<rmcp::model::PaginatedRequestParams>,
) -> Result<ServerResult, ErrorData> {
    let cursor = params.and_then(|p| p.cursor);
    custom(gateway.list_surface(call, kind, cursor.as_deref()).await)
}

/// A result toolgate built as JSON (forwarded, renamed and redacted), sent as it is.
fn custom(result: Result<serde_json::Value, ErrorData>) -> Result<ServerResult, ErrorData> {
    result.map(|value| ServerResult::CustomResult(CustomResult::new(value)))
}

fn method_not_found(method: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("method `{method}` is not supported by toolgate"),
        Some(serde_json::json!({"reason": Reason::UnknownMethod.as_str()})),
    )
}

/// Whether an error is toolgate's own answer for a method it does not have.
pub fn is_unknown_method(error: &ErrorData) -> bool {
    error.code == ErrorCode::METHOD_NOT_FOUND
        && error
            .data
            .as_ref()
            .and_then(|d| d.get("reason"))
            .is_some_and(|r| r == Reason::UnknownMethod.as_str())
}
