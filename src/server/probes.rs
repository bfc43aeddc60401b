//! Probes and metadata: liveness, readiness, metrics, and the protected-resource document.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::AppState;

/// Liveness, with the policy bundle in force and why the last reload was refused (if it was).
pub(super) async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "policy": state.gateway.policy.status(),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text exposition.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
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
        sessions: state.sessions.len(),
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

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.gateway.draining.is_cancelled();
    let ready = !draining && state.gateway.catalog.ready();
    let body = serde_json::json!({
        "ready": ready,
        "draining": draining,
        "upstreams": state.gateway.catalog.statuses(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// RFC 9728 protected-resource metadata for `/mcp`.
pub(super) async fn resource_metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let origin = origin_of(&state, &headers);
    let body = serde_json::json!({
        "resource": format!("{origin}/mcp"),
        "authorization_servers": state.gateway.identity.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "toolgate",
    });
    axum::Json(body).into_response()
}

/// `http://host[:port]` of this gateway as the client addressed it (the Host header passed the guard).
pub(super) fn origin_of(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(public) = &state.gateway.identity.public_url {
        return public.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}
