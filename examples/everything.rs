//! Toolgate's conformance reference upstream: an MCP server with the behaviours the official conformance
//! suite (`@modelcontextprotocol/conformance`, server mode) expects of its reference "everything" server,
//! up to protocol revision 2025-11-25. Run the suite against it directly to check the suite and this
//! server, then against toolgate in front of it to see what the gateway keeps and what it loses
//! (`scripts/conformance`).
//!
//! - Tools: `test_simple_text`, `test_image_content`, `test_audio_content`, `test_embedded_resource`,
//!   `test_multiple_content_types`, `test_tool_with_logging` (three log messages on the call's own stream),
//!   `test_tool_with_progress`, `test_error_handling` (`isError: true`), `test_reconnection` (over HTTP the
//!   server closes the call's SSE stream mid-call and answers once the client resumes with `Last-Event-ID`),
//!   `test_sampling`, `test_elicitation`, `test_elicitation_sep1034_defaults`,
//!   `test_elicitation_sep1330_enums` and `json_schema_2020_12_tool` (a 2020-12 `inputSchema` with `$defs`,
//!   `$anchor`, `allOf`/`anyOf`, `if`/`then`/`else` and `additionalProperties: false`).
//! - Resources: `test://static-text`, `test://static-binary`, `test://watched-resource` (subscribable; a
//!   new revision every three seconds, announced with `notifications/resources/updated` to subscribers) and
//!   the template `test://template/{id}/data`.
//! - Prompts: `test_simple_prompt`, `test_prompt_with_arguments`, `test_prompt_with_embedded_resource`,
//!   `test_prompt_with_image`.
//! - `completion/complete` for the prompt arguments and the template's `id`; `logging/setLevel` filters the
//!   log messages of later calls.
//!
//! Stdio by default; `--http ADDR` serves streamable HTTP (sessions, resumable SSE streams, loopback `Host`
//! only) and prints `listening on http://ADDR/mcp`.
// Logging, sampling and resource subscriptions are 2025-11-25 features that later revisions deprecate.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod common;

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage, ClientResult,
    CompleteRequestParams, CompleteResult, GetExtensions, GetPromptRequestParams,
    GetPromptResponse, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, LoggingLevel, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, Request, ServerConfig, ServerJsonRpcMessage, ServerRequest,
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{
    EventId, LocalSessionHandle, LocalSessionManager, LocalSessionManagerError, SessionTransport,
};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

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

fn text(text: impl Into<String>) -> Value {
    json!({ "type": "text", "text": text.into() })
}

fn image() -> Value {
    json!({ "type": "image", "data": PNG_BASE64, "mimeType": "image/png" })
}

fn tool_result(content: Vec<Value>) -> CallToolResponse {
    from_json::<CallToolResult>(json!({ "content": content })).into()
}

fn tool_error(message: impl Into<String>) -> CallToolResponse {
    from_json::<CallToolResult>(json!({ "content": [text(message)], "isError": true })).into()
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
            "name": "json_schema_2020_12_tool",
            "description": "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613, SEP-2106)",
            "inputSchema": json_schema_2020_12()
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

#[derive(Clone)]
struct Everything {
    session: Arc<Session>,
    /// Revision of the watched resource, shared by all sessions.
    revision: watch::Receiver<u64>,
}

impl Everything {
    fn new(revision: watch::Receiver<u64>) -> Self {
        Self {
            session: Arc::default(),
            revision,
        }
    }

    fn logs(&self, level: LoggingLevel) -> bool {
        self.session
            .level
            .lock()
            .unwrap()
            .is_none_or(|min| level_rank(level) >= level_rank(min))
    }

    /// Sends a log message tied to the request of `ctx`: on its own response stream over HTTP, as an
    /// ordinary notification otherwise.
    async fn log(&self, ctx: &RequestContext<RoleServer>, level: LoggingLevel, data: &str) {
        if !self.logs(level) {
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

    /// Asks the client to fill in `requested_schema`; answers `<summary>: action=…, content=…`.
    async fn elicitation(
        ctx: &RequestContext<RoleServer>,
        message: &str,
        requested_schema: Value,
        summary: &str,
    ) -> CallToolResponse {
        match Self::elicit(ctx, message, requested_schema).await {
            Ok(result) => {
                let action = result["action"].as_str().unwrap_or("unknown");
                let content = result.get("content").cloned().unwrap_or_else(|| json!({}));
                tool_result(vec![text(format!(
                    "{summary}: action={action}, content={content}"
                ))])
            }
            Err(e) => tool_error(format!("elicitation failed: {e}")),
        }
    }

    async fn sampling(&self, ctx: &RequestContext<RoleServer>, prompt: &str) -> CallToolResponse {
        if !Self::client_supports(ctx, "sampling") {
            return tool_error("the client does not support sampling");
        }
        let params = from_json(json!({
            "messages": [{ "role": "user", "content": text(prompt) }],
            "maxTokens": 100
        }));
        match ctx.peer.create_message(params).await {
            Ok(result) => {
                let result = serde_json::to_value(result).unwrap_or_default();
                // `content` is one block or, since 2025-11-25, possibly several.
                let answer = match &result["content"] {
                    Value::Array(blocks) => blocks
                        .iter()
                        .filter_map(|b| b["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(""),
                    block => block["text"].as_str().unwrap_or_default().to_string(),
                };
                tool_result(vec![text(format!("LLM response: {answer}"))])
            }
            Err(e) => tool_error(format!("sampling failed: {e}")),
        }
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
        let mut revision = self.revision.clone();
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
            "tools": {},
            "resources": { "subscribe": true },
            "prompts": {},
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
        Ok(from_json(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
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
                Ok(prompt) => self.sampling(&ctx, &prompt).await,
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
                    Self::elicitation(&ctx, &message, schema, "User response").await
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
                Self::elicitation(&ctx, message, schema, "Elicitation completed").await
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
                Self::elicitation(&ctx, message, schema, "Elicitation completed").await
            }
            "json_schema_2020_12_tool" => Self::json_schema_tool(&arguments),
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
        Ok(from_json(resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(from_json(resource_templates()))
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
                "text": format!("Watched resource content, revision {}", *self.revision.borrow())
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
        Ok(from_json::<rmcp::model::ReadResourceResult>(json!({ "contents": [contents] })).into())
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
        Ok(from_json(prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
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
        Ok(from_json::<rmcp::model::GetPromptResult>(json!({
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
        Ok(from_json(json!({
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
    let make = move || Everything::new(revision.clone());
    match common::arg("--http") {
        Some(addr) => serve_http(&addr, make).await,
        None => common::serve(make).await,
    }
}
