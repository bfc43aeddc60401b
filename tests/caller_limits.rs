//! One caller cannot take the gateway's session table: sessions are capped per caller `(iss, sub)` and per agent,
//! GET streams per caller, each refusal a clear 429; a closed session or stream gives its place back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn gateway() -> Gateway {
    let agents =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests/agents.yaml");
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nlimits:\n  max_sessions_per_subject: 3\n  max_sessions_per_agent: 5\n  max_streams_per_subject: 2\nupstreams:\n{}{}",
        quickstart_upstreams("notes.txt", "notes"),
        test_auth(agents.to_str().unwrap()),
    ))
}

/// Status, session id and `data.reason` of an `initialize`.
async fn open(url: &str, token: &str) -> (u16, Option<String>, String) {
    let response = initialize(url, token).await;
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let reason = body["error"]["data"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (status, session, reason)
}

async fn close(url: &str, token: &str, session: &str) {
    let status = reqwest::Client::new()
        .delete(url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
}

async fn stream(url: &str, token: &str, session: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_and_streams_are_capped_per_caller_and_per_agent() {
    let gateway = gateway();
    let url = &gateway.url;
    let alice = user_token("alice", &["hr"], "assistant", &[]);
    let bob = user_token("bob", &["sales"], "assistant", &[]);
    // Alice holds three sessions; the fourth is refused with a reason, whatever token she mints.
    let mut alices = Vec::new();
    for _ in 0..3 {
        let (status, session, _) = open(url, &alice).await;
        assert_eq!(status, 200);
        alices.push(session.unwrap());
    }
    for token in [
        alice.clone(),
        user_token("alice", &["hr"], "assistant", &[]),
    ] {
        let (status, session, reason) = open(url, &token).await;
        assert_eq!((status, reason.as_str()), (429, "session_limit"));
        assert!(session.is_none());
    }
    // Bob, through the same agent: two more reach the agent's five; the next is refused for the agent.
    let mut bobs = Vec::new();
    for _ in 0..2 {
        let (status, session, _) = open(url, &bob).await;
        assert_eq!(status, 200);
        bobs.push(session.unwrap());
    }
    let (status, _, reason) = open(url, &bob).await;
    assert_eq!((status, reason.as_str()), (429, "session_limit"));
    assert!(gateway.logs().contains("limits.max_sessions_per_agent"));
    // Another agent is not held back by the assistant's sessions.
    let nightly = dev_token(None, Some("nightly-report"), &[], None);
    let (status, _, _) = open(url, &nightly).await;
    assert_eq!(status, 200);
    // A closed session gives its place back, to its caller and its agent.
    close(url, &alice, &alices.pop().unwrap()).await;
    let (status, session, _) = open(url, &alice).await;
    assert_eq!(status, 200);
    alices.push(session.unwrap());

    // Streams: two per caller; the third is refused, and a closed one gives its place back.
    let first = stream(url, &alice, &alices[0]).await;
    assert_eq!(first.status(), 200);
    let second = stream(url, &alice, &alices[1]).await;
    assert_eq!(second.status(), 200);
    let third = stream(url, &alice, &alices[2]).await;
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "session_limit");
    // Bob's streams are his own.
    assert_eq!(stream(url, &bob, &bobs[0]).await.status(), 200);
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        let again = stream(url, &alice, &alices[2]).await;
        if again.status() == 200 {
            reopened = Some(again);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream's place came back");
    // Closing the session ends its stream and frees the stream's place too.
    close(url, &alice, &alices[1]).await;
    drop(second);
    let mut freed = false;
    for _ in 0..50 {
        if stream(url, &alice, &alices[0]).await.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed);
}
