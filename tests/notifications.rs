//! A call's progress and log notifications reach the client that made it and no other; a client's
//! cancellation reaches the upstream; tool list changes reach the clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

async fn two_clients_concurrently(gateway: &Gateway, tool: &str) -> (Client, Client) {
    let a = gateway.client().await;
    let b = gateway.client().await;
    let (ra, rb) = tokio::join!(
        a.call(tool, json!({"ms": 600, "steps": 4, "tag": "from-a"})),
        b.call(tool, json!({"ms": 600, "steps": 6, "tag": "from-b"})),
    );
    assert_eq!(text(&ra.unwrap()), "done after 4 steps");
    assert_eq!(text(&rb.unwrap()), "done after 6 steps");
    (a, b)
}

#[tokio::test]
async fn progress_reaches_only_the_calling_client() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        http_upstream("web", &web.url),
    );
    let gateway = Gateway::start(&yaml);
    for tool in ["testbed__slow", "web__slow"] {
        let (a, b) = two_clients_concurrently(&gateway, tool).await;
        let pa = a.recorder.progress.lock().unwrap().clone();
        let pb = b.recorder.progress.lock().unwrap().clone();
        // Each client gets its own steps, under the progress token it chose.
        assert_eq!(pa.len(), 4, "{tool}: client a got {pa:?}");
        assert_eq!(pb.len(), 6, "{tool}: client b got {pb:?}");
        assert!(pa.iter().all(|p| p.total == Some(4.0)), "{tool}: {pa:?}");
        assert!(pb.iter().all(|p| p.total == Some(6.0)), "{tool}: {pb:?}");
    }
}

#[tokio::test]
async fn log_messages_reach_only_the_calling_client() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream("web", &web.url)
    );
    let gateway = Gateway::start(&yaml);
    let (a, b) = two_clients_concurrently(&gateway, "web__slow").await;
    // rmcp's HTTP server sends these logs on its GET stream, untied to a request: toolgate cannot attribute them
    // and keeps them out of every client's stream, so no client ever sees another's log.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let la = a.recorder.logs.lock().unwrap().clone();
    let lb = b.recorder.logs.lock().unwrap().clone();
    assert!(la.iter().all(|l| l["tag"] == "from-a"), "{la:?}");
    assert!(lb.iter().all(|l| l["tag"] == "from-b"), "{lb:?}");
}

/// Log messages the upstream sends on a call's own stream (the conformance reference upstream does) reach that
/// call's client only, from the level its session set with `logging/setLevel`.
// Logging is deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate speaks still use it.
#[allow(deprecated)]
#[tokio::test]
async fn log_messages_on_a_calls_stream_reach_its_client_from_the_level_it_set() {
    let upstream = HttpUpstream::start("everything", &[]);
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream("ev", &upstream.url)
    ));
    let (a, b) = (gateway.client().await, gateway.client().await);
    let (ra, rb) = tokio::join!(
        a.call("ev__test_tool_with_logging", json!({})),
        b.call("ev__test_simple_text", json!({})),
    );
    assert!(ra.is_ok() && rb.is_ok());
    let logged = a.recorder.logs.lock().unwrap().clone();
    assert_eq!(
        logged,
        [
            json!("Tool execution started"),
            json!("Tool processing data"),
            json!("Tool execution completed")
        ]
    );
    assert!(b.recorder.logs.lock().unwrap().is_empty());
    // b wants errors only: the same call's info messages stay out of its stream, a's level is untouched.
    b.service
        .peer()
        .set_level(rmcp::model::SetLevelRequestParams::new(
            rmcp::model::LoggingLevel::Error,
        ))
        .await
        .unwrap();
    b.call("ev__test_tool_with_logging", json!({}))
        .await
        .unwrap();
    a.call("ev__test_tool_with_logging", json!({}))
        .await
        .unwrap();
    assert!(b.recorder.logs.lock().unwrap().is_empty());
    assert_eq!(a.recorder.logs.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn untied_stdio_log_messages_reach_no_client() {
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        stdio_upstream("testbed", "testbed", &[])
    );
    let gateway = Gateway::start(&yaml);
    let a = gateway.client().await;
    let other = gateway.client().await;
    a.call(
        "testbed__slow",
        json!({"ms": 300, "steps": 3, "tag": "solo"}),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(a.recorder.logs.lock().unwrap().is_empty());
    assert!(other.recorder.logs.lock().unwrap().is_empty());
    assert!(
        gateway
            .logs()
            .contains("upstream log message (not forwarded)")
    );
}

#[tokio::test]
async fn client_cancellation_reaches_the_upstream() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        http_upstream("web", &web.url),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    for prefix in ["testbed", "web"] {
        let mut params = CallToolRequestParams::new(format!("{prefix}__slow"));
        params.arguments = json!({"ms": 20000}).as_object().cloned();
        let handle = client
            .service
            .peer()
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                PeerRequestOptions::no_options(),
            )
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        handle.cancel(Some("user gave up".into())).await.unwrap();
        let counters = client.wait_for_cancellation(prefix).await;
        assert_eq!(counters["completed_slow"], 0, "{prefix}");
    }
}

#[tokio::test]
async fn tool_list_changes_are_announced_and_runtime_collisions_refused() {
    let web = HttpUpstream::start("testbed", &[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        stdio_upstream("testbed", "testbed", &[]),
        http_upstream("web", &web.url),
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    for prefix in ["testbed", "web"] {
        let echo = format!("{prefix}__echo");
        assert!(client.tool_names().await.contains(&echo));
        let announced = client.recorder.list_changed.load(Ordering::SeqCst);
        // The upstream starts listing `echo` twice: neither copy may shadow the other, so `echo` is refused.
        client
            .call(&format!("{prefix}__set_duplicate"), json!({"on": true}))
            .await
            .unwrap();
        eventually(10, || async {
            (!client.tool_names().await.contains(&echo)).then_some(())
        })
        .await;
        eventually(10, || async {
            (client.recorder.list_changed.load(Ordering::SeqCst) > announced).then_some(())
        })
        .await;
        let err = client.call(&echo, json!({"text": "x"})).await.unwrap_err();
        assert!(err.to_string().contains("Unknown tool"), "{err}");
        // Fixed upstream: the tool comes back.
        client
            .call(&format!("{prefix}__set_duplicate"), json!({"on": false}))
            .await
            .unwrap();
        eventually(10, || async {
            client.tool_names().await.contains(&echo).then_some(())
        })
        .await;
    }
    assert!(gateway.logs().contains("more than once"));
}
