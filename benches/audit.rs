//! The cost of recording: appending one decision record and waiting for its commit, alone and with 1,000 appends
//! in flight (group commit), in both durability modes.
//!
//! `cargo bench --bench audit`
#![allow(clippy::expect_used)]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use toolgate::audit::{Audit, DecisionRecord};
use toolgate::config::{AuditConfig, Durability};

fn record() -> DecisionRecord {
    let mut record = DecisionRecord::new("tools/call");
    record.mode = Some("principal_context".into());
    record.issuer = Some("toolgate-dev".into());
    record.subject = Some("alice".into());
    record.principal = Some("alice".into());
    record.agent = Some("assistant".into());
    record.chain = vec!["assistant".into()];
    record.tool = Some("sql__query".into());
    record.upstream = Some("sql".into());
    record.arguments = Some(
        serde_json::json!({"sha256": "9f1c0e7a3b5d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e"}),
    );
    record.decision = "allow".into();
    record.outcome = "allowed".into();
    record.policy_version = Some("sha256:e82e70d794bd3a91".into());
    record.upstream_outcome = Some("ok".into());
    record
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("audit_append");
    for durability in [Durability::Normal, Durability::Full] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = AuditConfig {
            durability,
            key_file: dir.path().join("audit.key"),
            head_file: dir.path().join("audit.head"),
            ..AuditConfig::default()
        };
        let audit: Arc<Audit> = runtime
            .block_on(async { Audit::start(&dir.path().join("toolgate.db"), config) })
            .expect("audit");
        let mode = match durability {
            Durability::Normal => "normal",
            Durability::Full => "full",
        };
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("one", mode), |b| {
            b.iter(|| runtime.block_on(audit.append(record())).expect("append"))
        });
        group.throughput(Throughput::Elements(1000));
        group.bench_function(BenchmarkId::new("1000_in_flight", mode), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let tasks: Vec<_> = (0..1000)
                        .map(|_| {
                            let audit = Arc::clone(&audit);
                            tokio::spawn(async move { audit.append(record()).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task").expect("append");
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
