//! Logs and traces: the `tracing` subscriber (log lines, pretty or JSON; spans exported over OTLP when
//! configured), the request span and its attributes, and W3C trace context taken from clients and carried to
//! upstreams.
//!
//! Every MCP request gets one span (`mcp.request`, named `{method}` or `tools/call {tool}` in the trace) with a
//! child span per pipeline step: `authenticate`, `authorize`, `upstream`, `redact`, `record`. Attribute names
//! follow OpenTelemetry's conventions for MCP where they exist (`mcp.method.name`, `gen_ai.tool.name`, …);
//! `toolgate.record_id` joins a span to its decision record. No span carries a token, an argument or a result.

use std::future::Future;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use rmcp::model::JsonObject;
use tracing::Span;
use tracing_subscriber::filter::{EnvFilter, FilterExt, FilterFn};
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, OtlpConfig, OtlpProtocol, TracingConfig};

/// Holds the span exporter, when there is one; [`Telemetry::shutdown`] sends the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter. Blocks: call it outside the async runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: spans not all exported at shutdown: {e}");
        }
    }
}

/// Installs the global subscriber: log lines to stderr at the level `TOOLGATE_LOG` names (`info`), and, when
/// `tracing.otlp` is set, toolgate's spans (not its log events) to the collector.
/// Call it outside the async runtime: the exporter runs its own thread.
pub fn init(format: LogFormat, tracing: &TracingConfig) -> Result<Telemetry, TelemetryError> {
    init_text(format, tracing).map_err(TelemetryError)
}

/// Logs or spans cannot be set up (the exporter, or the global subscriber).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TelemetryError(String);

fn init_text(format: LogFormat, tracing: &TracingConfig) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_env("TOOLGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = tracing
        .otlp
        .as_ref()
        .map(|otlp| {
            let exporter = exporter(otlp)?;
            Ok::<_, String>(provider(exporter, otlp, tracing))
        })
        .transpose()?;
    subscriber(format, filter, std::io::stderr, provider.as_ref())
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

/// The subscriber `init` installs: log lines to `writer` (stdout belongs to the protocol in stdio mode), spans
/// to `provider` when there is one.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    provider: Option<&SdkTracerProvider>,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Log lines are events; spans go only to the exporter (formatting their fields for lines that never show
    // them cost ~17 µs per call).
    let filter = filter.and(FilterFn::new(|meta| !meta.is_span()));
    let logs = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let spans = provider.map(|provider| {
        // Spans only: events (log lines) may name people and token ids, which stay in the logs and records.
        let ours = FilterFn::new(|meta| meta.is_span() && meta.target().starts_with("toolgate"));
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("toolgate"))
            .with_location(false)
            .with_target(false)
            .with_level(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(ours)
    });
    tracing_subscriber::registry().with(logs).with(spans)
}

fn exporter(otlp: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(match otlp.protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
            OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        })
        .with_endpoint(otlp.traces_url())
        .with_timeout(otlp.timeout)
        .with_headers(otlp.headers.clone().into_iter().collect())
        .build()
        .map_err(|e| format!("cannot start the OTLP exporter: {e}"))
}

/// Spans in batches to `exporter`, sampled parent-first. A full queue drops spans; a request never waits for
/// the exporter.
pub fn provider(
    exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
    otlp: &OtlpConfig,
    tracing: &TracingConfig,
) -> SdkTracerProvider {
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(otlp.batch_delay)
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(tracing.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            tracing.sample_ratio,
        ))))
        .with_resource(resource)
        .build()
}

/// The span of one MCP request. Its parent is set by [`adopt`] before anything runs inside it.
pub fn request_span(transport: &'static str) -> Span {
    use tracing::field::Empty;
    tracing::info_span!(
        target: "toolgate::request",
        "mcp.request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        mcp.method.name = Empty,
        mcp.session.id = Empty,
        mcp.protocol.version = Empty,
        jsonrpc.request.id = Empty,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        network.transport = transport,
        error.type = Empty,
        rpc.response.status_code = Empty,
        toolgate.upstream = Empty,
        toolgate.decision = Empty,
        toolgate.outcome = Empty,
        toolgate.record_id = Empty,
        toolgate.policy_version = Empty,
    )
}

/// Makes `parent` (the client's trace context) the parent of `span`; without an exporter this does nothing,
/// and [`with_remote`] still carries the client's context to upstreams.
pub fn adopt(span: &Span, parent: &Context) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent.clone());
    }
}

/// Links `span` to a second trace context the client sent (a `_meta` one beside the HTTP headers' one).
pub fn link(span: &Span, other: &Context, parent: &Context) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let (other, parent) = (other.span(), parent.span());
    let (other, parent) = (other.span_context(), parent.span_context());
    let same = other.trace_id() == parent.trace_id() && other.span_id() == parent.span_id();
    if other.is_valid() && !same {
        span.add_link(other.clone());
    }
}

/// Runs `work` with `remote` as the ambient trace context: what an upstream is sent when no span of toolgate's
/// is exported (the client's context passes through unchanged).
pub fn with_remote<F: Future>(work: F, remote: Context) -> opentelemetry::context::WithContext<F> {
    opentelemetry::context::FutureExt::with_context(work, remote)
}

/// Runs `work` inside `span`, with `remote` as the ambient trace context beneath it. The order matters: entering
/// the span puts its own context (when exported) on top of `remote`, so step spans and upstreams get the span as
/// parent; without an exporter they see `remote`.
pub fn within<F: Future>(
    work: F,
    span: Span,
    remote: Context,
) -> opentelemetry::context::WithContext<tracing::instrument::Instrumented<F>> {
    use tracing::Instrument;
    with_remote(work.instrument(span), remote)
}

/// The ambient trace context when there is one (a span of toolgate's, or the client's headers), else
/// `fallback`.
pub fn ambient_or(fallback: Context) -> Context {
    let cx = Context::current();
    if cx.span().span_context().is_valid() {
        cx
    } else {
        fallback
    }
}

/// The ambient trace context, for a task spawned to finish a request.
pub fn current() -> Context {
    Context::current()
}

/// Names the request span after the MCP method; the tool joins the name and attributes once it is known to exist
/// and be visible to the caller ([`named_tool`]), so that a caller cannot mint span names or fill attributes.
pub fn name_request(
    span: &Span,
    request: &rmcp::model::ClientRequest,
    id: &rmcp::model::RequestId,
) {
    let method = match request {
        rmcp::model::ClientRequest::CustomRequest(_) => "unknown",
        known => known.method(),
    };
    rename(span, method);
    span.record("mcp.method.name", method);
    if let rmcp::model::NumberOrString::String(id) = id {
        span.record("jsonrpc.request.id", bounded(id));
    } else {
        span.record("jsonrpc.request.id", tracing::field::display(id));
    }
    if matches!(request, rmcp::model::ClientRequest::CallToolRequest(_)) {
        span.record("gen_ai.operation.name", "execute_tool");
    }
}

/// The request belongs to this session, speaking this protocol version (both checked).
pub fn in_session(span: &Span, session: &str, version: &str) {
    span.record("mcp.session.id", session);
    span.record("mcp.protocol.version", version);
}

/// At most 128 bytes of a value a client chose (a request id).
fn bounded(text: &str) -> &str {
    let mut end = text.len().min(128);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Names the request span after a notification's method.
pub fn name_notification(span: &Span, notification: &rmcp::model::ClientNotification) {
    use rmcp::model::ClientNotification as N;
    let method = match notification {
        N::CancelledNotification(_) => "notifications/cancelled",
        N::ProgressNotification(_) => "notifications/progress",
        N::InitializedNotification(_) => "notifications/initialized",
        N::RootsListChangedNotification(_) => "notifications/roots/list_changed",
        _ => "unknown",
    };
    rename(span, method);
    span.record("mcp.method.name", method);
}

/// The tool of a `tools/call` exists and the caller may see it: the span is named `tools/call {tool}`.
pub fn named_tool(span: &Span, tool: &str, upstream: &str) {
    rename(span, &format!("tools/call {tool}"));
    span.record("gen_ai.tool.name", tool);
    span.record("toolgate.upstream", upstream);
}

/// Stamps the request span with its decision and the record that holds it; an answer that is an error (a
/// JSON-RPC error, or an `isError` result) marks the span as failed, with the reason id as the error type.
pub fn decided(span: &Span, record: &crate::audit::DecisionRecord, error: Option<&str>) {
    span.record("toolgate.record_id", record.id.as_str());
    span.record("toolgate.decision", record.decision.as_str());
    span.record("toolgate.outcome", record.outcome.as_str());
    if let Some(version) = &record.policy_version {
        span.record("toolgate.policy_version", version.as_str());
    }
    if let Some(error) = error {
        span.record("error.type", error);
        span.record("otel.status_code", "error");
    }
}

/// Names a span, before or after its OpenTelemetry span has started.
fn rename(span: &Span, name: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.record("otel.name", name);
    // Without an exporter this is an empty context, whose span ignores the name.
    span.context().span().update_name(name.to_string());
}

/// The request failed before the pipeline decided it: `error_type` is a reason id, or an HTTP status for a
/// request refused as malformed.
pub fn failed(span: &Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
}

/// The caller's credential was refused: the reason id is the outcome and the error type.
pub fn refused(span: &Span, reason: &str) {
    failed(span, reason);
    span.record("toolgate.outcome", reason);
}

/// The trace context of the HTTP request's `traceparent` / `tracestate` headers.
pub fn from_headers(headers: &http::HeaderMap) -> Context {
    if !headers.contains_key("traceparent") {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The trace context of a request's `params._meta` (`traceparent` / `tracestate`, SEP-414).
pub fn from_meta(meta: &JsonObject) -> Context {
    if !meta.contains_key("traceparent") {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&MetaCarrier(meta))
}

/// Puts the ambient trace context (the `upstream` step's span, or the client's context passed through) into
/// an upstream request's headers.
pub fn to_headers(headers: &mut http::HeaderMap) {
    let cx = Context::current();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new()
            .inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}

/// Puts the ambient trace context into an upstream request's `params._meta`, so that stdio upstreams get it too.
pub fn to_meta(meta: &mut JsonObject) {
    let cx = Context::current();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut MetaInjector(meta));
    }
}

struct MetaCarrier<'a>(&'a JsonObject);

impl Extractor for MetaCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(serde_json::Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct MetaInjector<'a>(&'a mut JsonObject);

impl Injector for MetaInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.to_string(), serde_json::Value::String(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn context_comes_from_headers_or_meta_and_goes_back_unchanged() {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(PARENT));
        headers.insert("tracestate", http::HeaderValue::from_static("rojo=1"));
        let cx = from_headers(&headers);
        let span = cx.span();
        let found = span.span_context();
        assert!(found.is_remote() && found.is_sampled());
        assert_eq!(
            found.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // Passed through when no span of toolgate's is current.
        let _guard = cx.clone().attach();
        let mut meta = JsonObject::new();
        to_meta(&mut meta);
        assert_eq!(meta["traceparent"], PARENT);
        assert_eq!(meta["tracestate"], "rojo=1");
        let mut out = http::HeaderMap::new();
        to_headers(&mut out);
        assert_eq!(out["traceparent"], PARENT);
        let back = from_meta(&meta);
        assert_eq!(back.span().span_context(), found);
    }

    #[test]
    fn malformed_or_missing_context_is_no_context() {
        assert_eq!(bounded(&"é".repeat(100)).len(), 128);
        assert_eq!(bounded("short"), "short");
        let mut headers = http::HeaderMap::new();
        assert!(!from_headers(&headers).span().span_context().is_valid());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "not a traceparent",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            headers.insert("traceparent", http::HeaderValue::from_static(bad));
            assert!(
                !from_headers(&headers).span().span_context().is_valid(),
                "{bad}"
            );
        }
        let mut meta = JsonObject::new();
        meta.insert("traceparent".into(), serde_json::json!(42));
        assert!(!from_meta(&meta).span().span_context().is_valid());
        // Nothing is injected without a context.
        let mut out = JsonObject::new();
        to_meta(&mut out);
        assert!(out.is_empty());
    }
}
