//! The policy in force, decision records and access reports.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, AdminState, records_unavailable, refusal};

pub(super) async fn policy_status(State(state): State<AdminState>) -> Response {
    axum::Json(state.gateway.policy.status()).into_response()
}

/// Reloads policies and manifests now; a bundle that does not compile or fails its tests is refused and the
/// previous one stays in force.
pub(super) async fn reload_policy(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
) -> Response {
    let policy = std::sync::Arc::clone(&state.gateway.policy);
    let result = tokio::task::spawn_blocking(move || policy.reload("admin API")).await;
    match result {
        Ok(Ok(version)) => {
            tracing::info!(admin = %admin.label, %version, "policy reloaded from the admin API");
            axum::Json(json!({"version": version, "status": state.gateway.policy.status()}))
                .into_response()
        }
        Ok(Err(error)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({
                "error": error.to_string(),
                "reason": "policy_reload_refused",
                "status": state.gateway.policy.status(),
            })),
        )
            .into_response(),
        Err(e) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "policy_reload_failed",
            &e.to_string(),
        ),
    }
}

/// A call's arguments and their facts (of a record, which keeps what `audit.arguments` says, or of a held call)
/// as `clearance` may see them; what cannot be redacted is withheld.
pub(super) fn to_clearance(
    state: &AdminState,
    clearance: crate::classification::Classification,
    values: [Option<&mut serde_json::Value>; 2],
) {
    let rules = crate::redact::Rules::plain(clearance);
    for value in values.into_iter().flatten() {
        if state.gateway.redactor.redact_value(value, &rules).is_err() {
            *value = json!({"withheld": "this could not be redacted"});
        }
    }
}

/// `GET /admin/records`: decision records in the order stored, filtered, paged with `after` (`next_after` of the
/// page before); arguments and facts as the admin's clearance may see them.
pub(super) async fn list_records(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Query(filter): Query<crate::audit::RecordFilter>,
) -> Response {
    if filter.reason_too_long() {
        return refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!(
                "`reason` is longer than {} characters",
                crate::audit::RecordFilter::MAX_REASON
            ),
        );
    }
    let storage = state.gateway.config.storage.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut store = crate::audit::Records::open(&storage).map_err(|e| e.to_string())?;
        store.query(&filter).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(mut records)) => {
            for stored in &mut records {
                let record = &mut stored.record;
                to_clearance(
                    &state,
                    admin.clearance,
                    [record.arguments.as_mut(), record.facts.as_mut()],
                );
            }
            let next = records.last().map(|r| r.position);
            axum::Json(json!({"records": records, "next_after": next})).into_response()
        }
        Ok(Err(e)) => records_unavailable("records query", &e),
        Err(e) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_unavailable",
            &e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportParams {
    since: Option<i64>,
    until: Option<i64>,
    tool: Option<String>,
}

/// `GET /admin/reports`: the access report as JSON.
pub(super) async fn report(
    State(state): State<AdminState>,
    Query(params): Query<ReportParams>,
) -> Response {
    let config = std::sync::Arc::clone(&state.gateway.config);
    let result = tokio::task::spawn_blocking(move || {
        crate::report::for_config(
            &config,
            &crate::report::ReportQuery {
                since: params.since,
                until: params.until,
                tool: params.tool,
            },
        )
    })
    .await;
    match result {
        Ok(Ok(report)) => axum::Json(report).into_response(),
        Ok(Err(e)) => records_unavailable("access report", &e),
        Err(e) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_unavailable",
            &e.to_string(),
        ),
    }
}

/// `GET /admin/metrics`: Prometheus text exposition (the admin credential, or the scrape credential).
pub(super) async fn metrics(State(state): State<AdminState>) -> Response {
    let gateway = &state.gateway;
    let statuses = gateway.catalog.statuses();
    let policy = gateway.policy.status();
    let quarantined = gateway
        .pins
        .list()
        .iter()
        .filter(|p| p.status == crate::catalog::pins::PinStatus::Quarantined)
        .count();
    let text = gateway.metrics.render(&crate::metrics::Snapshot {
        upstreams: statuses
            .iter()
            .map(|u| (u.name.as_str(), u.state == "ready", u.reconnects, u.tools))
            .collect(),
        bundle_version: &policy.version,
        evaluator: policy.evaluator,
        reload_failures: policy.reload_failures,
        quarantined,
        sessions: (state.sessions)(),
    });
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /admin/readyz`: readiness with its details (each upstream's state, refused tools, errors) and the policy
/// in force, which the public `/readyz` does not give.
pub(super) async fn readiness(State(state): State<AdminState>) -> Response {
    let (ready, draining) = state.gateway.readiness();
    axum::Json(json!({
        "ready": ready,
        "draining": draining,
        "upstreams": state.gateway.catalog.statuses(),
        "policy": state.gateway.policy.status(),
        "sessions": (state.sessions)(),
    }))
    .into_response()
}
