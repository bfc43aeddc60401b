//! One policy decision with the shipped bundle, at 10, 1,000 and 10,000 tools in the manifests and at 100 and
//! 100,000 users in the principal directory, with regorus's compiled VM and with its interpreter.
//!
//! `cargo bench --bench policy`
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use toolgate::config::{Evaluator, PolicyConfig};
use toolgate::policy::{Bundle, PolicyInput, Sources};

/// A copy of the shipped bundle with `users` directory entries and `tools` extra tool manifests.
fn world(tools: usize, users: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    let manifests = dir.path().join("tool-manifests");
    std::fs::create_dir_all(policies.join("toolgate")).expect("mkdir");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    for file in ["toolgate/authz.rego", "toolgate/authz_test.rego"] {
        std::fs::copy(root.join("policies").join(file), policies.join(file)).expect("copy");
    }
    let access = std::fs::read_to_string(root.join("policies/access.yaml")).expect("read");
    std::fs::write(
        policies.join("access.yaml"),
        access.replace("    users: {}\n", ""),
    )
    .expect("write");
    let roles = ["hr", "engineering", "sales", "support"];
    let directory: serde_json::Map<String, serde_json::Value> = (0..users)
        .map(|i| {
            (
                format!("user{i}"),
                json!({"roles": [roles[i % roles.len()]]}),
            )
        })
        .collect();
    std::fs::write(
        policies.join("users.json"),
        serde_json::to_string(
            &json!({"toolgate": {"access": {"users": {"toolgate-dev": directory}}}}),
        )
        .expect("json"),
    )
    .expect("write");
    for file in ["hr.yaml", "sql.yaml", "files.yaml"] {
        std::fs::copy(root.join("tool-manifests").join(file), manifests.join(file)).expect("copy");
    }
    let mut extra = String::from("upstream: bulk\nowner: bench\ntools:\n");
    for i in 0..tools.saturating_sub(8) {
        extra.push_str(&format!(
            "  tool_{i}:\n    classification: internal\n    risk: read\n"
        ));
    }
    std::fs::write(manifests.join("bulk.yaml"), extra).expect("write");
    (dir, policies, manifests)
}

fn bundle(policies: &Path, manifests: &Path, evaluator: Evaluator) -> Bundle {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Bundle::load(&Sources::new(
        PolicyConfig {
            dir: policies.to_path_buf(),
            manifests: manifests.to_path_buf(),
            evaluator,
            ..PolicyConfig::default()
        },
        root.join("tool-manifests/agents.yaml"),
    ))
    .expect("bundle")
}

/// alice (a directory user) asks for a read-only query through her assistant.
fn call_input() -> PolicyInput {
    call_input_for_request("1")
}

fn call_input_for_request(request_id: &str) -> PolicyInput {
    PolicyInput::from_json(json!({
        "mode": "principal_context",
        "principal": {"issuer": "toolgate-dev", "subject": "user4", "roles": ["hr"], "groups": []},
        "agent": {"id": "assistant"},
        "chain": ["assistant"],
        "scope": {"token": null, "clearance": "confidential"},
        "tool": {"name": "sql__query", "upstream": "sql", "original": "query", "classification": "confidential",
                 "risk": "read", "owner": "data-platform", "annotations": {}},
        "action": "call",
        "arguments": {"sql": "SELECT name FROM projects"},
        "facts": {"sql": {"kind": "sql", "parsed": true, "statement_count": 1, "kinds": ["select"],
                          "tables": ["projects"], "read_only": true}},
        "context": {"session": "s", "request_id": request_id}
    }))
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_decision");
    let input = call_input();
    for (tools, users) in [
        (10, 100),
        (1_000, 100),
        (10_000, 100),
        (10, 100_000),
        (10_000, 100_000),
    ] {
        let (_dir, policies, manifests) = world(tools, users);
        let case = format!("{tools}_tools_{users}_users");
        for evaluator in [Evaluator::Vm, Evaluator::Interpreter] {
            let bundle = bundle(&policies, &manifests, evaluator);
            let decision = bundle.evaluate(&input).expect("decision");
            assert!(decision.allow, "{decision:?}");
            let name = match evaluator {
                Evaluator::Vm => "vm",
                Evaluator::Interpreter => "interpreter",
            };
            group.bench_function(BenchmarkId::new(name, &case), |b| {
                b.iter(|| bundle.evaluate(&input))
            });
            if evaluator == Evaluator::Vm {
                // The same caller, tool and facts again, in another request: answered from the bundle's cache.
                assert!(bundle.caches_decisions());
                assert_eq!(bundle.decide(&input), decision);
                let again = call_input_for_request("2");
                group.bench_function(BenchmarkId::new("vm_cached", &case), |b| {
                    b.iter(|| bundle.decide(&again))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
