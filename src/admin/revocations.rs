//! Revocations: listed, and added (in force on the next request, everywhere).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, AdminState, refusal};
use crate::store::{Revocation, RevocationTarget};

pub(super) async fn list_revocations(State(state): State<AdminState>) -> Response {
    match state.gateway.identity.revocations().list().await {
        Ok(list) => axum::Json(json!({
            "revocations": list,
            "revoked_credentials_presented": state.gateway.identity.revocations().presented(),
        }))
        .into_response(),
        Err(e) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            &e.to_string(),
        ),
    }
}

/// Body of `POST /admin/revocations`.
#[derive(Debug, Deserialize)]
pub(super) struct RevokeRequest {
    #[serde(flatten)]
    target: RevocationTarget,
    /// Only tokens issued before this time (Unix seconds).
    #[serde(default)]
    issued_before: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn revoke(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    body: axum::body::Bytes,
) -> Response {
    let request: RevokeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid revocation: {e}"),
            );
        }
    };
    if let RevocationTarget::Agent { agent } = &request.target
        && state.gateway.identity.inventory().get(agent).is_none()
    {
        return refusal(
            StatusCode::BAD_REQUEST,
            "unknown_agent",
            &format!("agent `{agent}` is not registered"),
        );
    }
    let revocation = Revocation {
        id: 0,
        target: request.target,
        issued_before: request.issued_before,
        reason: request.reason,
        created_at: jsonwebtoken::get_current_timestamp() as i64,
        created_by: admin.label.clone(),
    };
    match state
        .gateway
        .identity
        .revocations()
        .revoke(revocation)
        .await
    {
        Ok(stored) => {
            tracing::info!(admin = %admin.label, revocation = ?stored.target, "credential revoked");
            // What some connected callers may see has changed.
            state.gateway.announce_change();
            (StatusCode::CREATED, axum::Json(stored)).into_response()
        }
        // Nothing is applied that could not be stored.
        Err(e) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            &e.to_string(),
        ),
    }
}
