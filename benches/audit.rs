//! The cost of recording: appending one decision record and waiting for its commit, alone and with 1,000 appends
//! in flight (group commit): SQLite in both durability modes, and PostgreSQL (durable commits) when
//! `TOOLGATE_BENCH_POSTGRES` names a database (`postgres://user@host:port/db`; `scripts/pg-cluster start DIR`
//! gives a throwaway server).
//!
//! `cargo bench --bench audit`
#![allow(clippy::expect_used)]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use toolgate::audit::{Audit, DecisionRecord};
use toolgate::config::{AuditConfig, Durability, PostgresConfig, StorageConfig};

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
    let mut stores = vec![
        ("normal", Durability::Normal, None),
        ("full", Durability::Full, None),
    ];
    if let Ok(url) = std::env::var("TOOLGATE_BENCH_POSTGRES") {
        let postgres: PostgresConfig = serde_json::from_value(serde_json::json!({
            "url": url,
            "replica": format!("bench-{}", std::process::id()),
        }))
        .expect("postgres config");
        stores.push(("postgres", Durability::Full, Some(postgres)));
    }
    for (mode, durability, postgres) in stores {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = AuditConfig {
            durability,
            key_file: dir.path().join("audit.key"),
            head_file: dir.path().join("audit.head"),
            ..AuditConfig::default()
        };
        let storage = StorageConfig {
            path: dir.path().join("toolgate.db"),
            postgres,
        };
        let audit: Arc<Audit> = runtime
            .block_on(async {
                // The schema first, as a gateway's start does.
                toolgate::store::Store::open(&storage).await.expect("store");
                Audit::start(&storage, config)
            })
            .expect("audit");
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
