//! Micro-benchmark of what tracing adds to one `tools/call`: the request span, its five step spans and their
//! attributes, and the trace context put into an upstream request, with no subscriber (the floor), with the JSON
//! log subscriber only (no export: the default), and with spans exported in batches (to an exporter that drops
//! them, so that only toolgate's side is measured). Run: `cargo bench --bench telemetry`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use toolgate::config::{LogFormat, OtlpConfig, OtlpProtocol, TracingConfig};
use toolgate::telemetry;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

#[derive(Debug)]
struct Drop;

impl SpanExporter for Drop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// The spans and context handling of one allowed `tools/call`, as the server and pipeline make them.
async fn one_call(request: &rmcp::model::ClientRequest, record: &toolgate::audit::DecisionRecord) {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let span = telemetry::request_span("tcp");
    let remote = telemetry::from_headers(&headers);
    telemetry::adopt(&span, &remote);
    let work = async {
        let span = tracing::Span::current();
        tracing::info_span!("authenticate").in_scope(|| black_box(1));
        telemetry::name_request(&span, request, &rmcp::model::NumberOrString::Number(7));
        telemetry::in_session(&span, "0f086ee68aeb44049503f2690195fd8e", "2025-11-25");
        async { black_box(2) }
            .instrument(tracing::info_span!("authorize"))
            .await;
        telemetry::named_tool(&span, "sql__query", "sql");
        async {
            let mut out = http::HeaderMap::new();
            telemetry::to_headers(&mut out);
            let mut meta = rmcp::model::JsonObject::new();
            telemetry::to_meta(&mut meta);
            black_box((out, meta));
        }
        .instrument(tracing::info_span!(
            "upstream",
            otel.kind = "client",
            toolgate.upstream = "sql",
            gen_ai.tool.name = "query"
        ))
        .await;
        tracing::info_span!("redact").in_scope(|| black_box(3));
        telemetry::decided(&span, record, None);
        async { black_box(4) }
            .instrument(tracing::info_span!("record"))
            .await;
    };
    telemetry::within(work, span, remote).await;
}

fn spans(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request: rmcp::model::ClientRequest = serde_json::from_value(serde_json::json!({
        "method": "tools/call",
        "params": {"name": "sql__query", "arguments": {"sql": "SELECT 1"}}
    }))
    .unwrap();
    let mut record = toolgate::audit::DecisionRecord::new("tools/call");
    record.decision = "allow".into();
    record.outcome = "allowed".into();
    record.policy_version = Some("sha256:8ce4f896c121cfc9".into());
    let otlp = OtlpConfig {
        endpoint: "http://127.0.0.1:4318".into(),
        protocol: OtlpProtocol::HttpProtobuf,
        headers: Default::default(),
        timeout: Duration::from_secs(10),
        batch_delay: Duration::from_millis(200),
    };
    let provider = telemetry::provider(Drop, &otlp, &TracingConfig::default());
    let cases: [(&str, Option<tracing::Dispatch>); 3] = [
        ("no subscriber", None),
        (
            "json logs, no export",
            Some(tracing::Dispatch::new(telemetry::subscriber(
                LogFormat::Json,
                EnvFilter::new("info"),
                std::io::sink,
                None,
            ))),
        ),
        (
            "json logs and OTLP export",
            Some(tracing::Dispatch::new(telemetry::subscriber(
                LogFormat::Json,
                EnvFilter::new("info"),
                std::io::sink,
                Some(&provider),
            ))),
        ),
    ];
    let mut group = c.benchmark_group("spans of one call");
    for (name, dispatch) in cases {
        let dispatch = dispatch.unwrap_or_else(|| {
            tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default())
        });
        group.bench_function(name, |b| {
            tracing::dispatcher::with_default(&dispatch, || {
                b.iter(|| runtime.block_on(one_call(&request, &record)));
            });
        });
    }
    group.finish();
    let _ = provider.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = spans
}
criterion_main!(benches);
