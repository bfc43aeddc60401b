//! Identity on every request: bad tokens get 401 with the resource-metadata challenge, valid tokens that may not
//! use the gateway get 403, delegation chains are checked, scope decides what a caller sees and may call, and a
//! session belongs to the subject that opened it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{Map, Value, json};
use toolgate::identity::token::{TokenRequest, claims, sign_dev};

fn quickstart_gateway() -> Gateway {
    // A second issuer (same key, different name) for cross-issuer binding checks.
    quickstart_identity_gateway(&format!(
        "    - issuer: other-idp\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n    - issuer: https://idp.example\n      audience: toolgate\n      jwks_file: \"{}\"\n",
        dev_jwks(),
        other_jwks()
    ))
}

fn request(
    subject: Option<&str>,
    agent: Option<&str>,
    via: &[&str],
    scope: Option<&str>,
) -> TokenRequest {
    TokenRequest {
        subject: subject.map(str::to_string),
        roles: vec!["hr".into()],
        agent: agent.map(str::to_string),
        via: via.iter().map(|v| v.to_string()).collect(),
        scope: scope.map(str::to_string),
        audience: "toolgate".into(),
        ttl: Duration::from_secs(600),
    }
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims of alice's assistant, to alter.
fn base_claims() -> Map<String, Value> {
    claims(&request(Some("alice"), Some("assistant"), &[], None), now()).unwrap()
}

fn with(mut claims: Map<String, Value>, key: &str, value: Value) -> String {
    if value.is_null() {
        claims.remove(key);
    } else {
        claims.insert(key.into(), value);
    }
    sign_dev(&claims).unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// POSTs an initialize with `token` (and `url_suffix`), returning status, reason id and challenge.
async fn try_token(
    gateway: &Gateway,
    token: Option<&str>,
    url_suffix: &str,
) -> (u16, String, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{url_suffix}", gateway.url))
        .header("content-type", "application/json")
        .body(INITIALIZE);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let reason = body["error"]["data"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (status, reason, challenge)
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_reason() {
    let gateway = quickstart_gateway();
    let expect = |(status, reason, challenge): (u16, String, String), want: &str| {
        assert_eq!(status, 401, "{want}: got {status} {reason}");
        assert_eq!(reason, want);
        assert!(
            challenge.starts_with("Bearer resource_metadata=\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("/.well-known/oauth-protected-resource"),
            "{challenge}"
        );
    };
    expect(try_token(&gateway, None, "").await, "token_missing");
    expect(
        try_token(&gateway, Some("not-a-jwt"), "").await,
        "token_malformed",
    );
    // alg: none
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&Value::Object(base_claims()))
    );
    let (status, reason, _) = try_token(&gateway, Some(&none), "").await;
    assert_eq!(status, 401);
    assert!(
        reason == "token_malformed" || reason == "token_algorithm",
        "{reason}"
    );
    // HS256 signed with the RSA public key as the HMAC secret (key confusion).
    let public = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/quickstart/dev-keys/dev-public-key.pem"),
    )
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("toolgate-dev-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &base_claims(),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    expect(
        try_token(&gateway, Some(&confused), "").await,
        "token_algorithm",
    );
    // Unknown key id, and a key embedded in the header.
    let key = dev_signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("someone-elses-key".into());
    let unknown_kid = jsonwebtoken::encode(&header, &base_claims(), &key).unwrap();
    expect(
        try_token(&gateway, Some(&unknown_kid), "").await,
        "token_unknown_key",
    );
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("toolgate-dev-1".into());
    header.jku = Some("https://attacker.example/jwks.json".into());
    let jku = jsonwebtoken::encode(&header, &base_claims(), &key).unwrap();
    expect(
        try_token(&gateway, Some(&jku), "").await,
        "token_header_key",
    );
    // Time and audience claims.
    expect(
        try_token(
            &gateway,
            Some(&with(base_claims(), "exp", json!(now() - 3600))),
            "",
        )
        .await,
        "token_expired",
    );
    expect(
        try_token(
            &gateway,
            Some(&with(base_claims(), "nbf", json!(now() + 3600))),
            "",
        )
        .await,
        "token_not_yet_valid",
    );
    expect(
        try_token(&gateway, Some(&with(base_claims(), "exp", Value::Null)), "").await,
        "token_claim_missing",
    );
    expect(
        try_token(&gateway, Some(&with(base_claims(), "iat", Value::Null)), "").await,
        "token_claim_missing",
    );
    expect(
        try_token(
            &gateway,
            Some(&with(base_claims(), "aud", json!("someone-else"))),
            "",
        )
        .await,
        "token_audience",
    );
    expect(
        try_token(
            &gateway,
            Some(&with(
                base_claims(),
                "iss",
                json!("https://unknown.example"),
            )),
            "",
        )
        .await,
        "token_unknown_issuer",
    );
    // A token in the URL is refused even alongside nothing else.
    let good = sign_dev(&base_claims()).unwrap();
    expect(
        try_token(&gateway, None, &format!("?access_token={good}")).await,
        "token_in_query",
    );
    // And the good token works.
    assert_eq!(try_token(&gateway, Some(&good), "").await.0, 200);
}

#[tokio::test]
async fn callers_that_may_not_use_the_gateway_get_403() {
    let gateway = quickstart_gateway();
    let expect = |(status, reason, _): (u16, String, String), want: &str| {
        assert_eq!((status, reason.as_str()), (403, want));
    };
    let token = |s: Option<&str>, a: Option<&str>, via: &[&str], scope: Option<&str>| {
        toolgate::identity::token::mint_dev(&request(s, a, via, scope)).unwrap()
    };
    expect(
        try_token(
            &gateway,
            Some(&token(Some("alice"), Some("ghost"), &[], None)),
            "",
        )
        .await,
        "agent_unregistered",
    );
    expect(
        try_token(&gateway, Some(&token(Some("alice"), None, &[], None)), "").await,
        "agent_missing",
    );
    // The sub-agent may not act for a human directly, only through its parent.
    expect(
        try_token(
            &gateway,
            Some(&token(Some("alice"), Some("summarizer"), &[], None)),
            "",
        )
        .await,
        "agent_may_not_act_for_humans",
    );
    // A forged hop: the assistant may not delegate to the nightly job.
    expect(
        try_token(
            &gateway,
            Some(&token(
                Some("alice"),
                Some("assistant"),
                &["nightly-report"],
                None,
            )),
            "",
        )
        .await,
        "delegation_not_allowed",
    );
    expect(
        try_token(
            &gateway,
            Some(&token(
                Some("alice"),
                Some("assistant"),
                &["summarizer", "assistant"],
                None,
            )),
            "",
        )
        .await,
        "delegation_cycle",
    );
    expect(
        try_token(
            &gateway,
            Some(&token(
                Some("alice"),
                Some("assistant"),
                &["summarizer", "a", "b", "c"],
                None,
            )),
            "",
        )
        .await,
        "delegation_too_deep",
    );
    // A child asking for more than its parent allows.
    expect(
        try_token(
            &gateway,
            Some(&token(
                Some("alice"),
                Some("assistant"),
                &["summarizer"],
                Some("files__write_file"),
            )),
            "",
        )
        .await,
        "delegation_escalation",
    );
    expect(
        try_token(
            &gateway,
            Some(&token(
                None,
                Some("nightly-report"),
                &[],
                Some("sql__* hr__*"),
            )),
            "",
        )
        .await,
        "delegation_escalation",
    );
    // Agent-only tokens: the agent must be allowed to act alone, asserted by its bound issuer.
    expect(
        try_token(
            &gateway,
            Some(&token(None, Some("assistant"), &[], None)),
            "",
        )
        .await,
        "agent_may_not_act_alone",
    );
    let mut foreign = claims(&request(None, Some("nightly-report"), &[], None), now()).unwrap();
    foreign.insert("iss".into(), json!("other-idp"));
    expect(
        try_token(&gateway, Some(&sign_dev(&foreign).unwrap()), "").await,
        "agent_binding_mismatch",
    );
    assert_eq!(
        try_token(
            &gateway,
            Some(&token(None, Some("nightly-report"), &[], None)),
            ""
        )
        .await
        .0,
        200
    );
    // An agent cannot pose as the human principal of a chain.
    expect(
        try_token(
            &gateway,
            Some(&token(Some("nightly-report"), Some("assistant"), &[], None)),
            "",
        )
        .await,
        "principal_is_agent",
    );
    assert!(gateway.logs().contains("refused as an escalation attempt"));
    assert!(gateway.logs().contains("escalation attempt refused"));
}

#[tokio::test]
async fn scope_decides_what_each_caller_sees_and_calls() {
    let gateway = quickstart_gateway();
    let alice = Client::connect(
        &gateway.url,
        &toolgate::identity::token::mint_dev(&request(Some("alice"), Some("assistant"), &[], None))
            .unwrap(),
    )
    .await;
    let summarizer = Client::connect(
        &gateway.url,
        &toolgate::identity::token::mint_dev(&request(
            Some("alice"),
            Some("assistant"),
            &["summarizer"],
            None,
        ))
        .unwrap(),
    )
    .await;
    let nightly = Client::connect(
        &gateway.url,
        &toolgate::identity::token::mint_dev(&request(None, Some("nightly-report"), &[], None))
            .unwrap(),
    )
    .await;

    let all = alice.tool_names().await;
    assert!(
        all.contains(&"hr__lookup_employee".to_string())
            && all.contains(&"files__write_file".to_string())
    );
    assert_eq!(
        summarizer.tool_names().await,
        vec!["files__list_files", "files__read_file"]
    );
    assert_eq!(
        nightly.tool_names().await,
        vec!["sql__list_tables", "sql__query"]
    );

    let read = summarizer
        .call("files__read_file", json!({"path": "notes.txt"}))
        .await
        .unwrap();
    assert_eq!(text(&read), "team notes");
    // Out of scope is indistinguishable from unknown.
    for (client, tool) in [
        (&summarizer, "files__write_file"),
        (&nightly, "hr__lookup_employee"),
    ] {
        match client
            .call(
                tool,
                json!({"path": "x", "content": "y", "id_or_email": "E1001"}),
            )
            .await
            .unwrap_err()
        {
            rmcp::ServiceError::McpError(e) => {
                assert_eq!(e.message, format!("Unknown tool: {tool}"))
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A `tools/call` over HTTP on a fresh session: status, `WWW-Authenticate`, body.
async fn raw_call(url: &str, token: &str, tool: &str) -> (u16, Option<String>, Value) {
    let arguments = match tool {
        "hr__lookup_employee" => json!({"id_or_email": "E1001"}),
        _ => json!({"path": "x", "content": "y"}),
    };
    let session = raw_session(url, token).await;
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .body(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, response.json().await.unwrap())
}

#[tokio::test]
async fn a_tool_only_the_tokens_scope_leaves_out_asks_for_a_step_up() {
    let gateway = quickstart_identity_gateway_with("", &quickstart_policy());
    let token = |subject: &str, via: &[&str], scope: &str| {
        toolgate::identity::token::mint_dev(&request(
            Some(subject),
            Some("assistant"),
            via,
            Some(scope),
        ))
        .unwrap()
    };
    let narrow = token("alice", &[], "files__read_file files__list_files");
    let client = Client::connect(&gateway.url, &narrow).await;
    assert_eq!(
        client.tool_names().await,
        vec!["files__list_files", "files__read_file"]
    );

    // Alice's assistant may use both tools; only the token's scope leaves them out: 403 with the challenge
    // naming exactly the scope that reaches the tool.
    for tool in ["hr__lookup_employee", "files__write_file"] {
        let (status, challenge, body) = raw_call(&gateway.url, &narrow, tool).await;
        assert_eq!(status, 403, "{tool}: {body}");
        let challenge = challenge.unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(r#"scope="{tool}""#)),
            "{challenge}"
        );
        assert!(
            challenge.contains(r#"resource_metadata="http://"#)
                && challenge.contains("/.well-known/oauth-protected-resource\""),
            "{challenge}"
        );
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], -32001);
        assert_eq!(body["error"]["data"]["reason"], "insufficient_scope");
        assert_eq!(body["error"]["data"]["scope"], tool);
    }
    // A token asking for that scope reaches the tool.
    let wider = token(
        "alice",
        &[],
        "files__read_file files__list_files hr__lookup_employee",
    );
    let (status, _, body) = raw_call(&gateway.url, &wider, "hr__lookup_employee").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["isError"], false, "{body}");

    // What no token for the chain could reach stays unknown, exactly like a tool that does not exist: beyond the
    // sub-agent's scope, hidden from Bob by policy, or absent.
    let unknown = |tool: &str| json!({"code": -32602, "message": format!("Unknown tool: {tool}")});
    for (token, tool) in [
        (
            token("alice", &["summarizer"], "files__read_file"),
            "files__write_file",
        ),
        (
            toolgate::identity::token::mint_dev(&TokenRequest {
                roles: Vec::new(),
                ..request(
                    Some("bob"),
                    Some("assistant"),
                    &[],
                    Some("files__read_file"),
                )
            })
            .unwrap(),
            "hr__lookup_employee",
        ),
        (narrow.clone(), "hr__no_such_tool"),
    ] {
        let (status, challenge, body) = raw_call(&gateway.url, &token, tool).await;
        assert_eq!((status, challenge), (200, None), "{tool}: {body}");
        assert_eq!(body["error"], unknown(tool), "{tool}");
    }

    // Each refusal is recorded with its reason.
    let records = gateway
        .admin_json("/records?limit=1000&kind=tools/call&decision=deny")
        .await;
    let reasons: Vec<(String, String)> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tool"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("hr__lookup_employee", "insufficient_scope"),
        ("files__write_file", "insufficient_scope"),
        ("files__write_file", "unknown_tool"),
        ("hr__no_such_tool", "unknown_tool"),
    ] {
        assert!(
            reasons.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} not in {reasons:?}"
        );
    }
}

#[tokio::test]
async fn a_session_belongs_to_the_subject_that_opened_it() {
    let gateway = quickstart_gateway();
    let alice =
        toolgate::identity::token::mint_dev(&request(Some("alice"), Some("assistant"), &[], None))
            .unwrap();
    let bob =
        toolgate::identity::token::mint_dev(&request(Some("bob"), Some("assistant"), &[], None))
            .unwrap();
    let http = reqwest::Client::new();
    let session = raw_session(&gateway.url, &alice).await;
    let ping = |token: String| {
        http.post(&gateway.url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("mcp-session-id", &session)
            .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
            .send()
    };
    assert_eq!(ping(alice.clone()).await.unwrap().status(), 200);
    let stolen = ping(bob).await.unwrap();
    assert_eq!(stolen.status(), 403);
    let body: Value = stolen.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "session_subject_mismatch");
    // Every request is authenticated: an expired token on an open session is refused.
    let mut expired = base_claims();
    expired.insert("exp".into(), json!(now() - 120));
    assert_eq!(
        ping(sign_dev(&expired).unwrap()).await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn protected_resource_metadata_and_dev_tokens_need_the_dev_issuer() {
    let gateway = quickstart_gateway();
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        gateway.base()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["resource"], gateway.url);
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));

    // A gateway that does not trust the development issuer refuses development tokens.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
    let agents = dir.path().join("agents.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}auth:\n  issuers:\n    - issuer: https://idp.example\n      audience: toolgate\n      jwks_file: \"{}\"\n  agents_file: \"{}\"\n",
        stdio_upstream("hr", "hr_directory", &[]),
        other_jwks(),
        agents.display()
    );
    // Behind a TLS terminator the public URL is configured.
    let yaml = yaml.replace(
        "  agents_file:",
        "  public_url: https://tools.example.com/\n  agents_file:",
    );
    let strict = Gateway::start(&yaml);
    let (status, reason, challenge) = try_token(&strict, Some(&tester_token()), "").await;
    assert_eq!((status, reason.as_str()), (401, "token_unknown_issuer"));
    assert!(
        challenge.contains(
            "resource_metadata=\"https://tools.example.com/.well-known/oauth-protected-resource\""
        ),
        "{challenge}"
    );
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        strict.base()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["resource"], "https://tools.example.com/mcp");
}

fn jti_of(token: &str) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

fn revoke_cli(gateway: &Gateway, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("revoke")
        .args(["--admin-url", gateway.admin_url.trim_end_matches("/admin")])
        .args(args)
        .env("TOOLGATE_ADMIN_TOKEN", gateway.admin_credential())
        .output()
        .unwrap()
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request_and_survives_restart() {
    let mut gateway = quickstart_gateway();
    let alice =
        toolgate::identity::token::mint_dev(&request(Some("alice"), Some("assistant"), &[], None))
            .unwrap();
    let client = Client::connect(&gateway.url, &alice).await;
    let ok = client.call("sql__list_tables", json!({})).await.unwrap();
    assert!(ok.structured_content.is_some());

    // A token id revoked for another issuer does not touch this one.
    let out = revoke_cli(
        &gateway,
        &["--jti", &jti_of(&alice), "--issuer", "other-idp"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(client.call("sql__list_tables", json!({})).await.is_ok());
    let out = revoke_cli(
        &gateway,
        &[
            "--jti",
            &jti_of(&alice),
            "--issuer",
            "toolgate-dev",
            "--reason",
            "laptop lost",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Same session, no reconnect: the next call is refused.
    assert!(client.call("sql__list_tables", json!({})).await.is_err());
    let (status, reason, _) = try_token(&gateway, Some(&alice), "").await;
    assert_eq!((status, reason.as_str()), (401, "token_revoked"));
    assert!(gateway.logs().contains("revoked credential presented"));

    // Revoking a parent agent refuses every chain that goes through it.
    let delegated = toolgate::identity::token::mint_dev(&request(
        Some("carol"),
        Some("assistant"),
        &["summarizer"],
        None,
    ))
    .unwrap();
    assert_eq!(try_token(&gateway, Some(&delegated), "").await.0, 200);
    let out = revoke_cli(&gateway, &["--agent", "assistant"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, reason, _) = try_token(&gateway, Some(&delegated), "").await;
    assert_eq!((status, reason.as_str()), (401, "token_revoked"));
    let nightly =
        toolgate::identity::token::mint_dev(&request(None, Some("nightly-report"), &[], None))
            .unwrap();
    assert_eq!(try_token(&gateway, Some(&nightly), "").await.0, 200);

    // Revocations are stored: a restarted gateway still refuses.
    gateway.restart();
    assert_eq!(
        try_token(&gateway, Some(&alice), "").await.1,
        "token_revoked"
    );
    assert_eq!(
        try_token(&gateway, Some(&delegated), "").await.1,
        "token_revoked"
    );
    assert_eq!(try_token(&gateway, Some(&nightly), "").await.0, 200);

    // A subject revoked for tokens issued before a time.
    let later = humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(5))
        .to_string();
    let out = revoke_cli(
        &gateway,
        &[
            "--subject",
            "nightly-report",
            "--issuer",
            "toolgate-dev",
            "--issued-before",
            &later,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        try_token(&gateway, Some(&nightly), "").await.1,
        "token_revoked"
    );
}

#[tokio::test]
async fn admin_api_needs_an_admin_credential() {
    let gateway = quickstart_gateway();
    let http = reqwest::Client::new();
    let url = format!("{}/revocations", gateway.admin_url);
    let body = json!({"kind": "agent", "agent": "summarizer"});
    // No token, a user's token, an agent's token: refused, whatever they claim.
    let no_token = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let mut user = claims(&request(Some("alice"), Some("assistant"), &[], None), now()).unwrap();
    user.insert("roles".into(), json!(["admin"]));
    for token in [sign_dev(&user).unwrap(), tester_token()] {
        let response = http
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let reason: Value = response.json().await.unwrap();
        // Caller audiences never reach the admin API; development tokens never administer anything.
        assert!(
            reason["reason"] == "token_audience" || reason["reason"] == "token_unknown_issuer",
            "{reason}"
        );
    }
    // The admin listener has the same Host/Origin guard as `/mcp` (DNS rebinding), even for a valid credential.
    for (header, value) in [("host", "evil.example"), ("origin", "https://evil.example")] {
        let response = http
            .get(&url)
            .header(header, value)
            .bearer_auth(gateway.admin_credential())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{header}");
        let reason: Value = response.json().await.unwrap();
        assert_eq!(reason["reason"], "host_not_allowed", "{reason}");
    }
    let local = http
        .get(&url)
        .bearer_auth(gateway.admin_credential())
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    // A token in the URL is refused too.
    let in_query = http
        .post(format!("{url}?access_token={}", gateway.admin_credential()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401);
    // The bootstrap credential works; bad bodies and unknown agents are refused clearly.
    let admin = gateway.admin_credential();
    let bad = http
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"kind": "planet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ghost = http
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"kind": "agent", "agent": "ghost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ghost.status(), 400);
    let created = http
        .post(&url)
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let list: Value = http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["revocations"][0]["agent"], "summarizer");
    assert_eq!(list["revocations"][0]["created_by"], "bootstrap");
}

#[tokio::test]
async fn admin_tokens_from_listed_subjects_are_accepted() {
    let agents =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests/agents.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}auth:\n  issuers:\n    - issuer: https://idp.example\n      audience: toolgate\n      jwks_file: \"{}\"\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n  agents_file: \"{}\"\nadmin:\n  listen: 127.0.0.1:0\n  subjects:\n    - {{issuer: https://idp.example, subject: ops}}\n    - {{issuer: toolgate-dev, subject: ops}}\n",
        stdio_upstream("hr", "hr_directory", &[]),
        other_jwks(),
        dev_jwks(),
        agents.display(),
    );
    let gateway = Gateway::start(&yaml);
    let admin_claims = |sub: &str, aud: Value| {
        let mut c = claims(&request(Some(sub), None, &[], None), now()).unwrap();
        c.insert("iss".into(), json!("https://idp.example"));
        c.insert("aud".into(), aud);
        c
    };
    let admin_token = |sub: &str| sign_other(&admin_claims(sub, json!("toolgate-admin")));
    let http = reqwest::Client::new();
    let url = format!("{}/revocations", gateway.admin_url);
    let ok = http
        .get(&url)
        .bearer_auth(admin_token("ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let stranger = http
        .get(&url)
        .bearer_auth(admin_token("mallory"))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 401);
    // Development tokens never administer anything, even for a listed subject.
    let mut dev_admin = claims(&request(Some("ops"), None, &[], None), now()).unwrap();
    dev_admin.insert("aud".into(), json!("toolgate-admin"));
    let refused = http
        .get(&url)
        .bearer_auth(sign_dev(&dev_admin).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // An admin token is not a caller token, and one token cannot be both.
    let (status, _, _) = try_token(&gateway, Some(&admin_token("ops")), "").await;
    assert_eq!(status, 401);
    let both = sign_other(&admin_claims("ops", json!(["toolgate", "toolgate-admin"])));
    assert_eq!(
        http.get(&url)
            .bearer_auth(&both)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (status, reason, _) = try_token(&gateway, Some(&both), "").await;
    assert_eq!((status, reason.as_str()), (401, "token_audience"));
    // Admin tokens can be revoked too.
    let ops = admin_token("ops");
    let revoked = http
        .post(&url)
        .bearer_auth(gateway.admin_credential())
        .json(&json!({"kind": "token", "jti": jti_of(&ops)}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 201);
    let refused = http.get(&url).bearer_auth(&ops).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "token_revoked");
}

// Multi-threaded: the JWKS server must answer while the test thread waits for the gateway to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_url_are_refreshed() {
    let real = std::fs::read_to_string(dev_jwks()).unwrap();
    let other = real.replace("toolgate-dev-1", "an-older-key");
    let served = std::sync::Arc::new(std::sync::Mutex::new(other));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_address = listener.local_addr().unwrap();
    {
        let served = std::sync::Arc::clone(&served);
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let served = std::sync::Arc::clone(&served);
                async move { served.lock().unwrap().clone() }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}auth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_url: \"http://{jwks_address}/jwks.json\"\n      jwks_refresh: 300ms\n      dev: true\n  agents_file: \"{}\"\n",
        stdio_upstream("hr", "hr_directory", &[]),
        dir.path().join("agents.yaml").display(),
    );
    let gateway = Gateway::start(&yaml);
    let token = tester_token();
    let (status, reason, _) = try_token(&gateway, Some(&token), "").await;
    assert_eq!((status, reason.as_str()), (401, "token_unknown_key"));
    // The issuer rotates to the key the token was signed with.
    *served.lock().unwrap() = real;
    eventually(10, || async {
        (try_token(&gateway, Some(&token), "").await.0 == 200).then_some(())
    })
    .await;
    assert!(gateway.logs().contains("JWKS fetched"));
}

/// A JWKS endpoint serving whatever `served` holds, counting its hits.
async fn jwks_endpoint(
    served: std::sync::Arc<std::sync::Mutex<String>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let served = std::sync::Arc::clone(&served);
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { served.lock().unwrap().clone() }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn jwks_url_gateway(address: std::net::SocketAddr, issuer_extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(dir.join("agents.yaml"), TEST_AGENTS).unwrap();
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}auth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_url: \"http://{address}/jwks.json\"\n      dev: true\n{issuer_extra}  agents_file: \"{}\"\n",
        stdio_upstream("hr", "hr_directory", &[]),
        dir.join("agents.yaml").display(),
    ))
}

// Multi-threaded: the JWKS endpoint answers while the gateway starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_verification_ends_with_its_key_even_when_the_key_id_is_reused() {
    let real = std::fs::read_to_string(dev_jwks()).unwrap();
    let served = std::sync::Arc::new(std::sync::Mutex::new(real.clone()));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let address = jwks_endpoint(std::sync::Arc::clone(&served), std::sync::Arc::clone(&hits)).await;
    let gateway = jwks_url_gateway(
        address,
        "      jwks_refresh: 200ms\n      jwks_min_interval: 200ms\n",
    );
    let token = tester_token();
    // Verified once, then served from the verified-token cache.
    for _ in 0..3 {
        let (status, reason, _) = try_token(&gateway, Some(&token), "").await;
        assert_eq!(status, 200, "{reason}: {}", gateway.logs());
    }
    // The issuer rotates to another key under the same key id (and, next, to a set without ids).
    let other = std::fs::read_to_string(other_jwks()).unwrap();
    let reused = other.replace("other-1", "toolgate-dev-1");
    assert_ne!(reused, real);
    for rotated in [reused, other.replace("\"kid\": \"other-1\",", "")] {
        *served.lock().unwrap() = real.clone();
        eventually(10, || async {
            (try_token(&gateway, Some(&token), "").await.0 == 200).then_some(())
        })
        .await;
        *served.lock().unwrap() = rotated;
        // Once the new set is fetched, the token verified with the old key is verified again, and fails.
        eventually(10, || async {
            let (status, reason, _) = try_token(&gateway, Some(&token), "").await;
            (status == 401 && !reason.is_empty()).then_some(())
        })
        .await;
    }
}

// Multi-threaded: the JWKS endpoint answers while the gateway starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_cannot_make_toolgate_load_the_issuer() {
    let real = std::fs::read_to_string(dev_jwks()).unwrap();
    let served = std::sync::Arc::new(std::sync::Mutex::new(real));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let address = jwks_endpoint(std::sync::Arc::clone(&served), std::sync::Arc::clone(&hits)).await;
    let gateway = jwks_url_gateway(address, "      jwks_min_interval: 2s\n");
    let after_start = hits.load(std::sync::atomic::Ordering::SeqCst);
    // A flood of tokens naming made-up key ids, from many connections at once.
    let key = dev_signing_key();
    let started = std::time::Instant::now();
    let mut flood = Vec::new();
    for i in 0..200 {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(format!("made-up-{i}"));
        header.typ = Some("at+jwt".into());
        let token = jsonwebtoken::encode(&header, &base_claims(), &key).unwrap();
        let url = gateway.url.clone();
        flood.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(INITIALIZE)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for answer in flood {
        assert_eq!(answer.await.unwrap(), 401);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let fetched = hits.load(std::sync::atomic::Ordering::SeqCst) - after_start;
    // At most one fetch right away and one per started interval since.
    let allowed = 1 + (elapsed / 2.0).ceil() as usize;
    assert!(
        fetched <= allowed,
        "{fetched} fetches in {elapsed:.1}s for 200 unknown key ids"
    );
}

fn check_config(dir: &std::path::Path, yaml: &str) -> std::process::Output {
    let config = dir.join("toolgate.yaml");
    std::fs::write(&config, yaml).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap()
}

#[test]
fn the_public_development_key_needs_a_dev_issuer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
    for name in ["https://idp.example", "toolgate-dev"] {
        let output = check_config(
            dir.path(),
            &format!(
                "listen: 127.0.0.1:0\nauth:\n  issuers:\n    - issuer: {name}\n      audience: toolgate\n      jwks_file: \"{}\"\n  agents_file: agents.yaml\nadmin:\n  listen: 127.0.0.1:0\n",
                dev_jwks()
            ),
        );
        assert!(!output.status.success(), "{name} accepted");
        assert!(String::from_utf8_lossy(&output.stderr).contains("public development key"));
    }
    // A development issuer is refused when either listener is not loopback.
    let output = check_config(
        dir.path(),
        &format!(
            "listen: 127.0.0.1:0\nallow_non_loopback: true\nauth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n  agents_file: agents.yaml\nadmin:\n  listen: 0.0.0.0:0\n",
            dev_jwks()
        ),
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[tokio::test]
async fn a_client_id_binding_does_not_turn_a_human_into_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agents.yaml"),
        "agents:\n  reporter:\n    owner: qa\n    description: d\n    scope: ['*']\n    max_classification: internal\n    acts_alone:\n      - {issuer: toolgate-dev, client_id: reporter-app}\n",
    )
    .unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        stdio_upstream("hr", "hr_directory", &[]),
        test_auth(dir.path().join("agents.yaml").to_str().unwrap()),
    );
    let gateway = Gateway::start(&yaml);
    let mut human = claims(&request(Some("alice"), None, &[], None), now()).unwrap();
    human.insert("client_id".into(), json!("reporter-app"));
    let (status, reason, _) = try_token(&gateway, Some(&sign_dev(&human).unwrap()), "").await;
    assert_eq!((status, reason.as_str()), (403, "agent_missing"));
    // A client-credentials token (the client is the subject) acts as the agent.
    let mut client = claims(&request(Some("reporter-app"), None, &[], None), now()).unwrap();
    client.insert("client_id".into(), json!("reporter-app"));
    assert_eq!(
        try_token(&gateway, Some(&sign_dev(&client).unwrap()), "")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn an_open_get_stream_ends_when_its_credential_is_revoked() {
    let gateway = quickstart_gateway();
    let alice =
        toolgate::identity::token::mint_dev(&request(Some("alice"), Some("assistant"), &[], None))
            .unwrap();
    let http = reqwest::Client::new();
    let session = raw_session(&gateway.url, &alice).await;
    let mut stream = get_stream(&http, &gateway.url, &alice, &session).await;
    assert_eq!(stream.status(), 200);
    let out = revoke_cli(&gateway, &["--jti", &jti_of(&alice)]);
    assert!(out.status.success());
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the GET stream outlived the revocation");
}

#[tokio::test]
async fn roles_come_only_from_issuers_configured_to_assert_them() {
    let gateway = quickstart_identity_gateway_with(
        &format!(
            "    - issuer: https://idp.example\n      audience: toolgate\n      jwks_file: \"{}\"\n    - issuer: https://roles.example\n      audience: toolgate\n      jwks_file: \"{}\"\n      roles_claim: https://roles.example/roles\n",
            other_jwks(),
            other_jwks()
        ),
        &quickstart_policy(),
    );
    let alice = |issuer: &str, extra: &[(&str, Value)]| {
        let mut claims = base_claims();
        claims.insert("iss".into(), json!(issuer));
        for (key, value) in extra {
            claims.insert((*key).into(), value.clone());
        }
        if issuer == "toolgate-dev" {
            sign_dev(&claims).unwrap()
        } else {
            sign_other(&claims)
        }
    };
    let sees_hr = |token: String| {
        let url = gateway.url.clone();
        async move {
            let client = Client::connect(&url, &token).await;
            client
                .tool_names()
                .await
                .iter()
                .any(|t| t.starts_with("hr__"))
        }
    };
    // The development issuer asserts roles (`roles_claim: roles`): alice's `hr` role opens the hr tools.
    assert!(sees_hr(alice("toolgate-dev", &[])).await);
    // An issuer not configured to assert roles: the same claim is ignored, whatever it says.
    for roles in [json!(["hr"]), json!(["hr-admin", "hr"]), json!("hr")] {
        assert!(!sees_hr(alice("https://idp.example", &[("roles", roles)])).await);
    }
    // An issuer configured with its own claim: only that claim counts.
    assert!(!sees_hr(alice("https://roles.example", &[("roles", json!(["hr"]))])).await);
    assert!(
        sees_hr(alice(
            "https://roles.example",
            &[
                ("roles", json!([])),
                ("https://roles.example/roles", json!(["hr"]))
            ]
        ))
        .await
    );
}

#[test]
fn the_development_issuer_needs_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_minimal_config(dir.path());
    // Without --dev: refused at start, saying why and what to do.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("development issuer") && stderr.contains("toolgate serve --dev"),
        "{stderr}"
    );
}

#[tokio::test]
async fn development_tokens_are_refused_through_a_proxy_and_mode_is_announced() {
    let gateway = quickstart_gateway();
    assert!(gateway.logs().contains("DEVELOPMENT MODE"));
    let dev = user_token("alice", &["hr"], "assistant", &[]);
    let mut real = base_claims();
    real.insert("iss".into(), json!("https://idp.example"));
    let real = sign_other(&real);
    let http = reqwest::Client::new();
    let answer = |token: String, header: Option<(&'static str, &'static str)>| {
        let mut request = http
            .post(&gateway.url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INITIALIZE);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["error"]["data"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        }
    };
    assert_eq!(answer(dev.clone(), None).await.0, 200);
    for header in [
        ("forwarded", "for=192.0.2.60;proto=http"),
        ("x-forwarded-for", "192.0.2.60"),
        ("x-forwarded-host", "tools.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-server", "edge"),
        ("x-real-ip", "192.0.2.60"),
        ("x-original-forwarded-for", "192.0.2.60"),
        ("true-client-ip", "192.0.2.60"),
        ("cf-connecting-ip", "192.0.2.60"),
        ("fastly-client-ip", "192.0.2.60"),
        ("via", "1.1 edge"),
        ("X-Forwarded-For", "127.0.0.1"),
    ] {
        assert_eq!(
            answer(dev.clone(), Some(header)).await,
            (403, "token_dev_through_proxy".to_string()),
            "{header:?}"
        );
        // A token of a real issuer is not held back by a proxy.
        assert_eq!(
            answer(real.clone(), Some(header)).await.0,
            200,
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn a_session_whose_stream_ended_with_its_token_still_expires_when_idle() {
    let gateway = quickstart_identity_gateway_with("", "timeouts:\n  session_idle: 1s\n");
    let mut short = request(Some("alice"), Some("assistant"), &[], None);
    short.ttl = Duration::from_secs(3);
    let short = toolgate::identity::token::mint_dev(&short).unwrap();
    let http = reqwest::Client::new();
    let session = raw_session(&gateway.url, &short).await;
    let mut stream = get_stream(&http, &gateway.url, &short, &session).await;
    assert_eq!(stream.status(), 200);
    // The stream ends when the token does (it kept the session alive until then).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the GET stream outlived its token");
    // Then the idle session expires like any other (watched from the admin listener, which touches no session).
    let gone = eventually(10, || async {
        (gateway.admin_json("/readyz").await["sessions"] == 0).then_some(())
    })
    .await;
    assert_eq!(gone, ());
    // The same caller, with a fresh token, finds it gone.
    let fresh = user_token("alice", &["hr"], "assistant", &[]);
    let status = http
        .post(&gateway.url)
        .bearer_auth(&fresh)
        .header("mcp-session-id", &session)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

/// Opens the GET stream of `session`.
async fn get_stream(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    session: &str,
) -> reqwest::Response {
    http.get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap()
}
