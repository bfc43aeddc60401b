//! Redaction end to end: results reach each caller masked to its clearance, in every plane, whatever the upstream
//! does to hide a value; arguments carrying sensitive values are facts for policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

fn quickstart() -> Gateway {
    let sandbox = tempfile::tempdir().unwrap().keep();
    std::fs::write(sandbox.join("README.txt"), "hello\n").unwrap();
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}",
        quickstart_upstreams_in(&sandbox),
        test_auth(&quickstart_agents()),
        quickstart_policy()
    ))
}

fn structured(result: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(result));
    result.structured_content.clone().unwrap()
}

#[tokio::test]
async fn each_caller_sees_what_its_clearance_allows() {
    let gateway = quickstart();
    let alice = Client::connect(
        &gateway.url,
        &user_token("alice", &["hr"], "assistant", &[]),
    )
    .await;
    let carol = Client::connect(
        &gateway.url,
        &user_token("carol", &["hr", "hr-admin"], "assistant", &[]),
    )
    .await;
    let bob = Client::connect(
        &gateway.url,
        &user_token("bob", &["engineering"], "assistant", &[]),
    )
    .await;
    let lookup = json!({"id_or_email": "E1001"});

    // alice (clearance confidential): names, work emails, phone and salary; no national id, in either plane.
    let seen = alice
        .call("hr__lookup_employee", lookup.clone())
        .await
        .unwrap();
    let record = structured(&seen);
    assert_eq!(record["name"], "Ada Lovelace");
    assert_eq!(record["email"], "ada.lovelace@example.com");
    assert_eq!(record["salary"], 185000);
    assert_eq!(record["national_id"], "[REDACTED:restricted]");
    let copy: Value = serde_json::from_str(&text(&seen)).expect("the text copy stays valid JSON");
    assert_eq!(copy["national_id"], "[REDACTED:restricted]");
    assert!(!format!("{seen:?}").contains("123-45-6789"));
    // Free text: the detectors find it.
    let card = alice
        .call("hr__employee_card", lookup.clone())
        .await
        .unwrap();
    let card = text(&card);
    assert!(
        card.contains("[REDACTED:restricted]") && card.contains("ada.lovelace@example.com"),
        "{card}"
    );
    assert!(!card.contains("123-45-6789"));

    // carol (hr-admin, restricted): everything.
    let all = carol.call("hr__lookup_employee", lookup).await.unwrap();
    assert_eq!(structured(&all)["national_id"], "123-45-6789");

    // bob (engineering, internal): customer emails are masked in his SQL results; alice's are not.
    let rows = bob
        .sql("SELECT name, email FROM customers ORDER BY id")
        .await
        .unwrap();
    let rows = structured(&rows)["rows"].clone();
    assert_eq!(rows[0], json!(["Acme Corp", "[REDACTED:confidential]"]));
    let rows = alice
        .sql("SELECT email FROM employees ORDER BY id")
        .await
        .unwrap();
    assert_eq!(structured(&rows)["rows"][0][0], "ada.lovelace@example.com");

    // The advertised output schema accepts the mask where a field is classified.
    let tools = alice.service.peer().list_all_tools().await.unwrap();
    let lookup = tools
        .iter()
        .find(|t| t.name == "hr__lookup_employee")
        .unwrap();
    let schema = serde_json::to_value(lookup.output_schema.as_ref().unwrap()).unwrap();
    assert!(
        schema["properties"]["national_id"]["anyOf"].is_array(),
        "{schema}"
    );
    assert!(
        schema["properties"]["salary"]["anyOf"][1]["pattern"].is_string(),
        "{schema}"
    );

    // Sending a card number to the (internal) file store is exfiltration: refused by toolgate, not escalated.
    let sent = alice
        .call(
            "files__write_file",
            json!({"path": "notes.txt", "content": "card 4111 1111 1111 1111"}),
        )
        .await
        .unwrap();
    let refusal = text(&sent);
    assert!(
        refusal.contains("policy_denied") && refusal.contains("card_number"),
        "{refusal}"
    );

    // Records say what was masked, never the values; arguments are recorded redacted.
    let records = gateway
        .admin_json("/records?kind=tools/call&limit=100")
        .await;
    let records = records["records"].as_array().unwrap();
    let first = &records[0];
    assert_eq!(first["redactions"]["by_class"]["restricted"], 2, "{first}");
    assert!(
        first["redactions"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("national_id"))
    );
    let everything = serde_json::to_string(&records).unwrap();
    assert!(
        !everything.contains("123-45-6789") && !everything.contains("4111 1111"),
        "a value reached the records"
    );
    let card_record = records
        .iter()
        .find(|r| r["outcome"] == "policy_denied")
        .unwrap();
    assert_eq!(
        card_record["arguments"]["content"],
        "card [REDACTED:restricted]"
    );
}

/// The testbed (whose `reply` answers with any result it is given) behind a policy that redacts to `internal`.
fn testbed_gateway(extra: &str) -> Gateway {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n{extra}",
        stdio_upstream("tb", "testbed", &[]),
        root.join("tests/fixtures/policy-internal").display(),
        root.join("tests/fixtures/manifests-testbed").display(),
    ))
}

async fn reply(
    client: &Client,
    result: Value,
) -> Result<rmcp::model::CallToolResult, rmcp::ServiceError> {
    client
        .call("tb__reply", json!({"result": result.to_string()}))
        .await
}

#[tokio::test]
async fn nothing_leaks_however_the_upstream_hides_it() {
    let gateway = testbed_gateway("");
    let client = gateway.client().await;
    let ssn = "123-45-6789";
    let result = json!({
        "content": [
            // The structured value's text copy.
            {"type": "text", "text": json!({"secret": "s3cr3t", "ssn": ssn}).to_string()},
            // JSON nested in a JSON string, with Unicode escapes.
            {"type": "text", "text": json!({"inner": json!({"ssn": ssn}).to_string()}).to_string().replace("123", "\\\\u0031\\\\u0032\\\\u0033")},
            // Full-width digits and zero-width characters; card numbers with spaces and dashes.
            {"type": "text", "text": "ids １２３-４５-６７８９ and 123\u{200B}-45-6789; cards 4111 1111 1111 1111, 5500-0000-0000-0004"},
            // A value split across blocks.
            {"type": "text", "text": "my ssn is 123-4"},
            {"type": "text", "text": "5-6789, thanks"},
            // Embedded resource text and a resource link.
            {"type": "resource", "resource": {"uri": "file:///x", "mimeType": "text/plain", "text": "contact ada@example.com"}},
            {"type": "resource_link", "uri": "file:///y", "name": "y", "description": "owner ada@example.com"},
        ],
        "structuredContent": {"secret": "s3cr3t", "ssn": ssn, "people": [{"name": "a", "salary": 1}],
                              "data": "AKIAIOSFODNN7EXAMPLE", "type": "4111 1111 1111 1111", "mimeType": "bob@example.com"},
        "_meta": {"debug": "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln for ada@example.com"},
        "isError": false
    });
    let answer = reply(&client, result).await.unwrap();
    let all = serde_json::to_string(&answer).unwrap();
    for leaked in [
        "AKIAIOSFODNN7EXAMPLE",
        "4111 1111 1111 1111",
        "bob@example.com",
        "123-45-6789",
        "１２３",
        "\u{200B}",
        "4111 1111",
        "5500-0000",
        "s3cr3t",
        "ada@example.com",
        "eyJzdWIi",
        "5-6789",
        "123-4\"",
    ] {
        assert!(!all.contains(leaked), "`{leaked}` leaked: {all}");
    }
    let structured = answer.structured_content.clone().unwrap();
    assert_eq!(structured["secret"], "[REDACTED:restricted]");
    assert_eq!(structured["people"][0]["salary"], "[REDACTED:confidential]");
    assert_eq!(structured["people"][0]["name"], "a");
    let blocks: Vec<String> = answer
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    let copy: Value = serde_json::from_str(&blocks[0]).unwrap();
    assert_eq!(copy["secret"], "[REDACTED:restricted]");
    assert_eq!(copy["ssn"], "[REDACTED:restricted]");
    let nested: Value = serde_json::from_str(&blocks[1]).unwrap();
    let inner: Value = serde_json::from_str(nested["inner"].as_str().unwrap()).unwrap();
    assert_eq!(inner["ssn"], "[REDACTED:restricted]");
    assert!(
        blocks[3].starts_with("my ssn is [REDACTED:restricted]"),
        "{}",
        blocks[3]
    );
    assert!(
        blocks[4].starts_with("[REDACTED:restricted], thanks"),
        "{}",
        blocks[4]
    );

    // Error results are redacted too.
    let failed = reply(&client, json!({"content": [{"type": "text", "text": format!("no match for {ssn}")}], "isError": true})).await.unwrap();
    assert_eq!(text(&failed), "no match for [REDACTED:restricted]");
    // A tool whose output as a whole is above the clearance is withheld.
    let echo = client
        .call("tb__echo", json!({"text": "hello"}))
        .await
        .unwrap();
    assert_eq!(echo.is_error, Some(true));
    assert!(text(&echo).contains("withheld") && !text(&echo).contains("hello"));
}

#[tokio::test]
async fn binary_fields_are_opaque_only_where_mcp_defines_them() {
    let gateway = testbed_gateway("");
    let client = gateway.client().await;
    // Base64 alphabet, and a credential to the detectors.
    let secret = "AKIAIOSFODNN7EXAMPLE";
    // Where MCP defines a binary field, its value is passed as is.
    let genuine = json!({"content": [
        {"type": "image", "data": secret, "mimeType": "image/png"},
        {"type": "audio", "data": secret, "mimeType": "audio/wav"},
        {"type": "resource", "resource": {"uri": "file:///b", "mimeType": "application/octet-stream", "blob": secret}},
    ]});
    let answer = serde_json::to_value(reply(&client, genuine).await.unwrap()).unwrap();
    for i in 0..2 {
        assert_eq!(answer["content"][i]["data"], secret, "{answer}");
    }
    assert_eq!(answer["content"][2]["resource"]["blob"], secret, "{answer}");
    // The same keys anywhere else are values like any other: every such object, at every depth and in every
    // plane, is inspected.
    let lookalikes = [
        json!({"type": "image", "data": secret}),
        json!({"type": "audio", "data": secret, "mimeType": "audio/wav"}),
        json!({"uri": "file:///b", "blob": secret}),
        json!({"type": "resource", "resource": {"uri": "file:///b", "blob": secret}}),
        json!({"type": "text", "data": secret}),
    ];
    for lookalike in &lookalikes {
        let planes = [
            json!({"content": [], "structuredContent": {"item": lookalike}}),
            json!({"content": [], "structuredContent": {"deep": [[{"x": lookalike}]]}}),
            json!({"content": [{"type": "text", "text": "ok"}], "_meta": {"attachment": lookalike}}),
            json!({"content": [{"type": "text", "text": "ok", "_meta": {"preview": lookalike}}]}),
            json!({"content": [], "structuredContent": {"type": "image", "data": secret, "items": [lookalike]}}),
        ];
        for plane in planes {
            let answer = reply(&client, plane.clone()).await.unwrap();
            let all = serde_json::to_string(&answer).unwrap();
            assert!(!all.contains(secret), "`{plane}` passed: {all}");
        }
    }
}

#[tokio::test]
async fn large_and_deep_results_are_bounded() {
    let gateway = testbed_gateway("");
    let client = gateway.client().await;
    // Close to a megabyte of text full of emails: redacted in full.
    let line = "reach me at someone.else@example.com or 555-123-4567 today. ";
    let big = line.repeat(900_000 / line.len());
    let started = std::time::Instant::now();
    let answer = reply(&client, json!({"content": [{"type": "text", "text": big}]}))
        .await
        .unwrap();
    let out = text(&answer);
    assert!(!out.contains("@example.com") && out.contains("[REDACTED:confidential]"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // Nesting beyond the bound: withheld, and the record says so.
    let mut deep = json!("x");
    for _ in 0..80 {
        deep = json!([deep]);
    }
    let error = reply(
        &client,
        json!({"content": [{"type": "text", "text": "x"}], "structuredContent": {"d": deep}}),
    )
    .await
    .unwrap_err();
    let rmcp::ServiceError::McpError(data) = &error else {
        panic!("{error}")
    };
    assert_eq!(data.data.as_ref().unwrap()["reason"], "redaction_failed");
    let records = gateway
        .admin_json("/records?kind=tools/call&limit=10")
        .await;
    let last = records["records"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["outcome"], "redaction_failed");
    assert_eq!(last["decision"], "error");
}

#[tokio::test]
async fn json_log_lines_name_each_decision_and_carry_no_token_or_value() {
    let sandbox = tempfile::tempdir().unwrap().keep();
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nlogging:\n  format: json\nupstreams:\n{}{}{}",
        quickstart_upstreams_in(&sandbox),
        test_auth(&quickstart_agents()),
        quickstart_policy()
    ));
    let alice_token = user_token("alice", &["hr"], "assistant", &[]);
    let carol_token = user_token("carol", &["hr", "hr-admin"], "assistant", &[]);
    let alice = Client::connect(&gateway.url, &alice_token).await;
    let carol = Client::connect(&gateway.url, &carol_token).await;
    let lookup = json!({"id_or_email": "E1001"});
    let masked = alice
        .call("hr__lookup_employee", lookup.clone())
        .await
        .unwrap();
    assert_eq!(structured(&masked)["national_id"], "[REDACTED:restricted]");
    let shown = carol.call("hr__lookup_employee", lookup).await.unwrap();
    let national_id = structured(&shown)["national_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A refused token, and an argument the detectors mask in the record.
    let junk = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.c2VjcmV0LXNpZ25hdHVyZQ";
    assert_eq!(initialize_status(&gateway.url, junk).await, 401);
    let card = "4111 1111 1111 1111";
    let _ = alice
        .call(
            "files__write_file",
            json!({"path": "x.txt", "content": card}),
        )
        .await
        .unwrap();

    let logs = eventually(10, || async {
        let logs = gateway.logs();
        (logs.matches("\"decision\"").count() >= 3).then_some(logs)
    })
    .await;
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // One line per decision, joinable to its record by the record id.
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "tools/call")
        .collect();
    assert!(decisions.len() >= 3, "{logs}");
    for line in &decisions {
        assert!(
            line["record"].as_str().is_some_and(|r| !r.is_empty()),
            "{line}"
        );
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(
            line["decision"].is_string() && line["tool"].is_string(),
            "{line}"
        );
    }
    for secret in [
        alice_token.as_str(),
        carol_token.as_str(),
        junk,
        national_id.as_str(),
        card,
        "4111111111111111",
    ] {
        assert!(!logs.contains(secret), "a log line carries `{secret}`");
    }
}
