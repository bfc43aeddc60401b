//! The gateway's secrets (the bootstrap admin credential and the chain key) are its own: a file its group or
//! others may read or write, or that another user owns, refuses the start with a clear reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// `toolgate serve` in `dir` (config written there); `Ok` once it listens (then stopped), `Err(stderr)` when it
/// exits first.
fn serve(dir: &Path) -> Result<(), String> {
    let config = write_minimal_config(dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["serve", "--dev", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("toolgate listening on ") {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    if started {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn secrets_others_may_read_or_own_refuse_the_start() {
    // Created by the gateway itself: mode 0600, and it starts.
    let fresh = tempfile::tempdir().unwrap();
    serve(fresh.path()).unwrap();
    for file in ["admin.token", "audit.key"] {
        let mode = std::fs::metadata(fresh.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    for file in ["admin.token", "audit.key"] {
        // Every mode that lets the group or others read or write: refused, naming the file and the mode.
        for mode in [
            0o644,
            0o640,
            0o604,
            0o660,
            0o606,
            0o666,
            0o620,
            0o602,
            0o700 | 0o040,
        ] {
            let dir = tempfile::tempdir().unwrap();
            serve(dir.path()).unwrap();
            let path = dir.path().join(file);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let stderr = serve(dir.path()).expect_err(&format!("{file} {mode:o}"));
            assert!(stderr.contains(file), "{stderr}");
            assert!(
                stderr.contains(&format!("{:04o}", mode & 0o777)),
                "{stderr}"
            );
            assert!(stderr.contains("chmod 600"), "{stderr}");
        }
        // Owner-only modes start.
        for mode in [0o600, 0o400] {
            let dir = tempfile::tempdir().unwrap();
            serve(dir.path()).unwrap();
            let path = dir.path().join(file);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            serve(dir.path()).unwrap_or_else(|e| panic!("{file} {mode:o}: {e}"));
        }
        // Owned by another user (only root can hand a file over; CI runs as root).
        if running_as_root() {
            let dir = tempfile::tempdir().unwrap();
            serve(dir.path()).unwrap();
            let path = dir.path().join(file);
            let chown = Command::new("chown")
                .arg("65534")
                .arg(&path)
                .status()
                .unwrap();
            assert!(chown.success());
            let stderr = serve(dir.path()).expect_err(file);
            assert!(stderr.contains("owned by uid 65534"), "{stderr}");
        } else {
            eprintln!("not root: the foreign-owner case of {file} needs root to hand a file over");
        }
    }
}
