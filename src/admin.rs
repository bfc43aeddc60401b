//! The admin API: a separate listener (loopback by default), authenticated from the start. Admins are either
//! the holder of the bootstrap credential or an admin token — a JWT of a trusted issuer for the admin audience
//! whose `(iss, sub)` is listed in config. A user or agent token is never an admin token.

mod console;
mod inventory;
mod records;
mod registry;
mod reviews;
mod revocations;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::AdminRole;
use crate::gateway::Gateway;
use crate::identity::Identity;
use inventory::{
    delete_agent, list_agents, list_upstreams, put_agent, register_upstream, remove_upstream,
    switch_upstream, update_upstream,
};
use records::{list_records, metrics, policy_status, readiness, reload_policy, report};
use reviews::{decide_approval, decide_pin, list_approvals, list_pins, show_approval, show_pin};
use revocations::{list_revocations, revoke};

#[derive(Clone)]
pub(super) struct AdminState {
    gateway: Arc<Gateway>,
    bootstrap: Arc<str>,
    scrape: Arc<str>,
    /// Downstream sessions open now (the transport's count).
    sessions: Arc<dyn Fn() -> usize + Send + Sync>,
    /// Admins signed in to the web console.
    console: Arc<console::ConsoleSessions>,
}

/// The admin listener's two credentials, read (or created) at start.
pub struct Credentials {
    /// Administers everything.
    pub bootstrap: String,
    /// Reads `/admin/metrics` and nothing else.
    pub scrape: String,
}

/// Who an admin request came from.
#[derive(Clone, Debug)]
pub(super) struct Admin {
    /// For records and logs: `bootstrap`, `metrics-scraper` or `issuer/subject`.
    label: String,
    /// The `(iss, sub)` of an admin token.
    token: Option<(String, String)>,
    /// Highest class this admin sees in held calls' arguments.
    clearance: crate::classification::Classification,
    role: AdminRole,
    /// The admin token's `jti`, `iat` and `exp`: a console session re-checks revocations and ends with the token.
    claims: Option<(Option<String>, i64, i64)>,
}

/// The bootstrap credential's file cannot be read or created.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read or create admin credential `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("admin credential in `{0}` is shorter than 32 characters")]
    Short(String),
}

/// Reads the bootstrap credential, creating the file with a random secret (mode 0600) on first run.
pub fn bootstrap_credential(path: &Path) -> Result<String, CredentialError> {
    let (secret, created) =
        crate::secret::read_or_create(path).map_err(|source| CredentialError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if created {
        tracing::info!(path = %path.display(), "created the bootstrap admin credential");
    }
    if secret.len() < 32 {
        return Err(CredentialError::Short(path.display().to_string()));
    }
    Ok(secret)
}

/// The admin router. The server puts it behind the same Host/Origin guard as `/mcp`
/// (`server::admin_router`).
pub fn router(
    gateway: Arc<Gateway>,
    credentials: Credentials,
    sessions: Arc<dyn Fn() -> usize + Send + Sync>,
) -> Router {
    let state = AdminState {
        gateway,
        bootstrap: Arc::from(credentials.bootstrap),
        scrape: Arc::from(credentials.scrape),
        sessions,
        console: Arc::default(),
    };
    Router::new()
        .route("/admin/revocations", get(list_revocations).post(revoke))
        .route("/admin/approvals", get(list_approvals))
        .route("/admin/approvals/{id}", get(show_approval))
        .route("/admin/approvals/{id}/{verdict}", post(decide_approval))
        .route(
            "/admin/upstreams",
            get(list_upstreams).post(register_upstream),
        )
        .route(
            "/admin/upstreams/{name}",
            axum::routing::delete(remove_upstream).put(update_upstream),
        )
        .route("/admin/upstreams/{name}/{switch}", post(switch_upstream))
        .route("/admin/agents", get(list_agents))
        .route(
            "/admin/agents/{id}",
            axum::routing::put(put_agent).delete(delete_agent),
        )
        .route("/admin/pins", get(list_pins))
        .route("/admin/pins/{tool}", get(show_pin))
        .route("/admin/pins/{tool}/{verdict}", post(decide_pin))
        .route("/admin/records", get(list_records))
        .route("/admin/reports", get(report))
        .route("/admin/policy", get(policy_status))
        .route("/admin/policy/reload", post(reload_policy))
        .route("/admin/metrics", get(metrics))
        .route("/admin/readyz", get(readiness))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(console::router(state.clone()))
        .with_state(state)
}

pub(super) fn refusal(status: StatusCode, reason: &str, message: &str) -> Response {
    refusal_at(status, reason, message, None)
}

/// A refusal that names the part of the request refused (`field`), for a form to show the message beside it.
pub(super) fn refusal_at(
    status: StatusCode,
    reason: &str,
    message: &str,
    field: Option<&str>,
) -> Response {
    let mut body = json!({"error": message, "reason": reason});
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, axum::Json(body)).into_response()
}

/// The decision records cannot be read: the admin is told so, the log says why.
pub(super) fn records_unavailable(what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!("{what} failed: {error}");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the decision records cannot be read right now (see the gateway log)",
    )
}

/// A registry refusal: the admin is told what was refused; the whole story, with the sources of the gateway's
/// own failures, goes to the log.
pub(super) fn registry_refusal(
    admin: &str,
    status: StatusCode,
    reason: &str,
    error: &registry::RegistryError,
) -> Response {
    let story = std::iter::successors(Some(error as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    if error.is_internal() {
        tracing::error!(admin, reason, "registry change failed: {story}");
        return refusal(StatusCode::SERVICE_UNAVAILABLE, reason, &error.public());
    }
    tracing::warn!(admin, reason, "registry change refused: {story}");
    refusal_at(status, reason, &error.public(), error.field())
}

async fn authenticate(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let metrics = request.method() == http::Method::GET && request.uri().path() == "/admin/metrics";
    match admin_of(&state, request.headers(), request.uri().query(), metrics) {
        Ok(admin) => {
            let action = format!("{} {}", request.method(), request.uri().path());
            let reads = request.method() == http::Method::GET;
            if !admin.may(reads, request.uri().path()) {
                tracing::warn!(admin = %admin.label, %action, "refused: a reviewer changes nothing");
                return refusal(
                    StatusCode::FORBIDDEN,
                    "reviewer_read_only",
                    "a reviewer reads decision records and access reports and changes nothing",
                );
            }
            request.extensions_mut().insert(admin.clone());
            recorded(&state, &admin, action, !reads, next.run(request)).await
        }
        Err((reason, message)) => {
            tracing::warn!(reason, "admin request refused");
            // Refused admin credentials are recorded like refused caller tokens (aggregated per interval).
            state.gateway.audit.count_auth_failure("admin", reason);
            let mut response = refusal(StatusCode::UNAUTHORIZED, reason, &message);
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"toolgate-admin\""),
            );
            response
        }
    }
}

/// The status of an action the console carried out through the admin API, when its own answer (a redirect back
/// to the page) does not say it: what the action's record says.
#[derive(Clone, Copy, Debug)]
pub(super) struct ActionStatus(pub StatusCode);

/// What an admin's response adds to the record of its action (an approver's comment).
#[derive(Clone, Debug)]
pub(super) struct ActionNote(pub String);

/// Carries out an admin action (the API's or the console's). A change (`changes_state`) is recorded before it
/// takes effect, and one that cannot be recorded is not carried out; its outcome is recorded after.
pub(super) async fn recorded(
    state: &AdminState,
    admin: &Admin,
    action: String,
    changes_state: bool,
    run: impl std::future::Future<Output = Response>,
) -> Response {
    let started = std::time::Instant::now();
    let admin_record =
        |decision: &str, outcome: String| action_record(admin, &action, decision, outcome);
    if changes_state {
        let requested = admin_record("allow", "requested".into());
        if let Err(e) = state.gateway.audit.append(requested).await {
            tracing::error!(admin = %admin.label, %action, "admin action refused: {e}");
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "decision records cannot be written, so the admin action was not carried out",
            );
        }
    }
    let response = run.await;
    if changes_state {
        let status = response
            .extensions()
            .get::<ActionStatus>()
            .map_or(response.status(), |s| s.0);
        let decision = if status.is_success() || status.is_redirection() {
            "allow"
        } else {
            "deny"
        };
        let mut record = admin_record(decision, format!("http_{}", status.as_u16()));
        if let Some(ActionNote(note)) = response.extensions().get::<ActionNote>() {
            record.reasons.push(note.clone());
        }
        record.latency.total_us = crate::gateway::elapsed_us(started);
        state.gateway.audit.append_detached(record);
    }
    response
}

/// The record of an admin's action `action` (`METHOD /path`).
pub(super) fn action_record(
    admin: &Admin,
    action: &str,
    decision: &str,
    outcome: String,
) -> crate::audit::DecisionRecord {
    let mut record = crate::audit::DecisionRecord::new("admin");
    record.subject = Some(admin.label.clone());
    if let Some((issuer, subject)) = &admin.token {
        record.issuer = Some(issuer.clone());
        record.subject = Some(subject.clone());
    }
    record.source = Some("admin".into());
    record.decision = decision.into();
    record.outcome = outcome;
    record.reasons = vec![action.to_string()];
    record
}

impl Admin {
    /// Whether this admin may do a request: an admin anything, a reviewer reads records, reports and metrics.
    fn may(&self, reads: bool, path: &str) -> bool {
        self.role == AdminRole::Admin
            || (reads && matches!(path, "/admin/records" | "/admin/reports" | "/admin/metrics"))
    }
}

/// Who an admin request comes from. `metrics`: the request reads `/admin/metrics`, which the scrape credential may
/// do too.
fn admin_of(
    state: &AdminState,
    headers: &HeaderMap,
    query: Option<&str>,
    metrics: bool,
) -> Result<Admin, (&'static str, String)> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes);
    let token = Identity::bearer(authorization, query)
        .map_err(|e| (e.reason_id().as_str(), e.to_string()))?;
    if bool::from(token.as_bytes().ct_eq(state.bootstrap.as_bytes())) {
        return Ok(Admin {
            label: "bootstrap".into(),
            token: None,
            clearance: state.gateway.config.admin.approver_clearance,
            role: AdminRole::Admin,
            claims: None,
        });
    }
    if bool::from(token.as_bytes().ct_eq(state.scrape.as_bytes())) {
        if metrics {
            return Ok(Admin {
                label: "metrics-scraper".into(),
                token: None,
                clearance: crate::classification::Classification::Public,
                role: AdminRole::Reviewer,
                claims: None,
            });
        }
        return Err((
            "scrape_credential",
            "the scrape credential reads /admin/metrics and nothing else".into(),
        ));
    }
    let admin = &state.gateway.config.admin;
    let claims = state
        .gateway
        .identity
        .verify_for_audience(token, &admin.audience)
        .map_err(|e| (e.reason_id().as_str(), format!("not an admin token: {e}")))?;
    let listed = admin
        .subjects
        .iter()
        .find(|s| s.issuer == claims.iss && s.subject == claims.sub);
    let Some(listed) = listed else {
        return Err((
            "admin_subject_not_listed",
            format!("`{}` is not an admin", claims.sub),
        ));
    };
    let clearance = listed.clearance.unwrap_or(admin.approver_clearance);
    // Admin tokens are revocable like any other credential.
    state
        .gateway
        .identity
        .revocations()
        .check_parts(
            &claims.iss,
            &claims.sub,
            claims.jti.as_deref(),
            claims.iat,
            &[],
        )
        .map_err(|e| (e.reason_id().as_str(), e.to_string()))?;
    Ok(Admin {
        label: format!("{}/{}", claims.iss, claims.sub),
        token: Some((claims.iss.clone(), claims.sub.clone())),
        clearance,
        role: listed.role,
        claims: Some((claims.jti.clone(), claims.iat, claims.exp)),
    })
}

pub(super) fn store_unavailable(error: &crate::store::StoreError) -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        &error.to_string(),
    )
}

/// The last segment of a two-way action (`approve`/`deny`, `enable`/`disable` …): `true` for `yes`.
pub(super) fn either(
    segment: &str,
    yes: &str,
    no: &str,
    reason: &str,
) -> Result<bool, Box<Response>> {
    if segment == yes {
        Ok(true)
    } else if segment == no {
        Ok(false)
    } else {
        Err(Box::new(refusal(
            StatusCode::NOT_FOUND,
            reason,
            &format!("`{segment}` is neither `{yes}` nor `{no}`"),
        )))
    }
}
