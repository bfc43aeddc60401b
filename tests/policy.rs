//! Policy as code, end to end: the real binary with the quickstart bundle in front of the real example upstreams,
//! driven by rmcp clients with the quickstart's users, agents and sub-agent. The example upstreams are permissive
//! (the SQL tool runs any statement, the file store writes anywhere under its root), so every refusal here is
//! toolgate's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};

/// A sandbox like the quickstart's: a README at the root and a report under `reports/`.
fn sandbox() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(
        dir.join("README.txt"),
        "Welcome to the shared file store.\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    std::fs::write(dir.join("reports/q3.md"), "# Q3\nRevenue up.\n").unwrap();
    dir
}

fn agents_file() -> String {
    quickstart_agents()
}

/// The quickstart world with `policy` as its policy section (and `extra` config appended).
fn quickstart_with(policy: &str, extra: &str) -> (Gateway, PathBuf) {
    let sandbox = sandbox();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{policy}{extra}",
        quickstart_upstreams_in(&sandbox),
        test_auth(&agents_file()),
    );
    (Gateway::start(&yaml), sandbox)
}

fn quickstart() -> (Gateway, PathBuf) {
    quickstart_with(&quickstart_policy(), "")
}

fn alice() -> String {
    user_token("alice", &["hr"], "assistant", &[])
}

fn carol() -> String {
    user_token("carol", &["hr", "hr-admin"], "assistant", &[])
}

fn bob() -> String {
    user_token("bob", &["engineering"], "assistant", &[])
}

fn erin() -> String {
    user_token("erin", &["engineering"], "assistant", &[])
}

fn alice_summarizer() -> String {
    user_token("alice", &["hr"], "assistant", &["summarizer"])
}

fn nightly() -> String {
    dev_token(None, Some("nightly-report"), &[], None)
}

/// A result refused by toolgate itself (never an upstream error).
fn assert_refused_by_toolgate(result: &rmcp::model::CallToolResult, needle: &str) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let text = text(result);
    assert!(
        text.starts_with("toolgate refused this call") && text.contains("policy_denied"),
        "{text}"
    );
    assert!(text.contains(needle), "`{needle}` not in: {text}");
}

async fn sql(client: &Client, statement: &str) -> rmcp::model::CallToolResult {
    client.sql(statement).await.unwrap()
}

fn rows(result: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(result));
    result.structured_content.as_ref().unwrap()["rows"].clone()
}

#[tokio::test]
async fn each_caller_sees_exactly_what_the_rules_say() {
    let (gateway, _sandbox) = quickstart();
    let all_files = ["files__list_files", "files__read_file", "files__write_file"];
    let sql_tools = ["sql__list_tables", "sql__query"];
    let hr_tools = [
        "hr__employee_card",
        "hr__lookup_employee",
        "hr__search_employees",
    ];
    let expect = |groups: &[&[&str]]| {
        let mut v: Vec<String> = groups
            .iter()
            .flat_map(|g| g.iter().map(|s| s.to_string()))
            .collect();
        v.sort();
        v
    };
    let alice = Client::connect(&gateway.url, &alice()).await;
    assert_eq!(
        alice.tool_names().await,
        expect(&[&all_files, &hr_tools, &sql_tools])
    );
    let bob = Client::connect(&gateway.url, &bob()).await;
    assert_eq!(bob.tool_names().await, expect(&[&all_files, &sql_tools]));
    let nightly = Client::connect(&gateway.url, &nightly()).await;
    assert_eq!(nightly.tool_names().await, expect(&[&sql_tools]));
    let summarizer = Client::connect(&gateway.url, &alice_summarizer()).await;
    assert_eq!(
        summarizer.tool_names().await,
        expect(&[&["files__list_files", "files__read_file"]])
    );
    // A human without any role sees nothing.
    let nobody = Client::connect(&gateway.url, &user_token("dana", &[], "assistant", &[])).await;
    assert!(nobody.tool_names().await.is_empty());

    // A hidden tool answers exactly like an unknown one.
    let hidden = bob
        .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap_err()
        .to_string();
    let unknown = bob
        .call("hr__no_such_tool", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        hidden.contains("Unknown tool: hr__lookup_employee"),
        "{hidden}"
    );
    assert_eq!(
        hidden.replace("hr__lookup_employee", "X"),
        unknown.replace("hr__no_such_tool", "X")
    );
    let hidden = nightly
        .call("files__read_file", json!({"path": "README.txt"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(hidden.contains("Unknown tool"), "{hidden}");
    // HR users reach the directory through their assistant.
    let found = alice
        .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
        .await
        .unwrap();
    assert_ne!(found.is_error, Some(true), "{}", text(&found));
}

#[tokio::test]
async fn sql_is_decided_on_the_arguments_of_each_call() {
    let (gateway, _sandbox) = quickstart();
    let alice = Client::connect(&gateway.url, &alice()).await;
    let bob = Client::connect(&gateway.url, &bob()).await;
    let carol = Client::connect(&gateway.url, &carol()).await;
    let nightly = Client::connect(&gateway.url, &nightly()).await;

    // Read-only queries on tables the role may read go through.
    let salaries = sql(
        &alice,
        "SELECT employee_id, amount FROM salaries ORDER BY 1",
    )
    .await;
    assert_eq!(rows(&salaries).as_array().unwrap().len(), 6);
    let customers = sql(&bob, "SELECT count(*) FROM customers").await;
    assert_eq!(rows(&customers), json!([[3]]));

    // The same tool, other arguments: refused by toolgate, with a reason the model can act on.
    assert_refused_by_toolgate(
        &sql(&bob, "SELECT * FROM salaries").await,
        "table `salaries`",
    );
    assert_refused_by_toolgate(
        &sql(&bob, "select * from projects p join salaries s on 1=1").await,
        "table `salaries`",
    );
    assert_refused_by_toolgate(
        &sql(&carol, "DELETE FROM customers").await,
        "`delete` statement",
    );
    assert_refused_by_toolgate(
        &sql(&carol, "WITH x AS (SELECT 1) DELETE FROM customers").await,
        "`delete` statement",
    );
    assert_refused_by_toolgate(
        &sql(&carol, "SELECT 1; DROP TABLE customers").await,
        "2 statements",
    );
    assert_refused_by_toolgate(
        &sql(&carol, "ATTACH DATABASE '/tmp/x.db' AS x").await,
        "`attach` statement",
    );
    assert_refused_by_toolgate(
        &sql(&carol, "PRAGMA writable_schema = 1").await,
        "`pragma` statement",
    );
    assert_refused_by_toolgate(
        &sql(&carol, "SELEC * FRM x").await,
        "not a SQL statement toolgate can parse",
    );
    assert_refused_by_toolgate(
        &sql(&alice, "SELECT * FROM sqlite_master").await,
        "table `sqlite_master`",
    );
    // A wrong type never reaches policy: the tool's inputSchema refuses it first.
    let wrong_type = carol.call("sql__query", json!({"sql": 42})).await.unwrap();
    assert_eq!(wrong_type.is_error, Some(true));
    let said = text(&wrong_type);
    assert!(
        said.starts_with("toolgate refused this call")
            && said.contains("reason `invalid_arguments`"),
        "{said}"
    );

    // The nightly job: read-only queries on its own tables, nothing else.
    let projects = sql(&nightly, "SELECT count(*) FROM projects").await;
    assert_eq!(rows(&projects), json!([[4]]));
    assert_refused_by_toolgate(
        &sql(&nightly, "SELECT * FROM employees").await,
        "table `employees`",
    );
    assert_refused_by_toolgate(
        &sql(&nightly, "UPDATE projects SET status = 'x'").await,
        "`update` statement",
    );

    // The upstream runs whatever it is sent; none of the writes above reached it.
    assert_eq!(
        rows(&sql(&carol, "SELECT count(*) FROM employees").await),
        json!([[6]])
    );
    assert_eq!(
        rows(&sql(&bob, "SELECT count(*) FROM customers").await),
        json!([[3]])
    );
    assert_eq!(
        rows(&sql(&bob, "SELECT count(*) FROM projects WHERE status = 'x'").await),
        json!([[0]])
    );
    let logs = gateway.logs();
    assert!(logs.contains("outcome=policy_denied"), "{logs}");
}

#[tokio::test]
async fn file_paths_stay_under_each_agents_root() {
    let (gateway, _sandbox) = quickstart();
    let alice = Client::connect(&gateway.url, &alice()).await;
    let summarizer = Client::connect(&gateway.url, &alice_summarizer()).await;
    // The assistant may read anywhere in the store; the summarizer only under `reports/`.
    let readme = read(&alice, "README.txt").await;
    assert!(text(&readme).contains("Welcome"), "{}", text(&readme));
    let report = read(&summarizer, "reports/q3.md").await;
    assert!(text(&report).contains("Revenue"), "{}", text(&report));
    let list = summarizer
        .call("files__list_files", json!({"path": "reports"}))
        .await
        .unwrap();
    assert_ne!(list.is_error, Some(true), "{}", text(&list));
    // The upstream would serve these: toolgate refuses them.
    assert_refused_by_toolgate(&read(&summarizer, "README.txt").await, "`reports/`");
    assert_refused_by_toolgate(
        &read(&summarizer, "reports/../README.txt").await,
        "`reports/`",
    );
    // Leaving the path out lists the store's root: not for the summarizer.
    let root = summarizer
        .call("files__list_files", json!({}))
        .await
        .unwrap();
    assert_refused_by_toolgate(&root, "`reports/`");
    for escape in ["../../etc/passwd", "/etc/passwd", "reports/../../x"] {
        assert_refused_by_toolgate(&read(&alice, escape).await, "outside the tool's root");
    }
    // Spellings the tool could read otherwise than toolgate: percent-encoding, backslashes, NUL.
    for ambiguous in [
        "%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e/secret",
        "reports\\..\\..\\x",
        "a\u{0}b",
    ] {
        assert_refused_by_toolgate(&read(&alice, ambiguous).await, "not a plain path");
    }
    for ambiguous in ["reports%2f..%2fREADME.txt", "%72eports/q3.md"] {
        assert_refused_by_toolgate(&read(&summarizer, ambiguous).await, "not a plain path");
    }
    // The summarizer never writes, whatever its parent may do: it does not even see the tool.
    let write = summarizer
        .call(
            "files__write_file",
            json!({"path": "reports/x.md", "content": "x"}),
        )
        .await
        .unwrap_err();
    assert!(write.to_string().contains("Unknown tool"), "{write}");
}

async fn read(client: &Client, path: &str) -> rmcp::model::CallToolResult {
    client
        .call("files__read_file", json!({ "path": path }))
        .await
        .unwrap()
}

/// GET on the admin API with the bootstrap credential.
async fn admin_get(gateway: &Gateway, path: &str) -> Value {
    gateway.admin_json(path).await
}

fn approval_id(result: &rmcp::model::CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let text = text(result);
    assert!(text.contains("approval_required"), "{text}");
    let id = text
        .split("Approval id: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default()
        .to_string();
    assert!(id.starts_with("apr_"), "{text}");
    assert!(text.contains("valid until"), "{text}");
    id
}

fn approvals_cli(gateway: &Gateway, args: &[&str]) -> std::process::Output {
    let credential = gateway.dir.path().join("admin.token");
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("approvals")
        .args(args)
        .args(["--admin-url", gateway.admin_url.trim_end_matches("/admin")])
        .arg("--credential-file")
        .arg(&credential)
        .output()
        .unwrap()
}

#[tokio::test]
async fn file_writes_wait_for_a_human_approver() {
    // alice's token comes from a real (non-development) issuer so that she can also hold an admin token.
    let sandbox = sandbox();
    let second_issuer = format!(
        "    - issuer: https://idp.example\n      audience: toolgate\n      jwks_file: \"{}\"\n      roles_claim: roles\n  agents_file:",
        other_jwks()
    );
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}admin:\n  listen: 127.0.0.1:0\n  subjects:\n    - {{issuer: https://idp.example, subject: alice}}\n",
        stdio_upstream(
            "files",
            "file_store",
            &["--root", sandbox.to_str().unwrap()]
        ),
        test_auth(&agents_file()).replace("  agents_file:", &second_issuer),
        quickstart_policy(),
    );
    let gateway = Gateway::start(&yaml);
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mut claims = toolgate::identity::token::claims(
        &toolgate::identity::token::TokenRequest {
            subject: Some("alice".into()),
            roles: vec!["hr".into()],
            agent: Some("assistant".into()),
            via: Vec::new(),
            scope: None,
            audience: "toolgate".into(),
            ttl: std::time::Duration::from_secs(600),
        },
        now,
    )
    .unwrap();
    claims.insert("iss".into(), json!("https://idp.example"));
    let alice = Client::connect(&gateway.url, &sign_other(&claims)).await;
    claims.insert("aud".into(), json!("toolgate-admin"));
    claims.remove("act");
    let alice_admin = sign_other(&claims);

    let args = json!({"path": "notes/plan.txt", "content": "ship it"});
    let held = alice.call("files__write_file", args.clone()).await.unwrap();
    let id = approval_id(&held);
    assert!(
        !sandbox.join("notes/plan.txt").exists(),
        "the upstream was called"
    );
    // Asking again for the same call names the same approval; different arguments are another request.
    let again = alice.call("files__write_file", args.clone()).await.unwrap();
    assert_eq!(approval_id(&again), id);
    let other = alice
        .call(
            "files__write_file",
            json!({"path": "notes/plan.txt", "content": "other"}),
        )
        .await
        .unwrap();
    let other_id = approval_id(&other);
    assert_ne!(other_id, id);

    let pending = admin_get(&gateway, "/approvals?status=pending").await;
    let listed = pending["approvals"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{pending}");
    let record = listed.iter().find(|a| a["id"] == id.as_str()).unwrap();
    assert_eq!(record["subject"], "alice");
    assert_eq!(record["issuer"], "https://idp.example");
    assert_eq!(record["chain"], json!(["assistant"]));
    assert_eq!(record["tool"], "files__write_file");
    assert_eq!(record["arguments_hash"].as_str().unwrap().len(), 64);
    assert!(record["reasons"][0].as_str().unwrap().contains("approver"));

    // The caller can never grant her own call, even as an admin.
    let own = reqwest::Client::new()
        .post(format!("{}/approvals/{id}/approve", gateway.admin_url))
        .bearer_auth(&alice_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 403);
    let own: Value = own.json().await.unwrap();
    assert_eq!(own["reason"], "self_approval");

    // Another admin approves through the CLI; the identical call then goes through, once.
    let approved = approvals_cli(&gateway, &["approve", &id]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let denied = approvals_cli(&gateway, &["deny", &other_id]);
    assert!(denied.status.success());
    let twice = approvals_cli(&gateway, &["approve", &id]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("approval_not_pending"));

    // Key order does not matter: the arguments are compared canonically.
    let reordered = json!({"content": "ship it", "path": "notes/plan.txt"});
    let written = alice.call("files__write_file", reordered).await.unwrap();
    assert_ne!(written.is_error, Some(true), "{}", text(&written));
    assert_eq!(
        std::fs::read_to_string(sandbox.join("notes/plan.txt")).unwrap(),
        "ship it"
    );
    // Single use: the same call is held again.
    std::fs::remove_file(sandbox.join("notes/plan.txt")).unwrap();
    let third = alice.call("files__write_file", args).await.unwrap();
    assert_ne!(approval_id(&third), id);
    assert!(!sandbox.join("notes/plan.txt").exists());
    // A denied call is not put to an approver again (no approver fatigue), and never goes through.
    let refused = alice
        .call(
            "files__write_file",
            json!({"path": "notes/plan.txt", "content": "other"}),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let refusal = text(&refused);
    assert!(
        refusal.contains("approval_denied") && refusal.contains(&other_id),
        "{refusal}"
    );
    assert!(!sandbox.join("notes/plan.txt").exists());
    let all = approvals_cli(&gateway, &["list"]);
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    let statuses: Vec<&str> = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        {
            let mut s = statuses.clone();
            s.sort();
            s
        },
        vec!["denied", "pending", "used"]
    );
    let pending = admin_get(&gateway, "/approvals?status=pending").await;
    assert_eq!(
        pending["approvals"].as_array().unwrap().len(),
        1,
        "{pending}"
    );
}

/// A copy of the shipped bundle that a test may edit.
fn bundle_copy() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(dir.join("toolgate")).unwrap();
    for file in [
        "access.yaml",
        "toolgate/authz.rego",
        "toolgate/authz_test.rego",
    ] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    dir
}

fn policy_in(dir: &Path) -> String {
    format!(
        "policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
        dir.display(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tool-manifests")
            .display()
    )
}

/// Readiness details with the policy in force, from the admin listener.
async fn health(gateway: &Gateway) -> Value {
    gateway.admin_json("/readyz").await
}

#[tokio::test]
async fn policy_reloads_keep_the_last_good_bundle() {
    let bundle = bundle_copy();
    let (gateway, _sandbox) = quickstart_with(&policy_in(&bundle), "");
    let first = health(&gateway).await["policy"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first.starts_with("sha256:"));
    // erin is an engineer; the directory in the policy data can make her an HR user too.
    let bob = Client::connect(&gateway.url, &erin()).await;
    assert!(!bob.tool_names().await.iter().any(|t| t.starts_with("hr__")));

    // A data change on disk is picked up, and connected clients are told to list again.
    let access = std::fs::read_to_string(bundle.join("access.yaml")).unwrap();
    let widened = access.replace("users: {}", "users: {toolgate-dev: {erin: {roles: [hr]}}}");
    assert_ne!(access, widened);
    std::fs::write(bundle.join("access.yaml"), &widened).unwrap();
    let second: String = eventually(10, || async {
        let v = health(&gateway).await["policy"]["version"]
            .as_str()
            .unwrap()
            .to_string();
        (v != first).then_some(v)
    })
    .await;
    bob.wait_for_list_changed().await;
    assert!(
        bob.tool_names()
            .await
            .contains(&"hr__lookup_employee".to_string())
    );

    // A bundle that does not compile is refused with file and line; the last good one stays in force.
    std::fs::write(
        bundle.join("toolgate/broken.rego"),
        "package toolgate.extra\n\nbroken := {\n",
    )
    .unwrap();
    let error: String = eventually(10, || async {
        health(&gateway).await["policy"]["last_error"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert!(error.contains("broken.rego:"), "{error}");
    let status = health(&gateway).await["policy"].clone();
    assert_eq!(status["version"], second.as_str());
    assert!(status["reload_failures"].as_u64().unwrap() >= 1);
    assert!(
        bob.tool_names()
            .await
            .contains(&"hr__lookup_employee".to_string())
    );

    // A bundle whose Rego tests fail is refused too, here through the admin API.
    std::fs::remove_file(bundle.join("toolgate/broken.rego")).unwrap();
    std::fs::write(
        bundle.join("toolgate/extra_test.rego"),
        "package toolgate.extra_test\n\nimport data.toolgate.authz\n\ntest_everyone_sees_everything if authz.decision.allow with input as {}\n",
    )
    .unwrap();
    let reload = reqwest::Client::new()
        .post(format!("{}/policy/reload", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 422);
    let body: Value = reload.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("test_everyone_sees_everything"),
        "{body}"
    );
    assert_eq!(body["status"]["version"], second.as_str());

    // Fixed, and reloaded on SIGHUP (file watching is off for this check).
    std::fs::remove_file(bundle.join("toolgate/extra_test.rego")).unwrap();
    std::fs::write(bundle.join("access.yaml"), &access).unwrap();
    gateway.signal("HUP");
    eventually(10, || async {
        let p = health(&gateway).await["policy"].clone();
        (p["version"] == first.as_str() && p["last_error"].is_null()).then_some(())
    })
    .await;
    assert!(!bob.tool_names().await.iter().any(|t| t.starts_with("hr__")));
}

#[tokio::test]
async fn policy_reload_on_sighup_without_file_watching() {
    let bundle = bundle_copy();
    let policy = format!("{}  watch: false\n", policy_in(&bundle));
    let (gateway, _sandbox) = quickstart_with(&policy, "");
    let first = health(&gateway).await["policy"]["version"].clone();
    let erin = Client::connect(&gateway.url, &erin()).await;
    assert_refused_by_toolgate(
        &sql(&erin, "SELECT count(*) FROM salaries").await,
        "table `salaries`",
    );
    let access = std::fs::read_to_string(bundle.join("access.yaml")).unwrap();
    std::fs::write(
        bundle.join("access.yaml"),
        access.replace("users: {}", "users: {toolgate-dev: {erin: {roles: [hr]}}}"),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(health(&gateway).await["policy"]["version"], first);
    let pid = gateway.proc.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    eventually(10, || async {
        (health(&gateway).await["policy"]["version"] != first).then_some(())
    })
    .await;
    assert_eq!(
        rows(&sql(&erin, "SELECT count(*) FROM salaries").await),
        json!([[6]])
    );
}

/// `toolgate serve` with a bundle folder holding `files`; returns its exit status and stderr.
fn serve_with_bundle(files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("policies");
    std::fs::create_dir_all(&bundle).unwrap();
    for (name, text) in files {
        std::fs::write(bundle.join(name), text).unwrap();
    }
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{}{}admin:\n  listen: 127.0.0.1:0\n",
            test_auth(&agents_file()),
            policy_in(&bundle)
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["serve", "--dev", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.success(), stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (true, "still running".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_bad_bundle_refuses_to_start() {
    let (ok, stderr) = serve_with_bundle(&[(
        "authz.rego",
        "package toolgate.authz\n\ndecision := {\"allow\": true\n",
    )]);
    assert!(!ok);
    assert!(stderr.contains("authz.rego:"), "{stderr}");
    let (ok, stderr) =
        serve_with_bundle(&[("authz.rego", "package toolgate.authz\n\nallow := true\n")]);
    assert!(!ok);
    assert!(stderr.contains("data.toolgate.authz.decision"), "{stderr}");
    let (ok, stderr) = serve_with_bundle(&[
        (
            "authz.rego",
            "package toolgate.authz\n\ndecision := {\"allow\": false}\n",
        ),
        (
            "authz_test.rego",
            "package toolgate.authz_test\n\nimport data.toolgate.authz\n\ntest_allows if authz.decision.allow\n",
        ),
    ]);
    assert!(!ok);
    assert!(stderr.contains("test_allows"), "{stderr}");
    let (ok, stderr) = serve_with_bundle(&[("data.yaml", "toolgate: {}\n")]);
    assert!(!ok);
    assert!(stderr.contains("no Rego policy"), "{stderr}");
    let (ok, stderr) = serve_with_bundle(&[
        (
            "authz.rego",
            "package toolgate.authz\n\ndecision := {\"allow\": false}\n",
        ),
        ("data.yaml", "toolgate:\n  manifests: 5\n"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("data.yaml"), "{stderr}");
}

/// The quickstart world with a one-file bundle; returns the gateway and a connected HR user.
async fn with_rule(rego: &str) -> (Gateway, Client, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(dir.join("authz.rego"), rego).unwrap();
    let (gateway, sandbox) = quickstart_with(&policy_in(&dir), "");
    let client = Client::connect(&gateway.url, &alice()).await;
    (gateway, client, sandbox)
}

#[tokio::test]
async fn when_the_policy_cannot_decide_nothing_is_called() {
    // Each bundle lets every tool be listed and breaks the call decision in one way.
    let listed = "package toolgate.authz\n\ndecision := {\"allow\": true, \"escalate\": false, \"reasons\": [], \"obligations\": {}} if input.action == \"list\"\n";
    let cases = [
        (
            "decision := {\"allow\": \"yes\", \"reasons\": []} if input.action == \"call\"\n",
            "policy_wrong_shape",
        ),
        ("", "policy_undefined"),
        (
            "spin := count([1 | input.action == \"call\"; some i in numbers.range(1, 5000); some j in numbers.range(1, 5000)])\n\ndecision := {\"allow\": spin > 0, \"escalate\": false, \"reasons\": [], \"obligations\": {}} if input.action == \"call\"\n",
            "policy_limit",
        ),
        (
            "decision := {\"allow\": true, \"escalate\": false, \"reasons\": [], \"obligations\": {\"clearance\": \"secret\"}} if input.action == \"call\"\n",
            "policy_wrong_shape",
        ),
        (
            "decision := {\"allow\": true, \"escalate\": true, \"reasons\": []} if input.action == \"call\"\n",
            "policy_wrong_shape",
        ),
    ];
    for (call_rule, reason) in cases {
        let (gateway, client, sandbox) = with_rule(&format!("{listed}\n{call_rule}")).await;
        assert!(
            client
                .tool_names()
                .await
                .contains(&"files__write_file".to_string()),
            "{reason}"
        );
        // The call is an internal error with the reason id; the upstream is never reached.
        let error = client
            .call(
                "files__write_file",
                json!({"path": "x.txt", "content": "x"}),
            )
            .await
            .unwrap_err();
        let rmcp::ServiceError::McpError(data) = &error else {
            panic!("{error}")
        };
        assert_eq!(
            data.code,
            rmcp::model::ErrorCode::INTERNAL_ERROR,
            "{reason}"
        );
        assert_eq!(data.data.as_ref().unwrap()["reason"], reason);
        assert!(!sandbox.join("x.txt").exists());
        assert!(gateway.logs().contains(reason), "{reason}");
    }
    // When even listing cannot be decided, the tool is hidden, and a call to it is an unknown tool's.
    let (gateway, client, sandbox) =
        with_rule("package toolgate.authz\n\ndecision := {\"allow\": \"yes\"}\n").await;
    assert!(client.tool_names().await.is_empty());
    let error = client
        .call(
            "files__write_file",
            json!({"path": "x.txt", "content": "x"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Unknown tool: files__write_file"), "{error}");
    assert!(!sandbox.join("x.txt").exists());
    assert!(gateway.logs().contains("policy_wrong_shape"));
}

#[tokio::test]
async fn connected_clients_are_told_when_a_revocation_may_change_their_list() {
    let (gateway, _sandbox) = quickstart();
    let bob = Client::connect(&gateway.url, &bob()).await;
    let revoked = reqwest::Client::new()
        .post(format!("{}/revocations", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .json(&json!({"kind": "agent", "agent": "summarizer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 201);
    bob.wait_for_list_changed().await;
    // The revoked agent's chains are refused from the next request on.
    assert_eq!(
        initialize_status(&gateway.url, &alice_summarizer()).await,
        401
    );
}

#[tokio::test]
async fn the_agent_inventory_reloads_with_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    let original = std::fs::read_to_string(agents_file()).unwrap();
    std::fs::write(&agents, &original).unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}",
        stdio_upstream("sql", "sql_query", &[]),
        test_auth(agents.to_str().unwrap()),
        quickstart_policy(),
    );
    let gateway = Gateway::start(&yaml);
    let first = health(&gateway).await["policy"]["version"].clone();
    let reporter = dev_token(None, Some("reporter"), &[], None);
    let initialize = || initialize_status(&gateway.url, &reporter);
    assert_eq!(initialize().await, 403);
    let nightly = Client::connect(&gateway.url, &nightly()).await;
    std::fs::write(
        &agents,
        format!(
            "{original}  reporter:\n    owner: finance-data\n    description: Weekly report.\n    scope: ['sql__query']\n    max_classification: internal\n    acts_alone:\n      - issuer: toolgate-dev\n        subject: reporter\n"
        ),
    )
    .unwrap();
    eventually(10, || async {
        (health(&gateway).await["policy"]["version"] != first).then_some(())
    })
    .await;
    nightly.wait_for_list_changed().await;
    // Registered now; the policy grants it nothing yet, so it sees nothing.
    assert_eq!(initialize().await, 200);
    let client = Client::connect(&gateway.url, &reporter).await;
    assert!(client.tool_names().await.is_empty());
    // An inventory that does not validate is refused; the last good one stays.
    std::fs::write(&agents, "agents:\n  broken:\n    owner: ''\n").unwrap();
    eventually(10, || async {
        health(&gateway).await["policy"]["last_error"]
            .as_str()
            .filter(|e| e.contains("agents.yaml"))
            .map(str::to_string)
    })
    .await;
    assert_eq!(initialize().await, 200);
}

fn toolgate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn policy_authors_test_and_evaluate_offline() {
    let tested = toolgate(&["policy", "test"]);
    let out = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{out}");
    assert!(
        out.contains("PASS data.toolgate.authz_test.test_engineer_may_not_read_salaries"),
        "{out}"
    );
    assert!(out.contains(" passed, 0 failed (bundle sha256:"), "{out}");
    let with_config = toolgate(&[
        "policy",
        "test",
        "--config",
        "examples/quickstart/toolgate.yaml",
    ]);
    assert!(with_config.status.success());

    // A failing test fails the command and names the test.
    let bundle = bundle_copy();
    std::fs::write(
        bundle.join("toolgate/wrong_test.rego"),
        "package toolgate.wrong_test\n\nimport data.toolgate.authz\n\ntest_bob_reads_salaries if authz.decision.allow with input as {\"action\": \"call\"}\n",
    )
    .unwrap();
    let failed = toolgate(&["policy", "test", "--dir", bundle.to_str().unwrap()]);
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stdout)
            .contains("FAIL data.toolgate.wrong_test.test_bob_reads_salaries"),
        "{}",
        String::from_utf8_lossy(&failed.stdout)
    );

    // One input, decided and explained.
    let input = bundle.join("input.json");
    std::fs::write(
        &input,
        json!({
            "mode": "principal_context",
            "principal": {"issuer": "toolgate-dev", "subject": "bob", "roles": ["engineering"], "groups": []},
            "agent": {"id": "assistant"}, "chain": ["assistant"],
            "tool": {"name": "sql__query", "upstream": "sql", "classification": "confidential", "risk": "read"},
            "action": "call", "arguments": {"sql": "SELECT * FROM salaries"},
            "facts": {"sql": {"kind": "sql", "prepared": true, "statement_count": 1, "kinds": ["select"],
                              "tables": ["salaries"], "read_only": true, "trailing_text": false,
                              "unknown": [], "functions": [], "columns": [], "result": [],
                              "projected_plainly": []}}
        })
        .to_string(),
    )
    .unwrap();
    let evaluated = toolgate(&[
        "policy",
        "eval",
        "--input",
        input.to_str().unwrap(),
        "--explain",
    ]);
    assert!(evaluated.status.success());
    let out: Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    assert_eq!(out["decision"]["allow"], false);
    assert!(
        out["decision"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("`salaries`")
    );
    assert_eq!(out["evaluator"], "vm");
    // The explanation names the rules this input produced, not the constants.
    assert!(out["rules"]["deny"].is_array(), "{out}");
    assert_eq!(out["rules"]["principal_roles"], json!(["engineering"]));
    assert!(out["rules"].get("levels").is_none(), "{out}");
    let bad = toolgate(&["policy", "eval", "--input", "/nonexistent.json"]);
    assert!(!bad.status.success());
}

#[tokio::test]
async fn approvals_expire() {
    let (gateway, sandbox) = files_gateway("  approval_ttl: 3s\n");
    let alice = Client::connect(&gateway.url, &alice()).await;
    let args = json!({"path": "late.txt", "content": "x"});
    let id = approval_id(&alice.call("files__write_file", args.clone()).await.unwrap());
    // Times are kept in whole seconds: a 3 s lifetime lasts between 2 and 3 s.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    // Too late to approve; and the same call now asks anew.
    let late = approvals_cli(&gateway, &["approve", &id]);
    assert!(!late.status.success());
    let shown = approvals_cli(&gateway, &["show", &id]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["status"], "expired");
    let fresh = approval_id(&alice.call("files__write_file", args.clone()).await.unwrap());
    assert_ne!(fresh, id);
    // A grant not used in time expires too.
    assert!(
        approvals_cli(&gateway, &["approve", &fresh])
            .status
            .success()
    );
    // Times are kept in whole seconds: a 3 s lifetime lasts between 2 and 3 s.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let held = alice.call("files__write_file", args).await.unwrap();
    assert_ne!(approval_id(&held), fresh);
    assert!(!sandbox.join("late.txt").exists());
}

#[tokio::test]
async fn a_caller_holds_only_its_share_of_pending_approvals() {
    let (gateway, _sandbox) = files_gateway("  max_pending_approvals: 3\n");
    let alice = Client::connect(
        &gateway.url,
        &user_token("alice", &["hr"], "assistant", &[]),
    )
    .await;
    let bob = Client::connect(&gateway.url, &user_token("bob", &["hr"], "assistant", &[])).await;
    let write = |n: usize| json!({"path": format!("notes/{n}.txt"), "content": "draft"});
    let mut held = Vec::new();
    for n in 0..3 {
        let answer = alice.call("files__write_file", write(n)).await.unwrap();
        held.push(approval_id(&answer));
    }
    // The same call again still names its approval; a new one is refused with a reason.
    let again = alice.call("files__write_file", write(0)).await.unwrap();
    assert_eq!(approval_id(&again), held[0]);
    for n in 3..6 {
        let refused = alice.call("files__write_file", write(n)).await.unwrap();
        assert_eq!(refused.is_error, Some(true));
        assert!(
            text(&refused).contains("approval_limit"),
            "{}",
            text(&refused)
        );
    }
    // Another caller has a share of its own.
    let answer = bob.call("files__write_file", write(9)).await.unwrap();
    assert!(!approval_id(&answer).is_empty());
    // A decided approval frees a place.
    let denied = reqwest::Client::new()
        .post(format!("{}/approvals/{}/deny", gateway.admin_url, held[1]))
        .bearer_auth(gateway.admin_credential())
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200);
    let answer = alice.call("files__write_file", write(7)).await.unwrap();
    assert!(
        text(&answer).contains("approval_required"),
        "{}",
        text(&answer)
    );
    let pending = admin_get(&gateway, "/approvals?status=pending").await;
    assert_eq!(
        pending["approvals"].as_array().unwrap().len(),
        4,
        "{pending}"
    );
}

/// The file store (serving a new sandbox, returned) behind the quickstart's policy, with `policy_extra` lines in the
/// policy section.
fn files_gateway(policy_extra: &str) -> (Gateway, PathBuf) {
    let sandbox = sandbox();
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}{policy_extra}",
        stdio_upstream(
            "files",
            "file_store",
            &["--root", sandbox.to_str().unwrap()]
        ),
        test_auth(&agents_file()),
        quickstart_policy(),
    ));
    (gateway, sandbox)
}
