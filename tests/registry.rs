//! Upstreams registered at run time through the admin API and CLI: checked against the allowlist on the resolved
//! address, connected and listed before anything is kept, persisted, removable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

fn refused(output: &std::process::Output, needle: &str) {
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(needle), "`{needle}` not in: {err}");
}

async fn upstream_names(gateway: &Gateway) -> Vec<String> {
    let list = gateway.admin_json("/upstreams").await;
    list["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_admin_registers_and_removes_upstreams_at_run_time() {
    let testbed = HttpUpstream::start("testbed", &[]);
    let mut gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}registry:\n  allowed_networks: [127.0.0.0/8, '::1']\n",
        stdio_upstream("hr", "hr_directory", &[])
    ));
    let client = gateway.client().await;
    assert!(!has_tools_of(&client, "tb").await);

    let added = admin_cli(
        &gateway,
        &[
            "upstreams",
            "add",
            "tb",
            "--url",
            &testbed.url,
            "--header",
            "Authorization=Bearer upstream-secret",
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let added: Value = serde_json::from_slice(&added.stdout).unwrap();
    assert!(added["tools"].as_u64().unwrap() >= 5);
    client.wait_for_list_changed().await;
    let names = eventually(10, || async {
        let names = client.tool_names().await;
        names.contains(&"tb__echo".to_string()).then_some(names)
    })
    .await;
    assert!(names.contains(&"hr__lookup_employee".to_string()));
    let echoed = client
        .call("tb__echo", serde_json::json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "hi");
    let listed = gateway.admin_json("/upstreams").await;
    let tb = listed["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "tb")
        .unwrap();
    assert_eq!(tb["registered"], true);
    assert_eq!(tb["state"], "ready");
    // Credentials are never returned, nor logged.
    assert!(!listed.to_string().contains("upstream-secret"));
    assert!(!gateway.logs().contains("upstream-secret"));

    // Refusals leave nothing behind.
    refused(
        &admin_cli(&gateway, &["upstreams", "add", "tb", "--url", &testbed.url]),
        "exists already",
    );
    refused(
        &admin_cli(&gateway, &["upstreams", "add", "hr", "--url", &testbed.url]),
        "exists already",
    );
    refused(
        &admin_cli(
            &gateway,
            &[
                "upstreams",
                "add",
                "meta",
                "--url",
                "http://169.254.169.254/mcp",
            ],
        ),
        "outside the networks",
    );
    refused(
        &admin_cli(
            &gateway,
            &[
                "upstreams",
                "add",
                "private",
                "--url",
                "http://10.0.0.7/mcp",
            ],
        ),
        "outside the networks",
    );
    refused(
        &admin_cli(
            &gateway,
            &["upstreams", "add", "Bad_Name", "--url", &testbed.url],
        ),
        "upstream_refused",
    );
    let not_mcp = format!("{}/healthz", gateway.base());
    refused(
        &admin_cli(&gateway, &["upstreams", "add", "web", "--url", &not_mcp]),
        "cannot be used",
    );
    refused(
        &admin_cli(&gateway, &["upstreams", "remove", "hr"]),
        "read-only",
    );
    let malformed = reqwest::Client::new()
        .post(format!("{}/upstreams", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .body("{\"name\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let mut names = upstream_names(&gateway).await;
    names.sort();
    assert_eq!(names, vec!["hr", "tb"]);

    // A stdio upstream: only an admin can name a command.
    let sql = example("sql_query");
    let added = admin_cli(&gateway, &["upstreams", "add", "sql", "--command", &sql]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    // Registered upstreams survive a restart.
    gateway.restart();
    let client = gateway.client().await;
    let names = eventually(10, || async {
        let names = client.tool_names().await;
        (names.contains(&"tb__echo".to_string()) && names.contains(&"sql__query".to_string()))
            .then_some(names)
    })
    .await;
    assert!(names.contains(&"hr__lookup_employee".to_string()));

    // Removed: its tools leave, clients are told.
    let removed = admin_cli(&gateway, &["upstreams", "remove", "tb"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    client.wait_for_list_changed().await;
    assert!(!has_tools_of(&client, "tb").await);
    let error = client
        .call("tb__echo", serde_json::json!({"text": "hi"}))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Unknown tool"), "{error}");
    gateway.restart();
    let mut names = upstream_names(&gateway).await;
    names.sort();
    assert_eq!(names, vec!["hr", "sql"]);

    // Every admin action left a record, refusals included; a wrong admin credential is recorded too.
    let bad = reqwest::Client::new()
        .post(format!("{}/upstreams", gateway.admin_url))
        .bearer_auth("not-the-credential")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let actions = gateway.admin_json("/records?kind=admin&limit=100").await;
    let actions: Vec<(String, String)> = actions["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["reasons"][0].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("POST /admin/upstreams".into(), "http_201".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("POST /admin/upstreams".into(), "http_422".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("DELETE /admin/upstreams/tb".into(), "http_200".into())),
        "{actions:?}"
    );
    eventually(10, || async {
        let refusals = gateway
            .admin_json("/records?kind=authentication&limit=100")
            .await;
        refusals["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == "admin")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_allowlist_is_checked_on_the_resolved_address() {
    let testbed = HttpUpstream::start("testbed", &[]);
    // Only 127.0.0.2 is allowed: `localhost` resolves elsewhere, whatever the URL says.
    let gateway =
        Gateway::start("listen: 127.0.0.1:0\nregistry:\n  allowed_networks: [127.0.0.2/32]\n");
    let port = testbed.address().rsplit(':').next().unwrap().to_string();
    let by_name = format!("http://localhost:{port}/mcp");
    refused(
        &admin_cli(&gateway, &["upstreams", "add", "tb", "--url", &by_name]),
        "cannot be used",
    );
    refused(
        &admin_cli(&gateway, &["upstreams", "add", "tb", "--url", &testbed.url]),
        "outside the networks",
    );
    assert!(upstream_names(&gateway).await.is_empty());
    assert!(gateway.logs().contains("resolves outside the allowlist"));
    // The other admin commands answer JSON for scripts.
    for args in [
        &["policy"][..],
        &["policy", "--reload"],
        &["revocations"],
        &["approvals", "list"],
    ] {
        let out = admin_cli(&gateway, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _: Value = serde_json::from_slice(&out.stdout).unwrap();
    }
    // Indented for humans by default; one line with --json.
    let pretty = admin_cli(&gateway, &["policy"]);
    assert!(String::from_utf8_lossy(&pretty.stdout).lines().count() > 3);
    let compact = admin_cli(&gateway, &["--json", "policy"]);
    assert_eq!(String::from_utf8_lossy(&compact.stdout).lines().count(), 1);
}

#[tokio::test]
async fn agents_are_added_and_changed_at_run_time() {
    let mut gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}",
        stdio_upstream("sql", "sql_query", &[]),
        test_auth(&quickstart_agents()),
        quickstart_policy()
    ));
    let nightly = Client::connect(
        &gateway.url,
        &dev_token(None, Some("nightly-report"), &[], None),
    )
    .await;
    nightly.sql("SELECT count(*) FROM projects").await.unwrap();
    let listed: Value =
        serde_json::from_slice(&admin_cli(&gateway, &["agents", "list"]).stdout).unwrap();
    let row = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "nightly-report")
        .unwrap()
        .clone();
    assert_eq!(row["owner"], "finance-data");
    assert_eq!(row["acts_alone"], true);
    assert_eq!(row["registered"], false);
    assert_eq!(row["calls"], 1);
    assert!(row["last_activity_ms"].is_i64());

    let reporter = dev_token(None, Some("reporter"), &[], None);
    assert_eq!(initialize_status(&gateway.url, &reporter).await, 403);
    let spec = gateway.dir.path().join("reporter.yaml");
    std::fs::write(&spec, "owner: finance-data\ndescription: Weekly report.\nscope: [sql__query]\nmax_classification: internal\nacts_alone:\n  - {issuer: toolgate-dev, subject: reporter}\n").unwrap();
    let put = admin_cli(
        &gateway,
        &[
            "agents",
            "put",
            "reporter",
            "--file",
            spec.to_str().unwrap(),
        ],
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(initialize_status(&gateway.url, &reporter).await, 200);
    // The same validation as the file; file agents are read-only.
    std::fs::write(&spec, "owner: x\ndescription: d\nscope: ['*']\nmax_classification: public\ndelegates_to: [ghost]\n").unwrap();
    refused(
        &admin_cli(
            &gateway,
            &["agents", "put", "other", "--file", spec.to_str().unwrap()],
        ),
        "ghost",
    );
    refused(
        &admin_cli(
            &gateway,
            &[
                "agents",
                "put",
                "assistant",
                "--file",
                spec.to_str().unwrap(),
            ],
        ),
        "read-only",
    );
    refused(
        &admin_cli(&gateway, &["agents", "remove", "assistant"]),
        "read-only",
    );
    assert!(
        gateway.admin_json("/agents").await["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != "other")
    );
    // Kept across restarts; removed, its tokens are refused again.
    gateway.restart();
    assert_eq!(initialize_status(&gateway.url, &reporter).await, 200);
    assert!(
        admin_cli(&gateway, &["agents", "remove", "reporter"])
            .status
            .success()
    );
    assert_eq!(initialize_status(&gateway.url, &reporter).await, 403);
}

/// The text `tb__echo` answers once the upstream behind it answers.
async fn echo_through(client: &Client, text_in: &str) -> String {
    eventually(10, || async {
        let r = client
            .call("tb__echo", serde_json::json!({ "text": text_in }))
            .await
            .ok()?;
        (r.is_error != Some(true)).then(|| text(&r))
    })
    .await
}

#[tokio::test]
async fn registered_upstreams_are_updated_disabled_and_enabled() {
    let first = HttpUpstream::start("testbed", &[]);
    let second = HttpUpstream::start("testbed", &[]);
    let mut gateway =
        Gateway::start("listen: 127.0.0.1:0\nregistry:\n  allowed_networks: [127.0.0.0/8]\n");
    let client = gateway.client().await;
    assert!(
        admin_cli(&gateway, &["upstreams", "add", "tb", "--url", &first.url])
            .status
            .success()
    );
    echo_through(&client, "up").await;

    // Disabled: its tools leave; it stays registered, also across a restart; enabled: back.
    assert!(
        admin_cli(&gateway, &["upstreams", "disable", "tb"])
            .status
            .success()
    );
    assert!(client.tool_names().await.is_empty());
    gateway.restart();
    let client = gateway.client().await;
    assert!(client.tool_names().await.is_empty());
    let listed = gateway.admin_json("/upstreams").await;
    assert_eq!(listed["upstreams"][0]["state"], "disabled");
    assert!(
        admin_cli(&gateway, &["upstreams", "enable", "tb"])
            .status
            .success()
    );
    echo_through(&client, "up").await;

    // Updated to another server; an update that cannot connect leaves the working one in place.
    let updated = admin_cli(
        &gateway,
        &["upstreams", "update", "tb", "--url", &second.url],
    );
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    drop(first);
    let echoed = echo_through(&client, "via second").await;
    assert_eq!(echoed, "via second");
    refused(
        &admin_cli(
            &gateway,
            &[
                "upstreams",
                "update",
                "tb",
                "--url",
                "http://127.0.0.1:9/mcp",
            ],
        ),
        "cannot be used",
    );
    let still = echo_through(&client, "still").await;
    assert_eq!(still, "still");
}

/// Whether `client` is shown any tool of `upstream`.
async fn has_tools_of(client: &Client, upstream: &str) -> bool {
    let prefix = format!("{upstream}__");
    client
        .tool_names()
        .await
        .iter()
        .any(|t| t.starts_with(&prefix))
}
