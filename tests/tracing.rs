//! Traces end to end: a collector started inside the test receives a call's spans over OTLP (protobuf and JSON),
//! parented on the client's W3C trace context, with one child span per pipeline step; upstreams receive the
//! context (HTTP headers and `_meta`); spans carry no token or argument; spans buffered at SIGTERM are sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use prost::Message;
use serde_json::{Value, json};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i64,
    status: i64,
    attributes: serde_json::Map<String, Value>,
    links: Vec<(String, String)>,
    /// `service.name` of the resource that sent it.
    service: String,
    raw: Value,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

/// An OTLP/HTTP collector on an ephemeral port: `/v1/traces`, protobuf or JSON.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let content_types = Arc::new(Mutex::new(Vec::new()));
        let app = {
            let (spans, content_types) = (Arc::clone(&spans), Arc::clone(&content_types));
            axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                    let (spans, content_types) = (Arc::clone(&spans), Arc::clone(&content_types));
                    async move {
                        let content_type = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let request: Value = if content_type.contains("protobuf") {
                            let decoded = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body).unwrap();
                            serde_json::to_value(decoded).unwrap()
                        } else {
                            serde_json::from_slice(&body).unwrap()
                        };
                        content_types.lock().unwrap().push(content_type.clone());
                        spans.lock().unwrap().extend(parse(&request));
                        let reply: Vec<u8> = if content_type.contains("protobuf") {
                            Vec::new()
                        } else {
                            b"{}".to_vec()
                        };
                        ([("content-type", content_type)], reply)
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            spans,
            content_types,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the trace holds a span named `name`; returns the whole trace.
    async fn trace_with(&self, trace_id: &str, name: &str) -> Vec<Span> {
        eventually(15, || async {
            let trace: Vec<Span> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            trace.iter().any(|s| s.name == name).then_some(trace)
        })
        .await
    }
}

fn parse(request: &Value) -> Vec<Span> {
    let text = |v: &Value| -> Value {
        // OTLP's AnyValue: `{"stringValue": "…"}`, `{"intValue": …}`, …
        match v.as_object().and_then(|o| o.values().next()) {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(other) => Value::String(other.to_string().trim_matches('"').to_string()),
            None => Value::Null,
        }
    };
    let mut out = Vec::new();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .map(|a| text(&a["value"]))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let attributes = span["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| (a["key"].as_str().unwrap().to_string(), text(&a["value"])))
                    .collect();
                let links = span["links"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        (
                            id(&l["traceId"]).to_lowercase(),
                            id(&l["spanId"]).to_lowercase(),
                        )
                    })
                    .collect();
                out.push(Span {
                    trace_id: id(&span["traceId"]).to_lowercase(),
                    span_id: id(&span["spanId"]).to_lowercase(),
                    parent: id(&span["parentSpanId"]).to_lowercase(),
                    name: span["name"].as_str().unwrap_or_default().to_string(),
                    kind: number(&span["kind"]),
                    status: number(&span["status"]["code"]),
                    attributes,
                    links,
                    service: service.clone(),
                    raw: span.clone(),
                });
            }
        }
    }
    out
}

fn id(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn number(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

const SPAN_KIND_SERVER: i64 = 2;
const SPAN_KIND_CLIENT: i64 = 3;
const STATUS_ERROR: i64 = 2;

/// A gateway with the testbed over HTTP (`tb`) and over stdio (`ts`); spans to `otlp` when given.
fn gateway(upstream: &HttpUpstream, tracing: &str) -> Gateway {
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  unready: 200ms\nupstreams:\n{}{}{tracing}",
        http_upstream("tb", &upstream.url),
        stdio_upstream("ts", "testbed", &[]),
    );
    Gateway::start(&yaml)
}

fn otlp(collector: &Collector, protocol: &str, batch_delay: &str) -> String {
    format!(
        "tracing:\n  service_name: toolgate-under-test\n  otlp:\n    endpoint: \"{}\"\n    protocol: {protocol}\n    batch_delay: {batch_delay}\n",
        collector.url
    )
}

/// A raw MCP session that can put headers on each request.
struct Raw {
    url: String,
    token: String,
    session: String,
    http: reqwest::Client,
}

impl Raw {
    async fn open(gateway: &Gateway) -> Self {
        let token = tester_token();
        let session = raw_session(&gateway.url, &token).await;
        let raw = Self {
            url: gateway.url.clone(),
            token,
            session,
            http: reqwest::Client::new(),
        };
        raw.post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            None,
        )
        .await;
        raw
    }

    async fn post(&self, body: Value, traceparent: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("mcp-session-id", &self.session)
            .json(&body);
        if let Some(traceparent) = traceparent {
            request = request
                .header("traceparent", traceparent)
                .header("tracestate", "client=1");
        }
        let response = request.send().await.unwrap();
        let text = response.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// `tools/call` without arguments under the client's trace `traceparent`.
    async fn traced(&self, id: &str, tool: &str, traceparent: &str) -> Value {
        self.call(id, tool, json!({}), Some(traceparent), None)
            .await
    }

    /// `tools/call`; `meta` goes into `params._meta`.
    async fn call(
        &self,
        id: &str,
        tool: &str,
        arguments: Value,
        traceparent: Option<&str>,
        meta: Option<Value>,
    ) -> Value {
        let mut params = json!({"name": tool, "arguments": arguments});
        if let Some(meta) = meta {
            params["_meta"] = meta;
        }
        self.post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
            traceparent,
        )
        .await
    }
}

/// What `trace_context` saw upstream.
fn seen(answer: &Value) -> &Value {
    &answer["result"]["structuredContent"]
}

fn traceparent(trace: &str, span: &str, sampled: bool) -> String {
    format!("00-{trace}-{span}-{}", if sampled { "01" } else { "00" })
}

/// `(trace id, parent id, flags)` of a `traceparent`.
fn fields(traceparent: &str) -> (String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

#[tokio::test]
async fn a_calls_spans_reach_an_otlp_collector_under_the_clients_trace() {
    let collector = Collector::start().await;
    let upstream = HttpUpstream::start("testbed", &[]);
    let gateway = gateway(&upstream, &otlp(&collector, "http/protobuf", "100ms"));
    let raw = Raw::open(&gateway).await;

    // An allowed call to an HTTP upstream, under the client's trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let answer = raw
        .traced(
            "traced-1",
            "tb__trace_context",
            &traceparent(trace, client_span, true),
        )
        .await;
    let saw = seen(&answer);
    let header = saw["headers"]["traceparent"]
        .as_str()
        .expect("traceparent header upstream");
    let (upstream_trace, upstream_parent, flags) = fields(header);
    assert_eq!(upstream_trace, trace, "{answer}");
    assert_ne!(
        upstream_parent, client_span,
        "the gateway's own span is the upstream's parent"
    );
    assert_eq!(flags, "01");
    assert_eq!(saw["headers"]["tracestate"], "client=1", "{answer}");
    // The same context rides in `_meta` (SEP-414).
    assert_eq!(
        saw["meta"]["traceparent"].as_str(),
        Some(header),
        "{answer}"
    );

    let spans = collector
        .trace_with(trace, "tools/call tb__trace_context")
        .await;
    let request = spans
        .iter()
        .find(|s| s.name == "tools/call tb__trace_context")
        .unwrap();
    assert_eq!(request.parent, client_span, "{:?}", request.raw);
    assert_eq!(request.kind, SPAN_KIND_SERVER);
    assert_eq!(request.attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(request.attr("gen_ai.tool.name"), Some("tb__trace_context"));
    assert_eq!(request.attr("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(request.attr("jsonrpc.request.id"), Some("traced-1"));
    assert_eq!(request.attr("mcp.session.id"), Some(raw.session.as_str()));
    assert_eq!(request.attr("toolgate.decision"), Some("allow"));
    assert_eq!(request.attr("toolgate.outcome"), Some("allowed"));
    assert_eq!(request.attr("toolgate.upstream"), Some("tb"));
    assert_ne!(request.status, STATUS_ERROR);
    // One child span per pipeline step, in the request's trace.
    let mut steps: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent == request.span_id)
        .map(|s| s.name.as_str())
        .collect();
    steps.sort_unstable();
    assert_eq!(
        steps,
        ["authenticate", "authorize", "record", "redact", "upstream"],
        "{spans:#?}"
    );
    let upstream_span = spans.iter().find(|s| s.name == "upstream").unwrap();
    assert_eq!(
        upstream_span.span_id, upstream_parent,
        "the upstream was sent its step's span"
    );
    assert_eq!(upstream_span.kind, SPAN_KIND_CLIENT);
    assert_eq!(upstream_span.attr("toolgate.upstream"), Some("tb"));
    assert_eq!(
        upstream_span.attr("gen_ai.tool.name"),
        Some("trace_context")
    );
    // The span joins its decision record.
    let record_id = request.attr("toolgate.record_id").unwrap().to_string();
    let records = gateway.admin_json("/records?limit=100").await;
    let record = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == record_id.as_str())
        .unwrap_or_else(|| panic!("no record {record_id}: {records}"));
    assert_eq!(record["request_id"], "traced-1");
    assert_eq!(
        request.attr("toolgate.policy_version"),
        record["policy_version"].as_str()
    );

    // A stdio upstream gets the context in `_meta`.
    let answer = raw
        .traced(
            "traced-2",
            "ts__trace_context",
            &traceparent(trace, client_span, true),
        )
        .await;
    let meta = seen(&answer)["meta"]["traceparent"].as_str().unwrap();
    assert_eq!(fields(meta).0, trace, "{answer}");
    assert!(seen(&answer)["headers"]["traceparent"].is_null());

    // A refused call: named after the method only (a made-up name mints no span name), marked as an error with
    // its reason id, and nothing went upstream.
    let refused_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let secret = "argument-value-never-in-a-span";
    let answer = raw
        .call(
            "refused-1",
            "tb__no_such_tool",
            json!({"text": secret}),
            Some(&traceparent(refused_trace, client_span, true)),
            None,
        )
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let spans = collector.trace_with(refused_trace, "tools/call").await;
    let request = spans.iter().find(|s| s.name == "tools/call").unwrap();
    assert_eq!(request.status, STATUS_ERROR, "{:?}", request.raw);
    assert_eq!(request.attr("error.type"), Some("unknown_tool"));
    assert_eq!(request.attr("toolgate.decision"), Some("deny"));
    assert_eq!(request.attr("rpc.response.status_code"), Some("-32602"));
    assert_eq!(
        request.attr("gen_ai.tool.name"),
        None,
        "a made-up name is no attribute"
    );
    assert!(spans.iter().all(|s| s.name != "upstream"), "{spans:#?}");

    // A client that did not sample its trace: nothing of it is exported, yet the upstream still gets the trace
    // with the client's decision.
    let unsampled = "6bf92f3577b34da6a3ce929d0e0e4738";
    let answer = raw
        .traced(
            "unsampled-1",
            "tb__trace_context",
            &traceparent(unsampled, client_span, false),
        )
        .await;
    let (t, _, flags) = fields(seen(&answer)["headers"]["traceparent"].as_str().unwrap());
    assert_eq!((t.as_str(), flags.as_str()), (unsampled, "00"));

    // A refused token: the request's span says why, and carries no token.
    let bad_token = "garbage-bearer-7f3a";
    let refused_auth = "7bf92f3577b34da6a3ce929d0e0e4739";
    let status = reqwest::Client::new()
        .post(&gateway.url)
        .bearer_auth(bad_token)
        .header("content-type", "application/json")
        .header("traceparent", traceparent(refused_auth, client_span, true))
        .body(INITIALIZE)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // The request's own span ends after its `authenticate` step and may reach the collector in a later batch:
    // wait for both.
    let spans = eventually(15, || async {
        let spans = collector.trace_with(refused_auth, "authenticate").await;
        spans
            .iter()
            .any(|s| s.name == "mcp.request" || s.parent == client_span)
            .then_some(spans)
    })
    .await;
    let request = spans
        .iter()
        .find(|s| s.name == "mcp.request" || s.parent == client_span)
        .unwrap();
    assert_eq!(request.status, STATUS_ERROR, "{spans:#?}");
    assert_eq!(
        request.attr("error.type"),
        Some("token_malformed"),
        "{spans:#?}"
    );
    assert_eq!(request.attr("toolgate.outcome"), Some("token_malformed"));

    // Once the calls above are all in, nothing of the unsampled trace came, and no span holds a token or an
    // argument.
    collector
        .trace_with(trace, "tools/call ts__trace_context")
        .await;
    let everything = collector.spans();
    assert!(
        everything.iter().all(|s| s.trace_id != unsampled),
        "{everything:#?}"
    );
    // Spans only: log events (which may name people or token ids) are never exported.
    assert!(
        everything
            .iter()
            .all(|s| s.raw["events"].as_array().is_none_or(Vec::is_empty)),
        "{everything:#?}"
    );
    let dump = format!(
        "{:?}",
        everything.iter().map(|s| &s.raw).collect::<Vec<_>>()
    );
    for forbidden in [raw.token.as_str(), bad_token, secret] {
        assert!(!dump.contains(forbidden), "a span holds `{forbidden}`");
    }
    assert!(
        collector
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|c| c == "application/x-protobuf"),
    );
    assert!(
        everything
            .iter()
            .all(|s| s.service == "toolgate-under-test")
    );
}

#[tokio::test]
async fn spans_go_as_json_and_those_buffered_at_sigterm_are_sent() {
    let collector = Collector::start().await;
    let upstream = HttpUpstream::start("testbed", &[]);
    // Batches would wait a minute: only the shutdown sends them.
    let mut gateway = gateway(&upstream, &otlp(&collector, "http/json", "60s"));
    let raw = Raw::open(&gateway).await;
    let trace = "8bf92f3577b34da6a3ce929d0e0e4730";
    // The client's context in `_meta` only (SEP-414): over HTTP the headers set the parent, so with none the
    // request starts its own trace and links the client's; upstreams get toolgate's trace.
    let answer = raw
        .call(
            "json-1",
            "tb__echo",
            json!({"text": "hello"}),
            None,
            Some(json!({"traceparent": traceparent(trace, "00f067aa0ba902b7", true)})),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "hello", "{answer}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(collector.spans().is_empty(), "sent before the batch delay");
    gateway.signal("TERM");
    let status = eventually(15, || {
        let exited = gateway.proc.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(status.success(), "{status:?}: {}", gateway.logs());
    let spans = collector.spans();
    let request = spans
        .iter()
        .find(|s| s.name == "tools/call tb__echo")
        .unwrap_or_else(|| panic!("no request span: {spans:#?}"));
    assert!(request.parent.is_empty(), "{:?}", request.raw);
    assert_eq!(
        request.links,
        [(trace.to_string(), "00f067aa0ba902b7".to_string())],
        "{:?}",
        request.raw
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name == "upstream" && s.trace_id == request.trace_id)
    );
    assert!(
        collector
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|c| c == "application/json")
    );
    assert!(spans.iter().all(|s| s.service == "toolgate-under-test"));
}

#[tokio::test]
async fn without_an_exporter_the_clients_context_passes_through_to_upstreams() {
    let upstream = HttpUpstream::start("testbed", &[]);
    let gateway = gateway(&upstream, "");
    let raw = Raw::open(&gateway).await;
    let client = traceparent("9bf92f3577b34da6a3ce929d0e0e4731", "00f067aa0ba902b7", true);
    // From the headers, to the HTTP upstream's headers and `_meta`, unchanged.
    let answer = raw
        .call(
            "pass-1",
            "tb__trace_context",
            json!({}),
            Some(&client),
            None,
        )
        .await;
    assert_eq!(
        seen(&answer)["headers"]["traceparent"],
        client.as_str(),
        "{answer}"
    );
    assert_eq!(
        seen(&answer)["headers"]["tracestate"],
        "client=1",
        "{answer}"
    );
    assert_eq!(
        seen(&answer)["meta"]["traceparent"],
        client.as_str(),
        "{answer}"
    );
    // From `_meta` alone, to a stdio upstream's `_meta`.
    let answer = raw
        .call(
            "pass-2",
            "ts__trace_context",
            json!({}),
            None,
            Some(json!({"traceparent": client})),
        )
        .await;
    assert_eq!(
        seen(&answer)["meta"]["traceparent"],
        client.as_str(),
        "{answer}"
    );
    // No context, none invented.
    let answer = raw
        .call("pass-3", "tb__trace_context", json!({}), None, None)
        .await;
    assert!(
        seen(&answer)["headers"]["traceparent"].is_null(),
        "{answer}"
    );
    assert!(seen(&answer)["meta"]["traceparent"].is_null(), "{answer}");
    // A malformed header is ignored, not passed on.
    let answer = raw
        .call(
            "pass-4",
            "tb__trace_context",
            json!({}),
            Some("00-zz-yy-01"),
            None,
        )
        .await;
    assert!(
        seen(&answer)["headers"]["traceparent"].is_null(),
        "{answer}"
    );
}

#[tokio::test]
async fn traces_started_here_follow_the_sample_ratio_and_the_clients_choice_wins() {
    let collector = Collector::start().await;
    let upstream = HttpUpstream::start("testbed", &[]);
    let tracing = otlp(&collector, "http/protobuf", "100ms")
        .replace("tracing:\n", "tracing:\n  sample_ratio: 0.0\n");
    let gateway = gateway(&upstream, &tracing);
    let raw = Raw::open(&gateway).await;
    // No client trace: a trace of toolgate's own, sampled at 0%.
    let answer = raw
        .call("own-1", "tb__echo", json!({"text": "a"}), None, None)
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "a", "{answer}");
    // The client sampled its trace: exported whatever the ratio.
    let trace = "abf92f3577b34da6a3ce929d0e0e4732";
    raw.traced(
        "sampled-1",
        "tb__trace_context",
        &traceparent(trace, "00f067aa0ba902b7", true),
    )
    .await;
    collector
        .trace_with(trace, "tools/call tb__trace_context")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let spans = collector.spans();
    assert!(spans.iter().all(|s| s.trace_id == trace), "{spans:#?}");
}

#[tokio::test]
async fn over_stdio_the_messages_meta_is_the_parent() {
    use rmcp::ServiceExt;
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = stdio_mode_config(
        dir.path(),
        &stdio_upstream("testbed", "testbed", &[]),
        &otlp(&collector, "http/protobuf", "100ms"),
    );
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    command
        .args(["serve", "--dev", "--stdio", "--config"])
        .arg(&config)
        .env("TOOLGATE_TOKEN", tester_token());
    let client = ().serve(rmcp::transport::TokioChildProcess::new(command).unwrap()).await.unwrap();
    let trace = "cbf92f3577b34da6a3ce929d0e0e4733";
    let client_span = "10f067aa0ba902b7";
    let result = eventually(20, || async {
        let mut params = rmcp::model::CallToolRequestParams::new("testbed__trace_context");
        let mut meta = rmcp::model::RequestMetaObject::new();
        meta.0
            .set_traceparent(traceparent(trace, client_span, true));
        params.meta = Some(meta);
        client.peer().call_tool(params).await.ok()
    })
    .await;
    let seen = result.structured_content.unwrap();
    let (upstream_trace, upstream_parent, _) =
        fields(seen["meta"]["traceparent"].as_str().unwrap());
    assert_eq!(upstream_trace, trace, "{seen}");
    let spans = collector
        .trace_with(trace, "tools/call testbed__trace_context")
        .await;
    let request = spans
        .iter()
        .find(|s| s.name == "tools/call testbed__trace_context")
        .unwrap();
    assert_eq!(request.parent, client_span, "{:?}", request.raw);
    assert_eq!(request.attr("network.transport"), Some("pipe"));
    let upstream = spans.iter().find(|s| s.name == "upstream").unwrap();
    assert_eq!(upstream.parent, request.span_id);
    assert_eq!(upstream.span_id, upstream_parent);
    // Authentication ran inside the request's span (earlier attempts, made before the upstream was ready, have
    // their own).
    assert!(
        spans
            .iter()
            .any(|s| s.name == "authenticate" && s.parent == request.span_id),
        "{spans:#?}"
    );
}
