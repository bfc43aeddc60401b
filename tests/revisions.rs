//! Protocol revisions 2026-07-28 ("modern": stateless, `_meta` on every request) and 2025-11-25 ("legacy":
//! sessions) side by side, on both sides of toolgate: every mix of client and upstream revision reaches tools,
//! resources, prompts, sampling and elicitation; a modern request's routing headers must agree with its body;
//! multi-round state is sealed for one caller and one request; a listen stream is filtered per caller and ends
//! with its credential. Real binary, the conformance reference upstream (it speaks both revisions; pinned to
//! 2025-11-25 for the legacy side), real rmcp clients of either revision and raw HTTP where the test needs the
//! wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Sampling is deprecated by SEP-2577 (protocol 2026-07-28); clients answer it through input requests.
#![allow(deprecated)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use futures::StreamExt;
use rmcp::ClientHandler;
use rmcp::model::{
    CallToolRequestParams, ClientInfo, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ErrorData, GetPromptRequestParams, Implementation,
    ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RoleClient};
use rmcp::service::{RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// A client that answers sampling as a model and elicitation as a user, and keeps what it was asked.
#[derive(Clone, Default)]
struct Answerer {
    asked: Arc<Mutex<Vec<Value>>>,
}

impl Answerer {
    /// Keeps what it was asked.
    fn keep(&self, params: &impl serde::Serialize) {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(params).unwrap());
    }
}

impl ClientHandler for Answerer {
    fn get_info(&self) -> ClientInfo {
        let capabilities =
            serde_json::from_value(json!({"sampling": {}, "elicitation": {"form": {}}})).unwrap();
        ClientInfo::new(capabilities, Implementation::new("answerer", "0"))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.keep(&params);
        Ok(serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "Paris"},
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
        self.keep(&params);
        Ok(serde_json::from_value(json!({
            "action": "accept",
            "content": {"name": "Grace", "response": "yes"},
        }))
        .unwrap())
    }
}

/// An rmcp client of `url`: modern (`server/discover`, then stateless requests) or legacy (`initialize`).
async fn connect(url: &str, token: &str, modern: bool) -> RunningService<RoleClient, Answerer> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
        .auth_header(token.to_string());
    let transport = StreamableHttpClientTransport::from_config(config);
    if modern {
        Answerer::default()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap()
    } else {
        Answerer::default().serve(transport).await.unwrap()
    }
}

/// A gateway in front of the reference upstream twice: `ev` as discovered (2026-07-28), `old` pinned to
/// 2025-11-25.
fn both_revisions() -> (HttpUpstream, Gateway) {
    let upstream = HttpUpstream::start("everything", &[]);
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        http_upstream("ev", &upstream.url),
        http_upstream_pinned("old", &upstream.url, "2025-11-25"),
    ));
    (upstream, gateway)
}

async fn call_text(
    client: &RunningService<RoleClient, Answerer>,
    tool: &str,
    arguments: Value,
) -> String {
    let mut params = CallToolRequestParams::new(tool.to_string());
    params.arguments = arguments.as_object().cloned();
    let result = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
    let value = serde_json::to_value(&result).unwrap();
    value["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mix_of_client_and_upstream_revision_reaches_tools_resources_prompts_and_the_client()
{
    let (_upstream, gateway) = both_revisions();
    for modern in [true, false] {
        let client = connect(&gateway.url, &tester_token(), modern).await;
        let era = if modern {
            "modern client"
        } else {
            "legacy client"
        };
        let info = client.peer_info().unwrap();
        let version = if modern { "2026-07-28" } else { "2025-11-25" };
        assert_eq!(info.protocol_version.to_string(), version, "{era}");
        assert_eq!(
            info.server_info.as_ref().map(|s| s.name.as_str()),
            Some("toolgate"),
            "{era}"
        );
        let tools = client.list_all_tools().await.unwrap();
        for prefix in ["ev", "old"] {
            let simple = format!("{prefix}__test_simple_text");
            assert!(tools.iter().any(|t| t.name == simple), "{era}: {simple}");
            assert!(
                call_text(&client, &simple, json!({}))
                    .await
                    .contains("simple text"),
                "{era} {prefix}"
            );
            let read = client
                .read_resource(ReadResourceRequestParams::new(format!(
                    "toolgate://{prefix}/test://static-text"
                )))
                .await
                .unwrap();
            let read = serde_json::to_value(&read).unwrap();
            assert_eq!(
                read["contents"][0]["uri"],
                format!("toolgate://{prefix}/test://static-text")
            );
            assert!(
                read["contents"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("static text"),
                "{read}"
            );
            let mut prompt =
                GetPromptRequestParams::new(format!("{prefix}__test_prompt_with_arguments"));
            prompt.arguments = json!({"arg1": "one", "arg2": "two"}).as_object().cloned();
            let prompt = serde_json::to_value(client.get_prompt(prompt).await.unwrap()).unwrap();
            assert!(
                prompt.to_string().contains("one") && prompt.to_string().contains("two"),
                "{prompt}"
            );
            // The upstream asks the client: with a request of its own (legacy), or in an `input_required` result
            // (modern); the client answers either way, in its own revision.
            let sampled = call_text(
                &client,
                &format!("{prefix}__test_sampling"),
                json!({"prompt": "capital?"}),
            )
            .await;
            assert_eq!(sampled, "LLM response: Paris", "{era} {prefix}");
            let elicited = call_text(
                &client,
                &format!("{prefix}__test_elicitation"),
                json!({"message": "ok?"}),
            )
            .await;
            assert!(elicited.contains("Grace"), "{era} {prefix}: {elicited}");
        }
        // Multi-round tools need a modern upstream; a legacy client is asked on its call's stream between rounds.
        let rounds = call_text(
            &client,
            "ev__test_input_required_result_multi_round",
            json!({}),
        )
        .await;
        assert!(rounds.contains("three rounds"), "{era}: {rounds}");
        let asked = client.service().asked.lock().unwrap().len();
        assert!(asked >= 6, "{era}: asked {asked} times");
    }
    // Every question went through a decision, and its record says how it was asked.
    let sampled = gateway
        .admin_json("/records?limit=1000&kind=sampling/createMessage")
        .await["records"]
        .as_array()
        .unwrap()
        .clone();
    let outcomes: Vec<&str> = sampled
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"input_required"), "{outcomes:?}");
    assert!(outcomes.contains(&"allowed"), "{outcomes:?}");
    assert!(
        sampled.iter().all(|r| r["decision"] == "allow"),
        "{sampled:?}"
    );
}

/// Extra headers of a request.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// A modern request to `url`: `_meta` with the version and `capabilities`, the routing headers from the body, and
/// `headers` on top (a header with an empty value is left out). The status and the JSON answer.
async fn modern(
    url: &str,
    token: &str,
    method: &str,
    params: Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut params = params;
    let meta = params
        .as_object_mut()
        .unwrap()
        .entry("_meta")
        .or_insert_with(|| json!({}));
    let meta = meta.as_object_mut().unwrap();
    meta.entry("io.modelcontextprotocol/protocolVersion")
        .or_insert(json!("2026-07-28"));
    meta.entry("io.modelcontextprotocol/clientCapabilities")
        .or_insert(json!({"sampling": {}, "elicitation": {}}));
    let mut standard = vec![
        ("mcp-protocol-version".to_string(), "2026-07-28".to_string()),
        ("mcp-method".to_string(), method.to_string()),
    ];
    if let Some(name) = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
    {
        standard.push(("mcp-name".to_string(), name.to_string()));
    }
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json");
    for (name, value) in &standard {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    for (name, value) in headers {
        if !value.is_empty() {
            request = request.header(*name, *value);
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let response = request.json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_modern_request_is_decided_on_its_body_and_its_headers_must_agree_with_it() {
    let (_upstream, gateway) = both_revisions();
    let (url, token) = (gateway.url.as_str(), tester_token());
    let simple = json!({"name": "ev__test_simple_text", "arguments": {}});
    let (status, ok) = modern(url, &token, "tools/call", simple.clone(), &[]).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["result"]["resultType"], "complete", "{ok}");
    assert_eq!(
        ok["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "toolgate"
    );
    // A name in the Base64 sentinel form is the same name; padding blanks are not part of a header value.
    let encoded = "=?base64?ZXZfX3Rlc3Rfc2ltcGxlX3RleHQ=?=";
    for name in [encoded, "  ev__test_simple_text  "] {
        let (status, answer) = modern(
            url,
            &token,
            "tools/call",
            simple.clone(),
            &[("mcp-name", name)],
        )
        .await;
        assert_eq!(
            (status, &answer["result"]["resultType"]),
            (200, &json!("complete")),
            "{name}: {answer}"
        );
    }
    // Headers that disagree with the body, or are missing: refused before anything is decided.
    let mismatches: [(&str, Value, Headers); 6] = [
        (
            "tools/call",
            simple.clone(),
            &[("mcp-name", "ev__test_error_handling")],
        ),
        ("tools/call", simple.clone(), &[("mcp-name", "")]),
        (
            "tools/call",
            simple.clone(),
            &[("mcp-name", "=?base64?ZXZf!!?=")],
        ),
        ("tools/list", json!({}), &[("mcp-method", "prompts/list")]),
        ("tools/list", json!({}), &[("mcp-method", "")]),
        (
            "tools/list",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}}),
            &[],
        ),
    ];
    for (method, params, headers) in mismatches {
        let (status, answer) = modern(url, &token, method, params, headers).await;
        assert_eq!(status, 400, "{headers:?}: {answer}");
        assert_eq!(answer["error"]["code"], -32020, "{headers:?}: {answer}");
        assert_eq!(answer["id"], 7);
    }
    // A version toolgate does not speak: the versions it does, and the one asked for.
    let odd = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}});
    let (status, answer) = modern(
        url,
        &token,
        "tools/list",
        odd,
        &[("mcp-protocol-version", "2099-01-01")],
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!(-32022)),
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["requested"], "2099-01-01");
    let supported = answer["error"]["data"]["supported"].as_array().unwrap();
    assert!(supported.contains(&json!("2026-07-28")) && supported.contains(&json!("2025-11-25")));
    // Required `_meta` missing: invalid params, 400.
    let (status, answer) = modern(
        url,
        &token,
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": null}}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!(-32602)),
        "{answer}"
    );
    // Methods of the legacy revisions only: unknown here.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
    ] {
        let (status, answer) = modern(
            url,
            &token,
            method,
            json!({"uri": "x", "level": "info"}),
            &[],
        )
        .await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (404, &json!(-32601)),
            "{method}: {answer}"
        );
    }
    // A capability the upstream needs and the client did not declare: the upstream's refusal, with what it needs.
    let (status, answer) = modern(
        url,
        &token,
        "tools/call",
        json!({"name": "ev__test_missing_capability", "arguments": {},
               "_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!(-32021)),
        "{answer}"
    );
    assert!(
        answer["error"]["data"]["requiredCapabilities"]["sampling"].is_object(),
        "{answer}"
    );
    // Argument mirrors (`Mcp-Param-*`) decide nothing; a resource that is not there is -32602 with its URI.
    let (status, answer) = modern(
        url,
        &token,
        "resources/read",
        json!({"uri": "toolgate://ev/test://nothing-here"}),
        &[("mcp-param-uri", "test://static-text")],
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (200, &json!(-32602)),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["data"]["uri"],
        "toolgate://ev/test://nothing-here"
    );
    // An argument the tool mirrors into a header reaches the modern upstream in it, built from the body toolgate
    // sends (the client's own mirror decides nothing, and is not passed on).
    for (region, sent) in [
        ("us-west1", "us-west1"),
        ("Zürich ", "=?base64?WsO8cmljaCA=?="),
    ] {
        let (_, mirrored) = modern(
            url,
            &token,
            "tools/call",
            json!({"name": "ev__test_argument_mirror", "arguments": {"region": region}}),
            &[("mcp-param-region", "somewhere-else")],
        )
        .await;
        let said = mirrored["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(said, format!("Mcp-Param-Region: {sent}"), "{mirrored}");
    }
    // Listings and reads carry caching hints: private, as they are decided per caller.
    let (_, listed) = modern(url, &token, "tools/list", json!({}), &[]).await;
    assert_eq!(listed["result"]["cacheScope"], "private", "{listed}");
    assert!(listed["result"]["ttlMs"].as_u64().is_some(), "{listed}");
    let (_, discovered) = modern(url, &token, "server/discover", json!({}), &[]).await;
    assert_eq!(
        discovered["result"]["supportedVersions"][0], "2026-07-28",
        "{discovered}"
    );
}

/// An agents file with two callers acting alone.
const TWO_AGENTS: &str = "agents:
  tester:
    owner: qa
    description: Test client.
    scope: ['*']
    max_classification: restricted
    acts_alone:
      - issuer: toolgate-dev
        subject: tester
  other:
    owner: qa
    description: Another test client.
    scope: ['*']
    max_classification: restricted
    acts_alone:
      - issuer: toolgate-dev
        subject: other
";

fn two_callers_gateway() -> (HttpUpstream, Gateway, tempfile::TempDir) {
    let upstream = HttpUpstream::start("everything", &[]);
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(&agents, TWO_AGENTS).unwrap();
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}",
        http_upstream("ev", &upstream.url),
        http_upstream_pinned("old", &upstream.url, "2025-11-25"),
        test_auth(&agents.display().to_string()),
    ));
    (upstream, gateway, dir)
}

#[tokio::test]
async fn a_request_state_is_honoured_only_untampered_for_its_caller_and_its_request() {
    let (_upstream, gateway, _dir) = two_callers_gateway();
    let url = gateway.url.as_str();
    let (tester, other) = (tester_token(), dev_token(None, Some("other"), &[], None));
    // Both kinds of state: the upstream's own, sealed (a modern upstream), and a call toolgate holds (a legacy one).
    for tool in [
        "ev__test_input_required_result_request_state",
        "old__test_elicitation",
    ] {
        let params = json!({"name": tool, "arguments": {"message": "ok?"}});
        let (_, first) = modern(url, &tester, "tools/call", params.clone(), &[]).await;
        assert_eq!(
            first["result"]["resultType"], "input_required",
            "{tool}: {first}"
        );
        let state = first["result"]["requestState"]
            .as_str()
            .unwrap()
            .to_string();
        // What the state binds (and the upstream's own state) is not readable by the client: it is encrypted.
        let opened =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &state)
                .unwrap();
        assert!(
            !String::from_utf8_lossy(&opened).contains("tester"),
            "{tool}: the state is readable"
        );
        let key = first["result"]["inputRequests"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        let answers =
            json!({key.clone(): {"action": "accept", "content": {"ok": true, "name": "Grace"}}});
        let retry = |state: String| {
            let mut params = params.clone();
            params["inputResponses"] = answers.clone();
            params["requestState"] = json!(state);
            params
        };
        // Every state one byte away from the one handed out is refused (the class, not one example).
        let bytes = state.as_bytes();
        for at in (0..bytes.len()).step_by(3) {
            let mut tampered = bytes.to_vec();
            tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            let (_, refused) = modern(url, &tester, "tools/call", retry(tampered), &[]).await;
            assert_eq!(
                refused["error"]["code"], -32602,
                "{tool} at {at}: {refused}"
            );
        }
        let (_, truncated) = modern(
            url,
            &tester,
            "tools/call",
            retry(state[..state.len() - 1].into()),
            &[],
        )
        .await;
        assert_eq!(
            truncated["error"]["data"]["reason"], "request_state_invalid",
            "{truncated}"
        );
        // Another caller, or another tool: refused.
        let (_, stolen) = modern(url, &other, "tools/call", retry(state.clone()), &[]).await;
        assert_eq!(
            stolen["error"]["data"]["reason"], "request_state_invalid",
            "{tool}: {stolen}"
        );
        let mut elsewhere = retry(state.clone());
        elsewhere["name"] = json!("ev__test_simple_text");
        let (_, moved) = modern(url, &tester, "tools/call", elsewhere, &[]).await;
        assert_eq!(
            moved["error"]["data"]["reason"], "request_state_invalid",
            "{tool}: {moved}"
        );
        // The upstream's own state is bound to the arguments it answered: other arguments are refused (a held call
        // continues with its own, whatever a retry says).
        if tool.starts_with("ev__") {
            let mut changed = retry(state.clone());
            changed["arguments"] = json!({"message": "something else"});
            let (_, refused) = modern(url, &tester, "tools/call", changed, &[]).await;
            assert_eq!(
                refused["error"]["data"]["reason"], "request_state_invalid",
                "{tool}: {refused}"
            );
        }
        // Answers without a state toolgate sealed are not passed on: the upstream asks again.
        let mut unasked = params.clone();
        unasked["inputResponses"] = answers.clone();
        let (_, asked_again) = modern(url, &tester, "tools/call", unasked, &[]).await;
        assert_eq!(
            asked_again["result"]["resultType"], "input_required",
            "{tool}: {asked_again}"
        );
        // Its own caller, untampered: the call completes.
        let (_, done) = modern(url, &tester, "tools/call", retry(state), &[]).await;
        assert_eq!(done["result"]["resultType"], "complete", "{tool}: {done}");
        assert_ne!(done["result"]["isError"], true, "{tool}: {done}");
    }
    // Every refusal left a record naming why.
    let records = gateway
        .admin_json("/records?limit=1000&kind=tools/call")
        .await["records"]
        .as_array()
        .unwrap()
        .clone();
    let refused = records
        .iter()
        .filter(|r| r["outcome"] == "request_state_invalid")
        .count();
    assert!(refused >= 6, "{refused} refusals recorded");
}

/// Reads a listen stream's events (as JSON) until `stop` says so, for at most `secs` seconds.
async fn listen_until(
    response: reqwest::Response,
    secs: u64,
    stop: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut stream = Box::pin(sse_stream::SseByteStream::new(response.bytes_stream()));
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while let Ok(Some(Ok(event))) = tokio::time::timeout_at(deadline, stream.next()).await {
        if let Some(data) = event.data.filter(|d| !d.is_empty()) {
            seen.push(serde_json::from_str(&data).unwrap());
            if stop(&seen) {
                break;
            }
        }
    }
    seen
}

async fn open_listen(url: &str, token: &str, notifications: Value) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": "watch", "method": "subscriptions/listen", "params": {
        "notifications": notifications,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

#[tokio::test]
async fn a_listen_stream_carries_what_it_asked_for_and_ends_with_its_credential() {
    let (_upstream, gateway, _dir) = two_callers_gateway();
    let token = dev_token(None, Some("other"), &[], None);
    // The same resource through a modern upstream (its own listen stream) and a legacy one (`resources/subscribe`).
    let watched = "toolgate://ev/test://watched-resource";
    let legacy = "toolgate://old/test://watched-resource";
    let response = open_listen(
        &gateway.url,
        &token,
        json!({"promptsListChanged": true, "resourceSubscriptions": [watched, "toolgate://nowhere/x", legacy]}),
    )
    .await;
    // A prompt list change upstream, and the watched resource's periodic updates.
    let trigger = connect(&gateway.url, &tester_token(), true).await;
    let waiter = tokio::spawn(listen_until(response, 20, move |seen| {
        let updated = |uri: &str| seen.iter().any(|m| m["params"]["uri"] == uri);
        updated(watched)
            && updated(legacy)
            && seen
                .iter()
                .any(|m| m["method"] == "notifications/prompts/list_changed")
    }));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    call_text(&trigger, "ev__test_trigger_prompt_change", json!({})).await;
    call_text(&trigger, "ev__test_trigger_tool_change", json!({})).await;
    let seen = waiter.await.unwrap();
    // First the acknowledgment, with only what toolgate honours: the resource that is not there is left out.
    assert_eq!(
        seen[0]["method"], "notifications/subscriptions/acknowledged",
        "{seen:?}"
    );
    assert_eq!(
        seen[0]["params"]["notifications"],
        json!({"promptsListChanged": true, "resourceSubscriptions": [watched, legacy]})
    );
    for message in &seen {
        assert_eq!(
            message["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "watch",
            "{message}"
        );
        assert_ne!(
            message["method"], "notifications/tools/list_changed",
            "not asked for: {message}"
        );
    }
    for uri in [watched, legacy] {
        assert!(
            seen.iter().any(|m| m["params"]["uri"] == uri),
            "{uri}: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|m| m["method"] == "notifications/prompts/list_changed"),
        "{seen:?}"
    );
    // Revoking the credential ends the stream, with the request's final answer.
    let response = open_listen(&gateway.url, &token, json!({"toolsListChanged": true})).await;
    let waiter = tokio::spawn(listen_until(response, 20, |seen| {
        seen.last().is_some_and(|m| m.get("result").is_some())
    }));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    revoke(&gateway, &token);
    let seen = waiter.await.unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last["id"], "watch", "{seen:?}");
    assert_eq!(last["result"]["resultType"], "complete", "{seen:?}");
    // A revoked credential opens no new stream.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {"notifications": {}}});
    let refused = reqwest::Client::new()
        .post(&gateway.url)
        .bearer_auth(&token)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn a_modern_client_over_stdio_is_answered_statelessly() {
    let upstream = HttpUpstream::start("everything", &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = stdio_mode_config(dir.path(), &http_upstream("ev", &upstream.url), "");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    command
        .args(["serve", "--dev", "--stdio", "--config"])
        .arg(&config)
        .env("TOOLGATE_TOKEN", tester_token());
    let child = rmcp::transport::TokioChildProcess::new(command).unwrap();
    // `server/discover` first, then every request with its own `_meta`, on the one pipe.
    let client = Answerer::default()
        .serve_with_lifecycle(
            child,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.peer_info().unwrap().protocol_version.to_string(),
        "2026-07-28"
    );
    let tools = eventually(20, || async {
        let tools = client.list_all_tools().await.ok()?;
        tools
            .iter()
            .any(|t| t.name == "ev__test_simple_text")
            .then_some(tools)
    })
    .await;
    assert!(
        tools
            .iter()
            .any(|t| t.name == "ev__test_input_required_result_elicitation")
    );
    assert!(
        call_text(&client, "ev__test_simple_text", json!({}))
            .await
            .contains("simple text")
    );
    // An upstream's input requests come back to the client in the result, and its retry completes the call.
    let greeted = call_text(
        &client,
        "ev__test_input_required_result_elicitation",
        json!({}),
    )
    .await;
    assert!(greeted.contains("Grace"), "{greeted}");
    assert_eq!(client.service().asked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_held_call_continues_only_while_its_caller_may_still_use_the_tool() {
    let (_upstream, gateway) = both_revisions();
    let url = gateway.url.as_str();
    let params = json!({"name": "old__test_elicitation", "arguments": {"message": "ok?"}});
    let (_, first) = modern(url, &tester_token(), "tools/call", params.clone(), &[]).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let key = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let mut retry = params.clone();
    retry["requestState"] = first["result"]["requestState"].clone();
    retry["inputResponses"] = json!({key: {"action": "accept", "content": {"response": "yes"}}});
    // The same caller, now with a token whose scope leaves the tool out: the held call ends there.
    let narrow = dev_token(None, Some("tester"), &[], Some("old__test_simple_text"));
    let (_, refused) = modern(url, &narrow, "tools/call", retry.clone(), &[]).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(
        refused["error"]["message"], "Unknown tool: old__test_elicitation",
        "{refused}"
    );
    let (_, gone) = modern(url, &tester_token(), "tools/call", retry, &[]).await;
    assert_eq!(
        gone["error"]["data"]["reason"], "request_state_invalid",
        "{gone}"
    );
}
