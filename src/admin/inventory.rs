//! Upstreams and agents, listed and changed at run time.

use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::{Admin, AdminState, either, refusal, registry_refusal};

/// `GET /admin/upstreams`: every upstream with its health and tool count (never its credentials).
pub(super) async fn list_upstreams(State(state): State<AdminState>) -> Response {
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
pub(super) async fn update_upstream(
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
    match state.gateway.update_upstream(upstream, &admin.label).await {
        Ok(tools) => {
            state.gateway.announce_change();
            axum::Json(json!({"name": name, "tools": tools})).into_response()
        }
        Err(e) => registry_refusal(
            &admin.label,
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &e,
        ),
    }
}

/// `POST /admin/upstreams/{name}/disable` or `/enable`.
pub(super) async fn switch_upstream(
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
        .set_upstream_enabled(&name, enable, &admin.label)
        .await
    {
        Ok(()) => {
            state.gateway.announce_change();
            axum::Json(json!({"name": name, "enabled": enable})).into_response()
        }
        Err(e) => registry_refusal(
            &admin.label,
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &e,
        ),
    }
}

/// `POST /admin/upstreams`: registers an upstream (`{"name", "http": {"url", "headers"}}` or
/// `{"name", "stdio": {"command", "args", "env"}}`); it must connect and list its tools first.
pub(super) async fn register_upstream(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    body: axum::body::Bytes,
) -> Response {
    let upstream = match parse_upstream(&body) {
        Ok(u) => u,
        Err(response) => return *response,
    };
    let name = upstream.name.clone();
    match state
        .gateway
        .register_upstream(upstream, &admin.label)
        .await
    {
        Ok(tools) => {
            state.gateway.announce_change();
            (
                StatusCode::CREATED,
                axum::Json(json!({"name": name, "tools": tools})),
            )
                .into_response()
        }
        Err(e) => registry_refusal(
            &admin.label,
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &e,
        ),
    }
}

/// `DELETE /admin/upstreams/{name}`: removes an upstream registered at run time.
pub(super) async fn remove_upstream(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    match state.gateway.remove_upstream(&name, &admin.label).await {
        Ok(()) => {
            state.gateway.announce_change();
            axum::Json(json!({"removed": name})).into_response()
        }
        Err(e) => registry_refusal(
            &admin.label,
            StatusCode::CONFLICT,
            "upstream_not_removed",
            &e,
        ),
    }
}

/// `GET /admin/agents`: the agent inventory with owners, limits, delegation rights and activity.
pub(super) async fn list_agents(State(state): State<AdminState>) -> Response {
    let storage = state.gateway.config.storage.clone();
    let activity = tokio::task::spawn_blocking(move || {
        crate::audit::Records::open(&storage)
            .and_then(|mut s| s.agent_activity())
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
pub(super) async fn put_agent(
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
    match state.gateway.put_agent(&id, Some(spec), &admin.label).await {
        Ok(()) => axum::Json(json!({"agent": id, "policy": state.gateway.policy.status()}))
            .into_response(),
        Err(e) => registry_refusal(
            &admin.label,
            StatusCode::UNPROCESSABLE_ENTITY,
            "agent_refused",
            &e,
        ),
    }
}

/// `DELETE /admin/agents/{id}`: removes an agent registered at run time.
pub(super) async fn delete_agent(
    State(state): State<AdminState>,
    axum::Extension(admin): axum::Extension<Admin>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    match state.gateway.put_agent(&id, None, &admin.label).await {
        Ok(()) => axum::Json(json!({"removed": id})).into_response(),
        Err(e) => registry_refusal(&admin.label, StatusCode::CONFLICT, "agent_not_removed", &e),
    }
}

/// An upstream's configuration from a request body; a clear 400 otherwise.
pub(super) fn parse_upstream(body: &[u8]) -> Result<crate::config::UpstreamConfig, Box<Response>> {
    let upstream: crate::config::UpstreamConfig = serde_json::from_slice(body).map_err(|e| {
        Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("invalid upstream: {e}"),
        ))
    })?;
    // Settings that cannot work are refused as the registry refuses an upstream it cannot use.
    upstream.validate().map_err(|e| {
        // The part refused, for a form to show the message beside it.
        let field = if crate::names::validate_upstream_name(&upstream.name).is_err() {
            "name"
        } else if matches!(
            upstream.transport,
            crate::config::UpstreamTransport::Stdio(_)
        ) {
            "command"
        } else {
            "url"
        };
        Box::new(super::refusal_at(
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_refused",
            &format!("invalid upstream: {e}"),
            Some(field),
        ))
    })?;
    Ok(upstream)
}
