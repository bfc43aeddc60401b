//! Resumable event streams: toward an HTTP upstream that closes a call's stream early (SSE polling), toolgate
//! resumes it with `Last-Event-ID`; toward its own clients, a call answered as an event stream carries event ids
//! and `retry`, and a client that lost the connection gets the rest with `GET` and `Last-Event-ID`, in its own
//! session only. Real binary, real upstreams, raw HTTP where the test must drop a connection mid-answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

/// Resumption is of revision 2025-11-25 (2026-07-28 streams are not resumable): the upstream is spoken to in it.
#[tokio::test]
async fn a_call_stream_the_upstream_closes_early_is_resumed_with_last_event_id() {
    let upstream = HttpUpstream::start("everything", &[]);
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream_pinned("ev", &upstream.url, "2025-11-25")
    ));
    let client = gateway.client().await;
    // The upstream closes the call's stream at once (retry 500 ms) and answers only on the resumed stream.
    let result = client
        .call("ev__test_reconnection", json!({}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert!(
        text(&result).contains("completed successfully"),
        "{}",
        text(&result)
    );
}

/// Reads SSE events (`id`, `retry`, data as JSON) from a response until `stop` says so or the body ends.
async fn events(
    response: reqwest::Response,
    stop: impl Fn(&[(Option<String>, Option<u64>, Value)]) -> bool,
) -> Vec<(Option<String>, Option<u64>, Value)> {
    let mut stream = Box::pin(sse_stream::SseByteStream::new(response.bytes_stream()));
    let mut seen = Vec::new();
    while let Some(Ok(event)) = stream.next().await {
        if let Some(data) = event.data.filter(|d| !d.is_empty()) {
            seen.push((event.id, event.retry, serde_json::from_str(&data).unwrap()));
            if stop(&seen) {
                break;
            }
        }
    }
    seen
}

fn post(url: &str, token: &str, session: &str, body: Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "application/json, text/event-stream")
        .json(&body)
}

fn resume(url: &str, token: &str, session: &str, last: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "text/event-stream")
        .header("last-event-id", last)
}

#[tokio::test]
async fn a_client_that_lost_a_call_stream_resumes_it_in_its_own_session_only() {
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        stdio_upstream("testbed", "testbed", &[])
    ));
    let token = tester_token();
    let session = raw_session(&gateway.url, &token).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "testbed__slow", "arguments": {"ms": 900, "steps": 6, "tag": "t"},
        "_meta": {"progressToken": "p"}}});
    let response = post(&gateway.url, &token, &session, call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // The first events, then the connection is dropped mid-answer.
    let first = events(response, |seen| seen.len() == 2).await;
    assert_eq!(first.len(), 2);
    assert_eq!(
        first[0].1,
        Some(1000),
        "the first event says how long to wait: {first:?}"
    );
    let last = first[1].0.clone().expect("every event has an id");
    assert!(
        first
            .iter()
            .all(|(_, _, v)| v["method"] == "notifications/progress")
    );

    // Another subject cannot use the session (so cannot resume its streams); an id no stream has is refused.
    let other = dev_token(Some("mallory"), Some("tester"), &[], None);
    let refused = resume(&gateway.url, &other, &session, &last)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(refused.status().as_u16(), 403 | 404),
        "{}",
        refused.status()
    );
    let unknown = resume(&gateway.url, &token, &session, "c99-0")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The rest: every later progress event once, then the answer, ids continuing.
    let resumed = resume(&gateway.url, &token, &session, &last)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let rest = events(resumed, |seen| {
        seen.last().is_some_and(|e| e.2.get("result").is_some())
    })
    .await;
    let answer = rest.last().unwrap();
    assert_eq!(answer.2["id"], 7);
    assert_eq!(
        answer.2["result"]["content"][0]["text"],
        "done after 6 steps"
    );
    let progress: Vec<f64> = first
        .iter()
        .chain(&rest)
        .filter_map(|(_, _, v)| v["params"]["progress"].as_f64())
        .collect();
    assert_eq!(
        progress,
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "{first:?} {rest:?}"
    );
    let ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|e| e.0.clone().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
    // Resuming again from the same id replays the same rest (kept a while after the answer).
    let again = resume(&gateway.url, &token, &session, &last)
        .send()
        .await
        .unwrap();
    let again = events(again, |seen| {
        seen.last().is_some_and(|e| e.2.get("result").is_some())
    })
    .await;
    assert_eq!(again.len(), rest.len());
}
