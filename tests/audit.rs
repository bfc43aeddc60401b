//! Decision records end to end: every decision leaves a record (committed before the answer), the chain detects
//! tampering, reports count what happened, an unwritable store fails closed, and records survive `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::{Value, json};

/// The quickstart world (HR, SQL, files) plus the testbed, with fast head publication and `extra` audit settings.
fn world(policy: &str, audit_extra: &str) -> Gateway {
    let sandbox = tempfile::tempdir().unwrap().keep();
    std::fs::write(sandbox.join("README.txt"), "hello\n").unwrap();
    // The quickstart's callers with its policy; the test harness's `tester` (every tool in scope) otherwise.
    let auth = if policy == quickstart_policy() {
        test_auth(&quickstart_agents())
    } else {
        String::new()
    };
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  call: 2s\n  unready: 500ms\nupstreams:\n{}{}{auth}{policy}audit:\n  flush_interval: 200ms\n{audit_extra}",
        quickstart_upstreams_in(&sandbox),
        stdio_upstream("tb", "testbed", &[]),
    );
    Gateway::start(&yaml)
}

/// The quickstart's alice (`hr`) and bob (`engineering`), each through the assistant.
async fn alice_and_bob(gateway: &Gateway) -> (Client, Client) {
    let alice = Client::connect(
        &gateway.url,
        &user_token("alice", &["hr"], "assistant", &[]),
    )
    .await;
    let bob = Client::connect(
        &gateway.url,
        &user_token("bob", &["engineering"], "assistant", &[]),
    )
    .await;
    (alice, bob)
}

async fn records(gateway: &Gateway, query: &str) -> Vec<Value> {
    let body = gateway
        .admin_json(&format!("/records?limit=1000{query}"))
        .await;
    body["records"].as_array().unwrap().clone()
}

fn toolgate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_known_sequence_leaves_exactly_the_expected_records_and_report() {
    let gateway = world(&quickstart_policy(), "");
    let (alice, bob) = alice_and_bob(&gateway).await;
    let nightly = Client::connect(
        &gateway.url,
        &dev_token(None, Some("nightly-report"), &[], None),
    )
    .await;

    alice.tool_names().await; // one tools/list record
    let ok = alice.sql("SELECT count(*) FROM projects").await.unwrap();
    assert_ne!(ok.is_error, Some(true));
    let denied = bob.sql("SELECT * FROM salaries").await.unwrap();
    assert_eq!(denied.is_error, Some(true));
    bob.call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap_err();
    let held = alice
        .call(
            "files__write_file",
            json!({"path": "a.txt", "content": "x"}),
        )
        .await
        .unwrap();
    assert!(text(&held).contains("approval_required"));
    nightly.sql("SELECT count(*) FROM customers").await.unwrap();
    // Refused credentials: junk (aggregated), a lineage refusal and a revoked token (one record each, with who).
    for _ in 0..3 {
        assert_eq!(initialize_status(&gateway.url, "junk").await, 401);
    }
    let bad_chain = dev_token(Some("carol"), Some("nightly-report"), &[], None);
    assert_eq!(initialize_status(&gateway.url, &bad_chain).await, 403);
    let revoked = reqwest::Client::new()
        .post(format!("{}/revocations", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .json(&json!({"kind": "subject", "issuer": "toolgate-dev", "subject": "dave"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 201);
    let dave = user_token("dave", &["hr"], "assistant", &[]);
    assert_eq!(initialize_status(&gateway.url, &dave).await, 401);

    // Junk tokens are counted per interval: the three may land in one record or be split over two.
    let junk_count = |all: &[Value]| -> u64 {
        all.iter()
            .filter(|r| r["kind"] == "authentication" && r["outcome"] == "token_malformed")
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    let all = eventually(10, || async {
        let all = records(&gateway, "").await;
        let revoked_seen = all.iter().any(|r| r["outcome"] == "token_revoked");
        (junk_count(&all) == 3 && revoked_seen).then_some(all)
    })
    .await;
    let calls: Vec<&Value> = all.iter().filter(|r| r["kind"] == "tools/call").collect();
    let outcomes: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|r| {
            (
                r["principal"].as_str().or(r["subject"].as_str()).unwrap(),
                r["tool"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("alice", "sql__query", "allowed"),
            ("bob", "sql__query", "policy_denied"),
            ("bob", "hr__lookup_employee", "unknown_tool"),
            ("alice", "files__write_file", "approval_required"),
            ("nightly-report", "sql__query", "allowed"),
        ]
    );
    // What one allowed call's record holds.
    let first = calls[0];
    assert_eq!(first["mode"], "principal_context");
    assert_eq!(first["issuer"], "toolgate-dev");
    assert_eq!(first["agent"], "assistant");
    assert_eq!(first["chain"], json!(["assistant"]));
    assert_eq!(first["upstream"], "sql");
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["upstream_outcome"], "ok");
    assert!(
        first["policy_version"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(first["obligations"]["clearance"], "confidential");
    // Arguments are recorded redacted by the result rules (nothing sensitive in this one).
    assert_eq!(
        first["arguments"],
        json!({"sql": "SELECT count(*) FROM projects"})
    );
    assert!(first["latency"]["authorize_us"].is_u64() && first["latency"]["upstream_us"].is_u64());
    assert!(first["id"].as_str().unwrap().len() == 36 && first["seq"].is_i64());
    assert!(
        calls[1]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("`salaries`")
    );
    assert_eq!(calls[3]["decision"], "escalate");
    // One record per listing.
    let lists: Vec<&Value> = all.iter().filter(|r| r["kind"] == "tools/list").collect();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0]["listed"], 8);
    // Refusals of credentials.
    let auth: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "authentication")
        .collect();
    let junk = auth
        .iter()
        .find(|r| r["outcome"] == "token_malformed")
        .unwrap();
    assert!(junk["count"].as_u64().unwrap() >= 1);
    assert_eq!(junk_count(&all), 3);
    assert_eq!(junk["source"], "127.0.0.1");
    assert!(junk.get("subject").is_none());
    let lineage = auth
        .iter()
        .find(|r| {
            r["outcome"] == "agent_may_not_act_for_humans"
                || r["outcome"] == "delegation_not_allowed"
        })
        .unwrap();
    assert_eq!(lineage["subject"], "carol");
    let revoked = auth
        .iter()
        .find(|r| r["outcome"] == "token_revoked")
        .unwrap();
    assert_eq!(revoked["subject"], "dave");
    // Filters.
    assert_eq!(
        records(&gateway, "&decision=deny&kind=tools/call")
            .await
            .len(),
        2
    );
    assert_eq!(
        records(&gateway, "&principal=toolgate-dev/bob").await.len(),
        2
    );

    // The report counts the same.
    let config = gateway.dir.path().join("toolgate.yaml");
    let out = toolgate(&["report", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sql = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "sql__query")
        .unwrap();
    assert_eq!(
        (
            sql["calls"].as_u64(),
            sql["allowed"].as_u64(),
            sql["denied"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(sql["distinct_principals"], 3);
    assert!(
        sql["top_denial_reasons"][0][0]
            .as_str()
            .unwrap()
            .contains("`salaries`")
    );
    let write = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "files__write_file")
        .unwrap();
    assert_eq!(write["escalated"], 1);
    let agents = report["agents"].as_array().unwrap();
    let nightly_row = agents
        .iter()
        .find(|a| a["agent"] == "nightly-report")
        .unwrap();
    assert_eq!(nightly_row["owner"], "finance-data");
    assert_eq!(
        nightly_row["unused_tools_in_scope"],
        json!(["sql__list_tables"])
    );
    let summarizer = agents.iter().find(|a| a["agent"] == "summarizer").unwrap();
    assert_eq!(summarizer["active"], false);
    assert_eq!(report["authentication_refusals"]["token_malformed"], 3);
    let bob_row = report["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["principal"] == "toolgate-dev/bob")
        .unwrap();
    assert_eq!(bob_row["tools"].as_array().unwrap().len(), 2);
    // The admin API serves the same report.
    let via_api = gateway.admin_json("/reports?tool=sql__query").await;
    assert_eq!(via_api["tools"].as_array().unwrap().len(), 1);
    assert_eq!(via_api["tools"][0]["calls"], 3);
    // CSV and HTML forms.
    let csv = toolgate(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("tool,sql__query,sql,3,2,1,0,0,")),
        "{csv}"
    );
    let html_path = gateway.dir.path().join("report.html");
    let html = toolgate(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        html_path.to_str().unwrap(),
    ]);
    assert!(html.status.success());
    let html = std::fs::read_to_string(html_path).unwrap();
    assert!(html.contains("<svg") && html.contains("default-src 'none'"));
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "external URL or script in the report"
    );
}

#[tokio::test]
async fn upstream_failures_and_every_refusal_leave_records() {
    let gateway = world(&open_policy(), "");
    let client = gateway.client().await;
    let slow = client
        .call("tb__slow", json!({"ms": 5000, "steps": 0}))
        .await
        .unwrap();
    assert_eq!(slow.is_error, Some(true));
    let failed = client.call("tb__fail", json!({})).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    client.call("tb__nope", json!({})).await.unwrap_err();
    let all = records(&gateway, "&kind=tools/call").await;
    let outcomes: Vec<(&str, &str, Option<&str>)> = all
        .iter()
        .map(|r| {
            (
                r["tool"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["upstream_outcome"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("tb__slow", "upstream_timeout", Some("upstream_timeout")),
            ("tb__fail", "allowed", Some("tool_error")),
            ("tb__nope", "unknown_tool", None),
        ]
    );
}

/// Copies the database (with its WAL) of a stopped gateway into a new folder with a config for `audit verify`.
fn copy_world(gateway: &Gateway) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = gateway.dir.path().join(format!("toolgate.db{suffix}"));
        if from.exists() {
            std::fs::copy(&from, dir.path().join(format!("toolgate.db{suffix}"))).unwrap();
        }
    }
    let config = dir.path().join("verify.yaml");
    std::fs::write(
        &config,
        format!(
            "audit:\n  key_file: \"{}\"\n  head_file: \"{}\"\n",
            gateway.dir.path().join("audit.key").display(),
            gateway.dir.path().join("audit.head").display()
        ),
    )
    .unwrap();
    (dir, config)
}

fn verify(config: &Path) -> (bool, String) {
    let out = toolgate(&["audit", "verify", "--config", config.to_str().unwrap()]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn tamper(config: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(config.with_file_name("toolgate.db")).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn audit_verify_names_the_first_tampered_record() {
    let mut gateway = world(&open_policy(), "");
    echo_calls(&gateway, 6).await;
    // A clean stop publishes the head.
    stop(&mut gateway);
    let head: Value = serde_json::from_str(
        &std::fs::read_to_string(gateway.dir.path().join("audit.head")).unwrap(),
    )
    .unwrap();
    let last = head["seq"].as_i64().unwrap();
    assert_eq!(last, 7, "six calls and the shutdown marker: {head}");

    let (_d, config) = copy_world(&gateway);
    let (ok, out) = verify(&config);
    assert!(ok, "{out}");

    // Altered content, or only an indexed column; removed; inserted (the rest renumbered to hide the gap).
    let cases: [(&str, &[&str]); 4] = [
        (
            "UPDATE decisions SET body = replace(body, '\"allowed\"', '\"policy_denied\"') WHERE seq = 3",
            &["record 3 (", "altered"],
        ),
        (
            "UPDATE decisions SET outcome = 'policy_denied' WHERE seq = 4",
            &["record 4 (", "altered"],
        ),
        ("DELETE FROM decisions WHERE seq = 5", &["record 5 was removed"]),
        (
            "UPDATE decisions SET seq = -seq WHERE seq >= 4;
             UPDATE decisions SET seq = -seq + 1 WHERE seq < 0;
             INSERT INTO decisions (seq, id, time_ms, kind, decision, outcome, body, mac)
               SELECT 4, id, time_ms, kind, decision, outcome, body, mac FROM decisions WHERE seq = 2;",
            &["record 4 (", "inserted"],
        ),
    ];
    for (sql, expected) in cases {
        let (_d, config) = copy_world(&gateway);
        tamper(&config, sql);
        let (ok, out) = verify(&config);
        assert!(
            !ok && expected.iter().all(|e| out.contains(e)),
            "{sql}: {out}"
        );
    }
    // Cut off: the tail is gone, which only the published head shows.
    let (_d, config) = copy_world(&gateway);
    tamper(
        &config,
        &format!("DELETE FROM decisions WHERE seq > {}", last - 2),
    );
    let (ok, out) = verify(&config);
    assert!(!ok && out.contains("cut off"), "{out}");
    // A wrong key verifies nothing.
    let (_d, config) = copy_world(&gateway);
    let key = config.with_file_name("other.key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff").unwrap();
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            &gateway.dir.path().join("audit.key").display().to_string(),
            &key.display().to_string(),
        ),
    )
    .unwrap();
    let (ok, out) = verify(&config);
    assert!(!ok && out.contains("record 1 ("), "{out}");

    // Records survive a restart, and the chain goes on from where it was.
    gateway.restart();
    let client = gateway.client().await;
    client
        .call("tb__echo", json!({"text": "after restart"}))
        .await
        .unwrap();
    let all = records(&gateway, "&kind=tools/call").await;
    assert_eq!(all.len(), 7);
    stop(&mut gateway);
    let (_d, config) = copy_world(&gateway);
    let (ok, out) = verify(&config);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn an_unwritable_store_fails_closed() {
    let gateway = world(&open_policy(), "  busy_timeout: 100ms\n");
    let client = gateway.client().await;
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let r = client.sql(sql).await.unwrap();
            r.structured_content.unwrap()["rows"][0][0]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) FROM projects").await, 4);
    // Another process holds the database's write lock.
    let db = gateway.dir.path().join("toolgate.db");
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The answer of a call whose record cannot be written is withheld.
    let error = client
        .sql("SELECT count(*) FROM customers")
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(data) = &error else {
        panic!("{error}")
    };
    assert_eq!(data.code, rmcp::model::ErrorCode::INTERNAL_ERROR);
    assert_eq!(data.data.as_ref().unwrap()["reason"], "audit_unavailable");
    // While the store is known to fail, calls are refused before they reach an upstream.
    let error = client.sql("DELETE FROM projects").await.unwrap_err();
    let rmcp::ServiceError::McpError(data) = &error else {
        panic!("{error}")
    };
    assert_eq!(data.data.as_ref().unwrap()["reason"], "audit_unavailable");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // Once a record can be written again, calls go through; the refused DELETE never ran.
    let projects = eventually(10, || async {
        let r = client.sql("SELECT count(*) FROM projects").await.ok()?;
        r.structured_content
            .map(|c| c["rows"][0][0].as_i64().unwrap())
    })
    .await;
    assert_eq!(projects, 4);
    assert!(gateway.logs().contains("answer withheld"));
}

#[tokio::test]
async fn every_answered_call_survives_kill_9() {
    let gateway = world(&open_policy(), "  arguments: full\n");
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = gateway.client().await;
        let answered = Arc::clone(&answered);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let text = format!("w{worker}-{i}");
                match client.call("tb__echo", json!({"text": text})).await {
                    Ok(r) if r.is_error != Some(true) => answered.lock().unwrap().push(text),
                    _ => return,
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let pid = gateway.proc.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 50,
        "only {} calls answered",
        answered.len()
    );
    let conn = rusqlite::Connection::open(gateway.dir.path().join("toolgate.db")).unwrap();
    let mut statement = conn
        .prepare("SELECT body FROM decisions WHERE kind = 'tools/call'")
        .unwrap();
    let recorded: std::collections::HashSet<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|b| {
            let v: Value = serde_json::from_str(&b.unwrap()).unwrap();
            v["arguments"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|t| !recorded.contains(*t)).collect();
    assert!(
        missing.is_empty(),
        "{} answered calls have no record: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test]
async fn a_call_whose_client_leaves_is_still_recorded_without_sse() {
    let gateway = world(&open_policy(), "");
    let token = tester_token();
    let session = raw_session(&gateway.url, &token).await;
    let http = reqwest::Client::new();
    let post = |body: &'static str, accept: &'static str| {
        http.post(&gateway.url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("accept", accept)
            .header("mcp-session-id", &session)
            .body(body)
    };
    post(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        "application/json, text/event-stream",
    )
    .send()
    .await
    .unwrap();
    // A client that takes JSON only gives up 300 ms into a call that takes 1.5 s.
    let gone = post(
        r#"{"jsonrpc":"2.0","id":"left-early","method":"tools/call","params":{"name":"tb__slow","arguments":{"ms":1500}}}"#,
        "application/json",
    )
    .timeout(std::time::Duration::from_millis(300))
    .send()
    .await;
    assert!(gone.is_err(), "the client was meant to leave first");
    // The call ran to its end upstream and its record was committed.
    let record = eventually(10, || async {
        records(&gateway, "&tool=tb__slow")
            .await
            .into_iter()
            .find(|r| r["request_id"] == "left-early" && r["outcome"] == "allowed")
    })
    .await;
    assert_eq!(record["upstream_outcome"], "ok", "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_and_records_calls_in_flight_after_turning_unready() {
    let mut gateway = world(&open_policy(), "");
    let client = Arc::new(Client::connect(&gateway.url, &tester_token()).await);
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                client
                    .call("tb__slow", json!({"ms": 1500, "tag": format!("drain-{i}")}))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gateway.signal("TERM");
    // Unready first, while the calls still run and the listener still answers.
    let readyz = format!("{}/readyz", gateway.base());
    let unready = eventually(2, || async {
        let response = reqwest::get(&readyz).await.ok()?;
        (response.status() == 503).then_some(())
    })
    .await;
    assert_eq!(unready, ());
    // Every call in flight is answered, not cancelled.
    for call in calls {
        let result = call.await.unwrap().expect("answered during the drain");
        assert_eq!(text(&result), "done after 1 steps");
    }
    // The process exits on its own, its records committed.
    let db = gateway.dir.path().join("toolgate.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gateway.proc.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "toolgate did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}: {}", gateway.logs());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut statement = conn
        .prepare("SELECT body FROM decisions WHERE tool = 'tb__slow'")
        .unwrap();
    let bodies: Vec<Value> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for body in bodies {
        assert_eq!(body["outcome"], "allowed", "{body}");
        assert_eq!(body["upstream_outcome"], "ok", "{body}");
    }
}

#[tokio::test]
async fn metrics_count_a_known_sequence() {
    let gateway = world(&quickstart_policy(), "");
    let (alice, bob) = alice_and_bob(&gateway).await;
    alice.sql("SELECT count(*) FROM projects").await.unwrap();
    alice.sql("SELECT name FROM projects").await.unwrap();
    let denied = bob.sql("SELECT * FROM salaries").await.unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(alice.call("nobody__nothing", json!({})).await.is_err());
    assert_eq!(initialize_status(&gateway.url, "not-a-token").await, 401);

    let text = reqwest::Client::new()
        .get(format!("{}/metrics", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
    };
    assert_eq!(
        value(
            r#"toolgate_decisions_total{kind="tools/call",tool="sql__query",upstream="sql",decision="allow",outcome="allowed"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            r#"toolgate_decisions_total{kind="tools/call",tool="sql__query",upstream="sql",decision="deny",outcome="policy_denied"}"#
        ),
        1.0
    );
    // A name nobody exposes is not a label value.
    assert_eq!(
        value(
            r#"toolgate_decisions_total{kind="tools/call",tool="",upstream="",decision="deny",outcome="unknown_tool"}"#
        ),
        1.0
    );
    assert!(!text.contains("nobody__nothing"));
    assert_eq!(
        value(r#"toolgate_auth_refusals_total{reason="token_malformed"}"#),
        1.0
    );
    // Only the two allowed calls reached the upstream; every decision was recorded.
    assert_eq!(
        value(r#"toolgate_step_duration_seconds_count{step="upstream"}"#),
        2.0
    );
    assert!(value(r#"toolgate_step_duration_seconds_count{step="record"}"#) >= 4.0);
    assert_eq!(value(r#"toolgate_upstream_up{upstream="sql"}"#), 1.0);
    assert_eq!(value("toolgate_open_sessions"), 2.0);
    assert_eq!(value("toolgate_quarantined_tools"), 0.0);
    assert!(text.contains("toolgate_policy_bundle_info{version=\"sha256:"));
    // No principal, agent or session is a label.
    for who in ["alice", "bob", "assistant"] {
        assert!(!text.contains(who), "`{who}` in:\n{text}");
    }
}

fn verify_with(config: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["audit", "verify", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = toolgate(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Points `config` at a head file holding `head` (`None`: a file that does not exist).
fn with_head(config: &Path, gateway: &Gateway, head: Option<Value>) {
    let file = config.with_file_name("other.head");
    match head {
        Some(head) => std::fs::write(&file, head.to_string()).unwrap(),
        None => {
            let _ = std::fs::remove_file(&file);
        }
    }
    std::fs::write(
        config,
        std::fs::read_to_string(config).unwrap().replace(
            &gateway.dir.path().join("audit.head").display().to_string(),
            &file.display().to_string(),
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn audit_verify_needs_a_head_that_covers_the_chain() {
    let mut gateway = world(&open_policy(), "");
    echo_calls(&gateway, 4).await;
    stop(&mut gateway);
    let last = 5; // four calls and the shutdown marker
    let (_d, config) = copy_world(&gateway);
    let (ok, _, err) = verify_with(&config, &[]);
    assert!(ok, "{err}");
    // Every head older than the chain's end, and no head at all: refused unless --no-head, which names the
    // unverifiable tail.
    for covered in (0..last).rev() {
        let (_d, config) = copy_world(&gateway);
        let head = (covered > 0).then(|| {
            let conn = rusqlite::Connection::open(config.with_file_name("toolgate.db")).unwrap();
            let (id, mac, time_ms): (String, String, i64) = conn
                .query_row(
                    "SELECT id, mac, time_ms FROM decisions WHERE seq = ?1",
                    [covered],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            json!({"seq": covered, "id": id, "mac": mac, "time_ms": time_ms})
        });
        with_head(&config, &gateway, head);
        let (ok, out, err) = verify_with(&config, &[]);
        assert!(!ok, "head at {covered}: {out}");
        let expected = if covered == 0 {
            format!("no head has been published for records 1 to {last}")
        } else {
            format!(
                "records {} to {last} come after the published head (record {covered})",
                covered + 1
            )
        };
        assert!(err.contains(&expected), "{err}");
        assert!(err.contains("--no-head"), "{err}");
        let (ok, out, err) = verify_with(&config, &["--no-head"]);
        assert!(ok, "{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            report["unverifiable_tail"],
            json!([covered + 1, last]),
            "{out}"
        );
        assert!(err.contains("unverifiable"), "{err}");
    }
    // --no-head still finds what the chain itself shows: an altered record.
    let (_d, config) = copy_world(&gateway);
    with_head(&config, &gateway, None);
    tamper(
        &config,
        "UPDATE decisions SET outcome = 'policy_denied' WHERE seq = 2",
    );
    let (ok, _, err) = verify_with(&config, &["--no-head"]);
    assert!(!ok && err.contains("record 2 ("), "{err}");
}

/// `n` echo calls through one client.
async fn echo_calls(gateway: &Gateway, n: usize) {
    let client = gateway.client().await;
    for i in 0..n {
        client
            .call("tb__echo", json!({"text": format!("call {i}")}))
            .await
            .unwrap();
    }
}

/// Stops the gateway as an operator would (SIGTERM), which publishes the head.
fn stop(gateway: &mut Gateway) {
    let pid = gateway.proc.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    gateway.proc.child.wait().unwrap();
}

/// A raw `tools/call` with this id, tool name and arguments.
async fn raw_call(gateway: &Gateway, session: &str, id: Value, name: &str, arguments: Value) {
    let response = reqwest::Client::new()
        .post(&gateway.url)
        .bearer_auth(tester_token())
        .header("mcp-session-id", session)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": name, "arguments": arguments}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn what_a_caller_controls_is_bounded_in_records_and_unknown_names_share_a_row() {
    let gateway = world(&open_policy(), "  arguments: full\n");
    let session = raw_session(&gateway.url, &tester_token()).await;
    let huge = "y".repeat(200_000);
    // A huge id and tool name; a known tool with huge arguments.
    raw_call(&gateway, &session, json!(huge.clone()), &huge, json!({})).await;
    raw_call(
        &gateway,
        &session,
        json!(7),
        "tb__echo",
        json!({"text": huge.clone()}),
    )
    .await;
    // Many made-up names.
    for i in 0..40 {
        raw_call(
            &gateway,
            &session,
            json!(i),
            &format!("ghost__{i}"),
            json!({}),
        )
        .await;
    }
    let all = records(&gateway, "&kind=tools/call").await;
    let body = serde_json::to_string(&all).unwrap();
    assert!(body.len() < 200 * 1024, "records hold {} bytes", body.len());
    let named = all
        .iter()
        .find(|r| r["tool"].as_str().unwrap().starts_with("yyyy"))
        .unwrap();
    for field in ["tool", "request_id"] {
        let text = named[field].as_str().unwrap();
        assert!(text.len() < 1024, "{field}");
        assert!(
            text.contains("truncated from 200000 bytes, sha256 "),
            "{text}"
        );
        assert!(
            named["truncated"]
                .as_array()
                .unwrap()
                .contains(&json!(field)),
            "{named}"
        );
    }
    let echoed = all.iter().find(|r| r["tool"] == "tb__echo").unwrap();
    assert_eq!(echoed["arguments"]["truncated"], true, "{echoed}");
    assert!(echoed["arguments"]["bytes"].as_u64().unwrap() > 200_000);
    // The report: every name no catalog had, in one row.
    let report = gateway.admin_json("/reports").await;
    let tools = report["tools"].as_array().unwrap();
    assert!(
        tools.iter().all(|t| {
            let name = t["tool"].as_str().unwrap();
            !name.starts_with("ghost") && !name.starts_with("yyyy")
        }),
        "{report}"
    );
    let unknown = tools
        .iter()
        .find(|t| t["tool"] == "(unknown tools)")
        .expect("one row of unknown tools");
    assert_eq!(unknown["calls"], 41);
}

#[tokio::test]
async fn an_admin_action_that_cannot_be_recorded_is_not_carried_out() {
    let gateway = world(&open_policy(), "  busy_timeout: 100ms\n");
    let reloads = || async {
        gateway.admin_json("/policy").await["reloads"]
            .as_u64()
            .unwrap()
    };
    let before = reloads().await;
    let reload = || async {
        reqwest::Client::new()
            .post(format!("{}/policy/reload", gateway.admin_url))
            .bearer_auth(gateway.admin_credential())
            .send()
            .await
            .unwrap()
    };
    // Another process holds the database's write lock: the action is refused, and it did not happen.
    let db = gateway.dir.path().join("toolgate.db");
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let refused = reload().await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "audit_unavailable");
    assert_eq!(reloads().await, before, "the reload ran without a record");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // Recorded first, then carried out, then its outcome recorded.
    let done = eventually(10, || async {
        (reload().await.status() == 200).then_some(())
    })
    .await;
    assert_eq!(done, ());
    assert_eq!(reloads().await, before + 1);
    let actions = records(&gateway, "&kind=admin").await;
    let reload_records: Vec<&str> = actions
        .iter()
        .filter(|r| r["reasons"][0] == "POST /admin/policy/reload")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(reload_records.contains(&"requested"), "{reload_records:?}");
    assert!(reload_records.contains(&"http_200"), "{reload_records:?}");
}
