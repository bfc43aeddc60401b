//! `scripts/replicas`: the multi-replica topology from the built binaries (a throwaway PostgreSQL, two replicas of
//! the quickstart, nginx in front), used as a client would use it: through the balancer, without stickiness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Stops the topology however the test ends.
struct Topology {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Topology {
    fn up() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/replicas"))
            .arg("up")
            .arg(dir.path())
            .env("TOOLGATE_BIN", env!("CARGO_BIN_EXE_toolgate"))
            .env("TOOLGATE_EXAMPLES", bin_dir().join("examples"))
            .env_remove("TOOLGATE_POSTGRES_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/replicas up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { dir, env }
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.env))
    }

    fn replica_pid(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.pid")))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/replicas"))
            .arg("down")
            .arg(self.dir.path())
            .output();
    }
}

fn quickstart_token(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("token")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

// The rmcp client's GET stream and POSTs reach different replicas through the balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_topology_serves_through_its_balancer_without_stickiness() {
    let topology = Topology::up();
    let lb = topology.get("LB_URL").to_string();
    let alice = quickstart_token(&[
        "--sub",
        "alice",
        "--roles",
        "hr",
        "--agent",
        "assistant",
        "--ttl",
        "10m",
    ]);
    // One session, its requests spread over both replicas (round robin): each call is answered.
    let client = Client::connect(&lb, &alice).await;
    for _ in 0..6 {
        let result = client
            .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    let log = std::fs::read_to_string(topology.dir.path().join("nginx/access.log")).unwrap();
    let (a, b) = (topology.get("A_URL"), topology.get("B_URL"));
    let upstream = |url: &str| {
        format!(
            "upstream={}",
            url.trim_start_matches("http://").trim_end_matches("/mcp")
        )
    };
    assert!(
        log.contains(&upstream(a)) && log.contains(&upstream(b)),
        "the balancer did not use both replicas:\n{log}"
    );

    // Revoked through replica A's admin API: refused through the balancer, whichever replica answers.
    let admin = std::fs::read_to_string(topology.get("ADMIN_TOKEN_FILE")).unwrap();
    let revoked = reqwest::Client::new()
        .post(format!("{}/admin/revocations", topology.get("A_ADMIN")))
        .bearer_auth(admin.trim())
        .json(&json!({"kind": "token", "jti": jti(&alice), "issuer": "toolgate-dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 201);
    for _ in 0..4 {
        let status = initialize_status(&lb, &alice).await;
        assert_eq!(status, 401);
    }

    // Replica A killed: the balancer goes on through B.
    let carol = quickstart_token(&[
        "--sub",
        "carol",
        "--roles",
        "hr,hr-admin",
        "--agent",
        "assistant",
        "--ttl",
        "10m",
    ]);
    let killed = Command::new("kill")
        .args(["-KILL", &topology.replica_pid("a")])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = Client::connect(&lb, &carol).await;
    for _ in 0..4 {
        let result = client
            .call("hr__lookup_employee", json!({"id_or_email": "E1001"}))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
}
