//! Resources, resource templates, prompts and completion through the gateway: aggregated from the quickstart's
//! upstreams under gateway-owned URIs, governed per caller by the shipped policy (lists filtered, hidden items
//! answered as missing ones), redacted to the caller's clearance, recorded. Real binary, real rmcp clients, the
//! real HR example upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, GetPromptRequestParams, ReadResourceRequestParams,
    Reference,
};
use serde_json::{Value, json};

const HANDBOOK: &str = "toolgate://hr/policy://handbook";
const BANDS: &str = "toolgate://hr/policy://salary-bands";
const INVESTIGATIONS: &str = "toolgate://hr/policy://investigations/2026-q3";
const PROFILE_TEMPLATE: &str = "toolgate://hr/employee://{id}/profile";

fn gateway() -> Gateway {
    quickstart_identity_gateway_with("", &quickstart_policy())
}

/// A human of the quickstart with one role, through the assistant.
async fn person(gateway: &Gateway, name: &str, role: &str) -> Client {
    Client::connect(&gateway.url, &user_token(name, &[role], "assistant", &[])).await
}

async fn resource_uris(client: &Client) -> Vec<String> {
    let mut uris: Vec<String> = client
        .service
        .peer()
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    uris.sort();
    uris
}

async fn prompt_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .service
        .peer()
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.clone())
        .collect();
    names.sort();
    names
}

/// The text of a read, or its error as JSON.
async fn read(client: &Client, uri: &str) -> Result<String, Value> {
    match client
        .service
        .peer()
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
    {
        Ok(result) => {
            let value = serde_json::to_value(&result).unwrap();
            Ok(value["contents"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        }
        Err(rmcp::ServiceError::McpError(e)) => Err(serde_json::to_value(&e).unwrap()),
        Err(e) => panic!("read {uri}: {e}"),
    }
}

#[tokio::test]
async fn resources_are_listed_and_read_exactly_as_the_policy_allows_and_redacted_to_the_clearance()
{
    let gateway = gateway();
    let alice = person(&gateway, "alice", "hr").await;
    let bob = person(&gateway, "bob", "engineering").await;
    let carol = person(&gateway, "carol", "hr-admin").await;

    // Lists: each caller sees what its roles grant within its clearance, under the gateway's URIs.
    assert_eq!(resource_uris(&alice).await, [HANDBOOK, BANDS]);
    assert_eq!(resource_uris(&bob).await, [HANDBOOK]);
    assert_eq!(
        resource_uris(&carol).await,
        [HANDBOOK, INVESTIGATIONS, BANDS]
    );
    let templates = alice
        .service
        .peer()
        .list_all_resource_templates()
        .await
        .unwrap();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].uri_template, PROFILE_TEMPLATE);
    assert!(
        bob.service
            .peer()
            .list_all_resource_templates()
            .await
            .unwrap()
            .is_empty()
    );

    // Reads: the email in the handbook is confidential: in clear for HR, masked for an engineer.
    let for_alice = read(&alice, HANDBOOK).await.unwrap();
    assert!(
        for_alice.contains("mary.jackson@example.com"),
        "{for_alice}"
    );
    let for_bob = read(&bob, HANDBOOK).await.unwrap();
    assert!(!for_bob.contains("mary.jackson@example.com"), "{for_bob}");
    assert!(for_bob.contains("Working hours"), "{for_bob}");

    // A resource through a template: the manifest's field classes apply to the JSON it holds.
    let profile = read(&alice, "toolgate://hr/employee://E1004/profile")
        .await
        .unwrap();
    let profile: Value = serde_json::from_str(&profile).unwrap();
    assert_eq!(profile["name"], "Alan Turing");
    assert_eq!(profile["salary"], 190000);
    assert_ne!(profile["national_id"], "456-78-9012");
    let profile = read(&carol, "toolgate://hr/employee://E1004/profile")
        .await
        .unwrap();
    assert!(profile.contains("456-78-9012"), "{profile}");

    // Hidden and missing are answered alike: same code, same message, the asked URI as data.
    let hidden = read(&alice, INVESTIGATIONS).await.unwrap_err();
    let missing_uri = "toolgate://hr/policy://investigations/none";
    let missing = read(&alice, missing_uri).await.unwrap_err();
    assert_eq!(hidden["code"], -32002, "{hidden}");
    assert_eq!(hidden["code"], missing["code"]);
    assert_eq!(hidden["message"], missing["message"]);
    assert_eq!(hidden["data"], json!({"uri": INVESTIGATIONS}));
    assert_eq!(missing["data"], json!({"uri": missing_uri}));
    // The salary bands exist, but not for bob; an upstream that does not exist, or a forged form, is missing too.
    for uri in [
        BANDS,
        "toolgate://nosuch/policy://handbook",
        "toolgate://HR/policy://handbook",
        "policy://handbook",
    ] {
        let refused = read(&bob, uri).await.unwrap_err();
        assert_eq!(refused["code"], -32002, "{uri}: {refused}");
        assert_eq!(refused["message"], hidden["message"]);
    }
    let restricted = read(&carol, INVESTIGATIONS).await.unwrap();
    assert!(restricted.contains("456-78-9012"), "{restricted}");

    // Every read left a record; hidden ones say why, to the auditor only.
    let records = gateway
        .admin_json("/records?limit=1000&kind=resources/read")
        .await;
    let records = records["records"].as_array().unwrap();
    let denied: Vec<&Value> = records.iter().filter(|r| r["decision"] == "deny").collect();
    assert!(denied.iter().any(|r| r["tool"] == INVESTIGATIONS
        && r["outcome"] == "unknown_item"
        && r["reasons"][0] == "hidden by policy"));
    assert!(
        records.iter().any(|r| r["tool"] == HANDBOOK
            && r["decision"] == "allow"
            && r["redactions"].is_object()),
        "{records:?}"
    );
    let listings = gateway
        .admin_json("/records?limit=1000&kind=resources/list")
        .await;
    assert!(listings["records"].as_array().unwrap().len() >= 3);

    // The access report counts them: a row per resource, hidden and missing ones together.
    let report = gateway.admin_json("/reports").await;
    let row = |name: &str| {
        report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row {name}: {report}"))
    };
    let handbook = row(HANDBOOK);
    assert_eq!(
        (handbook["calls"].as_u64(), handbook["allowed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(handbook["distinct_principals"], 2);
    let unknown = row("(unknown resources and prompts)");
    assert_eq!(unknown["denied"].as_u64(), Some(6), "{unknown}");
}

#[tokio::test]
async fn a_narrower_agent_in_the_chain_sees_no_resource_its_scope_leaves_out() {
    let gateway = gateway();
    // The summarizer's scope holds file tools only: through it, alice reaches no HR document.
    let summarizer = Client::connect(
        &gateway.url,
        &user_token("alice", &["hr"], "assistant", &["summarizer"]),
    )
    .await;
    assert!(resource_uris(&summarizer).await.is_empty());
    assert!(prompt_names(&summarizer).await.is_empty());
    assert_eq!(
        read(&summarizer, HANDBOOK).await.unwrap_err()["code"],
        -32002
    );
}

#[tokio::test]
async fn prompts_are_filtered_got_redacted_and_completed_only_where_visible() {
    let gateway = gateway();
    let alice = person(&gateway, "alice", "hr").await;
    let bob = person(&gateway, "bob", "engineering").await;
    assert_eq!(
        prompt_names(&alice).await,
        ["hr__performance_review", "hr__policy_question"]
    );
    assert_eq!(prompt_names(&bob).await, ["hr__policy_question"]);

    // The embedded profile is redacted like any content: the national id is above alice's clearance.
    let mut params = GetPromptRequestParams::new("hr__performance_review");
    params.arguments = Some(serde_json::from_value(json!({"employee_id": "E1004"})).unwrap());
    let review = alice
        .service
        .peer()
        .get_prompt(params.clone())
        .await
        .unwrap();
    let review = serde_json::to_string(&review).unwrap();
    assert!(review.contains("Alan Turing"), "{review}");
    assert!(!review.contains("456-78-9012"), "{review}");
    // The embedded resource's URI is the gateway's, readable through it.
    assert!(
        review.contains("toolgate://hr/employee://E1004/profile"),
        "{review}"
    );

    // Hidden from bob: the same answer as a prompt that does not exist.
    let hidden = bob.service.peer().get_prompt(params).await.unwrap_err();
    let missing = bob
        .service
        .peer()
        .get_prompt(GetPromptRequestParams::new("hr__no_such_prompt"))
        .await
        .unwrap_err();
    let (hidden, missing) = (
        serde_json::to_value(mcp_error(hidden)).unwrap(),
        serde_json::to_value(mcp_error(missing)).unwrap(),
    );
    assert_eq!(hidden["code"], missing["code"]);
    assert_eq!(
        hidden["message"], "Unknown prompt: hr__performance_review",
        "{hidden}"
    );

    // Completion: for a template or prompt the caller may see only.
    let complete = |reference: Reference, name: &str, value: &str| {
        CompleteRequestParams::new(reference, ArgumentInfo::new(name, value))
    };
    let ids = alice
        .service
        .peer()
        .complete(complete(
            Reference::for_resource(PROFILE_TEMPLATE),
            "id",
            "E100",
        ))
        .await
        .unwrap();
    assert_eq!(ids.completion.values.len(), 6, "{ids:?}");
    let ids = alice
        .service
        .peer()
        .complete(complete(
            Reference::for_prompt("hr__performance_review"),
            "employee_id",
            "e1",
        ))
        .await
        .unwrap();
    assert!(ids.completion.values.contains(&"E1001".to_string()));
    let refused = bob
        .service
        .peer()
        .complete(complete(
            Reference::for_resource(PROFILE_TEMPLATE),
            "id",
            "E",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        serde_json::to_value(mcp_error(refused)).unwrap()["code"],
        -32002
    );
    let records = gateway
        .admin_json("/records?limit=1000&kind=completion/complete")
        .await;
    assert_eq!(records["records"].as_array().unwrap().len(), 3);
}

fn mcp_error(error: rmcp::ServiceError) -> rmcp::model::ErrorData {
    match error {
        rmcp::ServiceError::McpError(e) => e,
        other => panic!("not a JSON-RPC error: {other}"),
    }
}

/// For every caller shape (roles, chains, token scopes) and every resource any caller can reach: the caller's
/// list holds it exactly when a read of it succeeds, and the same for prompts.
#[tokio::test]
async fn lists_never_disagree_with_reads() {
    let gateway = gateway();
    let everything = person(&gateway, "carol", "hr-admin").await;
    let mut uris = resource_uris(&everything).await;
    uris.push("toolgate://hr/employee://E1001/profile".into());
    let prompts = prompt_names(&everything).await;
    assert!(uris.len() >= 4 && prompts.len() == 2);
    let roles: [&[&str]; 5] = [
        &[],
        &["hr"],
        &["engineering"],
        &["hr-admin"],
        &["hr", "engineering"],
    ];
    let chains: [&[&str]; 2] = [&[], &["summarizer"]];
    let scopes = [
        None,
        Some("hr__policy_question toolgate://hr/policy://handbook"),
        Some("toolgate://hr/*"),
    ];
    let (mut checked, mut refused) = (0, 0);
    for roles in roles {
        for via in chains {
            for scope in scopes {
                let token =
                    toolgate::identity::token::mint_dev(&toolgate::identity::token::TokenRequest {
                        subject: Some("someone".into()),
                        roles: roles.iter().map(|r| r.to_string()).collect(),
                        agent: Some("assistant".into()),
                        via: via.iter().map(|v| v.to_string()).collect(),
                        scope: scope.map(str::to_string),
                        audience: "toolgate".into(),
                        ttl: std::time::Duration::from_secs(600),
                    })
                    .unwrap();
                // A token asking for more than its chain may reach is refused whole, before any list.
                let Ok(client) = Client::try_connect(&gateway.url, &token).await else {
                    assert!(!via.is_empty() && scope.is_some());
                    refused += 1;
                    continue;
                };
                let listed = resource_uris(&client).await;
                let templates: Vec<String> = client
                    .service
                    .peer()
                    .list_all_resource_templates()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|t| t.uri_template.clone())
                    .collect();
                for uri in &uris {
                    let by_template = uri.contains("employee://")
                        && templates.iter().any(|t| t == PROFILE_TEMPLATE);
                    let shown = listed.contains(uri) || by_template;
                    let read = read(&client, uri).await;
                    assert_eq!(
                        shown,
                        read.is_ok(),
                        "roles {roles:?} via {via:?} scope {scope:?}: {uri} listed {shown}, read {read:?}"
                    );
                    checked += 1;
                }
                let names = prompt_names(&client).await;
                for name in &prompts {
                    let mut params = GetPromptRequestParams::new(name.clone());
                    params.arguments = Some(
                        serde_json::from_value(
                            json!({"employee_id": "E1001", "question": "hours?"}),
                        )
                        .unwrap(),
                    );
                    let got = client.service.peer().get_prompt(params).await;
                    assert_eq!(
                        names.contains(name),
                        got.is_ok(),
                        "roles {roles:?} via {via:?} scope {scope:?}: {name}: {got:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, (30 - refused) * (uris.len() + prompts.len()));
    assert!(refused < 30);
}

/// The conformance reference upstream (whose watched resource changes every three seconds) behind the open policy.
fn everything_gateway() -> Gateway {
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        stdio_upstream("ev", "everything", &[])
    ))
}

// `resources/subscribe` is the 2025 protocol's way to follow a resource, which this gateway speaks.
#[allow(deprecated)]
#[tokio::test]
async fn resource_updates_reach_only_subscribed_sessions_while_their_caller_may_read() {
    let gateway = everything_gateway();
    let watched = "toolgate://ev/test://watched-resource";
    let subscriber_token = dev_token(None, Some("tester"), &[], None);
    let subscriber = Client::connect(&gateway.url, &subscriber_token).await;
    let bystander = Client::connect(&gateway.url, &tester_token()).await;
    assert!(
        resource_uris(&subscriber)
            .await
            .contains(&watched.to_string())
    );
    subscriber
        .service
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new(watched))
        .await
        .unwrap();
    // Updates come under the gateway's URI, to the subscribing session only.
    eventually(20, || async {
        (subscriber.recorder.resource_updates.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    assert!(
        subscriber
            .recorder
            .resource_updates
            .lock()
            .unwrap()
            .iter()
            .all(|u| u == watched)
    );
    assert!(
        bystander
            .recorder
            .resource_updates
            .lock()
            .unwrap()
            .is_empty()
    );

    // Revoked: the next update is decided, refused and recorded; the subscription ends and nothing more arrives.
    revoke(&gateway, &subscriber_token);
    let refused = eventually(20, || async {
        let records = gateway
            .admin_json("/records?limit=1000&kind=notifications/resources/updated&decision=deny")
            .await;
        records["records"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(refused["tool"], watched);
    assert_eq!(refused["outcome"], "token_revoked", "{refused}");
    let seen = subscriber.recorder.resource_updates.lock().unwrap().len();
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(
        subscriber.recorder.resource_updates.lock().unwrap().len(),
        seen
    );
    let allowed = gateway
        .admin_json("/records?limit=1000&kind=notifications/resources/updated&decision=allow")
        .await;
    assert!(allowed["records"].as_array().unwrap().len() >= 2);
    assert!(
        bystander
            .recorder
            .resource_updates
            .lock()
            .unwrap()
            .is_empty()
    );
}
