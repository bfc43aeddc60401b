//! What waits for a human: calls held for approval, and tool definitions held in quarantine.

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, AdminState, either, refusal, store_unavailable};
use crate::store::{Approval, ApprovalStatus};

#[derive(Debug, Deserialize)]
pub(super) struct ApprovalFilter {
    pub(super) status: Option<ApprovalStatus>,
}

/// An approval as an approver sees it: the held arguments redacted to the approver's clearance (withheld when
/// they cannot be redacted), and the clearance they were shown at.
fn as_seen_by(state: &AdminState, admin: &Admin, mut approval: Approval) -> serde_json::Value {
    let clearance = admin.clearance;
    if let Some(held) = approval.held.as_mut() {
        super::records::to_clearance(
            state,
            clearance,
            [held.arguments.as_mut(), held.facts.as_mut()],
        );
    }
    let mut view = serde_json::to_value(&approval).unwrap_or_default();
    if approval.held.is_some() {
        view["held"]["shown_at_clearance"] = json!(clearance);
    }
    view
}

pub(super) async fn list_approvals(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Query(filter): Query<ApprovalFilter>,
) -> Response {
    match state
        .gateway
        .store
        .approvals(filter.status, crate::clock::unix_now())
        .await
    {
        Ok(list) => {
            let list: Vec<_> = list
                .into_iter()
                .map(|a| as_seen_by(&state, &admin, a))
                .collect();
            axum::Json(json!({"approvals": list})).into_response()
        }
        Err(e) => store_unavailable(&e),
    }
}

pub(super) async fn show_approval(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    match state
        .gateway
        .store
        .approval(id.clone(), crate::clock::unix_now())
        .await
    {
        Ok(Some(approval)) => axum::Json(as_seen_by(&state, &admin, approval)).into_response(),
        Ok(None) => refusal(
            StatusCode::NOT_FOUND,
            "unknown_approval",
            &format!("no approval `{id}`"),
        ),
        Err(e) => store_unavailable(&e),
    }
}

/// The optional body of a decision on an approval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Comment {
    comment: Option<String>,
}

/// The longest comment kept with a decision on an approval (longer ones are cut).
pub(super) const MAX_COMMENT: usize = 1000;

/// `POST /admin/approvals/{id}/approve` or `/deny`, optionally with `{"comment": "…"}` (kept in the decision
/// record of the action). The caller of a held call can never grant it.
pub(super) async fn decide_approval(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath((id, verdict)): UrlPath<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let comment = if body.is_empty() {
        Comment::default()
    } else {
        match serde_json::from_slice::<Comment>(&body) {
            Ok(c) => c,
            Err(e) => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("invalid decision: {e}"),
                );
            }
        }
    };
    let comment = comment
        .comment
        .map(|c| c.trim().chars().take(MAX_COMMENT).collect::<String>())
        .filter(|c| !c.is_empty());
    let mut response = decide(&state, &admin, id, &verdict).await;
    if let Some(comment) = comment.filter(|_| response.status().is_success()) {
        response
            .extensions_mut()
            .insert(super::ActionNote(format!("comment: {comment}")));
    }
    response
}

/// Decides an approval for `admin` (the API's and the console's).
pub(super) async fn decide(
    state: &AdminState,
    admin: &Admin,
    id: String,
    verdict: &str,
) -> Response {
    let approve = match either(verdict, "approve", "deny", "unknown_verdict") {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let now = crate::clock::unix_now();
    let store = &state.gateway.store;
    let approval = match store.approval(id.clone(), now).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return refusal(
                StatusCode::NOT_FOUND,
                "unknown_approval",
                &format!("no approval `{id}`"),
            );
        }
        Err(e) => return store_unavailable(&e),
    };
    // The caller (its `(iss, sub)`), and any agent of its chain (by id, or by the credential bound to it), can
    // never decide its own approval.
    let inventory = state.gateway.identity.inventory();
    let is_party = |issuer: &String, subject: &String| {
        (issuer == &approval.issuer && subject == &approval.subject)
            || approval.chain.contains(subject)
            || inventory
                .bound_agent(issuer, subject, Some(subject))
                .is_some_and(|agent| approval.chain.contains(&agent.id))
    };
    if let Some((issuer, subject)) = &admin.token
        && is_party(issuer, subject)
    {
        tracing::warn!(admin = %admin.label, approval = %id, "refused: a caller cannot approve its own call");
        return refusal(
            StatusCode::FORBIDDEN,
            "self_approval",
            "the caller of a held call (or an agent in its chain) cannot decide its approval",
        );
    }
    if approval.status != ApprovalStatus::Pending {
        return refusal(
            StatusCode::CONFLICT,
            "approval_not_pending",
            &format!("approval `{id}` is {:?}, not pending", approval.status),
        );
    }
    let ttl = i64::try_from(state.gateway.config.policy.approval_ttl.as_secs()).unwrap_or(i64::MAX);
    match store
        .decide_approval(
            id.clone(),
            approve,
            admin.label.clone(),
            now,
            now.saturating_add(ttl),
        )
        .await
    {
        Ok(Some(decided)) => {
            tracing::info!(admin = %admin.label, approval = %id, approve, tool = %decided.tool, "approval decided");
            axum::Json(as_seen_by(state, admin, decided)).into_response()
        }
        Ok(None) => refusal(
            StatusCode::CONFLICT,
            "approval_not_pending",
            &format!("approval `{id}` is no longer pending"),
        ),
        Err(e) => store_unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PinFilter {
    status: Option<crate::catalog::pins::PinStatus>,
}

/// The definition an admin reviewed: its hash, as `pins show` prints it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PinReview {
    pub(super) hash: Option<String>,
}

/// `GET /admin/pins`: every pinned tool, optionally of one status.
pub(super) async fn list_pins(
    State(state): State<AdminState>,
    Query(filter): Query<PinFilter>,
) -> Response {
    let pins: Vec<_> = state
        .gateway
        .pins
        .list()
        .into_iter()
        .filter(|p| filter.status.is_none_or(|s| s == p.status))
        .collect();
    axum::Json(json!({"pins": pins})).into_response()
}

/// `GET /admin/pins/{tool}`: the pin, with a diff from the approved definition to the one reported.
pub(super) async fn show_pin(
    State(state): State<AdminState>,
    UrlPath(tool): UrlPath<String>,
) -> Response {
    match state.gateway.pins.get(&tool) {
        Some(pin) => {
            let diff = pin.diff();
            let mut body = serde_json::to_value(&pin).unwrap_or_default();
            body["diff"] = json!(diff);
            axum::Json(body).into_response()
        }
        None => refusal(
            StatusCode::NOT_FOUND,
            "unknown_tool",
            &format!("no pin for `{tool}`"),
        ),
    }
}

/// `POST /admin/pins/{tool}/approve` (re-pin to the reported definition) or `/reject`.
pub(super) async fn decide_pin(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath((tool, verdict)): UrlPath<(String, String)>,
    Query(review): Query<PinReview>,
) -> Response {
    let approve = match either(&verdict, "approve", "reject", "unknown_verdict") {
        Ok(b) => b,
        Err(response) => return *response,
    };
    match state
        .gateway
        .pins
        .decide(&tool, approve, &admin.label, review.hash.as_deref())
        .await
    {
        Ok(Some(pin)) => {
            tracing::info!(admin = %admin.label, %tool, approve, "tool definition reviewed");
            state.gateway.announce_change();
            axum::Json(pin).into_response()
        }
        Ok(None) => refusal(
            StatusCode::CONFLICT,
            "nothing_pending",
            &format!(
                "`{tool}` has no definition awaiting review (or not the one with the hash given)"
            ),
        ),
        Err(e) => store_unavailable(&e),
    }
}
