//! Example upstream for exercising a gateway: echo, slow calls with progress and log notifications, a crash,
//! oversized answers, mixed content, tool errors, a request towards the client, and a tool list that changes.
//! Over `--http` it also answers calls of the tool `garbage` with malformed JSON. `trace_context` reports the
//! trace context a call arrived with. `strict` (no unknown arguments) and `legacy` (a draft-07 `inputSchema`)
//! count their calls in `counters`; with `--broken-schema` the list also has `broken`, whose `inputSchema`
//! references a remote schema.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolResult, ContentBlock, ListToolsResult, LoggingLevel, LoggingMessageNotificationParam,
    PaginatedRequestParams, ProgressNotificationParam, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SlowArgs {
    /// Total time to take, in milliseconds.
    ms: u64,
    /// Progress and log notifications to send along the way.
    #[serde(default)]
    steps: u32,
    /// Text put into every log message, to tell callers apart.
    #[serde(default)]
    tag: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct BigArgs {
    bytes: usize,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ReplyArgs {
    /// The result to answer with, as JSON (a `CallToolResult`).
    result: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct FlagArgs {
    on: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StrictArgs {
    text: String,
    times: u32,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct LegacyArgs {
    pair: (i64, String),
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Counters {
    cancelled: u64,
    completed_slow: u64,
    /// Calls of `strict` and `legacy` that reached this server.
    checked_calls: u64,
}

/// `legacy`'s input schema, in draft-07: `pair` is a tuple of an integer and a string (draft-07's array `items`).
fn legacy_schema() -> Arc<rmcp::model::JsonObject> {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "pair": {
                "type": "array",
                "items": [{"type": "integer"}, {"$ref": "#/definitions/label"}],
                "additionalItems": false
            }
        },
        "required": ["pair"],
        "definitions": {"label": {"type": "string"}}
    });
    match schema {
        serde_json::Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

#[derive(Clone)]
struct Testbed {
    tool_router: ToolRouter<Self>,
    duplicate: Arc<AtomicBool>,
    /// A replacement description for `echo`, to change a tool's definition at run time.
    echo_description: Arc<std::sync::Mutex<Option<String>>>,
    cancelled: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
    checked: Arc<AtomicU64>,
}

#[tool_router]
impl Testbed {
    #[tool(description = "Echo the text back.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    #[tool(description = "Take `ms` milliseconds, sending `steps` progress and log notifications.")]
    async fn slow(
        &self,
        Parameters(args): Parameters<SlowArgs>,
        context: RequestContext<RoleServer>,
    ) -> String {
        let steps = args.steps.max(1);
        let pause = Duration::from_millis(args.ms / u64::from(steps));
        let token = context.meta.get_progress_token();
        for step in 1..=steps {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = context.ct.cancelled() => {
                    self.cancelled.fetch_add(1, Ordering::SeqCst);
                    return "cancelled".into();
                }
            }
            if args.steps == 0 {
                continue;
            }
            if let Some(token) = &token {
                let _ = context
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(step))
                            .with_total(f64::from(steps)),
                    )
                    .await;
            }
            let _ = context
                .peer
                .notify_logging_message(LoggingMessageNotificationParam::new(
                    LoggingLevel::Info,
                    json!({"tag": args.tag, "step": step}),
                ))
                .await;
        }
        self.completed.fetch_add(1, Ordering::SeqCst);
        format!("done after {steps} steps")
    }

    #[tool(description = "How many slow calls were cancelled or completed.")]
    async fn counters(&self) -> Json<Counters> {
        Json(Counters {
            cancelled: self.cancelled.load(Ordering::SeqCst),
            completed_slow: self.completed.load(Ordering::SeqCst),
            checked_calls: self.checked.load(Ordering::SeqCst),
        })
    }

    #[tool(description = "Repeat `text` `times` times; takes no other argument.")]
    async fn strict(&self, Parameters(args): Parameters<StrictArgs>) -> String {
        self.checked.fetch_add(1, Ordering::SeqCst);
        args.text.repeat(args.times as usize)
    }

    #[tool(
        description = "Describe a pair (a draft-07 input schema).",
        input_schema = legacy_schema()
    )]
    async fn legacy(&self, Parameters(args): Parameters<LegacyArgs>) -> String {
        self.checked.fetch_add(1, Ordering::SeqCst);
        format!("{} is {}", args.pair.0, args.pair.1)
    }

    #[tool(description = "Exit the server process in the middle of the call.")]
    async fn crash(&self) -> String {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::process::exit(3)
    }

    #[tool(description = "Answer with `bytes` bytes of text.")]
    async fn big(&self, Parameters(args): Parameters<BigArgs>) -> String {
        "x".repeat(args.bytes)
    }

    #[tool(
        description = "Answer with text, an image, an embedded resource and structured content."
    )]
    async fn mixed(&self) -> CallToolResult {
        let mut result = CallToolResult::success(vec![
            ContentBlock::text("hello"),
            ContentBlock::image("iVBORw0KGgo=", "image/png"),
            ContentBlock::embedded_text("file:///notes.txt", "embedded notes"),
        ]);
        result.structured_content = Some(json!({"answer": 42, "items": ["a", "b"]}));
        result
    }

    #[tool(description = "Answer with exactly the result given (JSON of a CallToolResult).")]
    async fn reply(
        &self,
        Parameters(args): Parameters<ReplyArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        serde_json::from_str(&args.result)
            .map_err(|e| ErrorData::invalid_params(format!("not a CallToolResult: {e}"), None))
    }

    #[tool(description = "Fail as a tool (isError).")]
    async fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("the tool failed on purpose")])
    }

    #[tool(description = "Ask the client to sample a message and report what happened.")]
    async fn sample(&self, context: RequestContext<RoleServer>) -> String {
        let params = serde_json::from_value(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
            "maxTokens": 10
        }))
        .unwrap();
        match context.peer.create_message(params).await {
            Ok(_) => "sampling succeeded".into(),
            Err(e) => format!("sampling refused: {e}"),
        }
    }

    #[tool(
        description = "Make the tool list report `echo` twice (or stop), and announce the change."
    )]
    async fn set_duplicate(
        &self,
        Parameters(args): Parameters<FlagArgs>,
        context: RequestContext<RoleServer>,
    ) -> String {
        self.duplicate.store(args.on, Ordering::SeqCst);
        let _ = context.peer.notify_tool_list_changed().await;
        format!("duplicate = {}", args.on)
    }

    #[tool(
        description = "Change the description of `echo` (empty restores it), and announce the change."
    )]
    async fn set_echo_description(
        &self,
        Parameters(args): Parameters<EchoArgs>,
        context: RequestContext<RoleServer>,
    ) -> String {
        if let Ok(mut d) = self.echo_description.lock() {
            *d = (!args.text.is_empty()).then(|| args.text.clone());
        }
        let _ = context.peer.notify_tool_list_changed().await;
        format!("echo description = {:?}", args.text)
    }

    #[tool(
        description = "Report the W3C trace context this call arrived with: in the HTTP headers (over HTTP) and in `_meta`."
    )]
    async fn trace_context(&self, context: RequestContext<RoleServer>) -> Json<serde_json::Value> {
        let header = |name: &str| {
            context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Json(json!({
            "headers": {"traceparent": header("traceparent"), "tracestate": header("tracestate")},
            "meta": {"traceparent": context.meta.get_traceparent(), "tracestate": context.meta.get_tracestate()},
        }))
    }

    #[tool(description = "Over HTTP, answered with malformed JSON.")]
    async fn garbage(&self) -> String {
        "over stdio this is a normal answer".into()
    }
}

#[tool_handler]
impl ServerHandler for Testbed {
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools: Vec<Tool> = self.tool_router.list_all();
        if let Ok(d) = self.echo_description.lock()
            && let Some(text) = d.as_ref()
            && let Some(echo) = tools.iter_mut().find(|t| t.name == "echo")
        {
            echo.description = Some(text.clone().into());
        }
        if self.duplicate.load(Ordering::SeqCst)
            && let Some(echo) = tools.iter().find(|t| t.name == "echo").cloned()
        {
            tools.push(echo);
        }
        if std::env::args().any(|a| a == "--broken-schema")
            && let Some(mut broken) = tools.iter().find(|t| t.name == "echo").cloned()
        {
            broken.name = "broken".into();
            broken.input_schema = Arc::new(
                json!({"type": "object", "properties": {"text": {"$ref": "https://schemas.example.invalid/text.json"}}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            tools.push(broken);
        }
        if std::env::var("TESTBED_BAD_NAME").is_ok()
            && let Some(mut bad) = tools.first().cloned()
        {
            bad.name = "bad name!".into();
            tools.push(bad);
        }
        Ok(ListToolsResult::with_all_items(tools))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duplicate = Arc::new(AtomicBool::new(std::env::var("TESTBED_DUPLICATE").is_ok()));
    let cancelled = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let checked = Arc::new(AtomicU64::new(0));
    let echo_description = Arc::new(std::sync::Mutex::new(None));
    let make = move || Testbed {
        tool_router: Testbed::tool_router(),
        duplicate: duplicate.clone(),
        echo_description: echo_description.clone(),
        cancelled: cancelled.clone(),
        completed: completed.clone(),
        checked: checked.clone(),
    };
    if let Some(addr) = common::arg("--http") {
        return serve_http_with_garbage(&addr, make).await;
    }
    common::serve(make).await
}

/// Streamable HTTP where a call of `garbage` is answered with malformed JSON.
async fn serve_http_with_garbage(
    addr: &str,
    make: impl Fn() -> Testbed + Send + Sync + 'static,
) -> anyhow::Result<()> {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};

    async fn garbage(request: Request, next: Next) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("\"tools/call\"") && text.contains("\"garbage\"") {
            return (
                [(http::header::CONTENT_TYPE, "application/json")],
                "{\"jsonrpc\": \"2.0\", \"id\": ",
            )
                .into_response();
        }
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    }

    common::serve_http(addr, make, |router| {
        router.layer(axum::middleware::from_fn(garbage))
    })
    .await
}
