//! The admin API: a separate listener (loopback by default), authenticated from the start. Admins are either
//! the holder of the bootstrap credential or an admin token — a JWT of a trusted issuer for the admin audience
//! whose `(iss, sub)` is listed in config. A user or agent token is never an admin token.

mod registry;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::store::{ApprovalStatus, Revocation, RevocationTarget};

#[derive(Clone)]
struct AdminState {
    gateway: Arc<Gateway>,
    bootstrap: Arc<str>,
}

/// Who an admin request came from: a label for records, and the `(iss, sub)` of an admin token.
#[derive(Clone, Debug)]
struct Admin(String, Option<(String, String)>);

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
pub fn router(gateway: Arc<Gateway>, bootstrap: String) -> Router {
    let state = AdminState {
        gateway,
        bootstrap: Arc::from(bootstrap),
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
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

fn refusal(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": message, "reason": reason})),
    )
        .into_response()
}

/// The decision records cannot be read: the admin is told so, the log says why.
fn records_unavailable(what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!("{what} failed: {error}");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the decision records cannot be read right now (see the gateway log)",
    )
}

/// A registry refusal: the admin is told what was refused; the whole story, with the sources of the gateway's
/// own failures, goes to the log.
fn registry_refusal(
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
    refusal(status, reason, &error.public())
}

async fn authenticate(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    match admin_of(&state, request.headers(), request.uri().query()) {
        Ok(admin) => {
            let action = format!("{} {}", request.method(), request.uri().path());
            let changes_state = request.method() != http::Method::GET;
            request.extensions_mut().insert(admin.clone());
            let started = std::time::Instant::now();
            let response = next.run(request).await;
            // Every admin action (anything but a read) leaves a decision record.
            if changes_state {
                let mut record = crate::audit::DecisionRecord::new("admin");
                record.subject = Some(admin.0.clone());
                if let Some((issuer, subject)) = &admin.1 {
                    record.issuer = Some(issuer.clone());
                    record.subject = Some(subject.clone());
                }
                record.source = Some("admin".into());
                let status = response.status();
                record.decision = if status.is_success() { "allow" } else { "deny" }.into();
                record.outcome = format!("http_{}", status.as_u16());
                record.reasons = vec![action];
                record.latency.total_us = crate::gateway::elapsed_us(started);
                state.gateway.audit.append_detached(record);
            }
            response
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

fn admin_of(
    state: &AdminState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Admin, (&'static str, String)> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes);
    let token = Identity::bearer(authorization, query)
        .map_err(|e| (e.reason_id().as_str(), e.to_string()))?;
    if bool::from(token.as_bytes().ct_eq(state.bootstrap.as_bytes())) {
        return Ok(Admin("bootstrap".into(), None));
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
        .any(|s| s.issuer == claims.iss && s.subject == claims.sub);
    if !listed {
        return Err((
            "admin_subject_not_listed",
            format!("`{}` is not an admin", claims.sub),
        ));
    }
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
    Ok(Admin(
        format!("{}/{}", claims.iss, claims.sub),
        Some((claims.iss.clone(), claims.sub.clone())),
    ))
}

async fn list_revocations(State(state): State<AdminState>) -> Response {
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
struct RevokeRequest {
    #[serde(flatten)]
    target: RevocationTarget,
    /// Only tokens issued before this time (Unix seconds).
    #[serde(default)]
    issued_before: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke(
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
        created_by: admin.0.clone(),
    };
    match state
        .gateway
        .identity
        .revocations()
        .revoke(revocation)
        .await
    {
        Ok(stored) => {
            tracing::info!(admin = %admin.0, revocation = ?stored.target, "credential revoked");
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

fn store_unavailable(error: &crate::store::StoreError) -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        &error.to_string(),
    )
}

#[derive(Debug, Deserialize)]
struct ApprovalFilter {
    status: Option<ApprovalStatus>,
}

async fn list_approvals(
    State(state): State<AdminState>,
    Query(filter): Query<ApprovalFilter>,
) -> Response {
    match state
        .gateway
        .store
        .approvals(filter.status, crate::clock::unix_now())
        .await
    {
        Ok(list) => axum::Json(json!({"approvals": list})).into_response(),
        Err(e) => store_unavailable(&e),
    }
}

async fn show_approval(State(state): State<AdminState>, UrlPath(id): UrlPath<String>) -> Response {
    match state
        .gateway
        .store
        .approval(id.clone(), crate::clock::unix_now())
        .await
    {
        Ok(Some(approval)) => axum::Json(approval).into_response(),
        Ok(None) => refusal(
            StatusCode::NOT_FOUND,
            "unknown_approval",
            &format!("no approval `{id}`"),
        ),
        Err(e) => store_unavailable(&e),
    }
}

/// `POST /admin/approvals/{id}/approve` or `/deny`. The caller of a held call can never grant it.
async fn decide_approval(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath((id, verdict)): UrlPath<(String, String)>,
) -> Response {
    let approve = match either(&verdict, "approve", "deny", "unknown_verdict") {
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
    if let Some((issuer, subject)) = &admin.1
        && is_party(issuer, subject)
    {
        tracing::warn!(admin = %admin.0, approval = %id, "refused: a caller cannot approve its own call");
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
            admin.0.clone(),
            now,
            now.saturating_add(ttl),
        )
        .await
    {
        Ok(Some(decided)) => {
            tracing::info!(admin = %admin.0, approval = %id, approve, tool = %decided.tool, "approval decided");
            axum::Json(decided).into_response()
        }
        Ok(None) => refusal(
            StatusCode::CONFLICT,
            "approval_not_pending",
            &format!("approval `{id}` is no longer pending"),
        ),
        Err(e) => store_unavailable(&e),
    }
}

async fn policy_status(State(state): State<AdminState>) -> Response {
    axum::Json(state.gateway.policy.status()).into_response()
}

/// Reloads policies and manifests now; a bundle that does not compile or fails its tests is refused and the
/// previous one stays in force.
async fn reload_policy(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
) -> Response {
    let policy = std::sync::Arc::clone(&state.gateway.policy);
    let result = tokio::task::spawn_blocking(move || policy.reload("admin API")).await;
    match result {
        Ok(Ok(version)) => {
            tracing::info!(admin = %admin.0, %version, "policy reloaded from the admin API");
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

/// `GET /admin/records`: decision records in chain order, filtered, paged with `after` (the last `seq` seen).
async fn list_records(
    State(state): State<AdminState>,
    Query(filter): Query<crate::audit::RecordFilter>,
) -> Response {
    let path = state.gateway.config.storage.path.clone();
    let result = tokio::task::spawn_blocking(move || {
        use crate::audit::AuditStore;
        let store =
            crate::audit::SqliteAuditStore::open_read_only(&path).map_err(|e| e.to_string())?;
        store.query(&filter).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(records)) => {
            let next = records.last().map(|r| r.seq);
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
struct ReportParams {
    since: Option<i64>,
    until: Option<i64>,
    tool: Option<String>,
}

/// `GET /admin/reports`: the access report as JSON.
async fn report(State(state): State<AdminState>, Query(params): Query<ReportParams>) -> Response {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinFilter {
    status: Option<crate::catalog::pins::PinStatus>,
}

/// The definition an admin reviewed: its hash, as `pins show` prints it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinReview {
    hash: Option<String>,
}

/// `GET /admin/pins`: every pinned tool, optionally of one status.
async fn list_pins(State(state): State<AdminState>, Query(filter): Query<PinFilter>) -> Response {
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
async fn show_pin(State(state): State<AdminState>, UrlPath(tool): UrlPath<String>) -> Response {
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
async fn decide_pin(
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
        .decide(&tool, approve, &admin.0, review.hash.as_deref())
        .await
    {
        Ok(Some(pin)) => {
            tracing::info!(admin = %admin.0, %tool, approve, "tool definition reviewed");
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

/// `GET /admin/upstreams`: every upstream with its health and tool count (never its credentials).
async fn list_upstreams(State(state): State<AdminState>) -> Response {
    let mut upstreams: Vec<serde_json::Value> = state
        .gateway
        .catalog
        .statuses()
        .into_iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect();
    for name in state
        .gateway
        .store
        .disabled_upstreams()
        .await
        .unwrap_or_default()
    {
        upstreams.push(json!({"name": name, "registered": true, "state": "disabled", "tools": 0}));
    }
    axum::Json(json!({"upstreams": upstreams})).into_response()
}

/// `PUT /admin/upstreams/{name}`: replaces a registered upstream's configuration (checked like a new one).
async fn update_upstream(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let upstream = match parse_upstream(&body) {
        Ok(u) => u,
        Err(response) => return *response,
    };
    if upstream.name != name {
        return refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body names another upstream",
        );
    }
    match state.gateway.update_upstream(upstream, &admin.0).await {
        Ok(tools) => {
            state.gateway.announce_change();
            axum::Json(json!({"name": name, "tools": tools})).into_response()
        }
        Err(e) => registry_refusal(
            &admin.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &e,
        ),
    }
}

/// `POST /admin/upstreams/{name}/disable` or `/enable`.
async fn switch_upstream(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath((name, switch)): UrlPath<(String, String)>,
) -> Response {
    let enable = match either(&switch, "enable", "disable", "unknown_action") {
        Ok(b) => b,
        Err(response) => return *response,
    };
    match state
        .gateway
        .set_upstream_enabled(&name, enable, &admin.0)
        .await
    {
        Ok(()) => {
            state.gateway.announce_change();
            axum::Json(json!({"name": name, "enabled": enable})).into_response()
        }
        Err(e) => registry_refusal(
            &admin.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &e,
        ),
    }
}

/// `POST /admin/upstreams`: registers an upstream (`{"name", "http": {"url", "headers"}}` or
/// `{"name", "stdio": {"command", "args", "env"}}`); it must connect and list its tools first.
async fn register_upstream(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    body: axum::body::Bytes,
) -> Response {
    let upstream = match parse_upstream(&body) {
        Ok(u) => u,
        Err(response) => return *response,
    };
    let name = upstream.name.clone();
    match state.gateway.register_upstream(upstream, &admin.0).await {
        Ok(tools) => {
            state.gateway.announce_change();
            (
                StatusCode::CREATED,
                axum::Json(json!({"name": name, "tools": tools})),
            )
                .into_response()
        }
        Err(e) => registry_refusal(
            &admin.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &e,
        ),
    }
}

/// `DELETE /admin/upstreams/{name}`: removes an upstream registered at run time.
async fn remove_upstream(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    match state.gateway.remove_upstream(&name, &admin.0).await {
        Ok(()) => {
            state.gateway.announce_change();
            axum::Json(json!({"removed": name})).into_response()
        }
        Err(e) => registry_refusal(&admin.0, StatusCode::CONFLICT, "upstream_not_removed", &e),
    }
}

/// `GET /admin/agents`: the agent inventory with owners, limits, delegation rights and activity.
async fn list_agents(State(state): State<AdminState>) -> Response {
    let path = state.gateway.config.storage.path.clone();
    let activity = tokio::task::spawn_blocking(move || {
        crate::audit::SqliteAuditStore::open_read_only(&path)
            .and_then(|s| s.agent_activity())
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    let registered = state
        .gateway
        .policy
        .registered_agents()
        .read()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let agents: Vec<serde_json::Value> = state
        .gateway
        .identity
        .inventory()
        .agents()
        .map(|a| {
            let (calls, last) = activity.get(&a.id).copied().unwrap_or((0, 0));
            json!({
                "id": a.id,
                "owner": a.spec.owner,
                "description": a.spec.description,
                "scope": a.spec.scope,
                "max_classification": a.spec.max_classification,
                "acts_for_humans": a.spec.acts_for_humans,
                "acts_alone": !a.spec.acts_alone.is_empty(),
                "delegates_to": a.spec.delegates_to,
                "registered": registered.contains(&a.id),
                "calls": calls,
                "last_activity_ms": (last > 0).then_some(last),
            })
        })
        .collect();
    axum::Json(json!({"agents": agents})).into_response()
}

/// `PUT /admin/agents/{id}`: adds or changes an agent (the inventory file's fields, as JSON).
async fn put_agent(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let spec: crate::identity::AgentSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid agent: {e}"),
            );
        }
    };
    match state.gateway.put_agent(&id, Some(spec), &admin.0).await {
        Ok(()) => axum::Json(json!({"agent": id, "policy": state.gateway.policy.status()}))
            .into_response(),
        Err(e) => registry_refusal(
            &admin.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "agent_refused",
            &e,
        ),
    }
}

/// `DELETE /admin/agents/{id}`: removes an agent registered at run time.
async fn delete_agent(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    match state.gateway.put_agent(&id, None, &admin.0).await {
        Ok(()) => axum::Json(json!({"removed": id})).into_response(),
        Err(e) => registry_refusal(&admin.0, StatusCode::CONFLICT, "agent_not_removed", &e),
    }
}

/// An upstream's configuration from a request body; a clear 400 otherwise.
fn parse_upstream(body: &[u8]) -> Result<crate::config::UpstreamConfig, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("invalid upstream: {e}"),
        ))
    })
}

/// The last segment of a two-way action (`approve`/`deny`, `enable`/`disable` …): `true` for `yes`.
fn either(segment: &str, yes: &str, no: &str, reason: &str) -> Result<bool, Box<Response>> {
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
