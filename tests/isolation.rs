//! Upstream isolation: a stdio upstream run as another user (`run_as`) cannot read the gateway's state — the
//! chain key, the admin and scrape credentials, the databases — which are the gateway's alone (mode 0600); and the
//! gateway process is not dumpable, so another process of its own user cannot read its environment or memory.
//! Switching users needs root (CI runs as root); without it, the test checks the clear refusal instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A copy of `from` in `dir` that any user may read (and run): the checkout itself may be closed to others.
fn public_copy(from: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let to = dir.join(from.file_name().unwrap());
    if from.is_dir() {
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            public_copy(&entry.unwrap().path(), &to);
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    to
}

/// Registers the file store serving `root` as upstream `name`, run as `run_as` when given.
async fn register_files(gateway: &Gateway, name: &str, root: &str, run_as: Option<Value>) -> u16 {
    // The program from a place every user may run it from.
    let programs = gateway.dir.path().join("programs").join(name);
    std::fs::create_dir_all(&programs).unwrap();
    for dir in [programs.parent().unwrap(), &programs] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let program = public_copy(std::path::Path::new(&example("file_store")), &programs);
    let mut stdio = json!({"command": program, "args": ["--root", root]});
    if let Some(run_as) = run_as {
        stdio["run_as"] = run_as;
    }
    reqwest::Client::new()
        .post(format!("{}/upstreams", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .json(&json!({"name": name, "stdio": stdio}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// What reading `path` through upstream `name` answers: the text, or the tool's error.
async fn read_through(client: &Client, name: &str, path: &str) -> Result<String, String> {
    let result = client
        .call(&format!("{name}__read_file"), json!({"path": path}))
        .await
        .map_err(|e| e.to_string())?;
    if result.is_error == Some(true) {
        Err(text(&result))
    } else {
        Ok(text(&result))
    }
}

#[tokio::test]
async fn an_upstream_run_as_another_user_cannot_read_the_gateways_state() {
    let gateway = Gateway::start("listen: 127.0.0.1:0\n");
    let state = gateway.dir.path().to_path_buf();
    if !is_root() {
        // Without the privilege to switch users the upstream cannot start, and the log says why.
        assert_eq!(
            register_files(
                &gateway,
                "cage",
                state.to_str().unwrap(),
                Some(json!({"user": "nobody"}))
            )
            .await,
            422
        );
        assert!(
            gateway.logs().contains("not permitted"),
            "{}",
            gateway.logs()
        );
        return;
    }
    // The state directory itself may be entered by anyone: only the files' own modes protect them.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let files: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let secrets: Vec<&str> = ["admin.token", "scrape.token", "audit.key"]
        .into_iter()
        .chain(
            files
                .iter()
                .map(String::as_str)
                .filter(|f| f.ends_with(".db")),
        )
        .collect();
    assert!(
        secrets.iter().any(|f| f.ends_with(".db")),
        "the state holds a database: {files:?}"
    );
    for file in &secrets {
        let mode = std::fs::metadata(state.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode & 0o077, 0, "`{file}` is mode {mode:o}");
    }
    // Journal files SQLite creates later take the database's mode.
    for entry in std::fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("-wal") || name.ends_with("-shm") {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "`{name}` is mode {mode:o}");
        }
    }

    let root = state.to_str().unwrap();
    assert_eq!(
        register_files(
            &gateway,
            "cage",
            root,
            Some(json!({"user": "nobody", "group": "nogroup"}))
        )
        .await,
        201
    );
    // The same upstream as the gateway's own user, for comparison.
    assert_eq!(register_files(&gateway, "open", root, None).await, 201);
    let client = gateway.client().await;
    eventually(20, || async {
        let names = client.tool_names().await;
        (names.contains(&"cage__read_file".to_string())
            && names.contains(&"open__read_file".to_string()))
        .then_some(())
    })
    .await;
    for file in &secrets {
        // The gateway's own user opens it (a database is not text, which the file store then says).
        let open = read_through(&client, "open", file).await;
        assert!(
            open.as_ref().map_or_else(
                |e| !e.to_lowercase().contains("permission denied"),
                |_| true
            ),
            "the gateway's own user cannot open `{file}`: {open:?}"
        );
        let caged = read_through(&client, "cage", file).await;
        let refusal = caged.expect_err(&format!("`{file}` was read by another user"));
        assert!(
            refusal.to_lowercase().contains("permission denied"),
            "{file}: {refusal}"
        );
    }
    // The caged upstream does run as that user: it may read what everyone may.
    std::fs::write(state.join("public.txt"), "for everyone").unwrap();
    std::fs::set_permissions(
        state.join("public.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(
        read_through(&client, "cage", "public.txt").await.unwrap(),
        "for everyone"
    );
    // A child run as root isolates nothing: refused.
    let root_child = reqwest::Client::new()
        .post(format!("{}/upstreams", gateway.admin_url))
        .bearer_auth(gateway.admin_credential())
        .json(&json!({"name": "rooted", "stdio": {"command": example("file_store"), "args": ["--root", root], "run_as": {"user": "root"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(root_child.status(), 422);
    assert!(root_child.text().await.unwrap().contains("root"));
}

#[test]
fn the_gateway_process_is_not_dumpable() {
    if !is_root() {
        // Reading another process's environment needs it to be of the same user: as a plain user, the gateway
        // and this test are that user, and the gateway's environment must still be closed to it.
        let gateway = Gateway::start("listen: 127.0.0.1:0\n");
        let environ = std::fs::read(format!("/proc/{}/environ", gateway.proc.child.id()));
        assert!(environ.is_err(), "the gateway's environment was readable");
        return;
    }
    // As root: run the gateway as `nobody`, and try to read its environment as `nobody` too.
    // Everything it reads is copied where `nobody` may read it: the checkout may be closed to other users.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = public_copy(
        std::path::Path::new(env!("CARGO_BIN_EXE_toolgate")),
        dir.path(),
    );
    public_copy(
        &root.join("examples/quickstart/dev-keys/dev.jwks.json"),
        dir.path(),
    );
    public_copy(&root.join("tests/fixtures/policy-open"), dir.path());
    public_copy(&root.join("tests/fixtures/manifests-empty"), dir.path());
    std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{}policy:\n  dir: policy-open\n  manifests: manifests-empty\nadmin:\n  listen: 127.0.0.1:0\n",
            test_auth("agents.yaml").replace(&dev_jwks(), "dev.jwks.json")
        ),
    )
    .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let mode = if path == binary { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let mut gateway = Command::new(&binary)
        .uid(65534)
        .gid(65534)
        .args(["serve", "--dev", "--config"])
        .arg(&config)
        .env("TOOLGATE_SECRET_FOR_THE_TEST", "do-not-read")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it serves (its admin credential exists), then read /proc as the same user.
    let started = std::time::Instant::now();
    while !dir.path().join("admin.token").exists() {
        assert!(
            started.elapsed().as_secs() < 20,
            "the gateway did not start"
        );
        assert!(gateway.try_wait().unwrap().is_none(), "the gateway exited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let read_as_nobody = |pid: u32| {
        Command::new("cat")
            .uid(65534)
            .gid(65534)
            .arg(format!("/proc/{pid}/environ"))
            .output()
            .unwrap()
    };
    let gateway_env = read_as_nobody(gateway.id());
    // The same read of an ordinary process of that user succeeds: the refusal is the gateway's doing.
    let mut ordinary = Command::new("sleep")
        .uid(65534)
        .gid(65534)
        .arg("30")
        .env("ORDINARY", "1")
        .spawn()
        .unwrap();
    let ordinary_env = read_as_nobody(ordinary.id());
    let _ = ordinary.kill();
    let _ = ordinary.wait();
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(
        ordinary_env.status.success()
            && String::from_utf8_lossy(&ordinary_env.stdout).contains("ORDINARY")
    );
    assert!(
        !gateway_env.status.success(),
        "the gateway's environment was readable"
    );
    assert!(!String::from_utf8_lossy(&gateway_env.stdout).contains("do-not-read"));
}
