//! Agents (inventory, activity, revocation) and the calls held for a human's approval.

use askama::Template;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::forms::{self, api, given};
use super::session::Signed;
use super::{Frame, answered, done, render};
use crate::admin::{ActionNote, AdminState, reviews, revocations};

/// One agent as the agents page lists it.
struct AgentRow {
    id: String,
    owner: String,
    scope: String,
    calls: u64,
    last_activity: String,
    never_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct Agents {
    frame: Frame,
    agents: Vec<AgentRow>,
    revoked_presented: u64,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(in crate::admin) async fn agents(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    let Some(_turn) = state.console.heavy.turn().await else {
        return super::plain(StatusCode::SERVICE_UNAVAILABLE, super::decisions::BUSY);
    };
    let revocations = api(revocations::list_revocations(State(state.clone())).await)
        .await
        .unwrap_or(Value::Null);
    let revoked: Vec<&str> = revocations["revocations"]
        .as_array()
        .map(|list| list.iter().filter_map(|r| r["agent"].as_str()).collect())
        .unwrap_or_default();
    // One read of the records: calls, last activity and the tools used, per agent.
    let storage = state.gateway.config.storage.clone();
    let usage = tokio::task::spawn_blocking(move || {
        crate::audit::Records::open(&storage).and_then(|mut r| r.agent_usage())
    })
    .await;
    let usage = match usage {
        Ok(Ok(usage)) => usage,
        _ => {
            tracing::error!("console agents: the decision records cannot be read");
            Vec::new()
        }
    };
    let tools: Vec<String> = state
        .gateway
        .catalog
        .tools()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    let inventory = state.gateway.identity.inventory();
    let agents: Vec<AgentRow> = inventory
        .agents()
        .map(|agent| {
            let (mut used, mut calls, mut last) = (BTreeSet::new(), 0, 0);
            for row in usage.iter().filter(|u| u.agent == agent.id) {
                used.extend(row.tool.clone());
                calls += row.calls;
                last = last.max(row.last_ms);
            }
            AgentRow {
                never_used: agent.unused_tools(&tools, &used).join(", "),
                revoked: revoked.contains(&agent.id.as_str()),
                owner: agent.spec.owner.clone(),
                scope: agent.spec.scope.join(", "),
                calls,
                last_activity: if last > 0 {
                    forms::time(last)
                } else {
                    "never".into()
                },
                id: agent.id.clone(),
            }
        })
        .collect();
    render(&Agents {
        frame: Frame::new(&state, &signed, "/console/agents", "Agents".into()),
        agents,
        revoked_presented: revocations["revoked_credentials_presented"]
            .as_u64()
            .unwrap_or(0),
    })
}

#[derive(Debug, Deserialize)]
pub(in crate::admin) struct Reason {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    jti: Option<String>,
}

async fn revoke(state: &AdminState, signed: &Signed, target: Value, what: String) -> Response {
    let answer = revocations::revoke(
        State(state.clone()),
        axum::Extension(signed.admin.clone()),
        axum::body::Bytes::from(target.to_string()),
    )
    .await;
    let (message, status) = match api(answer).await {
        Ok(_) => (
            format!("{what} revoked: refused from the next request on."),
            StatusCode::CREATED,
        ),
        Err(refused) => (
            format!("{what}: revocation refused: {}", refused.message),
            refused.status,
        ),
    };
    answered(state, signed, "/console/agents", message, status)
}

pub(in crate::admin) async fn revoke_agent(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath(id): UrlPath<String>,
    axum::Form(form): axum::Form<Reason>,
) -> Response {
    let target = json!({"kind": "agent", "agent": id, "reason": given(&form.reason)});
    revoke(&state, &signed, target, format!("Agent `{id}`")).await
}

pub(in crate::admin) async fn revoke_credential(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    axum::Form(form): axum::Form<Reason>,
) -> Response {
    let Some(jti) = given(&form.jti) else {
        return answered(
            &state,
            &signed,
            "/console/agents",
            "Revocation refused: give the token id (jti) to revoke.".into(),
            StatusCode::BAD_REQUEST,
        );
    };
    let target = json!({"kind": "token", "jti": jti, "reason": given(&form.reason)});
    revoke(&state, &signed, target, format!("Token `{jti}`")).await
}

/// A held call as an approver sees it (arguments redacted to their clearance by the admin API).
struct Held {
    id: String,
    tool: String,
    caller: String,
    chain: String,
    reasons: String,
    arguments: String,
    clearance: String,
    facts: String,
    expires: String,
    status: String,
}

impl Held {
    fn of(approval: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Self {
            id: text(&approval["id"]),
            tool: text(&approval["tool"]),
            caller: format!(
                "{}/{}",
                text(&approval["issuer"]),
                text(&approval["subject"])
            ),
            chain: strings(&approval["chain"]).join(" → "),
            reasons: strings(&approval["reasons"]).join("; "),
            arguments: forms::pretty(approval["held"].get("arguments")),
            clearance: text(&approval["held"]["shown_at_clearance"]),
            facts: forms::pretty(approval["held"].get("facts")),
            expires: approval["expires_at"]
                .as_i64()
                .map(forms::time_s)
                .unwrap_or_default(),
            status: text(&approval["status"]),
        }
    }
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct Approvals {
    frame: Frame,
    pending: Vec<Held>,
}

#[derive(Template)]
#[template(path = "approval.html")]
struct ApprovalPage {
    frame: Frame,
    held: Held,
}

pub(in crate::admin) async fn approvals(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    let answer = reviews::list_approvals(
        State(state.clone()),
        axum::Extension(signed.admin.clone()),
        Query(reviews::ApprovalFilter {
            status: Some(crate::store::ApprovalStatus::Pending),
        }),
    )
    .await;
    let pending = match api(answer).await {
        Ok(list) => list["approvals"]
            .as_array()
            .map(|a| a.iter().map(Held::of).collect())
            .unwrap_or_default(),
        Err(refused) => {
            state.console.flash(&signed.id, refused.message);
            Vec::new()
        }
    };
    render(&Approvals {
        frame: Frame::new(&state, &signed, "/console/approvals", "Approvals".into()),
        pending,
    })
}

pub(in crate::admin) async fn approval(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let answer = reviews::show_approval(
        State(state.clone()),
        axum::Extension(signed.admin.clone()),
        UrlPath(id.clone()),
    )
    .await;
    match api(answer).await {
        Ok(approval) => {
            let held = Held::of(&approval);
            render(&ApprovalPage {
                frame: Frame::new(
                    &state,
                    &signed,
                    "/console/approvals",
                    format!("Approval for {}", held.tool),
                ),
                held,
            })
        }
        Err(refused) => done(&state, &signed, "/console/approvals", refused.message),
    }
}

#[derive(Debug, Deserialize)]
pub(in crate::admin) struct Verdict {
    #[serde(default)]
    comment: Option<String>,
}

pub(in crate::admin) async fn decide(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath((id, verdict)): UrlPath<(String, String)>,
    axum::Form(form): axum::Form<Verdict>,
) -> Response {
    let comment =
        given(&form.comment).map(|c| c.chars().take(reviews::MAX_COMMENT).collect::<String>());
    let answer = reviews::decide(&state, &signed.admin, id.clone(), &verdict).await;
    let mut response = match api(answer).await {
        Ok(decided) => {
            let tool = decided["tool"].as_str().unwrap_or_default();
            let word = if verdict == "approve" {
                "approved"
            } else {
                "denied"
            };
            done(
                &state,
                &signed,
                "/console/approvals",
                format!("The call of `{tool}` is {word}."),
            )
        }
        Err(refused) => {
            return answered(
                &state,
                &signed,
                "/console/approvals",
                format!("Approval `{id}`: {verdict} refused: {}", refused.message),
                refused.status,
            );
        }
    };
    if let Some(comment) = comment {
        response
            .extensions_mut()
            .insert(ActionNote(format!("comment: {comment}")));
    }
    response
}
