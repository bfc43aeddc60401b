//! Toolgate's conformance reference upstream: an MCP server with the behaviours the official conformance
//! suite (`@modelcontextprotocol/conformance`, server mode) expects of its reference "everything" server,
//! for protocol revisions up to 2025-11-25 (sessions opened with `initialize`) and for 2026-07-28
//! (stateless requests that carry their protocol version and client capabilities in `_meta`). Run the
//! suite against it directly to check the suite and this server, then against toolgate in front of it to
//! see what the gateway keeps and what it loses (`scripts/conformance`).
//!
//! - Tools: `test_simple_text`, `test_image_content`, `test_audio_content`, `test_embedded_resource`,
//!   `test_multiple_content_types`, `test_tool_with_logging` (three log messages on the call's own stream),
//!   `test_tool_with_progress`, `test_error_handling` (`isError: true`), `test_reconnection` (over HTTP the
//!   server closes the call's SSE stream mid-call and answers once the client resumes with `Last-Event-ID`),
//!   `test_sampling`, `test_elicitation`, `test_elicitation_sep1034_defaults`,
//!   `test_elicitation_sep1330_enums` and `json_schema_2020_12_tool` (a 2020-12 `inputSchema` with `$defs`,
//!   `$anchor`, `allOf`/`anyOf`, `if`/`then`/`else` and `additionalProperties: false`).
//! - 2026-07-28 tools: `test_missing_capability` (needs the client's `sampling` capability, else error
//!   -32021), `test_streaming_elicitation`, `test_logging_tool` (logs only at the `_meta` log level of its
//!   request), `test_trigger_tool_change` and `test_trigger_prompt_change` (announce a list change to
//!   `subscriptions/listen` streams), and the multi-round tools `test_input_required_result_elicitation`,
//!   `…_sampling`, `…_list_roots`, `…_request_state`, `…_multiple_inputs`, `…_multi_round`,
//!   `…_tampered_state` and `…_capabilities`, which answer `resultType: "input_required"` until the client
//!   retries with the `inputResponses` they asked for. Their `requestState` is sealed with an HMAC; a
//!   retry whose state fails verification is rejected. Under 2026-07-28 the sampling and elicitation tools
//!   above ask the same way instead of sending requests to the client. `test_argument_mirror` declares its
//!   `region` argument mirrored in `Mcp-Param-Region` and says which header its request carried.
//! - Resources: `test://static-text`, `test://static-binary`, `test://watched-resource` (subscribable; a
//!   new revision every three seconds, announced with `notifications/resources/updated` to subscribers:
//!   `resources/subscribe` in a session, `subscriptions/listen` under 2026-07-28) and the template
//!   `test://template/{id}/data`.
//! - Prompts: `test_simple_prompt`, `test_prompt_with_arguments`, `test_prompt_with_embedded_resource`,
//!   `test_prompt_with_image`, `test_input_required_result_prompt` (multi-round, 2026-07-28).
//! - `completion/complete` for the prompt arguments and the template's `id`; `logging/setLevel` filters the
//!   log messages of later calls in a session, the `_meta` log level those of a 2026-07-28 request.
//!
//! Stdio by default; `--http ADDR` serves streamable HTTP (sessions, resumable SSE streams, stateless
//! 2026-07-28 requests, loopback `Host` only) and prints `listening on http://ADDR/mcp`.
// Logging, sampling and resource subscriptions are 2025-11-25 features that later revisions deprecate.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod common;

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::Stream;
use hmac::{Hmac, KeyInit, Mac};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage, ClientResult,
    CompleteRequestParams, CompleteResult, GetExtensions, GetPromptRequestParams,
    GetPromptResponse, InputRequiredResult, InputResponses, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    Request, ServerConfig, ServerJsonRpcMessage, ServerRequest, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext, RoleServer, SubscriptionContext, SubscriptionSendError};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{
    EventId, LocalSessionHandle, LocalSessionManager, LocalSessionManagerError, SessionTransport,
};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, broadcast, mpsc, watch};

/// A 1x1 red PNG.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file with a single silent sample.
const WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
const LOGGER: &str = "conformance-test-server";
const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";
/// How often the watched resource changes.
const WATCH_PERIOD: Duration = Duration::from_secs(3);
/// Retry hint sent when `test_reconnection` closes its stream.
const RECONNECT_RETRY: Duration = Duration::from_millis(500);
/// How long `test_reconnection` waits for the client to resume before answering anyway.
const RECONNECT_WAIT: Duration = Duration::from_secs(10);

/// Builds an rmcp model value from its JSON form (most model types are `#[non_exhaustive]`).
fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid MCP model JSON")
}

/// A final result from its JSON form, marked `resultType: "complete"` as 2026-07-28 requires; rmcp
/// removes the mark again when it answers a session of an earlier revision.
fn complete<T: DeserializeOwned>(mut value: Value) -> T {
    if let Value::Object(fields) = &mut value {
        fields.insert("resultType".into(), json!("complete"));
    }
    from_json(value)
}

fn text(text: impl Into<String>) -> Value {
    json!({ "type": "text", "text": text.into() })
}

fn image() -> Value {
    json!({ "type": "image", "data": PNG_BASE64, "mimeType": "image/png" })
}

fn tool_result(content: Vec<Value>) -> CallToolResponse {
    complete::<CallToolResult>(json!({ "content": content })).into()
}

fn tool_error(message: impl Into<String>) -> CallToolResponse {
    complete::<CallToolResult>(json!({ "content": [text(message)], "isError": true })).into()
}

fn no_arguments() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// The input schema of `json_schema_2020_12_tool`: dialect, `$defs` with an `$anchor`, a `$ref`,
/// composition and conditional keywords, and no other properties allowed.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

fn tools() -> Value {
    let none = no_arguments();
    json!({ "tools": [
        { "name": "test_simple_text", "description": "Tests simple text content response", "inputSchema": none },
        { "name": "test_image_content", "description": "Tests image content response", "inputSchema": none },
        { "name": "test_audio_content", "description": "Tests audio content response", "inputSchema": none },
        { "name": "test_embedded_resource", "description": "Tests embedded resource content response", "inputSchema": none },
        {
            "name": "test_multiple_content_types",
            "description": "Tests response with multiple content types (text, image, resource)",
            "inputSchema": none
        },
        {
            "name": "test_tool_with_logging",
            "description": "Tests tool that emits log messages during execution",
            "inputSchema": none
        },
        {
            "name": "test_tool_with_progress",
            "description": "Tests tool that reports progress notifications",
            "inputSchema": none
        },
        { "name": "test_error_handling", "description": "Tests error response handling", "inputSchema": none },
        {
            "name": "test_reconnection",
            "description": "Tests SSE stream disconnection and client reconnection: the server closes the call's \
                            stream mid-call and sends the result after the client resumes with Last-Event-ID",
            "inputSchema": none
        },
        {
            "name": "test_sampling",
            "description": "Tests server-initiated sampling (LLM completion request)",
            "inputSchema": {
                "type": "object",
                "properties": { "prompt": { "type": "string", "description": "The prompt to send to the LLM" } },
                "required": ["prompt"]
            }
        },
        {
            "name": "test_elicitation",
            "description": "Tests server-initiated elicitation (user input request)",
            "inputSchema": {
                "type": "object",
                "properties": { "message": { "type": "string", "description": "The message to show the user" } },
                "required": ["message"]
            }
        },
        {
            "name": "test_elicitation_sep1034_defaults",
            "description": "Tests elicitation with default values for every primitive type (SEP-1034)",
            "inputSchema": none
        },
        {
            "name": "test_elicitation_sep1330_enums",
            "description": "Tests elicitation with the enum schema variants of SEP-1330",
            "inputSchema": none
        },
        {
            "name": "test_argument_mirror",
            "description": "Says which `Mcp-Param-Region` header its request carried (an argument mirror, 2026-07-28)",
            "inputSchema": {
                "type": "object",
                "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                "required": ["region"]
            }
        },
        {
            "name": "json_schema_2020_12_tool",
            "description": "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613, SEP-2106)",
            "inputSchema": json_schema_2020_12()
        },
        {
            "name": "test_missing_capability",
            "description": "Needs the client's sampling capability: without it the call fails with -32021",
            "inputSchema": none
        },
        {
            "name": "test_streaming_elicitation",
            "description": "Asks the client for input with an elicitation (as an input_required result under 2026-07-28)",
            "inputSchema": none
        },
        {
            "name": "test_logging_tool",
            "description": "Emits log messages, only at or above the log level its request asks for",
            "inputSchema": none
        },
        {
            "name": "test_trigger_tool_change",
            "description": "Announces a change of the tool list to the client's listeners",
            "inputSchema": none
        },
        {
            "name": "test_trigger_prompt_change",
            "description": "Announces a change of the prompt list to the client's listeners",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_elicitation",
            "description": "Multi-round request: asks for the user's name with an elicitation (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_sampling",
            "description": "Multi-round request: asks the client's LLM a question (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_list_roots",
            "description": "Multi-round request: asks for the client's roots (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_request_state",
            "description": "Multi-round request whose retry must echo the requestState it was given (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_multiple_inputs",
            "description": "Multi-round request asking for an elicitation, a sampling and the roots at once (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_multi_round",
            "description": "Multi-round request over two rounds of input, with a new requestState each (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_tampered_state",
            "description": "Multi-round request that rejects a requestState failing integrity verification (SEP-2322)",
            "inputSchema": none
        },
        {
            "name": "test_input_required_result_capabilities",
            "description": "Multi-round request asking only with the capabilities the client declared (SEP-2322)",
            "inputSchema": none
        }
    ]})
}

fn resources() -> Value {
    json!({ "resources": [
        {
            "uri": "test://static-text",
            "name": "static-text",
            "title": "Static Text Resource",
            "description": "A static text resource for testing",
            "mimeType": "text/plain"
        },
        {
            "uri": "test://static-binary",
            "name": "static-binary",
            "title": "Static Binary Resource",
            "description": "A static binary resource (image) for testing",
            "mimeType": "image/png"
        },
        {
            "uri": WATCHED_URI,
            "name": "watched-resource",
            "title": "Watched Resource",
            "description": "A subscribable resource with a new revision every three seconds",
            "mimeType": "text/plain"
        }
    ]})
}

fn resource_templates() -> Value {
    json!({ "resourceTemplates": [{
        "uriTemplate": format!("{TEMPLATE_PREFIX}{{id}}{TEMPLATE_SUFFIX}"),
        "name": "template",
        "title": "Resource Template",
        "description": "A resource template with parameter substitution",
        "mimeType": "application/json"
    }]})
}

fn prompts() -> Value {
    json!({ "prompts": [
        {
            "name": "test_simple_prompt",
            "title": "Simple Test Prompt",
            "description": "A simple prompt without arguments"
        },
        {
            "name": "test_prompt_with_arguments",
            "title": "Prompt With Arguments",
            "description": "A prompt with required arguments",
            "arguments": [
                { "name": "arg1", "description": "First test argument", "required": true },
                { "name": "arg2", "description": "Second test argument", "required": true }
            ]
        },
        {
            "name": "test_prompt_with_embedded_resource",
            "title": "Prompt With Embedded Resource",
            "description": "A prompt that includes an embedded resource",
            "arguments": [
                { "name": "resourceUri", "description": "URI of the resource to embed", "required": true }
            ]
        },
        {
            "name": "test_prompt_with_image",
            "title": "Prompt With Image",
            "description": "A prompt that includes image content"
        },
        {
            "name": "test_input_required_result_prompt",
            "title": "Prompt With Input Required",
            "description": "A prompt that asks the client for its context first (multi-round, SEP-2322)"
        }
    ]})
}

/// The `id` of a `test://template/{id}/data` URI.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn level_rank(level: LoggingLevel) -> u8 {
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

/// The string argument `name`, or why there is none.
fn string_argument(
    arguments: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<String, String> {
    match arguments.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("argument `{name}` must be a string")),
        None => Err(format!("missing required argument `{name}`")),
    }
}

/// State of one MCP session.
#[derive(Default)]
struct Session {
    /// Lowest level of log messages to send; everything until `logging/setLevel`.
    level: Mutex<Option<LoggingLevel>>,
    subscriptions: Mutex<HashSet<String>>,
    /// A task sends `notifications/resources/updated` for the watched resource.
    watching: AtomicBool,
}

/// A change of a list, announced to every `subscriptions/listen` stream that asked for it.
#[derive(Clone, Copy, Debug)]
enum ListChange {
    Tools,
    Prompts,
}

/// State shared by every handler: each 2026-07-28 request over HTTP gets a handler of its own.
struct Shared {
    /// Revision of the watched resource.
    revision: watch::Receiver<u64>,
    /// Key of the HMAC that seals each `requestState` handed out; it does not outlive the process.
    state_key: [u8; 32],
    changes: broadcast::Sender<ListChange>,
}

impl Shared {
    fn new(revision: watch::Receiver<u64>) -> Self {
        let mut state_key = [0u8; 32];
        getrandom::fill(&mut state_key).expect("random key for requestState");
        Self {
            revision,
            state_key,
            changes: broadcast::channel(16).0,
        }
    }

    fn state_mac(&self, owner: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.state_key)
            .expect("HMAC takes a key of any length");
        mac.update(&(owner.len() as u64).to_le_bytes());
        mac.update(owner.as_bytes());
        mac.update(payload);
        mac
    }

    /// A `requestState` holding `state`, for the tool or prompt `owner` only.
    fn seal(&self, owner: &str, state: &Value) -> String {
        let payload = state.to_string();
        let tag = self
            .state_mac(owner, payload.as_bytes())
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The state a `requestState` of `owner` holds; an error when it is not one this process sealed.
    fn open(&self, owner: &str, sealed: &str) -> Result<Value, ErrorData> {
        let rejected = || {
            ErrorData::invalid_params(
                "requestState failed integrity verification",
                Some(json!({ "requestState": sealed })),
            )
        };
        let (payload, tag) = sealed.split_once('.').ok_or_else(rejected)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| rejected())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| rejected())?;
        self.state_mac(owner, &payload)
            .verify_slice(&tag)
            .map_err(|_| rejected())?;
        serde_json::from_slice(&payload).map_err(|_| rejected())
    }
}

/// Whether the request of `ctx` follows revision 2026-07-28 or later: stateless, with its client's
/// capabilities and log level in its own `_meta`, and no requests from the server to the client.
fn stateless(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// A request to the client inside an `input_required` result.
fn input_request(method: &str, params: Value) -> Value {
    json!({ "method": method, "params": params })
}

/// An `elicitation/create` input request for a form of string, number or boolean `fields`, all required.
fn elicit_input(message: &str, fields: &[(&str, &str)]) -> Value {
    let properties: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(name, kind)| ((*name).to_string(), json!({ "type": kind })))
        .collect();
    let required: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    input_request(
        "elicitation/create",
        json!({
            "mode": "form",
            "message": message,
            "requestedSchema": { "type": "object", "properties": properties, "required": required }
        }),
    )
}

fn sampling_input(question: &str, max_tokens: u32) -> Value {
    input_request(
        "sampling/createMessage",
        json!({
            "messages": [{ "role": "user", "content": text(question) }],
            "maxTokens": max_tokens
        }),
    )
}

fn roots_input() -> Value {
    input_request("roots/list", json!({}))
}

/// An `input_required` result asking for `requests` (key, input request), with `state` to be echoed.
fn input_required(requests: Vec<(&str, Value)>, state: Option<String>) -> InputRequiredResult {
    let requests: serde_json::Map<String, Value> = requests
        .into_iter()
        .map(|(key, request)| (key.to_string(), request))
        .collect();
    let mut result = json!({ "resultType": "input_required", "inputRequests": requests });
    if let Some(state) = state {
        result["requestState"] = json!(state);
    }
    from_json(result)
}

/// What a retried multi-round request brings: the client's answers and the state it echoes.
#[derive(Default)]
struct Round {
    responses: InputResponses,
    state: Option<String>,
}

impl Round {
    fn new(responses: Option<InputResponses>, state: Option<String>) -> Self {
        Self {
            responses: responses.unwrap_or_default(),
            state,
        }
    }

    /// The client's answer to input request `key` (made with `method`), if it sent one. An answer of the
    /// wrong shape is an error: the client did not follow the protocol.
    fn answer(&self, key: &str, method: &str) -> Result<Option<&Value>, ErrorData> {
        let Some(answer) = self.responses.get(key) else {
            return Ok(None);
        };
        let valid = match method {
            "elicitation/create" => answer["action"].is_string(),
            "sampling/createMessage" => answer.get("content").is_some(),
            "roots/list" => answer["roots"].is_array(),
            _ => false,
        };
        if valid {
            Ok(Some(answer))
        } else {
            Err(ErrorData::invalid_params(
                format!("inputResponses.{key} is not a result of {method}"),
                Some(json!({ "key": key, "response": answer })),
            ))
        }
    }

    fn elicited(&self, key: &str) -> Result<Option<&Value>, ErrorData> {
        self.answer(key, "elicitation/create")
    }
}

/// The text of a `sampling/createMessage` result: `content` is one block or, since 2025-11-25, several.
fn sampled_text(result: &Value) -> String {
    match &result["content"] {
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        block => block["text"].as_str().unwrap_or_default().to_string(),
    }
}

/// `action=…, content=…` of an `elicitation/create` result.
fn elicitation_summary(result: &Value) -> String {
    let action = result["action"].as_str().unwrap_or("unknown");
    let content = result.get("content").cloned().unwrap_or_else(|| json!({}));
    format!("action={action}, content={content}")
}

fn missing_capability(capability: &str) -> ErrorData {
    ErrorData::missing_required_client_capability(from_json(json!({ capability: {} })))
}

#[derive(Clone)]
struct Everything {
    session: Arc<Session>,
    shared: Arc<Shared>,
}

impl Everything {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            session: Arc::default(),
            shared,
        }
    }

    /// Whether a log message at `level` goes out for the request of `ctx`: at or above the level in its
    /// `_meta` under 2026-07-28 (none without one), else at or above the session's `logging/setLevel`.
    fn logs(&self, ctx: &RequestContext<RoleServer>, level: LoggingLevel) -> bool {
        if stateless(ctx) {
            return ctx
                .meta
                .log_level()
                .is_some_and(|min| level_rank(level) >= level_rank(min));
        }
        self.session
            .level
            .lock()
            .unwrap()
            .is_none_or(|min| level_rank(level) >= level_rank(min))
    }

    /// Sends a log message tied to the request of `ctx`: on its own response stream over HTTP, as an
    /// ordinary notification otherwise.
    async fn log(&self, ctx: &RequestContext<RoleServer>, level: LoggingLevel, data: &str) {
        if !self.logs(ctx, level) {
            return;
        }
        let params = json!({ "level": level, "logger": LOGGER, "data": data });
        if let Some(call) = ctx.extensions.get::<CallStream>() {
            let message: ServerJsonRpcMessage = from_json(json!({
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": params
            }));
            if call
                .side
                .send(ServerSseMessage::from_message(message))
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = ctx.peer.notify_logging_message(from_json(params)).await;
    }

    fn client_supports(ctx: &RequestContext<RoleServer>, capability: &str) -> bool {
        ctx.client_capabilities()
            .and_then(|caps| serde_json::to_value(caps).ok())
            .is_some_and(|caps| caps.get(capability).is_some())
    }

    async fn elicit(
        ctx: &RequestContext<RoleServer>,
        message: &str,
        requested_schema: Value,
    ) -> Result<Value, String> {
        if !Self::client_supports(ctx, "elicitation") {
            return Err("the client does not support elicitation".into());
        }
        let params = from_json(json!({
            "mode": "form",
            "message": message,
            "requestedSchema": requested_schema
        }));
        match ctx
            .peer
            .send_request(ServerRequest::ElicitRequest(Request::new(params)))
            .await
        {
            Ok(ClientResult::ElicitResult(result)) => {
                serde_json::to_value(result).map_err(|e| e.to_string())
            }
            Ok(_) => Err("unexpected answer to elicitation/create".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Asks the client to fill in `requested_schema`; answers `<summary>: action=…, content=…`. Under
    /// 2026-07-28 the question goes back in an `input_required` result and the answer comes with the retry.
    async fn elicitation(
        ctx: &RequestContext<RoleServer>,
        round: &Round,
        message: &str,
        requested_schema: Value,
        summary: &str,
    ) -> Result<CallToolResponse, ErrorData> {
        if !stateless(ctx) {
            return Ok(match Self::elicit(ctx, message, requested_schema).await {
                Ok(result) => tool_result(vec![text(format!(
                    "{summary}: {}",
                    elicitation_summary(&result)
                ))]),
                Err(e) => tool_error(format!("elicitation failed: {e}")),
            });
        }
        if !Self::client_supports(ctx, "elicitation") {
            return Err(missing_capability("elicitation"));
        }
        Ok(match round.elicited("elicitation")? {
            Some(result) => tool_result(vec![text(format!(
                "{summary}: {}",
                elicitation_summary(result)
            ))]),
            None => {
                let request = input_request(
                    "elicitation/create",
                    json!({ "mode": "form", "message": message, "requestedSchema": requested_schema }),
                );
                input_required(vec![("elicitation", request)], None).into()
            }
        })
    }

    async fn sampling(
        ctx: &RequestContext<RoleServer>,
        round: &Round,
        prompt: &str,
    ) -> Result<CallToolResponse, ErrorData> {
        let supported = Self::client_supports(ctx, "sampling");
        if stateless(ctx) {
            if !supported {
                return Err(missing_capability("sampling"));
            }
            return Ok(match round.answer("sampling", "sampling/createMessage")? {
                Some(result) => tool_result(vec![text(format!(
                    "LLM response: {}",
                    sampled_text(result)
                ))]),
                None => {
                    input_required(vec![("sampling", sampling_input(prompt, 100))], None).into()
                }
            });
        }
        if !supported {
            return Ok(tool_error("the client does not support sampling"));
        }
        let params = from_json(json!({
            "messages": [{ "role": "user", "content": text(prompt) }],
            "maxTokens": 100
        }));
        Ok(match ctx.peer.create_message(params).await {
            Ok(result) => {
                let result = serde_json::to_value(result).unwrap_or_default();
                tool_result(vec![text(format!(
                    "LLM response: {}",
                    sampled_text(&result)
                ))])
            }
            Err(e) => tool_error(format!("sampling failed: {e}")),
        })
    }

    /// The multi-round tools of SEP-2322 (`test_input_required_result_*`), for 2026-07-28 requests: each
    /// answers `input_required` until the retry brings what it asked for.
    fn input_required_tool(
        &self,
        ctx: &RequestContext<RoleServer>,
        name: &str,
        round: &Round,
    ) -> Result<CallToolResponse, ErrorData> {
        let state = match &round.state {
            Some(sealed) => Some(self.shared.open(name, sealed)?),
            None => None,
        };
        let seal = |state: Value| Some(self.shared.seal(name, &state));
        let require = |capability: &str| {
            if Self::client_supports(ctx, capability) {
                Ok(())
            } else {
                Err(missing_capability(capability))
            }
        };
        let name_input = || elicit_input("What is your name?", &[("name", "string")]);
        let confirm_input = || elicit_input("Please confirm", &[("ok", "boolean")]);
        let response = match name {
            "test_input_required_result_elicitation" => {
                require("elicitation")?;
                match round.elicited("user_name")? {
                    Some(answer) => {
                        let name = answer["content"]["name"].as_str().unwrap_or("stranger");
                        tool_result(vec![text(format!("Hello, {name}!"))])
                    }
                    None => input_required(vec![("user_name", name_input())], None).into(),
                }
            }
            "test_input_required_result_sampling" => {
                require("sampling")?;
                match round.answer("capital_question", "sampling/createMessage")? {
                    Some(answer) => tool_result(vec![text(format!(
                        "LLM response: {}",
                        sampled_text(answer)
                    ))]),
                    None => {
                        let question = sampling_input("What is the capital of France?", 100);
                        input_required(vec![("capital_question", question)], None).into()
                    }
                }
            }
            "test_input_required_result_list_roots" => {
                require("roots")?;
                match round.answer("client_roots", "roots/list")? {
                    Some(answer) => {
                        let roots: Vec<&str> = answer["roots"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|root| root["uri"].as_str())
                            .collect();
                        tool_result(vec![text(format!("Client roots: {}", roots.join(", ")))])
                    }
                    None => input_required(vec![("client_roots", roots_input())], None).into(),
                }
            }
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => {
                require("elicitation")?;
                match (&state, round.elicited("confirm")?) {
                    (Some(state), Some(answer)) if state["step"] == "confirm" => {
                        tool_result(vec![text(format!(
                            "state-ok: the requestState verified, confirmation {}",
                            elicitation_summary(answer)
                        ))])
                    }
                    _ => input_required(
                        vec![("confirm", confirm_input())],
                        seal(json!({ "step": "confirm" })),
                    )
                    .into(),
                }
            }
            "test_input_required_result_multiple_inputs" => {
                require("elicitation")?;
                require("sampling")?;
                require("roots")?;
                let name = round.elicited("user_name")?;
                let greeting = round.answer("greeting", "sampling/createMessage")?;
                let roots = round.answer("client_roots", "roots/list")?;
                match (&state, name, greeting, roots) {
                    (Some(_), Some(name), Some(greeting), Some(roots)) => {
                        tool_result(vec![text(format!(
                            "All inputs received: name {}, greeting {:?}, {} root(s)",
                            name["content"]["name"],
                            sampled_text(greeting),
                            roots["roots"].as_array().map_or(0, Vec::len)
                        ))])
                    }
                    _ => {
                        let mut requests = Vec::new();
                        if name.is_none() {
                            requests.push(("user_name", name_input()));
                        }
                        if greeting.is_none() {
                            requests.push(("greeting", sampling_input("Generate a greeting", 50)));
                        }
                        if roots.is_none() {
                            requests.push(("client_roots", roots_input()));
                        }
                        if requests.is_empty() {
                            // Every answer is here but the state is not: ask again from the start.
                            requests = vec![
                                ("user_name", name_input()),
                                ("greeting", sampling_input("Generate a greeting", 50)),
                                ("client_roots", roots_input()),
                            ];
                        }
                        input_required(requests, seal(json!({ "step": "all" }))).into()
                    }
                }
            }
            "test_input_required_result_multi_round" => {
                require("elicitation")?;
                let step = state.as_ref().and_then(|s| s["step"].as_u64());
                match (step, &state) {
                    (Some(2), Some(state)) => match round.elicited("step2")? {
                        Some(answer) => tool_result(vec![text(format!(
                            "Completed in three rounds: name {}, favorite color {}",
                            state["name"], answer["content"]["color"]
                        ))]),
                        None => input_required(
                            vec![(
                                "step2",
                                elicit_input(
                                    "Step 2: What is your favorite color?",
                                    &[("color", "string")],
                                ),
                            )],
                            seal(state.clone()),
                        )
                        .into(),
                    },
                    (Some(1), _) if round.elicited("step1")?.is_some() => {
                        let answer = round.elicited("step1")?.cloned().unwrap_or_default();
                        input_required(
                            vec![(
                                "step2",
                                elicit_input(
                                    "Step 2: What is your favorite color?",
                                    &[("color", "string")],
                                ),
                            )],
                            seal(json!({ "step": 2, "name": answer["content"]["name"] })),
                        )
                        .into()
                    }
                    _ => input_required(
                        vec![(
                            "step1",
                            elicit_input("Step 1: What is your name?", &[("name", "string")]),
                        )],
                        seal(json!({ "step": 1 })),
                    )
                    .into(),
                }
            }
            "test_input_required_result_capabilities" => {
                let mut asked = Vec::new();
                let mut answers = Vec::new();
                if Self::client_supports(ctx, "sampling") {
                    match round.answer("capital_question", "sampling/createMessage")? {
                        Some(answer) => answers.push(format!("sampling: {}", sampled_text(answer))),
                        None => asked.push((
                            "capital_question",
                            sampling_input("What is the capital of France?", 100),
                        )),
                    }
                }
                if Self::client_supports(ctx, "elicitation") {
                    match round.elicited("user_name")? {
                        Some(answer) => {
                            answers.push(format!("elicitation: {}", elicitation_summary(answer)));
                        }
                        None => asked.push(("user_name", name_input())),
                    }
                }
                if Self::client_supports(ctx, "roots") {
                    match round.answer("client_roots", "roots/list")? {
                        Some(answer) => answers.push(format!("roots: {}", answer["roots"])),
                        None => asked.push(("client_roots", roots_input())),
                    }
                }
                if asked.is_empty() {
                    tool_result(vec![text(if answers.is_empty() {
                        "The client declared no capability to ask it with.".to_string()
                    } else {
                        format!("Answers: {}", answers.join("; "))
                    })])
                } else {
                    input_required(asked, None).into()
                }
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool `{other}`"),
                    None,
                ));
            }
        };
        Ok(response)
    }

    /// `test_input_required_result_prompt`: asks the client for the context to use first.
    fn input_required_prompt(
        &self,
        ctx: &RequestContext<RoleServer>,
        round: &Round,
    ) -> Result<GetPromptResponse, ErrorData> {
        if !stateless(ctx) {
            return Err(ErrorData::invalid_params(
                "test_input_required_result_prompt needs protocol revision 2026-07-28 or later",
                None,
            ));
        }
        if !Self::client_supports(ctx, "elicitation") {
            return Err(missing_capability("elicitation"));
        }
        Ok(match round.elicited("user_context")? {
            Some(answer) => {
                let context = answer["content"]["context"].as_str().unwrap_or_default();
                complete::<rmcp::model::GetPromptResult>(json!({
                    "description": "A prompt that asks the client for its context first",
                    "messages": [{
                        "role": "user",
                        "content": text(format!("Using the context you gave: {context}"))
                    }]
                }))
                .into()
            }
            None => input_required(
                vec![(
                    "user_context",
                    elicit_input(
                        "What context should the prompt use?",
                        &[("context", "string")],
                    ),
                )],
                None,
            )
            .into(),
        })
    }

    async fn progress(&self, ctx: &RequestContext<RoleServer>) -> CallToolResponse {
        let token = ctx.meta.get_progress_token();
        for (step, progress) in [0, 50, 100].into_iter().enumerate() {
            if step > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                let _ = ctx
                    .peer
                    .notify_progress(from_json(json!({
                        "progressToken": token,
                        "progress": progress,
                        "total": 100,
                        "message": format!("Completed step {progress} of 100")
                    })))
                    .await;
            }
        }
        let token = token
            .and_then(|t| serde_json::to_value(t).ok())
            .map_or_else(|| "no progress token".to_string(), |t| t.to_string());
        tool_result(vec![text(format!("Progress reported for token {token}"))])
    }

    /// Over HTTP: closes this call's SSE stream, waits for the client to resume it, then answers.
    async fn reconnection(&self, ctx: &RequestContext<RoleServer>) -> CallToolResponse {
        let Some(call) = ctx.extensions.get::<CallStream>() else {
            return tool_result(vec![text(
                "Reconnection test completed (no SSE stream to close on this transport).",
            )]);
        };
        if let Err(e) = call
            .session
            .close_sse_stream(call.http_request_id, Some(RECONNECT_RETRY))
            .await
        {
            return tool_error(format!("could not close the stream: {e}"));
        }
        let resumed = tokio::time::timeout(RECONNECT_WAIT, call.resumed.notified())
            .await
            .is_ok();
        tool_result(vec![text(if resumed {
            "Reconnection test completed successfully. If you received this, the client properly \
             reconnected after stream closure."
        } else {
            "Reconnection test completed, but the client did not resume the stream in time."
        })])
    }

    fn json_schema_tool(arguments: &serde_json::Map<String, Value>) -> CallToolResponse {
        let arguments = Value::Object(arguments.clone());
        match jsonschema::validate(&json_schema_2020_12(), &arguments) {
            Ok(()) => tool_result(vec![text(format!(
                "JSON Schema 2020-12 tool called with: {arguments}"
            ))]),
            Err(e) => tool_error(format!("invalid arguments: {e}")),
        }
    }

    /// Sends `notifications/resources/updated` for the watched resource while this session subscribes to it.
    fn watch(&self, peer: Peer<RoleServer>) {
        if self.session.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let session = self.session.clone();
        let mut revision = self.shared.revision.clone();
        revision.mark_unchanged();
        tokio::spawn(async move {
            while revision.changed().await.is_ok() {
                if !session.subscriptions.lock().unwrap().contains(WATCHED_URI) {
                    break;
                }
                let sent = peer
                    .notify_resource_updated(from_json(json!({ "uri": WATCHED_URI })))
                    .await;
                if sent.is_err() {
                    break;
                }
            }
            session.watching.store(false, Ordering::SeqCst);
        });
    }

    fn known_resource(uri: &str) -> bool {
        matches!(
            uri,
            "test://static-text" | "test://static-binary" | WATCHED_URI
        ) || template_id(uri).is_some()
    }
}

impl ServerHandler for Everything {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(from_json(json!({
            "tools": { "listChanged": true },
            "resources": { "subscribe": true },
            "prompts": { "listChanged": true },
            "logging": {},
            "completions": {}
        })))
        .with_server_info(from_json(json!({
            "name": "toolgate-everything",
            "title": "Conformance reference upstream",
            "version": env!("CARGO_PKG_VERSION")
        })))
        .with_instructions(
            "Reference server for the MCP conformance suite: every tool, resource and prompt exercises one \
             protocol feature.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(complete(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        let round = Round::new(request.input_responses, request.request_state);
        let response = match request.name.as_ref() {
            "test_simple_text" => {
                tool_result(vec![text("This is a simple text response for testing.")])
            }
            "test_image_content" => tool_result(vec![image()]),
            "test_audio_content" => tool_result(vec![json!({
                "type": "audio",
                "data": WAV_BASE64,
                "mimeType": "audio/wav"
            })]),
            "test_embedded_resource" => tool_result(vec![json!({
                "type": "resource",
                "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content."
                }
            })]),
            "test_multiple_content_types" => tool_result(vec![
                text("Multiple content types test:"),
                image(),
                json!({
                    "type": "resource",
                    "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": json!({ "test": "data", "value": 123 }).to_string()
                    }
                }),
            ]),
            "test_tool_with_logging" => {
                self.log(&ctx, LoggingLevel::Info, "Tool execution started")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.log(&ctx, LoggingLevel::Info, "Tool processing data")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.log(&ctx, LoggingLevel::Info, "Tool execution completed")
                    .await;
                tool_result(vec![text("Tool with logging executed successfully")])
            }
            "test_tool_with_progress" => self.progress(&ctx).await,
            "test_error_handling" => {
                tool_error("This tool intentionally returns an error for testing")
            }
            "test_reconnection" => self.reconnection(&ctx).await,
            "test_sampling" => match string_argument(&arguments, "prompt") {
                Ok(prompt) => Self::sampling(&ctx, &round, &prompt).await?,
                Err(e) => tool_error(e),
            },
            "test_elicitation" => match string_argument(&arguments, "message") {
                Ok(message) => {
                    let schema = json!({
                        "type": "object",
                        "properties": {
                            "response": { "type": "string", "description": "User's response" }
                        },
                        "required": ["response"]
                    });
                    Self::elicitation(&ctx, &round, &message, schema, "User response").await?
                }
                Err(e) => tool_error(e),
            },
            "test_elicitation_sep1034_defaults" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "description": "User name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User age", "default": 30 },
                        "score": { "type": "number", "description": "User score", "default": 95.5 },
                        "status": {
                            "type": "string",
                            "description": "User status",
                            "enum": ["active", "inactive", "pending"],
                            "default": "active"
                        },
                        "verified": { "type": "boolean", "description": "Verification status", "default": true }
                    },
                    "required": []
                });
                let message = "Please review and update the form fields with defaults";
                Self::elicitation(&ctx, &round, message, schema, "Elicitation completed").await?
            }
            "test_elicitation_sep1330_enums" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": {
                            "type": "string",
                            "description": "Select one option",
                            "enum": ["option1", "option2", "option3"]
                        },
                        "titledSingle": {
                            "type": "string",
                            "description": "Select one option with titles",
                            "oneOf": [
                                { "const": "value1", "title": "First Option" },
                                { "const": "value2", "title": "Second Option" },
                                { "const": "value3", "title": "Third Option" }
                            ]
                        },
                        "legacyEnum": {
                            "type": "string",
                            "description": "Select one option (legacy)",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]
                        },
                        "untitledMulti": {
                            "type": "array",
                            "description": "Select multiple options",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                        },
                        "titledMulti": {
                            "type": "array",
                            "description": "Select multiple options with titles",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": {
                                "anyOf": [
                                    { "const": "value1", "title": "First Choice" },
                                    { "const": "value2", "title": "Second Choice" },
                                    { "const": "value3", "title": "Third Choice" }
                                ]
                            }
                        }
                    },
                    "required": []
                });
                let message = "Please select options from the enum fields";
                Self::elicitation(&ctx, &round, message, schema, "Elicitation completed").await?
            }
            "json_schema_2020_12_tool" => Self::json_schema_tool(&arguments),
            "test_argument_mirror" => {
                let header = ctx
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| parts.headers.get("mcp-param-region"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("(none)")
                    .to_string();
                tool_result(vec![text(format!("Mcp-Param-Region: {header}"))])
            }
            "test_missing_capability" => {
                if !Self::client_supports(&ctx, "sampling") {
                    return Err(missing_capability("sampling"));
                }
                tool_result(vec![text(
                    "The client declared the sampling capability this tool needs.",
                )])
            }
            "test_streaming_elicitation" => {
                let schema = json!({
                    "type": "object",
                    "properties": { "answer": { "type": "string" } },
                    "required": ["answer"]
                });
                let message = "Please answer to continue";
                Self::elicitation(&ctx, &round, message, schema, "Elicitation completed").await?
            }
            "test_logging_tool" => {
                for (level, message) in [
                    (LoggingLevel::Debug, "Logging tool: debug message"),
                    (LoggingLevel::Info, "Logging tool: info message"),
                    (LoggingLevel::Warning, "Logging tool: warning message"),
                ] {
                    self.log(&ctx, level, message).await;
                }
                tool_result(vec![text("Logging tool executed")])
            }
            "test_trigger_tool_change" | "test_trigger_prompt_change" => {
                let change = if request.name == "test_trigger_tool_change" {
                    ListChange::Tools
                } else {
                    ListChange::Prompts
                };
                let _ = self.shared.changes.send(change);
                if !stateless(&ctx) {
                    let _ = match change {
                        ListChange::Tools => ctx.peer.notify_tool_list_changed().await,
                        ListChange::Prompts => ctx.peer.notify_prompt_list_changed().await,
                    };
                }
                tool_result(vec![text(format!(
                    "Announced a change of the {change:?} list"
                ))])
            }
            name if name.starts_with("test_input_required_result_") => {
                if !stateless(&ctx) {
                    return Err(ErrorData::invalid_params(
                        format!("{name} needs protocol revision 2026-07-28 or later"),
                        None,
                    ));
                }
                self.input_required_tool(&ctx, name, &round)?
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool `{other}`"),
                    None,
                ));
            }
        };
        Ok(response)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(complete(resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(complete(resource_templates()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => json!({
                "uri": uri,
                "mimeType": "text/plain",
                "text": "This is the content of the static text resource."
            }),
            "test://static-binary" => {
                json!({ "uri": uri, "mimeType": "image/png", "blob": PNG_BASE64 })
            }
            WATCHED_URI => json!({
                "uri": uri,
                "mimeType": "text/plain",
                "text": format!("Watched resource content, revision {}", *self.shared.revision.borrow())
            }),
            _ => match template_id(uri) {
                Some(id) => json!({
                    "uri": uri,
                    "mimeType": "application/json",
                    "text": json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                        .to_string()
                }),
                None => {
                    return Err(ErrorData::resource_not_found(
                        format!("resource not found: {uri}"),
                        Some(json!({ "uri": uri })),
                    ));
                }
            },
        };
        Ok(complete::<rmcp::model::ReadResourceResult>(json!({ "contents": [contents] })).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !Self::known_resource(&request.uri) {
            return Err(ErrorData::resource_not_found(
                format!("resource not found: {}", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        }
        let watched = request.uri == WATCHED_URI;
        self.session
            .subscriptions
            .lock()
            .unwrap()
            .insert(request.uri);
        if watched {
            self.watch(ctx.peer.clone());
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session
            .subscriptions
            .lock()
            .unwrap()
            .remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(complete(prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name == "test_input_required_result_prompt" {
            let round = Round::new(request.input_responses, request.request_state);
            return self.input_required_prompt(&ctx, &round);
        }
        let arguments = request.arguments.unwrap_or_default();
        let argument = |name: &str| match arguments.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ErrorData::invalid_params(
                format!("missing required argument `{name}`"),
                None,
            )),
        };
        let user = |content: Value| json!({ "role": "user", "content": content });
        let (description, messages) = match request.name.as_str() {
            "test_simple_prompt" => (
                "A simple prompt without arguments",
                vec![user(text("This is a simple prompt for testing."))],
            ),
            "test_prompt_with_arguments" => {
                let (arg1, arg2) = (argument("arg1")?, argument("arg2")?);
                (
                    "A prompt with required arguments",
                    vec![user(text(format!(
                        "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
                    )))],
                )
            }
            "test_prompt_with_embedded_resource" => {
                let uri = argument("resourceUri")?;
                (
                    "A prompt that includes an embedded resource",
                    vec![
                        user(json!({
                            "type": "resource",
                            "resource": {
                                "uri": uri,
                                "mimeType": "text/plain",
                                "text": "Embedded resource content for testing."
                            }
                        })),
                        user(text("Please process the embedded resource above.")),
                    ],
                )
            }
            "test_prompt_with_image" => (
                "A prompt that includes image content",
                vec![user(image()), user(text("Please analyze the image above."))],
            ),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt `{other}`"),
                    None,
                ));
            }
        };
        Ok(complete::<rmcp::model::GetPromptResult>(json!({
            "description": description,
            "messages": messages
        }))
        .into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let reference = serde_json::to_value(&request.r#ref).unwrap_or_default();
        let argument = serde_json::to_value(&request.argument).unwrap_or_default();
        let name = argument["name"].as_str().unwrap_or_default();
        let prefix = argument["value"].as_str().unwrap_or_default();
        let candidates: &[&str] = match (reference["type"].as_str(), name) {
            (Some("ref/prompt"), _) => match (reference["name"].as_str(), name) {
                (Some("test_prompt_with_arguments"), "arg1" | "arg2") => {
                    &["hello", "help", "test", "testValue1", "testValue2", "world"]
                }
                (Some("test_prompt_with_embedded_resource"), "resourceUri") => &[
                    "test://static-text",
                    "test://static-binary",
                    "test://watched-resource",
                    "test://template/123/data",
                ],
                (Some("test_prompt_with_arguments" | "test_prompt_with_embedded_resource"), _)
                | (Some("test_simple_prompt" | "test_prompt_with_image"), _) => &[],
                (prompt, _) => {
                    return Err(ErrorData::invalid_params(
                        format!("unknown prompt {prompt:?}"),
                        None,
                    ));
                }
            },
            (Some("ref/resource"), "id")
                if reference["uri"]
                    == json!(format!("{TEMPLATE_PREFIX}{{id}}{TEMPLATE_SUFFIX}")) =>
            {
                &["1", "2", "3", "42", "123"]
            }
            (Some("ref/resource"), _) => &[],
            (kind, _) => {
                return Err(ErrorData::invalid_params(
                    format!("unknown completion reference {kind:?}"),
                    None,
                ));
            }
        };
        let values: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|c| c.starts_with(prefix))
            .collect();
        Ok(complete(json!({
            "completion": { "values": values, "total": values.len(), "hasMore": false }
        })))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self.session.level.lock().unwrap() = Some(request.level);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::builder()
            .tools_list_changed()
            .prompts_list_changed();
        let uris: Vec<&String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| Self::known_resource(uri))
            .collect();
        if !uris.is_empty() {
            accepted = accepted.resource_subscriptions(uris);
        }
        Some(accepted.build())
    }

    /// A `subscriptions/listen` stream (2026-07-28): list changes, and new revisions of the watched
    /// resource, as its filter accepts them.
    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.shared.changes.subscribe();
        let mut revision = self.shared.revision.clone();
        revision.mark_unchanged();
        let watched = subscription
            .accepted()
            .resource_subscriptions
            .as_ref()
            .is_some_and(|uris| uris.iter().any(|uri| uri == WATCHED_URI));
        let sink = subscription.sink().clone();
        loop {
            let sent = tokio::select! {
                () = subscription.cancelled() => return Ok(()),
                change = changes.recv() => match change {
                    Ok(ListChange::Tools) => sink.notify_tool_list_changed().await,
                    Ok(ListChange::Prompts) => sink.notify_prompt_list_changed().await,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                changed = revision.changed(), if watched => match changed {
                    Ok(()) => sink.notify_resource_updated(WATCHED_URI).await,
                    Err(_) => return Ok(()),
                },
            };
            match sent {
                Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => {}
                Err(_) => return Ok(()),
            }
        }
    }
}

/// Tells a request's handler how to reach its own SSE stream: rides in the request's extensions.
#[derive(Clone)]
struct CallStream {
    session: LocalSessionHandle,
    http_request_id: u64,
    /// Messages sent here go out on the stream ahead of anything the session sends later. They carry no
    /// event id: a client that resumes the stream does not get them again.
    side: mpsc::Sender<ServerSseMessage>,
    /// Notified when the client resumes the stream after the server closed it.
    resumed: Arc<Notify>,
}

/// The outgoing stream of one POST: messages of its handler's side channel first, then the session's.
struct Outbound {
    side: Option<mpsc::Receiver<ServerSseMessage>>,
    primary: mpsc::Receiver<ServerSseMessage>,
}

impl Stream for Outbound {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(side) = self.side.as_mut() {
            match side.poll_recv(cx) {
                Poll::Ready(Some(message)) => return Poll::Ready(Some(message)),
                Poll::Ready(None) => self.side = None,
                Poll::Pending => {}
            }
        }
        self.primary.poll_recv(cx)
    }
}

/// rmcp's in-memory sessions, with each request's stream handed to its handler ([`CallStream`]).
#[derive(Default)]
struct Sessions {
    local: LocalSessionManager,
    /// Streams a handler waits to see resumed, by session and HTTP request.
    waiting: Mutex<HashMap<(SessionId, u64), Weak<Notify>>>,
}

impl Sessions {
    async fn handle(&self, id: &SessionId) -> Result<LocalSessionHandle, LocalSessionManagerError> {
        self.local
            .sessions
            .read()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| LocalSessionManagerError::SessionNotFound(id.clone()))
    }
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.local.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.local.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.local.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.waiting
            .lock()
            .unwrap()
            .retain(|(session, _), _| session != id);
        self.local.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let session = self.handle(id).await?;
        let receiver = session.establish_request_wise_channel().await?;
        let http_request_id = receiver.http_request_id.unwrap_or_default();
        let (side_tx, side_rx) = mpsc::channel(16);
        let resumed = Arc::new(Notify::new());
        {
            let mut waiting = self.waiting.lock().unwrap();
            waiting.retain(|_, notify| notify.strong_count() > 0);
            waiting.insert((id.clone(), http_request_id), Arc::downgrade(&resumed));
        }
        if let ClientJsonRpcMessage::Request(request) = &mut message {
            request.request.extensions_mut().insert(CallStream {
                session: session.clone(),
                http_request_id,
                side: side_tx,
                resumed,
            });
        }
        session
            .push_message(message, receiver.http_request_id)
            .await?;
        Ok(Outbound {
            side: Some(side_rx),
            primary: receiver.inner,
        })
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.local.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let receiver = self.handle(id).await?.establish_common_channel().await?;
        Ok(Outbound {
            side: None,
            primary: receiver.inner,
        })
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let event_id: EventId = last_event_id.parse()?;
        let receiver = self.handle(id).await?.resume(event_id).await?;
        // Event ids of request streams are `<index>/<http request id>`.
        let waiter = last_event_id
            .split_once('/')
            .and_then(|(_, request)| request.parse::<u64>().ok())
            .and_then(|request| {
                self.waiting
                    .lock()
                    .unwrap()
                    .get(&(id.clone(), request))
                    .and_then(Weak::upgrade)
            });
        if let Some(waiter) = waiter {
            waiter.notify_one();
        }
        Ok(Outbound {
            side: None,
            primary: receiver.inner,
        })
    }
}

async fn serve_http<F>(addr: &str, make: F) -> anyhow::Result<()>
where
    F: Fn() -> Everything + Send + Sync + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXAMPLE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let service = StreamableHttpService::new(
        move || Ok(make()),
        Arc::new(Sessions::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    println!("listening on http://{local}/mcp");
    axum::serve(listener, router).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (revision_tx, revision) = watch::channel(1u64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_PERIOD);
        tick.tick().await;
        loop {
            tick.tick().await;
            revision_tx.send_modify(|r| *r += 1);
        }
    });
    let shared = Arc::new(Shared::new(revision));
    let make = move || Everything::new(shared.clone());
    match common::arg("--http") {
        Some(addr) => serve_http(&addr, make).await,
        None => common::serve(make).await,
    }
}
