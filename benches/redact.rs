//! Redaction throughput: a 1 MB `tools/call` result (structured rows of employees, with its JSON text copy) masked
//! to `internal`, against serialising the same result to JSON (a floor every redaction pays) in the same run.
//!
//! `cargo bench --bench redact`
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use toolgate::config::RedactionConfig;
use toolgate::identity::Classification;
use toolgate::manifest::Manifests;
use toolgate::redact::{Redactor, Rules};

/// About 1 MB: employees with names, emails, phones, national ids and salaries.
fn result() -> Value {
    let mut employees = Vec::new();
    let mut i = 0u64;
    while employees.len() < 1820 {
        employees.push(json!({
            "id": format!("E{i:05}"),
            "name": format!("Employee number {i}"),
            "title": "Senior engineer, platform and tooling",
            "email": format!("employee.{i}@example.com"),
            "phone": format!("+1-555-{:04}", i % 10_000),
            "national_id": format!("{:03}-{:02}-{:04}", 100 + i % 800, 10 + i % 80, 1000 + i % 9000),
            "salary": 100_000 + i,
            "notes": "Joined in 2019; works on the build system and the release process."
        }));
        i += 1;
    }
    let structured = json!({"employees": employees});
    json!({
        "content": [{"type": "text", "text": structured.to_string()}],
        "structuredContent": structured,
        "isError": false
    })
}

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::new(&RedactionConfig::default()).expect("redactor");
    let mut manifests = Manifests::default();
    manifests
        .add_yaml(
            "upstream: hr\nowner: people\ntools:\n  search_employees:\n    classification: restricted\n    risk: read\n    output:\n      fields:\n        \"$..national_id\": restricted\n        \"$..salary\": confidential\n",
        )
        .expect("manifest");
    let rules = Rules::for_tool(
        manifests.get("hr", "search_employees"),
        Classification::Internal,
        Vec::new(),
    );
    let input = result();
    let bytes = serde_json::to_vec(&input).expect("json").len() as u64;
    eprintln!("result size: {bytes} bytes");
    let mut group = c.benchmark_group("redact_1mb");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(20);
    group.bench_function("serialize_only", |b| {
        b.iter(|| serde_json::to_vec(&input).expect("json"))
    });
    group.bench_function("redact", |b| {
        b.iter_batched(
            || input.clone(),
            |mut value| redactor.redact_result(&mut value, &rules).expect("redact"),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, redaction);
criterion_main!(benches);
