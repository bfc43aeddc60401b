//! Micro-benchmarks of the first pipeline step: authenticating one request (token check, revocation and, for a
//! delegated token, its lineage), with and without the cache of verified signatures. The lineage check's own
//! cost is the difference between a chain of one agent and a chain of two. Run: `cargo bench --bench pipeline`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use toolgate::config::Config;
use toolgate::identity::token::{TokenRequest, mint_dev};
use toolgate::identity::{Identity, Revocations};
use toolgate::store::Store;

fn identity(cache: bool) -> Identity {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = format!(
        "auth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n  agents_file: \"{}\"\n  verified_token_cache: {cache}\n",
        root.join("examples/quickstart/dev-keys/dev.jwks.json")
            .display(),
        root.join("tool-manifests/agents.yaml").display(),
    );
    let config = Config::from_yaml(&yaml, root).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let revocations = runtime
        .block_on(Revocations::load(Store::in_memory().unwrap()))
        .unwrap();
    Identity::load(config.auth.as_ref().unwrap(), root, Arc::new(revocations)).unwrap()
}

fn token(subject: Option<&str>, agent: &str, via: &[&str]) -> String {
    mint_dev(&TokenRequest {
        subject: subject.map(str::to_string),
        roles: vec!["hr".into()],
        agent: Some(agent.into()),
        via: via.iter().map(|v| v.to_string()).collect(),
        scope: None,
        audience: "toolgate".into(),
        ttl: Duration::from_secs(3600),
    })
    .unwrap()
}

fn authenticate(c: &mut Criterion) {
    let cold = identity(false);
    let cached = identity(true);
    let agent_only = token(None, "nightly-report", &[]);
    let one_agent = token(Some("alice"), "assistant", &[]);
    let delegated = token(Some("alice"), "assistant", &["summarizer"]);
    let mut group = c.benchmark_group("authenticate");
    group.bench_function("agent_only/verify_signature", |b| {
        b.iter(|| {
            cold.authenticate(black_box(&agent_only), false, None)
                .unwrap()
        })
    });
    group.bench_function("agent_only/cached_signature", |b| {
        b.iter(|| {
            cached
                .authenticate(black_box(&agent_only), false, None)
                .unwrap()
        })
    });
    group.bench_function("principal_one_agent/cached_signature", |b| {
        b.iter(|| {
            cached
                .authenticate(black_box(&one_agent), false, None)
                .unwrap()
        })
    });
    group.bench_function("delegated_chain/verify_signature", |b| {
        b.iter(|| {
            cold.authenticate(black_box(&delegated), false, None)
                .unwrap()
        })
    });
    group.bench_function("delegated_chain/cached_signature", |b| {
        b.iter(|| {
            cached
                .authenticate(black_box(&delegated), false, None)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = authenticate
}
criterion_main!(benches);
