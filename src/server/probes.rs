//! Probes and metadata on the MCP listener: liveness, readiness (status only), and the protected-resource
//! document. Metrics and readiness details are on the admin listener.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::AppState;

/// Liveness: the process answers. Nothing more, to anyone (details are on the admin listener).
pub(super) async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness for load balancers and orchestrators: the status code, ready or draining, and nothing else (each
/// upstream's state and errors are on the admin listener, `GET /admin/readyz`).
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let (ready, draining) = state.gateway.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"ready": ready, "draining": draining})),
    )
        .into_response()
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
