//! The shipped policy bundle, evaluated in-process: its Rego unit tests pass, a tool hidden from a caller's list
//! is never allowed to that caller by a call (property-tested over generated callers, tools and argument facts),
//! and the compiled VM decides exactly as the interpreter does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};
use toolgate::config::{Evaluator, PolicyConfig};
use toolgate::policy::{Bundle, PolicyInput, Sources};

fn sources(evaluator: Evaluator) -> Sources {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Sources::new(
        PolicyConfig {
            dir: root.join("policies"),
            manifests: root.join("tool-manifests"),
            evaluator,
            ..PolicyConfig::default()
        },
        root.join("tool-manifests/agents.yaml"),
    )
}

fn bundle(evaluator: Evaluator) -> &'static Bundle {
    static VM: std::sync::OnceLock<Bundle> = std::sync::OnceLock::new();
    static INTERPRETER: std::sync::OnceLock<Bundle> = std::sync::OnceLock::new();
    let cell = match evaluator {
        Evaluator::Vm => &VM,
        Evaluator::Interpreter => &INTERPRETER,
    };
    cell.get_or_init(|| Bundle::load(&sources(evaluator)).unwrap())
}

#[test]
fn the_rego_unit_tests_pass() {
    let outcomes = bundle(Evaluator::Interpreter).run_tests();
    assert!(outcomes.len() >= 20, "{outcomes:?}");
    let failed: Vec<_> = outcomes.iter().filter(|t| !t.passed).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn the_shipped_bundle_uses_the_vm() {
    let vm = bundle(Evaluator::Vm);
    assert_eq!(vm.evaluator_name(), "vm", "{:?}", vm.vm_fallback);
    // Same files, same version, whatever the evaluator.
    assert_eq!(vm.version, bundle(Evaluator::Interpreter).version);
    assert!(vm.version.starts_with("sha256:"));
}

/// Generated callers: every mode, role mix and delegation chain of the quickstart, plus strangers.
fn caller() -> impl Strategy<Value = Value> {
    let roles =
        proptest::sample::subsequence(vec!["hr", "hr-admin", "engineering", "sales"], 0..=3);
    let human = (
        prop_oneof![Just("alice"), Just("bob"), Just("mallory")],
        roles,
        prop_oneof![
            Just(vec!["assistant"]),
            Just(vec!["assistant", "summarizer"]),
        ],
    )
        .prop_map(|(subject, roles, chain)| {
            json!({
                "mode": "principal_context",
                "principal": {"issuer": "toolgate-dev", "subject": subject, "roles": roles, "groups": []},
                "agent": {"id": chain.last().unwrap()},
                "chain": chain,
            })
        });
    let alone = prop_oneof![Just("nightly-report"), Just("assistant"), Just("ghost")].prop_map(|agent| {
        json!({"mode": "agent_only", "principal": null, "agent": {"id": agent}, "chain": [agent]})
    });
    prop_oneof![human, alone]
}

/// Generated tools: the quickstart's, and others with any classification and risk.
fn tool() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("hr"), Just("sql"), Just("files"), Just("other")],
        prop_oneof![
            Just("query"),
            Just("read_file"),
            Just("write_file"),
            Just("lookup_employee"),
            Just("list_tables"),
            Just("thing")
        ],
        prop_oneof![
            Just("public"),
            Just("internal"),
            Just("confidential"),
            Just("restricted")
        ],
        prop_oneof![Just("read"), Just("write"), Just("destructive")],
    )
        .prop_map(|(upstream, name, classification, risk)| {
            json!({"name": format!("{upstream}__{name}"), "upstream": upstream, "original": name,
                   "classification": classification, "risk": risk, "annotations": {}})
        })
}

/// Generated argument facts: SQL and paths, well-formed or not.
fn facts() -> impl Strategy<Value = Value> {
    let tables = proptest::sample::subsequence(
        vec![
            "employees",
            "salaries",
            "projects",
            "customers",
            "sqlite_master",
        ],
        0..=3,
    );
    let kinds = proptest::sample::subsequence(
        vec!["select", "delete", "attach", "pragma", "insert"],
        1..=2,
    );
    let sql = (any::<bool>(), 0usize..3, kinds, tables).prop_map(|(prepared, count, kinds, tables)| {
        let read_only = prepared && count == 1 && kinds.iter().all(|k| *k == "select");
        let columns: Vec<Value> = tables
            .iter()
            .map(|t| json!({"table": t, "column": "id", "class": "internal"}))
            .collect();
        json!({"kind": "sql", "prepared": prepared, "statement_count": count, "trailing_text": count > 1,
               "kinds": kinds, "tables": tables, "read_only": read_only, "unknown": [], "functions": [],
               "columns": columns, "result": [], "projected_plainly": []})
    });
    let path = (
        prop_oneof![Just("README.txt"), Just("reports/q3.md"), Just(""), Just("reports")],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(normalized, escapes, invalid)| {
            json!({"kind": "path", "normalized": normalized, "escapes_root": escapes || invalid, "absolute": false, "invalid": invalid})
        });
    prop_oneof![
        Just(json!({})),
        sql.prop_map(|f| json!({"sql": f})),
        path.prop_map(|f| json!({"path": f})),
    ]
}

fn input(caller: &Value, tool: &Value, action: &str, facts: &Value) -> PolicyInput {
    let mut doc = caller.clone();
    doc["tool"] = tool.clone();
    doc["action"] = json!(action);
    doc["arguments"] = json!({});
    doc["facts"] = facts.clone();
    doc["context"] = json!({"session": "s", "request_id": "1"});
    PolicyInput::from_json(doc)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// A tool hidden from a caller's `tools/list` is never allowed (nor escalated) to that caller by `tools/call`,
    /// whatever the arguments.
    #[test]
    fn hidden_tools_are_never_callable(caller in caller(), tool in tool(), facts in facts()) {
        let bundle = bundle(Evaluator::Vm);
        let listed = bundle.decide(&input(&caller, &tool, "list", &facts));
        let called = bundle.decide(&input(&caller, &tool, "call", &facts));
        if !listed.allow {
            prop_assert!(!called.allow && !called.escalate, "{caller} {tool} {facts}: {called:?}");
        }
        // A refusal always says why.
        if !called.allow {
            prop_assert!(!called.reasons.is_empty(), "{caller} {tool}: {called:?}");
        }
    }

    /// The VM gives the interpreter's answers.
    #[test]
    fn the_vm_decides_as_the_interpreter(caller in caller(), tool in tool(), facts in facts(), call in any::<bool>()) {
        let action = if call { "call" } else { "list" };
        let doc = input(&caller, &tool, action, &facts);
        let vm = bundle(Evaluator::Vm).decide(&doc);
        let interpreted = bundle(Evaluator::Interpreter).decide_interpreted(&doc);
        prop_assert_eq!(vm, interpreted);
    }
}

/// A bundle of one Rego file (and the quickstart's manifests and inventory).
fn bundle_of(rego: &str) -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.rego"), rego).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundle = Bundle::load(&Sources::new(
        PolicyConfig {
            dir: dir.path().to_path_buf(),
            manifests: root.join("tool-manifests"),
            ..PolicyConfig::default()
        },
        root.join("tool-manifests/agents.yaml"),
    ))
    .unwrap();
    (dir, bundle)
}

fn request(id: &str) -> PolicyInput {
    PolicyInput::from_json(json!({
        "mode": "agent_only", "agent": {"id": "nightly-report"}, "chain": ["nightly-report"],
        "tool": {"name": "sql__list_tables"}, "action": "call", "facts": {},
        "context": {"request_id": id, "session": "s"},
    }))
}

#[test]
fn remembered_decisions_still_see_every_field_the_policy_reads() {
    // The shipped policy never reads input.context: another request of the same call is answered alike.
    let shipped = bundle(Evaluator::Vm);
    assert!(shipped.caches_decisions());
    let first = shipped.decide(&request("1"));
    assert_eq!(shipped.decide(&request("2")), first);

    // A policy that reads the request id decides per request, though a decision for request 1 was remembered.
    let (_dir, per_request) = bundle_of(
        "package toolgate.authz\n\
         decision := {\"allow\": input.context.request_id == \"1\", \"escalate\": false, \"reasons\": [], \
         \"obligations\": {\"clearance\": \"public\", \"redact\": []}}\n",
    );
    assert!(per_request.caches_decisions());
    for _ in 0..2 {
        assert!(per_request.decide(&request("1")).allow);
        assert!(!per_request.decide(&request("2")).allow);
    }

    // A policy that names the whole input, or asks the clock, remembers nothing.
    for rego in [
        "package toolgate.authz\nx := input\ndecision := {\"allow\": x.context.request_id == \"1\", \"escalate\": false, \"reasons\": [], \"obligations\": {\"clearance\": \"public\", \"redact\": []}}\n",
        "package toolgate.authz\ndecision := {\"allow\": time.now_ns() > 0, \"escalate\": false, \"reasons\": [], \"obligations\": {\"clearance\": \"public\", \"redact\": []}}\n",
    ] {
        let (_dir, uncached) = bundle_of(rego);
        assert!(!uncached.caches_decisions(), "{rego}");
        assert!(uncached.decide(&request("1")).allow);
    }
    let (_dir, whole) = bundle_of(
        "package toolgate.authz\nx := input\ndecision := {\"allow\": x.context.request_id == \"1\", \"escalate\": false, \"reasons\": [], \"obligations\": {\"clearance\": \"public\", \"redact\": []}}\n",
    );
    assert!(whole.decide(&request("1")).allow);
    assert!(!whole.decide(&request("2")).allow);
}

#[test]
fn a_decision_that_cannot_be_made_is_a_denial_that_says_why() {
    // An unknown class among the obligations is a policy error, never silently dropped.
    let (_dir, strict) = bundle_of(
        "package toolgate.authz\ndecision := {\"allow\": true, \"escalate\": false, \"reasons\": [], \"obligations\": {\"redact\": [\"secret\"]}}\n",
    );
    let decision = strict.decide(&request("1"));
    assert!(!decision.allow && !decision.escalate);
    let error = decision.error.expect("an error");
    assert_eq!(error.reason_id().as_str(), "policy_wrong_shape");
    assert!(
        decision.reasons[0].contains("`secret`"),
        "{:?}",
        decision.reasons
    );
    // Known classes are kept as classes.
    let (_dir, known) = bundle_of(
        "package toolgate.authz\ndecision := {\"allow\": true, \"escalate\": false, \"reasons\": [], \"obligations\": {\"redact\": [\"confidential\"]}}\n",
    );
    let decision = known.decide(&request("1"));
    assert!(decision.allow && decision.error.is_none());
    assert_eq!(
        decision.obligations.redact,
        vec![toolgate::identity::Classification::Confidential]
    );
    // An undefined decision is a denial too, with its reason id.
    let (_dir, undefined) = bundle_of(
        "package toolgate.authz\ndecision := {\"allow\": true, \"escalate\": false, \"reasons\": []} if input.action == \"list\"\n",
    );
    let decision = undefined.decide(&request("1"));
    assert!(!decision.allow);
    assert_eq!(
        decision.error.map(|e| e.reason_id().as_str()),
        Some("policy_undefined")
    );
}
