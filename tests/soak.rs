//! Fault soak: concurrent clients call through the gateway while faults are injected — an upstream crashing in a
//! loop and hanging past the call timeout, malformed frames, progress floods, the policy rewritten under load, the
//! store made unwritable, the gateway killed with SIGKILL and restarted. Asserted: no call the policy denies is ever answered with a result,
//! every answered call has a durable decision record, memory stays bounded, and calls succeed again afterwards.
//! `SOAK_SECS` sets the length (20 s in the test suite; `scripts/soak` runs longer, in release).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::sync::RwLock;

/// Every call allowed but `tb__big`, which is always denied.
const POLICY: &str = r#"# Soak policy (version VERSION): every call allowed but `tb__big`.
package toolgate.authz

default denied := false

denied if {
	input.action == "call"
	input.tool.name == "tb__big"
}

decision := {
	"allow": denied == false,
	"escalate": false,
	"reasons": [r | denied; r := "big answers are refused"],
	"obligations": {"clearance": "restricted", "redact": []},
}
"#;

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    echo_ok: AtomicU64,
    denied_refused: AtomicU64,
    wrong_allows: AtomicU64,
    upstream_errors: AtomicU64,
    transport_errors: AtomicU64,
    malformed_refused: AtomicU64,
    progress_ok: AtomicU64,
    store_refused: AtomicU64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_keeps_its_promises_under_load_and_faults() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let policy_dir = tempfile::tempdir().unwrap();
    let policy_file = policy_dir.path().join("soak.rego");
    std::fs::write(&policy_file, POLICY.replace("VERSION", "1")).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  call: 1s\n  reconnect_initial: 100ms\n  reconnect_max: 500ms\nupstreams:\n{}policy:\n  dir: \"{}\"\n  manifests: \"{}\"\naudit:\n  busy_timeout: 100ms\n",
        stdio_upstream("tb", "testbed", &[]),
        policy_dir.path().display(),
        root.join("tests/fixtures/manifests-empty").display(),
    ));
    let url = Arc::new(RwLock::new(gateway.url.clone()));
    let gateway = Arc::new(tokio::sync::Mutex::new(gateway));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);

    // Clients: each runs a mix of calls until the deadline, reconnecting whenever its session is gone.
    let mut clients = Vec::new();
    for worker in 0..6u64 {
        let (url, counts, stop) = (Arc::clone(&url), Arc::clone(&counts), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            let mut client: Option<Client> = None;
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Some(c) = client.as_ref() else {
                    let target = url.read().await.clone();
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        Client::try_connect(&target, &tester_token()),
                    )
                    .await
                    {
                        Ok(Ok(c)) => client = Some(c),
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                    continue;
                };
                // Mostly allowed calls; denied ones; a hang past the call timeout; progress floods; and now and then
                // a call that crashes the upstream (which restarts, and crashes again: a crash loop).
                let flood = n % 12 == 8 || n % 12 == 9;
                let (tool, arguments) = match n % 12 {
                    5 | 6 => ("tb__big", json!({"bytes": 10})),
                    7 => ("tb__slow", json!({"ms": 3000})),
                    8 | 9 => ("tb__slow", json!({"ms": 50, "steps": 200})),
                    11 if n % 48 == 11 => ("tb__crash", json!({})),
                    _ => ("tb__echo", json!({"text": "soak"})),
                };
                match c.call(tool, arguments).await {
                    Ok(result) => {
                        counts.answered.fetch_add(1, Ordering::Relaxed);
                        let failed = result.is_error == Some(true);
                        match tool {
                            "tb__big" if !failed => {
                                counts.wrong_allows.fetch_add(1, Ordering::Relaxed);
                            }
                            "tb__big" => {
                                counts.denied_refused.fetch_add(1, Ordering::Relaxed);
                            }
                            "tb__echo" if !failed => {
                                counts.echo_ok.fetch_add(1, Ordering::Relaxed);
                            }
                            "tb__slow" if !failed && flood => {
                                counts.progress_ok.fetch_add(1, Ordering::Relaxed);
                            }
                            _ if failed => {
                                counts.upstream_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                    Err(rmcp::ServiceError::McpError(e))
                        if e.data
                            .as_ref()
                            .is_some_and(|d| d["reason"] == "audit_unavailable") =>
                    {
                        // The store cannot take records: refused, closed, nothing forwarded.
                        counts.store_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        // The gateway went away (killed) or the session did: start a new one.
                        counts.transport_errors.fetch_add(1, Ordering::Relaxed);
                        client = None;
                    }
                }
            }
        }));
    }
    // Malformed frames, all the time.
    let garbage = {
        let (url, counts, stop) = (Arc::clone(&url), Arc::clone(&counts), Arc::clone(&stop));
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let frames: [&[u8]; 4] = [
                b"{not json",
                b"[1,2,3]",
                b"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":7}",
                &[0xff, 0xfe, 0x00],
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let target = url.read().await.clone();
                let answer = http
                    .post(&target)
                    .bearer_auth(tester_token())
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(frames[i % frames.len()].to_vec())
                    .send()
                    .await;
                if let Ok(answer) = answer {
                    assert!(answer.status().is_client_error(), "{}", answer.status());
                    counts.malformed_refused.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Faults, in order: the policy rewritten under load, the store made unwritable (another process holds its
    // write lock) for a tenth of the run, then the gateway killed and restarted; memory watched.
    let mut reloaded = false;
    let mut killed = false;
    let mut lock: Option<rusqlite::Connection> = None;
    let mut unlocked = false;
    while Instant::now() < deadline {
        let elapsed = started.elapsed().as_secs_f64() / secs as f64;
        if !reloaded && elapsed > 0.3 {
            std::fs::write(&policy_file, POLICY.replace("VERSION", "2")).unwrap();
            reloaded = true;
        }
        if lock.is_none() && !unlocked && elapsed > 0.4 {
            let db = gateway.lock().await.dir.path().join("toolgate.db");
            let held = rusqlite::Connection::open(db).unwrap();
            held.execute_batch("BEGIN EXCLUSIVE").unwrap();
            lock = Some(held);
        }
        if lock.is_some() && elapsed > 0.5 {
            if let Some(held) = lock.take() {
                held.execute_batch("ROLLBACK").unwrap();
            }
            unlocked = true;
        }
        if !killed && elapsed > 0.6 {
            let mut g = gateway.lock().await;
            tokio::task::block_in_place(|| g.restart());
            *url.write().await = g.url.clone();
            killed = true;
        }
        let pid = gateway.lock().await.proc.child.id();
        max_rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    garbage.await.unwrap();

    // Recovery: a fresh client's calls go through.
    let g = gateway.lock().await;
    let client = Client::connect(&g.url, &tester_token()).await;
    let back = eventually(20, || async {
        let r = client
            .call("tb__echo", json!({"text": "back"}))
            .await
            .ok()?;
        (r.is_error != Some(true)).then_some(r)
    })
    .await;
    assert_eq!(text(&back), "back");

    // Every answered call left a durable record; none of the denied tool's calls is recorded as allowed.
    let db = std::fs::read_dir(g.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "db"))
        .unwrap();
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let count =
        |sql: &str| -> u64 { conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    // Records are committed before their answer leaves; the last few of the run may still be in the writer's
    // queue of the running gateway, so wait until they are in.
    let answered = counts.answered.load(Ordering::Relaxed);
    let recorded = eventually(10, || async {
        let n = count("SELECT count(*) FROM decisions WHERE kind = 'tools/call'");
        (n >= answered).then_some(n)
    })
    .await;
    let wrong_recorded = count(
        "SELECT count(*) FROM decisions WHERE kind = 'tools/call' AND tool = 'tb__big' AND decision = 'allow'",
    );
    let rss = max_rss.load(Ordering::Relaxed);
    eprintln!(
        "soak {secs}s: answered {answered} calls (echo ok {}, denied refused {}, upstream failures/timeouts {}, progress floods {}), \
         {} refused while the store was unwritable, {} transport errors around the kill, {} malformed frames \
         refused; {recorded} call records; \
         wrong allows {} (recorded {wrong_recorded}); max RSS {} MiB",
        counts.echo_ok.load(Ordering::Relaxed),
        counts.denied_refused.load(Ordering::Relaxed),
        counts.upstream_errors.load(Ordering::Relaxed),
        counts.progress_ok.load(Ordering::Relaxed),
        counts.store_refused.load(Ordering::Relaxed),
        counts.transport_errors.load(Ordering::Relaxed),
        counts.malformed_refused.load(Ordering::Relaxed),
        counts.wrong_allows.load(Ordering::Relaxed),
        rss / 1024,
    );
    assert_eq!(counts.wrong_allows.load(Ordering::Relaxed), 0);
    assert_eq!(wrong_recorded, 0);
    assert!(
        counts.denied_refused.load(Ordering::Relaxed) > 0
            && counts.echo_ok.load(Ordering::Relaxed) > 0
    );
    assert!(
        counts.upstream_errors.load(Ordering::Relaxed) > 0,
        "the faults were injected"
    );
    assert!(counts.malformed_refused.load(Ordering::Relaxed) > 0);
    assert!(
        counts.store_refused.load(Ordering::Relaxed) > 0,
        "calls were refused while the store was unwritable"
    );
    assert!(
        recorded >= answered,
        "{recorded} records for {answered} answered calls"
    );
    assert!(rss > 0 && rss < 512 * 1024, "RSS {rss} KiB");
    // Calls were decided under both versions of the policy: the reload took effect under load.
    let versions = count(
        "SELECT count(DISTINCT json_extract(body, '$.policy_version')) FROM decisions WHERE kind = 'tools/call'",
    );
    assert!(versions >= 2, "{versions} policy version(s) decided calls");
}
