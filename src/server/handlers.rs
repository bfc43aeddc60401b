//! What the handlers of `/mcp` share (`POST` in `post`, `GET` and `DELETE` in `stream`): authenticating a request,
//! its refusal as the HTTP answer, finding its session, checking its protocol version and `Accept`, and the JSON
//! and error answers.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::identity::{AuthError, Caller, ProofRequest, Scheme};
use crate::telemetry;
use rmcp::model::{ErrorCode, ServerJsonRpcMessage};

use super::probes::origin_of;
use super::session::SessionLimit;
use super::{AppState, LEGACY_PROTOCOL_VERSIONS, SESSION_HEADER, Session, VERSION_HEADER, jsonrpc};

/// A session or stream refused by a limit: 503 when the gateway is full, 429 when this caller or agent holds its
/// share, with `data.reason` = `session_limit`.
pub(super) fn session_limit(limit: SessionLimit) -> Response {
    tracing::warn!(%limit, "session refused");
    let status = if limit == SessionLimit::Full {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    telemetry::failed(&tracing::Span::current(), status.as_str());
    let message = ServerJsonRpcMessage::error(
        rmcp::model::ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            limit.to_string(),
            Some(serde_json::json!({"reason": "session_limit"})),
        ),
        None,
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(&message),
    )
        .into_response()
}

/// Authenticates a request from its Authorization header; the refusal is the HTTP answer itself.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
pub(super) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &http::Method,
    uri: &http::Uri,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Result<Caller, Response> {
    let source = peer.0.ip().to_string();
    let credential = jsonrpc::credential(headers, uri.query());
    // What a DPoP proof is checked against; the URL is worked out only for a request that uses DPoP.
    let request = credential.as_ref().ok().map(|(scheme, _)| {
        let proof = jsonrpc::dpop_proof(headers);
        let url = if *scheme == Scheme::Dpop || !matches!(proof, Ok(None)) {
            format!("{}{}", origin_of(state, headers), uri.path())
        } else {
            String::new()
        };
        ProofRequest {
            scheme: *scheme,
            proof,
            method: method.as_str(),
            url,
        }
    });
    state
        .gateway
        .authenticate(
            credential.map(|(_, token)| token),
            request.as_ref(),
            &source,
            jsonrpc::forwarded(headers),
        )
        .map_err(|error| auth_refusal(state, &error, headers))
}

/// 401 (with the `WWW-Authenticate` challenge) or 403, with a JSON-RPC error naming the reason id.
pub(super) fn auth_refusal(state: &AppState, error: &AuthError, headers: &HeaderMap) -> Response {
    let message = jsonrpc::auth_refusal(None, error);
    let mut response = (
        jsonrpc::auth_status(error),
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(&message),
    )
        .into_response();
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource",
        origin_of(state, headers)
    );
    let challenge = match (jsonrpc::auth_status(error), error) {
        (StatusCode::UNAUTHORIZED, AuthError::Missing) => {
            format!("Bearer resource_metadata=\"{metadata}\"")
        }
        (StatusCode::UNAUTHORIZED, _) => format!(
            "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\"{}\"",
            error.reason_id()
        ),
        _ => format!("Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\""),
    };
    // A refused proof is answered with the DPoP scheme's own challenge (RFC 9449 §7.1) as well.
    let challenge = if error.is_proof() {
        format!(
            "DPoP error=\"invalid_dpop_proof\", algs=\"ES256 ES384 RS256 RS384 RS512 PS256 PS384 PS512 EdDSA\", \
             error_description=\"{}\", {challenge}",
            error.reason_id()
        )
    } else {
        challenge
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

pub(super) fn http_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    telemetry::failed(&tracing::Span::current(), status.as_str());
    let body = jsonrpc::to_bytes(&jsonrpc::error_message(None, code, message.to_string()));
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) fn json_response(message: &ServerJsonRpcMessage, session: Option<&str>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_bytes(message),
    )
        .into_response();
    if let Some(id) = session
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

pub(super) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .any(|v| v == mime || v == "*/*")
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
pub(super) async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Arc<Session>, Response> {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_REQUEST,
            "missing Mcp-Session-Id header; send initialize first",
        ));
    };
    let session = match state.sessions.get(id) {
        Some(session) => session,
        // Opened on another replica, or on this one before it restarted: resumed from its sealed id.
        None => match super::tickets::resume(state, id, caller).await {
            Ok(session) => session,
            Err(super::tickets::NotResumed::OtherSubject) => {
                return Err(auth_refusal(state, &AuthError::SessionSubject, headers));
            }
            Err(super::tickets::NotResumed::Limit(limit)) => return Err(session_limit(limit)),
            Err(super::tickets::NotResumed::Unknown) => {
                return Err(http_error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::INVALID_REQUEST,
                    "unknown or expired session",
                ));
            }
        },
    };
    // A session belongs to the subject that opened it.
    if session.subject != caller.subject_key() {
        return Err(auth_refusal(state, &AuthError::SessionSubject, headers));
    }
    Ok(session)
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
pub(super) fn check_version(headers: &HeaderMap) -> Result<(), Response> {
    match headers.get(VERSION_HEADER).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(v)) if LEGACY_PROTOCOL_VERSIONS.contains(&v) => Ok(()),
        Some(_) => Err(http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::INVALID_REQUEST,
            "unsupported MCP-Protocol-Version",
        )),
    }
}
