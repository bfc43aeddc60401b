//! Arguments are checked against the tool's advertised `inputSchema` before policy runs: the real binary in front
//! of the testbed upstream, driven by a real rmcp client. A refused call never reaches the upstream (the testbed
//! counts the calls of `strict` and `legacy`) and is recorded as `invalid_arguments`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

/// The testbed as `tb` (with its `broken` tool), behind the open policy.
fn gateway() -> Gateway {
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}audit:\n  flush_interval: 200ms\n",
        stdio_upstream("tb", "testbed", &["--broken-schema"]),
    ))
}

/// Calls of `strict` and `legacy` that reached the testbed.
async fn checked_calls(client: &Client) -> u64 {
    let counters = client.call("tb__counters", json!({})).await.unwrap();
    counters.structured_content.unwrap()["checked_calls"]
        .as_u64()
        .unwrap()
}

/// The refusal's text, after checking it is an `isError` result with toolgate's wording for `tool` and `reason`.
fn refusal(result: &CallToolResult, tool: &str, reason: &str) -> String {
    let said = text(result);
    assert_eq!(result.is_error, Some(true), "{said}");
    assert!(
        said.starts_with(&format!(
            "toolgate refused this call to `{tool}` (reason `{reason}`): "
        )),
        "{said}"
    );
    said
}

async fn call_records(gateway: &Gateway, tool: &str) -> Vec<Value> {
    let body = gateway
        .admin_json(&format!("/records?limit=1000&kind=tools/call&tool={tool}"))
        .await;
    body["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn arguments_that_do_not_match_the_schema_never_reach_the_upstream() {
    let gateway = gateway();
    let client = gateway.client().await;
    // The schema checked is the one advertised: `strict` takes `text` and `times`, and nothing else.
    let tools = client.service.peer().list_all_tools().await.unwrap();
    let strict = tools.iter().find(|t| t.name == "tb__strict").unwrap();
    assert_eq!(strict.input_schema["additionalProperties"], json!(false));
    assert_eq!(strict.input_schema["required"], json!(["text", "times"]));

    let wrong_type = client
        .call("tb__strict", json!({"text": "hi", "times": "three"}))
        .await
        .unwrap();
    let said = refusal(&wrong_type, "tb__strict", "invalid_arguments");
    assert!(
        said.contains("`/times`: expected integer, got string"),
        "{said}"
    );
    assert!(!said.contains("three"), "the value is quoted: {said}");

    let missing = client
        .call("tb__strict", json!({"times": 2}))
        .await
        .unwrap();
    let said = refusal(&missing, "tb__strict", "invalid_arguments");
    assert!(
        said.contains("arguments: missing required property `text`"),
        "{said}"
    );

    let extra = client
        .call(
            "tb__strict",
            json!({"text": "hi", "times": 1, "extra": "secret-extra-value"}),
        )
        .await
        .unwrap();
    let said = refusal(&extra, "tb__strict", "invalid_arguments");
    assert!(
        said.contains("arguments: property `extra` is not allowed"),
        "{said}"
    );
    assert!(!said.contains("secret-extra-value"), "{said}");

    // No arguments at all are checked as `{}`: both required properties are missing.
    let none = client.call("tb__strict", Value::Null).await.unwrap();
    let said = refusal(&none, "tb__strict", "invalid_arguments");
    assert!(said.contains("missing required property `text`"), "{said}");
    assert!(said.contains("missing required property `times`"), "{said}");

    // A huge refused call gets a short answer.
    let mut huge = serde_json::Map::new();
    for i in 0..200 {
        huge.insert(format!("key-{i}-{}", "k".repeat(1_000)), json!(i));
    }
    let flood = client
        .call("tb__strict", Value::Object(huge))
        .await
        .unwrap();
    let said = refusal(&flood, "tb__strict", "invalid_arguments");
    assert!(said.len() < 2_000, "{} bytes: {said}", said.len());
    assert!(said.contains("200 properties are not allowed"), "{said}");

    assert_eq!(
        checked_calls(&client).await,
        0,
        "a refused call reached the upstream"
    );

    // Valid arguments go through, unchanged.
    let ok = client
        .call("tb__strict", json!({"text": "ab", "times": 2}))
        .await
        .unwrap();
    assert_ne!(ok.is_error, Some(true), "{}", text(&ok));
    assert_eq!(text(&ok), "abab");
    assert_eq!(checked_calls(&client).await, 1);

    // Each refusal is recorded as a denial with the reasons the caller read; the valid call as allowed.
    let records = eventually(10, || async {
        let records = call_records(&gateway, "tb__strict").await;
        (records.len() == 6).then_some(records)
    })
    .await;
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "invalid_arguments")
        .collect();
    assert_eq!(refused.len(), 5, "{records:#?}");
    for record in &refused {
        assert_eq!(record["decision"], "deny");
        assert_eq!(record["upstream"], "tb");
        assert!(!record["reasons"].as_array().unwrap().is_empty());
    }
    let reasons: Vec<String> = refused
        .iter()
        .flat_map(|r| r["reasons"].as_array().unwrap().iter())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.contains(&"`/times`: expected integer, got string".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"arguments: property `extra` is not allowed".to_string()),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.contains("secret-extra-value")),
        "{reasons:?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "allowed" && r["decision"] == "allow")
            .count(),
        1
    );
    // The gateway's log does not carry the values either.
    assert!(!gateway.logs().contains("secret-extra-value"));
}

#[tokio::test]
async fn a_draft_07_schema_is_checked_as_draft_07() {
    let gateway = gateway();
    let client = gateway.client().await;
    let tools = client.service.peer().list_all_tools().await.unwrap();
    let legacy = tools.iter().find(|t| t.name == "tb__legacy").unwrap();
    assert_eq!(
        legacy.input_schema["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );

    // Draft-07's tuple form of `items`: an integer, then a string (through a `$ref` to `definitions`).
    let ok = client
        .call("tb__legacy", json!({"pair": [1, "one"]}))
        .await
        .unwrap();
    assert_eq!(text(&ok), "1 is one");

    let swapped = client
        .call("tb__legacy", json!({"pair": ["one", 1]}))
        .await
        .unwrap();
    let said = refusal(&swapped, "tb__legacy", "invalid_arguments");
    assert!(
        said.contains("`/pair/0`: expected integer, got string"),
        "{said}"
    );
    assert!(
        said.contains("`/pair/1`: expected string, got integer"),
        "{said}"
    );

    let longer = client
        .call("tb__legacy", json!({"pair": [1, "one", 3]}))
        .await
        .unwrap();
    let said = refusal(&longer, "tb__legacy", "invalid_arguments");
    assert!(
        said.contains("`/pair`: Additional items are not allowed"),
        "{said}"
    );

    assert_eq!(checked_calls(&client).await, 1);
}

#[tokio::test]
async fn a_schema_that_cannot_be_used_refuses_every_call_and_is_reported_once() {
    let gateway = gateway();
    let client = gateway.client().await;
    // `broken` references a schema elsewhere; nothing is fetched, so it cannot be compiled.
    assert!(
        client
            .tool_names()
            .await
            .contains(&"tb__broken".to_string())
    );
    for arguments in [json!({}), json!({"text": "hello"})] {
        let refused = client.call("tb__broken", arguments).await.unwrap();
        let said = refusal(&refused, "tb__broken", "invalid_input_schema");
        assert!(said.contains("inputSchema cannot be used"), "{said}");
    }
    let records = eventually(10, || async {
        let records = call_records(&gateway, "tb__broken").await;
        (records.len() == 2).then_some(records)
    })
    .await;
    assert!(
        records
            .iter()
            .all(|r| r["decision"] == "deny" && r["outcome"] == "invalid_input_schema"),
        "{records:#?}"
    );

    // Refreshes of the testbed's tools (its list changes twice) neither compile nor report the schema again.
    for (duplicate, listed) in [(true, false), (false, true)] {
        client
            .call("tb__set_duplicate", json!({"on": duplicate}))
            .await
            .unwrap();
        eventually(10, || async {
            let names = client.tool_names().await;
            (names.contains(&"tb__echo".to_string()) == listed).then_some(())
        })
        .await;
    }
    let warnings = gateway
        .logs()
        .matches("every call to it will be refused")
        .count();
    assert_eq!(warnings, 1, "{}", gateway.logs());
}
