//! Upstream failures: crash mid-call and recovery, timeout, oversized and malformed answers, a down upstream,
//! requests towards the client. The gateway stays up and other upstreams are unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn crash_mid_call_is_an_error_result_and_the_upstream_comes_back() {
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  reconnect_initial: 100ms\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        stdio_upstream("hr", "hr_directory", &[]),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    let crashed = client.call("testbed__crash", json!({})).await.unwrap();
    assert_eq!(crashed.is_error, Some(true));
    let message = text(&crashed);
    assert!(
        message.contains("upstream_closed") || message.contains("upstream_unavailable"),
        "{message}"
    );
    // Other upstreams are unaffected.
    let hr = client
        .call("hr__employee_card", json!({"id_or_email": "E1002"}))
        .await
        .unwrap();
    assert!(text(&hr).contains("Grace Hopper"));
    // The crashed upstream is restarted and answers again.
    let echoed = eventually(20, || async {
        let r = client
            .call("testbed__echo", json!({"text": "back"}))
            .await
            .ok()?;
        (r.is_error != Some(true)).then_some(r)
    })
    .await;
    assert_eq!(text(&echoed), "back");
    assert!(gateway.logs().contains("upstream connection lost"));
}

#[tokio::test]
async fn slow_upstream_times_out_and_is_cancelled_upstream() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  call: 500ms\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        http_upstream("web", &web.url),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    for prefix in ["testbed", "web"] {
        let started = std::time::Instant::now();
        let result = client
            .call(&format!("{prefix}__slow"), json!({"ms": 10000}))
            .await
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(result.is_error, Some(true));
        assert!(
            text(&result).contains("upstream_timeout"),
            "{}",
            text(&result)
        );
        // The upstream was told to stop.
        let counters = client.wait_for_cancellation(prefix).await;
        assert_eq!(counters["completed_slow"], 0, "{prefix}");
    }
}

#[tokio::test]
async fn the_call_timeout_interrupts_a_runaway_sql_statement_upstream() {
    // The statement time is set far beyond the test's patience: only the cancelled call can stop the statement.
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  call: 1s\nupstreams:\n{}      env:\n        SQL_QUERY_TIME_MS: \"600000\"\n",
        stdio_upstream("sql", "sql_query", &[]),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    let runaway =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let result = client.sql(runaway).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("upstream_timeout"),
        "{}",
        text(&result)
    );
    // The upstream's only connection is free again: had the statement gone on, this query would wait behind it
    // for ten minutes and time out on every try.
    let rows = eventually(30, || async {
        let result = client.sql("SELECT 41 + 1 AS answer").await.ok()?;
        (result.is_error != Some(true)).then_some(result)
    })
    .await;
    assert!(text(&rows).contains("42"), "{}", text(&rows));
    assert!(
        gateway
            .logs()
            .contains("statement interrupted (call cancelled)"),
        "the upstream did not report the interrupt"
    );
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nlimits:\n  max_response_bytes: 65536\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        http_upstream("web", &web.url),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    for tool in ["testbed__big", "web__big"] {
        let result = client.call(tool, json!({"bytes": 200_000})).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{tool}");
        assert!(
            text(&result).contains("upstream_response_too_large"),
            "{tool}: {}",
            text(&result)
        );
        let small = client.call(tool, json!({"bytes": 1000})).await.unwrap();
        assert_eq!(text(&small).len(), 1000);
    }
}

#[tokio::test]
async fn malformed_answers_are_refused() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream("web", &web.url)
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    let result = client.call("web__garbage", json!({})).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("upstream_malformed"),
        "{}",
        text(&result)
    );
    let ok = client
        .call("web__echo", json!({"text": "still fine"}))
        .await
        .unwrap();
    assert_eq!(text(&ok), "still fine");
}

#[tokio::test]
async fn down_upstream_does_not_take_others_with_it() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        http_upstream("web", &web.url),
        stdio_upstream("hr", "hr_directory", &[]),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    assert_eq!(
        text(
            &client
                .call("web__echo", json!({"text": "a"}))
                .await
                .unwrap()
        ),
        "a"
    );
    drop(web); // the upstream process is killed
    let result = client
        .call("web__echo", json!({"text": "b"}))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("upstream_unavailable"),
        "{}",
        text(&result)
    );
    let hr = client
        .call("hr__employee_card", json!({"id_or_email": "E1003"}))
        .await
        .unwrap();
    assert!(text(&hr).contains("Katherine Johnson"));
}

#[tokio::test]
async fn http_upstream_recovers_after_a_restart() {
    let web = HttpUpstream::start("testbed", &[]);
    let address = web.address();
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  reconnect_initial: 100ms\n  reconnect_max: 400ms\nupstreams:\n{}",
        http_upstream("web", &web.url),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    assert_eq!(
        text(
            &client
                .call("web__echo", json!({"text": "one"}))
                .await
                .unwrap()
        ),
        "one"
    );
    drop(web);
    let down = client
        .call("web__echo", json!({"text": "two"}))
        .await
        .unwrap();
    assert_eq!(down.is_error, Some(true));
    // A new upstream process on the same address knows nothing of the old session: toolgate starts a new one.
    let _web = HttpUpstream::start_on("testbed", &address, &[]);
    let back = eventually(20, || async {
        let r = client
            .call("web__echo", json!({"text": "three"}))
            .await
            .ok()?;
        (r.is_error != Some(true)).then_some(r)
    })
    .await;
    assert_eq!(text(&back), "three");
}

/// An upstream's sampling request reaches only a client that declared sampling; this one did not, so the upstream
/// is refused, over stdio and over HTTP alike (relaying to a client that did is tested in `tests/relay.rs`). The
/// HTTP upstream is spoken to in 2025-11-25: its tool asks the client with a request of its own, which that
/// revision has (in 2026-07-28 an upstream asks with an `input_required` result; `tests/revisions.rs`).
#[tokio::test]
async fn requests_towards_a_client_that_did_not_declare_them_are_refused() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        http_upstream_pinned("web", &web.url, "2025-11-25"),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    for tool in ["testbed__sample", "web__sample"] {
        let result = client.call(tool, json!({})).await.unwrap();
        let message = text(&result);
        assert!(message.starts_with("sampling refused"), "{tool}: {message}");
        assert!(
            message.contains("the client did not declare the `sampling` capability"),
            "{tool}: {message}"
        );
    }
}
