//! Replicas sharing one PostgreSQL: real `toolgate` processes on one real server (see `common/postgres.rs`),
//! each with its own listener, admin API, head file and chain, sharing the database and the audit key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// What the replicas of one test share: the database and the audit key.
struct World {
    server: pg::Server,
    database: String,
    shared: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let server = pg::Server::get();
        let database = server.database();
        Self {
            server,
            database,
            shared: tempfile::tempdir().unwrap(),
        }
    }

    fn key_file(&self) -> PathBuf {
        self.shared.path().join("audit.key")
    }

    /// The config of replica `name`: the quickstart's HR upstream, `extra` sections, the shared store.
    fn yaml(&self, name: &str, url: &str, storage_extra: &str, extra: &str) -> String {
        format!(
            "listen: 127.0.0.1:0\nupstreams:\n{}{extra}storage:\n  postgres:\n    url: \"{url}\"\n    replica: {name}\n    pool: 4\n{storage_extra}audit:\n  key_file: \"{}\"\n  flush_interval: 200ms\n",
            stdio_upstream("hr", "hr_directory", &[]),
            self.key_file().display(),
        )
    }

    fn replica(&self, name: &str, storage_extra: &str, extra: &str) -> Gateway {
        Gateway::start(&self.yaml(name, &self.database, storage_extra, extra))
    }
}

/// `POST /mcp` of `body` in `session`: the status and the answer's text; `None` when the request failed (a
/// replica killed meanwhile).
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    session: &str,
    body: &Value,
) -> Option<(u16, String)> {
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .header("Mcp-Session-Id", session)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// A call of the HR lookup, as JSON-RPC request `id`.
fn lookup(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "hr__lookup_employee", "arguments": {"id_or_email": "E1001"}}})
}

/// `POST /mcp` of a request naming a session nobody has: 404 once the credential is accepted, 401 once it is
/// revoked (the credential is checked first, and nothing is created).
async fn probe(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (status, text) = post(http, url, token, "no-such-session", &body)
        .await
        .unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn admin_post(gateway: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `tool` is listed to `client`.
async fn listed(client: &Client, tool: &str) {
    eventually(10, || async {
        client
            .tool_names()
            .await
            .iter()
            .any(|n| n == tool)
            .then_some(())
    })
    .await;
}

/// Waits until no tool named with `prefix` is listed to `client`.
async fn no_tools_of(client: &Client, prefix: &str) {
    eventually(10, || async {
        (!client
            .tool_names()
            .await
            .iter()
            .any(|n| n.starts_with(prefix)))
        .then_some(())
    })
    .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::test]
async fn a_revocation_through_one_replica_is_in_force_on_the_other_at_once() {
    let world = World::new();
    // B's safety-net poll is far slower than the bound asserted: only the notification can meet it.
    let a = world.replica("a", "", "");
    let b = world.replica("b", "    poll: 30s\n    stale_after: 60s\n", "");
    let http = reqwest::Client::new();

    // An open stream of the caller on B ends when the caller is revoked through A.
    let streamed = tester_token();
    let session = raw_session(&b.url, &streamed).await;
    let stream = http
        .get(&b.url)
        .bearer_auth(&streamed)
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (status, body) = admin_post(
        &a,
        "/revocations",
        json!({"kind": "token", "jti": jti(&streamed), "issuer": "toolgate-dev"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.bytes()).await;
    assert!(
        ended.is_ok(),
        "the revoked caller's stream on B stayed open"
    );
    assert_eq!(probe(&http, &b.url, &streamed).await.0, 401);

    // Propagation, measured: from the revocation's answer on A to the first refusal on B.
    let mut delays = Vec::new();
    for _ in 0..60 {
        let token = tester_token();
        assert_eq!(probe(&http, &b.url, &token).await.0, 404);
        let (status, body) = admin_post(
            &a,
            "/revocations",
            json!({"kind": "token", "jti": jti(&token), "issuer": "toolgate-dev"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let revoked = Instant::now();
        loop {
            let (status, body) = probe(&http, &b.url, &token).await;
            if status == 401 {
                assert_eq!(body["error"]["data"]["reason"], "token_revoked", "{body}");
                break;
            }
            assert_eq!(status, 404, "{body}");
            assert!(
                revoked.elapsed() < Duration::from_secs(5),
                "a revocation made through A was not in force on B after 5 s (B polls every 30 s)"
            );
        }
        delays.push(revoked.elapsed());
    }
    delays.sort();
    eprintln!(
        "revocation A -> B: n={} p50={:?} p99={:?} max={:?}",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
    // Both replicas saw the revoked credential presented.
    let metrics = b.admin_json("/revocations").await;
    assert!(
        metrics["revocations"].as_array().unwrap().len() >= 61,
        "{metrics}"
    );
}

// The relay runs on the test's runtime while a gateway starts (which blocks one thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_confirm_revocations_refuses_every_credential() {
    let world = World::new();
    let relay = pg::Relay::start(&pg::address(&world.database)).await;
    let b = Gateway::start(&world.yaml(
        "b",
        &relay.url_for(&world.database),
        "    poll: 200ms\n    stale_after: 1s\n",
        "",
    ));
    let http = reqwest::Client::new();
    let token = tester_token();
    assert_eq!(probe(&http, &b.url, &token).await.0, 404);
    relay.cut();
    let (status, body) = eventually(10, || async {
        let (status, body) = probe(&http, &b.url, &token).await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        body["error"]["data"]["reason"], "revocation_state_unknown",
        "{body}"
    );
    relay.restore();
    eventually(15, || async {
        (probe(&http, &b.url, &token).await.0 == 404).then_some(())
    })
    .await;
}

/// A policy that holds every call for an approver.
fn escalating_policy() -> String {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(
        dir.join("authz.rego"),
        "package toolgate.authz\n\ndefault decision := {\"allow\": true, \"escalate\": false, \"reasons\": [], \"obligations\": {\"clearance\": \"restricted\", \"redact\": []}}\n\ndecision := {\"allow\": false, \"escalate\": true, \"reasons\": [\"an approver decides\"], \"obligations\": {\"clearance\": \"restricted\", \"redact\": []}} if input.action == \"call\"\n",
    )
    .unwrap();
    format!(
        "policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
        dir.display(),
        fixture("manifests-empty").display()
    )
}

fn approval_id(result: &rmcp::model::CallToolResult) -> String {
    let text = text(result);
    assert!(text.contains("approval_required"), "{text}");
    text.split("Approval id: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_approval_granted_through_one_replica_lets_the_call_through_once_anywhere() {
    let world = World::new();
    let policy = escalating_policy();
    let a = world.replica("a", "", &policy);
    let b = world.replica("b", "", &policy);
    let token = tester_token();
    let on_a = Client::connect(&a.url, &token).await;
    let on_b = Client::connect(&b.url, &token).await;
    let args = json!({"id_or_email": "E1001"});

    let held = on_b
        .call("hr__lookup_employee", args.clone())
        .await
        .unwrap();
    let id = approval_id(&held);
    // The same call on A waits for the same approval.
    let again = on_a
        .call("hr__lookup_employee", args.clone())
        .await
        .unwrap();
    assert_eq!(approval_id(&again), id);
    let (status, body) = admin_post(&a, &format!("/approvals/{id}/approve"), json!({})).await;
    assert_eq!(status, 200, "{body}");

    // Both replicas race for it: exactly one call goes through.
    let (first, second) = tokio::join!(
        on_a.call("hr__lookup_employee", args.clone()),
        on_b.call("hr__lookup_employee", args.clone())
    );
    let results = [first.unwrap(), second.unwrap()];
    let through = results.iter().filter(|r| r.is_error != Some(true)).count();
    assert_eq!(through, 1, "{results:?}");
    let waiting = results.iter().find(|r| r.is_error == Some(true)).unwrap();
    assert_ne!(
        approval_id(waiting),
        id,
        "the used approval was offered again"
    );
    // And never again, on either.
    for client in [&on_a, &on_b] {
        let result = client
            .call("hr__lookup_employee", args.clone())
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(true), "{result:?}");
    }
    let used = a.admin_json(&format!("/approvals/{id}")).await;
    assert_eq!(used["status"], "used", "{used}");
}

#[tokio::test]
async fn upstreams_and_agents_changed_through_one_replica_reach_the_other() {
    let world = World::new();
    let registry = "registry:\n  allowed_networks: [127.0.0.0/8, '::1']\n";
    let a = world.replica("a", "", registry);
    let b = world.replica("b", "", registry);
    let testbed = HttpUpstream::start("testbed", &[]);
    let on_b = b.client().await;
    assert!(
        !on_b
            .tool_names()
            .await
            .iter()
            .any(|n| n.starts_with("tb__"))
    );

    let (status, body) = admin_post(
        &a,
        "/upstreams",
        json!({"name": "tb", "http": {"url": testbed.url}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    listed(&on_b, "tb__echo").await;
    let echoed = on_b.call("tb__echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(text(&echoed), "hi");

    let (status, body) = admin_post(&a, "/upstreams/tb/disable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    no_tools_of(&on_b, "tb__").await;
    let (status, body) = admin_post(&a, "/upstreams/tb/enable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    listed(&on_b, "tb__echo").await;
    let removed = reqwest::Client::new()
        .delete(format!("{}/upstreams/tb", a.admin_url))
        .bearer_auth(a.admin_credential())
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    no_tools_of(&on_b, "tb__").await;

    // An agent put through A: B accepts its tokens (and refused them before).
    let scout = dev_token(None, Some("scout"), &[], None);
    assert_eq!(probe(&reqwest::Client::new(), &b.url, &scout).await.0, 403);
    let put = reqwest::Client::new()
        .put(format!("{}/agents/scout", a.admin_url))
        .bearer_auth(a.admin_credential())
        .json(
            &json!({"owner": "ops", "description": "Scout", "scope": ["hr__*"], "max_classification": "restricted", "acts_alone": [{"issuer": "toolgate-dev", "subject": "scout"}]}),
        )
        .send()
        .await
        .unwrap();
    let put_status = put.status().as_u16();
    assert_eq!(put_status, 200, "{}", put.text().await.unwrap());
    eventually(10, || async {
        (probe(&reqwest::Client::new(), &b.url, &scout).await.0 == 404).then_some(())
    })
    .await;
}

/// `toolgate migrate --config CONFIG`.
fn migrate(config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["migrate", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// Records of `chain` in the database, as `(session, request id)`.
fn recorded_calls(database: &str, chain: &str) -> std::collections::HashSet<(String, String)> {
    let mut client = pg::connect(database);
    client
        .query(
            "SELECT body FROM decisions WHERE chain = $1 AND kind = 'tools/call'",
            &[&chain],
        )
        .unwrap()
        .iter()
        .filter_map(|row| {
            let body: Value = serde_json::from_str(row.get::<_, &str>(0)).ok()?;
            Some((
                body["session"].as_str()?.to_string(),
                body["request_id"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn verify(config: &Path, heads: &[PathBuf], no_head: bool) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    command.args(["audit", "verify", "--config"]).arg(config);
    for head in heads {
        command.arg("--head").arg(head);
    }
    if no_head {
        command.arg("--no-head");
    }
    command.output().unwrap()
}

#[tokio::test]
async fn a_replica_killed_under_load_loses_no_answered_record() {
    let world = World::new();
    let mut a = world.replica("a", "", "");
    let b = world.replica("b", "", "");
    // Calls on A from four clients, each remembering what was answered, until A is killed.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, answered) = (a.url.clone(), std::sync::Arc::clone(&answered));
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let token = tester_token();
            let session = raw_session(&url, &token).await;
            for n in 1.. {
                let Some((_, text)) = post(&http, &url, &token, &session, &lookup(n)).await else {
                    return;
                };
                if text.contains("\"result\"") {
                    answered
                        .lock()
                        .unwrap()
                        .push((session.clone(), n.to_string()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.signal("KILL");
    for task in load {
        let _ = task.await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 20,
        "too few calls answered before the kill: {}",
        answered.len()
    );
    let database = world.database.clone();
    let recorded = tokio::task::spawn_blocking(move || recorded_calls(&database, "a"))
        .await
        .unwrap();
    let missing: Vec<_> = answered.iter().filter(|c| !recorded.contains(c)).collect();
    assert!(missing.is_empty(), "answered without a record: {missing:?}");

    // B keeps serving.
    let on_b = b.client().await;
    let result = on_b
        .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");

    // Every chain verifies link by link (A's tail after its last published head cannot be covered: it was killed).
    let out = verify(
        &a.dir.path().join("toolgate.yaml"),
        &[b.dir.path().join("audit.head")],
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chains: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = chains
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chain"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);

    // A comes back on its own chain, where it left off.
    a.restart();
    let on_a = a.client().await;
    let result = on_a
        .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
}

#[tokio::test]
async fn audit_verify_checks_every_replicas_chain_against_its_head() {
    let world = World::new();
    let a = world.replica("a", "", "");
    let b = world.replica("b", "", "");
    for gateway in [&a, &b] {
        let client = gateway.client().await;
        for _ in 0..5 {
            client
                .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
                .await
                .unwrap();
        }
    }
    // Either replica's admin API reads the records and the report of both chains.
    let records = b.admin_json("/records?kind=tools/call&limit=100").await;
    let chains: std::collections::BTreeSet<&str> = records["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{records}"))
        .iter()
        .map(|r| r["chain_id"].as_str().unwrap())
        .collect();
    assert_eq!(chains, ["a", "b"].into_iter().collect(), "{records}");
    let page = a.admin_json("/records?kind=tools/call&limit=4").await;
    let next = page["next_after"].as_i64().unwrap();
    let rest = a
        .admin_json(&format!("/records?kind=tools/call&limit=100&after={next}"))
        .await;
    assert_eq!(
        page["records"].as_array().unwrap().len() + rest["records"].as_array().unwrap().len(),
        10
    );
    let report = a.admin_json("/reports").await;
    let lookups = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "hr__lookup_employee")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(lookups["calls"], 10, "{report}");
    // Stopped cleanly, each publishes its head.
    for gateway in [&a, &b] {
        gateway.signal("TERM");
    }
    let (config, b_head) = (
        a.dir.path().join("toolgate.yaml"),
        b.dir.path().join("audit.head"),
    );
    eventually(20, || async {
        let out = verify(&config, std::slice::from_ref(&b_head), false);
        out.status.success().then_some(())
    })
    .await;
    let out = verify(&config, std::slice::from_ref(&b_head), false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chain `a` verified") && stderr.contains("chain `b` verified"),
        "{stderr}"
    );
    // Without B's head, B's chain cannot be checked for a cut-off tail.
    let out = verify(&config, &[], false);
    assert!(
        !out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // One record of B's chain altered: named.
    pg::execute(
        &world.database,
        "UPDATE decisions SET body = body || ' ' WHERE chain = 'b' AND seq = 3",
    )
    .await;
    let out = verify(&config, std::slice::from_ref(&b_head), false);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chain `b` does not verify: record 3"),
        "{stderr}"
    );
    assert!(stderr.contains("chain `a` verified"), "{stderr}");
    // Chain A removed whole: its published head still names it.
    pg::execute(
        &world.database,
        "DELETE FROM decisions WHERE chain = 'a'; DELETE FROM chains WHERE chain = 'a'",
    )
    .await;
    let out = verify(&config, std::slice::from_ref(&b_head), false);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chain `a` does not verify") && stderr.contains("cut off"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_session_continues_on_another_replica() {
    let world = World::new();
    let mut a = world.replica("a", "", "");
    let b = world.replica("b", "", "");
    let token = tester_token();
    let session = raw_session(&a.url, &token).await;
    let http = reqwest::Client::new();
    let call = |url: String, token: String, session: String| {
        let http = http.clone();
        async move {
            post(&http, &url, &token, &session, &lookup(7))
                .await
                .unwrap()
        }
    };
    a.signal("KILL");
    let (status, body) = call(b.url.clone(), token.clone(), session.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"result\"") && body.contains("E1001"),
        "{body}"
    );
    // Another subject cannot take it over.
    let other = dev_token(Some("mallory"), Some("tester"), &[], None);
    let (status, _) = call(b.url.clone(), other, session.clone()).await;
    assert_eq!(status, 403);
    // Ended by its client on B: no replica resumes it.
    let deleted = http
        .delete(&b.url)
        .bearer_auth(&token)
        .header("Mcp-Session-Id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    a.restart();
    let (status, body) = call(a.url.clone(), token.clone(), session.clone()).await;
    assert_eq!(status, 404, "{body}");
    // A session id toolgate never sealed is unknown, as before.
    let (status, _) = call(b.url.clone(), token.clone(), "0123456789abcdef".into()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_replica_refuses_to_start_without_a_store_it_knows() {
    let world = World::new();
    let start = |yaml: String| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
        let config = dir.path().join("toolgate.yaml");
        std::fs::write(
            &config,
            format!("{yaml}{}{}", test_auth("agents.yaml"), open_policy()),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(["serve", "--dev", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, stderr) = start(world.yaml(
        "a",
        &format!("postgres://toolgate@127.0.0.1:{port}/nowhere"),
        "",
        "",
    ));
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot reach postgres at 127.0.0.1:{port}/nowhere"
        )),
        "{stderr}"
    );

    // A second running replica of the same name would fork its chain.
    let _a = world.replica("a", "", "");
    let (ok, stderr) = start(world.yaml("a", &world.database, "    connect_timeout: 1s\n", ""));
    assert!(!ok);
    assert!(stderr.contains("another running replica"), "{stderr}");

    // A schema newer than this build knows.
    pg::execute(
        &world.database,
        "INSERT INTO toolgate_schema (version, applied_at) VALUES (99, 0)",
    )
    .await;
    let (ok, stderr) = start(world.yaml("c", &world.database, "", ""));
    assert!(!ok);
    assert!(stderr.contains("schema is version 99"), "{stderr}");
    // `toolgate migrate` says the same, and applies nothing.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(&config, world.yaml("c", &world.database, "", "")).unwrap();
    let out = migrate(&config);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema is version 99"));
    // On an empty database it applies every migration, once.
    std::fs::write(&config, world.yaml("c", &world.server.database(), "", "")).unwrap();
    for _ in 0..2 {
        let out = migrate(&config);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = &world.server;
}

#[tokio::test]
async fn a_pin_decided_through_one_replica_applies_on_the_other() {
    let world = World::new();
    let pinning = format!(
        "{}pinning:\n  first_sight: require_approval\n",
        stdio_upstream("tb", "testbed", &[])
    );
    let a = world.replica("a", "", &pinning);
    let b = world.replica("b", "", &pinning);
    let on_b = b.client().await;
    // Every tool waits for an approver on both.
    eventually(10, || async {
        let pins = b.admin_json("/pins?status=quarantined").await;
        pins["pins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["tool"] == "tb__echo")
            .then_some(())
    })
    .await;
    assert!(!on_b.tool_names().await.contains(&"tb__echo".to_string()));
    let (status, body) = admin_post(&a, "/pins/tb__echo/approve", json!({})).await;
    assert_eq!(status, 200, "{body}");
    listed(&on_b, "tb__echo").await;
    let echoed = on_b.call("tb__echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(text(&echoed), "hi");
    // Another tool rejected through B: rejected on A too, and never listed there.
    let tool = "tb__set_echo_description";
    let (status, body) = admin_post(&b, &format!("/pins/{tool}/reject"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    eventually(10, || async {
        (a.admin_json(&format!("/pins/{tool}")).await["status"] == "rejected").then_some(())
    })
    .await;
    let on_a = a.client().await;
    let names = on_a.tool_names().await;
    assert!(
        names.contains(&"tb__echo".to_string()) && !names.contains(&tool.to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_resumed_session_stays_its_agents() {
    let world = World::new();
    // The quickstart's agents: alice through the assistant, and through the assistant's summarizer.
    let auth = test_auth(&quickstart_agents());
    let a = world.replica("a", "", &auth);
    let b = world.replica("b", "", &auth);
    let assistant = user_token("alice", &["hr"], "assistant", &[]);
    let summarizer = user_token("alice", &["hr"], "assistant", &["summarizer"]);
    let session = raw_session(&a.url, &assistant).await;
    let http = reqwest::Client::new();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let ping = |token: String, session: String| {
        let (http, url, ping) = (http.clone(), b.url.clone(), ping.clone());
        async move { post(&http, &url, &token, &session, &ping).await.unwrap().0 }
    };
    // The same person through another agent does not take it over on another replica.
    assert_eq!(ping(summarizer, session.clone()).await, 403);
    assert_eq!(ping(assistant.clone(), session).await, 200);
    // A made-up id as long as any header, and one sealed by no replica: unknown.
    assert_eq!(ping(assistant, "A".repeat(8192)).await, 404);
}

/// A certificate authority and a server certificate for 127.0.0.1 (openssl), in `dir`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=toolgate test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test]
async fn a_replica_reaches_postgresql_over_verified_tls() {
    let server = pg::Server::start_own();
    let data = server.data_dir();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    // The server's key and certificate, the cluster owner's alone.
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&data).unwrap());
    for file in ["server.key", "server.pem"] {
        std::fs::copy(certs.path().join(file), data.join(file)).unwrap();
        std::os::unix::fs::chown(data.join(file), Some(owner), None).unwrap();
        std::fs::set_permissions(
            data.join(file),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }
    server.execute(&[
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET ssl_cert_file = 'server.pem'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "SELECT pg_reload_conf()",
    ]);
    let database = format!("{}?sslmode=require", server.database());
    let shared = tempfile::tempdir().unwrap();
    let yaml = |ca: &str| {
        format!(
            "listen: 127.0.0.1:0\nupstreams:\n{}storage:\n  postgres:\n    url: \"{database}\"\n    replica: a\n{ca}audit:\n  key_file: \"{}\"\n",
            stdio_upstream("hr", "hr_directory", &[]),
            shared.path().join("audit.key").display()
        )
    };
    // Without the authority that signed the server's certificate: refused, and said why.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!("{}{}{}", yaml(""), test_auth("agents.yaml"), open_policy()),
    )
    .unwrap();
    let out = migrate(&config);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    // With it: the replica serves, and every connection it holds is encrypted.
    let ca = format!(
        "    ca_file: \"{}\"\n",
        certs.path().join("ca.pem").display()
    );
    let a = Gateway::start(&yaml(&ca));
    let client = a.client().await;
    let result = client
        .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let url = server.url.clone();
    let (plain, encrypted) = tokio::task::spawn_blocking(move || {
        let row = pg::connect(&url)
            .query_one(
                "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'toolgate%'",
                &[],
            )
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    })
    .await
    .unwrap();
    assert_eq!(plain, 0);
    assert!(
        encrypted >= 2,
        "the writer's and the listener's at least: {encrypted}"
    );
}
