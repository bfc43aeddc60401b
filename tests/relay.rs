//! Requests an upstream makes of the client during a call (sampling, elicitation) reach the client whose call
//! caused them and no other, are decided by policy and recorded; a client that did not declare the capability
//! gets a clean error to its upstream. Real binary, the conformance reference upstream over HTTP and stdio, real
//! rmcp clients that act as the model and the user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Sampling is deprecated by SEP-2577 (protocol 2026-07-28); the 2025 versions toolgate speaks still use it.
#![allow(deprecated)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientInfo, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorData, Implementation,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};

/// A client that answers sampling as a (slow) model and elicitation as a user, and keeps what it was asked.
#[derive(Clone)]
struct Person {
    name: &'static str,
    declares: bool,
    asked: Arc<Mutex<Vec<Value>>>,
}

impl Person {
    fn new(name: &'static str, declares: bool) -> Self {
        Self {
            name,
            declares,
            asked: Arc::default(),
        }
    }

    fn asked(&self) -> Vec<Value> {
        self.asked.lock().unwrap().clone()
    }

    async fn connect(&self, url: &str, token: &str) -> RunningService<RoleClient, Person> {
        let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
            .auth_header(token.to_string());
        self.clone()
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap()
    }
}

impl ClientHandler for Person {
    fn get_info(&self) -> ClientInfo {
        let capabilities = if self.declares {
            serde_json::from_value(json!({"sampling": {}, "elicitation": {}})).unwrap()
        } else {
            ClientCapabilities::default()
        };
        ClientInfo::new(capabilities, Implementation::new(self.name, "0"))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(&params).unwrap());
        // Slow enough that two callers' calls overlap.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": format!("answer from {}", self.name)},
            "model": "test-model",
            "stopReason": "endTurn",
        }))
        .unwrap())
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(&params).unwrap());
        Ok(serde_json::from_value(json!({
            "action": "accept",
            "content": {"response": format!("{} says yes", self.name)},
        }))
        .unwrap())
    }
}

async fn call(client: &RunningService<RoleClient, Person>, tool: &str, arguments: Value) -> String {
    let mut params = CallToolRequestParams::new(tool.to_string());
    params.arguments = arguments.as_object().cloned();
    let result = client.peer().call_tool(params).await.unwrap();
    let value = serde_json::to_value(&result).unwrap();
    format!(
        "{}{}",
        if result.is_error == Some(true) {
            "error: "
        } else {
            ""
        },
        value["content"][0]["text"].as_str().unwrap_or_default()
    )
}

async fn records(gateway: &Gateway, kind: &str) -> Vec<Value> {
    gateway
        .admin_json(&format!("/records?limit=1000&kind={kind}"))
        .await["records"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_reaches_only_the_client_whose_call_asked_over_http() {
    let upstream = HttpUpstream::start("everything", &[]);
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream("ev", &upstream.url)
    ));
    let (ann, bea) = (Person::new("ann", true), Person::new("bea", true));
    let (ann_client, bea_client) = (
        ann.connect(&gateway.url, &tester_token()).await,
        bea.connect(&gateway.url, &tester_token()).await,
    );
    // Both calls are in flight at once, each on its own session; each model answers its own caller only.
    for round in 0..3 {
        let (a, b) = tokio::join!(
            call(
                &ann_client,
                "ev__test_sampling",
                json!({"prompt": format!("ann's question {round}")})
            ),
            call(
                &bea_client,
                "ev__test_sampling",
                json!({"prompt": format!("bea's question {round}")})
            ),
        );
        assert_eq!(a, "LLM response: answer from ann");
        assert_eq!(b, "LLM response: answer from bea");
    }
    for (person, own) in [(&ann, "ann's"), (&bea, "bea's")] {
        let asked = person.asked();
        assert_eq!(asked.len(), 3, "{asked:?}");
        assert!(
            asked.iter().all(|a| a.to_string().contains(own)),
            "{asked:?}"
        );
    }
    // Elicitation goes the same way.
    let answer = call(
        &bea_client,
        "ev__test_elicitation",
        json!({"message": "confirm?"}),
    )
    .await;
    assert!(answer.contains("bea says yes"), "{answer}");
    assert_eq!(ann.asked().len(), 3);

    // A client that did not declare sampling is never asked: its upstream gets a clean error.
    let mute = Person::new("mute", false);
    let mute_client = mute.connect(&gateway.url, &tester_token()).await;
    let refused = call(&mute_client, "ev__test_sampling", json!({"prompt": "x"})).await;
    assert!(
        refused.contains("did not declare the `sampling` capability"),
        "{refused}"
    );
    assert!(mute.asked().is_empty());

    // Every request leaves a record: who, for which tool, the outcome; the model's answer is not in it.
    let sampled = records(&gateway, "sampling/createMessage").await;
    assert_eq!(sampled.len(), 7, "{sampled:?}");
    assert!(
        sampled
            .iter()
            .all(|r| r["tool"] == "ev__test_sampling" && r["upstream"] == "ev")
    );
    assert_eq!(
        sampled.iter().filter(|r| r["outcome"] == "allowed").count(),
        6
    );
    assert!(
        !serde_json::to_string(&sampled)
            .unwrap()
            .contains("answer from")
    );
    // The client that declared nothing: the upstream asked, and was told the client cannot.
    let to_mute: Vec<&Value> = sampled
        .iter()
        .filter(|r| r["outcome"] == "client_capability_missing")
        .collect();
    assert_eq!(to_mute.len(), 1, "{sampled:?}");
    let elicited = records(&gateway, "elicitation/create").await;
    assert_eq!(elicited.len(), 1);
    assert_eq!(elicited[0]["upstream_outcome"], "accept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio_a_request_is_relayed_only_when_one_call_is_in_flight() {
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        stdio_upstream("ev", "everything", &[])
    ));
    let (ann, bea) = (Person::new("ann", true), Person::new("bea", true));
    let (ann_client, bea_client) = (
        ann.connect(&gateway.url, &tester_token()).await,
        bea.connect(&gateway.url, &tester_token()).await,
    );
    // One call at a time: each request is the one call's, relayed to its client.
    let a = call(
        &ann_client,
        "ev__test_sampling",
        json!({"prompt": "ann alone"}),
    )
    .await;
    let b = call(
        &bea_client,
        "ev__test_sampling",
        json!({"prompt": "bea alone"}),
    )
    .await;
    assert_eq!(
        (a.as_str(), b.as_str()),
        (
            "LLM response: answer from ann",
            "LLM response: answer from bea"
        )
    );
    // Calls in flight together on the one stdio session: nothing ties a request to its call, so none is relayed
    // to anyone rather than to the wrong client.
    let slow = call(&ann_client, "ev__test_tool_with_progress", json!({}));
    let sampled = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        call(
            &bea_client,
            "ev__test_sampling",
            json!({"prompt": "bea together"}),
        )
        .await
    };
    let (_, together) = tokio::join!(slow, sampled);
    assert!(
        together.starts_with("error: ") || together == "LLM response: answer from bea",
        "{together}"
    );
    assert!(ann.asked().iter().all(|a| !a.to_string().contains("bea")));
    assert!(bea.asked().iter().all(|a| !a.to_string().contains("ann")));
}

#[tokio::test]
async fn the_policy_may_refuse_an_upstream_its_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("authz.rego"),
        "package toolgate.authz\n\ndefault allow := false\n\nallow if input.action != \"sample\"\n\n\
         default reasons := []\n\nreasons := [\"no model may be asked here\"] if not allow\n\n\
         decision := {\"allow\": allow, \"escalate\": false, \"reasons\": reasons, \
         \"obligations\": {\"clearance\": \"restricted\", \"redact\": []}}\n",
    )
    .unwrap();
    let manifests = fixture("manifests-empty");
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
        stdio_upstream("ev", "everything", &[]),
        dir.path().display(),
        manifests.display()
    ));
    let ann = Person::new("ann", true);
    let client = ann.connect(&gateway.url, &tester_token()).await;
    let refused = call(&client, "ev__test_sampling", json!({"prompt": "may I?"})).await;
    assert!(refused.starts_with("error: "), "{refused}");
    assert!(ann.asked().is_empty());
    let answer = call(&client, "ev__test_elicitation", json!({"message": "ok?"})).await;
    assert!(answer.contains("ann says yes"), "{answer}");
    let denied = records(&gateway, "sampling/createMessage").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["decision"], "deny");
    assert_eq!(denied[0]["outcome"], "policy_denied");
    assert_eq!(denied[0]["reasons"][0], "no model may be asked here");
}

/// Many callers at once, each asking several times while the others' requests are in flight: every model is asked
/// only its own caller's questions, and every caller gets only its own model's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_are_never_crossed() {
    const NAMES: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let upstream = HttpUpstream::start("everything", &[]);
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream("ev", &upstream.url)
    ));
    let people: Vec<Person> = NAMES.iter().map(|n| Person::new(n, true)).collect();
    let mut clients = Vec::new();
    for person in &people {
        clients.push(person.connect(&gateway.url, &tester_token()).await);
    }
    let calls = clients.iter().zip(NAMES).map(|(client, name)| async move {
        let mut answers = Vec::new();
        for round in 0..3 {
            tokio::time::sleep(Duration::from_millis(37 * (round + name.len() as u64))).await;
            let prompt = json!({"prompt": format!("question of {name} #{round}")});
            answers.push(call(client, "ev__test_sampling", prompt).await);
        }
        answers
    });
    let answers = futures::future::join_all(calls).await;
    for ((person, name), answers) in people.iter().zip(NAMES).zip(answers) {
        assert!(
            answers
                .iter()
                .all(|a| *a == format!("LLM response: answer from {name}")),
            "{name}: {answers:?}"
        );
        let asked = person.asked();
        assert_eq!(asked.len(), 3, "{name}: {asked:?}");
        assert!(
            asked
                .iter()
                .all(|a| a.to_string().contains(&format!("question of {name} #"))),
            "{name} was asked another caller's question: {asked:?}"
        );
    }
}
