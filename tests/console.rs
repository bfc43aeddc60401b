//! The web console in a real browser: the gateway with a testbed upstream, an agent, a reviewer and the registry,
//! driven by `tests/console/console.test.mjs` (Node's test runner, playwright-core on Debian's chromium, axe-core
//! on every page). Screenshots of every page go to `$TOOLGATE_CONSOLE_SCREENSHOTS` (default
//! `target/console-screenshots`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The agent the caller acts through: the testbed's tools and those of the upstream registered in the console.
const AGENTS: &str = "agents:
  helper:
    owner: qa-team
    description: The console tests' caller, acting for a person.
    scope: ['tb__*', 'web__*']
    max_classification: restricted
    acts_for_humans: true
";

/// What the browser tests need installed; a clear failure (never a skip) when something is missing.
fn check_prerequisites(root: &Path) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the console's browser tests need Debian's chromium at {CHROMIUM}: install it with \
         `apt-get update && apt-get install -y chromium` (.ci/run does)"
    );
    for package in ["playwright-core", "axe-core"] {
        assert!(
            root.join("interop/node_modules")
                .join(package)
                .join("package.json")
                .exists(),
            "the console's browser tests need the npm package `{package}`: run \
             `cd interop && npm install --no-audit --no-fund` (scripts/test does)"
        );
    }
}

/// Copies each line of `from` to the test's output and collects them.
async fn relay(from: impl AsyncRead + Unpin, stderr: bool) -> String {
    let mut lines = BufReader::new(from).lines();
    let mut all = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        all.push_str(&line);
        all.push('\n');
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_console_works_in_a_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    check_prerequisites(root);

    // The upstream the admin registers through the console, as `web`.
    let registered = HttpUpstream::start("testbed", &[]);
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(&agents, AGENTS).unwrap();
    // The development issuer for callers; a second issuer for the reviewer's admin token.
    let auth = test_auth_with_other_issuer(agents.to_str().unwrap());
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{auth}policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n\
         registry:\n  allowed_networks: [\"127.0.0.0/8\"]\n\
         audit:\n  arguments: full\n\
         admin:\n  listen: 127.0.0.1:0\n  subjects:\n    - {{issuer: https://idp.example, subject: auditor, role: reviewer}}\n",
        stdio_upstream("tb", "testbed", &[]),
        root.join("tests/fixtures/policy-escalate").display(),
        root.join("tests/fixtures/manifests-testbed").display(),
    ));
    let console_url = format!("{}/console/", gateway.admin_url.trim_end_matches("/admin"));
    // Carol, acting through `helper`.
    let caller = dev_token(Some("carol"), Some("helper"), &[], None);

    let node = std::env::var("TOOLGATE_NODE22").unwrap_or_else(|_| "node".into());
    let mut command = tokio::process::Command::new(&node);
    command
        .current_dir(root)
        .args([
            "--test",
            "--test-reporter=spec",
            "tests/console/console.test.mjs",
        ])
        .env("TOOLGATE_CONSOLE_URL", &console_url)
        .env("TOOLGATE_MCP_URL", &gateway.url)
        .env("TOOLGATE_ADMIN_CREDENTIAL", gateway.admin_credential())
        .env("TOOLGATE_REVIEWER_TOKEN", other_admin_token("auditor"))
        .env("TOOLGATE_CALLER_TOKEN", &caller)
        .env("TOOLGATE_REGISTER_URL", &registered.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!("cannot run `{node}` (Node.js, for the console's browser tests): {e}")
    });
    let stdout = tokio::spawn(relay(child.stdout.take().unwrap(), false));
    let stderr = tokio::spawn(relay(child.stderr.take().unwrap(), true));
    let waited = tokio::time::timeout(Duration::from_secs(600), child.wait()).await;
    let status = match waited {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = child.kill().await;
            panic!(
                "the console's browser tests did not end within 10 minutes; gateway log:\n{}",
                gateway.logs()
            );
        }
    };
    let out = stdout.await.unwrap();
    let err = stderr.await.unwrap();
    assert!(
        status.success(),
        "the console's browser tests failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}\n--- gateway log\n{}",
        gateway.logs()
    );

    // What the browser did, as the admin API sees it.
    let upstreams = gateway.admin_json("/upstreams").await;
    let web = upstreams["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "web")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(web["registered"], true, "{upstreams}");
    // Every console action left a decision record, like the admin API's: sign-in, the approval with its comment,
    // and the refused forms too.
    let records = gateway.admin_json("/records?kind=admin&limit=10000").await;
    let records = records["records"].as_array().unwrap().clone();
    let with = |reason: &str, outcome: &str| {
        records.iter().any(|r| {
            r["reasons"][0]
                .as_str()
                .is_some_and(|a| a.starts_with(reason))
                && r["outcome"] == outcome
        })
    };
    assert!(with("POST /console/sign-in", "requested"), "{records:?}");
    assert!(with("POST /console/sign-in", "http_303"), "{records:?}");
    assert!(
        with("POST /console/agents/helper/revoke", "csrf_refused"),
        "{records:?}"
    );
    assert!(with("POST /console/upstreams", "http_303"), "{records:?}");
    assert!(with("POST /console/upstreams", "http_422"), "{records:?}");
    assert!(
        with("POST /console/agents/helper/revoke", "cross_origin_refused"),
        "{records:?}"
    );
    // Refused by the admin API, though the browser is sent back to the page: recorded as refused.
    assert!(
        records.iter().any(|r| {
            r["reasons"][0]
                .as_str()
                .is_some_and(|a| a.starts_with("POST /console/agents/nobody/revoke"))
                && r["outcome"] == "http_400"
                && r["decision"] == "deny"
        }),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| {
            r["reasons"][0].as_str().is_some_and(|a| {
                a.starts_with("POST /console/approvals/") && a.contains("/approve")
            }) && r["reasons"][1] == "comment: checked in the console"
        }),
        "the approval's comment is in its record: {records:?}"
    );
    // On the admin API a reviewer reads records and reports, and nothing else.
    let http = reqwest::Client::new();
    let reviewer = other_admin_token("auditor");
    for (method, path, expected) in [
        (reqwest::Method::GET, "/records", 200),
        (reqwest::Method::GET, "/reports", 200),
        (reqwest::Method::GET, "/upstreams", 403),
        (reqwest::Method::GET, "/approvals", 403),
        (reqwest::Method::POST, "/revocations", 403),
        (reqwest::Method::POST, "/policy/reload", 403),
    ] {
        let answer = http
            .request(method.clone(), format!("{}{path}", gateway.admin_url))
            .bearer_auth(&reviewer)
            .json(&json!({"kind": "agent", "agent": "helper"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), expected, "{method} {path}");
    }
    // A decision's comment on the API is JSON, or nothing; anything else is refused before any lookup.
    let bad = http
        .post(format!("{}/approvals/apr_none/approve", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = http
        .post(format!("{}/approvals/apr_none/approve", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .json(&json!({"comment": "looked fine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let refused = initialize_status(&gateway.url, &caller).await;
    assert!(
        refused == 401 || refused == 403,
        "the revoked agent's caller: {refused}"
    );
}
