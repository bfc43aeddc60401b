//! Upstreams (registered, changed, switched off and removed at run time) and their tools: classification and risk
//! from the manifests, pin state, and changed definitions reviewed side by side.

use askama::Template;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::forms::{self, Refused, api};
use super::session::Signed;
use super::{Frame, answered, done, render, render_with};
use crate::admin::{AdminState, inventory, reviews};
use crate::catalog::UpstreamStatus;
use crate::catalog::pins::{Pin, PinStatus};

/// The register form as sent, and as shown again with what was refused.
#[derive(Debug, Default, Deserialize)]
pub(in crate::admin) struct Registration {
    #[serde(default)]
    name: String,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    command: String,
    #[serde(default)]
    args: String,
}

impl Registration {
    /// The upstream's configuration as the admin API takes it.
    fn upstream(&self, name: &str) -> axum::body::Bytes {
        let mut body = json!({"name": name});
        body[self.transport_key()] = if self.transport == "stdio" {
            json!({
                "command": self.command.trim(),
                "args": self.args.lines().map(str::trim).filter(|a| !a.is_empty()).collect::<Vec<_>>(),
            })
        } else {
            json!({"url": self.url.trim()})
        };
        axum::body::Bytes::from(body.to_string())
    }

    fn transport_key(&self) -> &'static str {
        if self.transport == "stdio" {
            "stdio"
        } else {
            "http"
        }
    }
}

#[derive(Template)]
#[template(path = "upstreams.html")]
struct Upstreams {
    frame: Frame,
    upstreams: Vec<UpstreamStatus>,
    form: Registration,
    /// Which field a refusal names (`name`, `url`, `command`), and what was refused.
    field: String,
    refused: Option<String>,
}

impl Upstreams {
    fn any_registered(&self) -> bool {
        self.upstreams.iter().any(|u| u.registered)
    }
}

async fn upstreams_page(
    state: &AdminState,
    signed: &Signed,
    mut form: Registration,
    refused: Option<Refused>,
) -> Response {
    // A refused form comes back without the credentials a URL may carry (its user part, query and fragment).
    form.url = forms::scrubbed(&form.url);
    let status = refused.as_ref().map_or(StatusCode::OK, |r| match r.status {
        s if s.is_server_error() => s,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    });
    let field = match refused.as_ref().and_then(|r| r.field.as_deref()) {
        Some("connection") if form.transport == "stdio" => "command",
        Some("connection") => "url",
        Some(field) => field,
        None => "",
    }
    .to_string();
    let upstreams = forms::statuses(state);
    render_with(
        status,
        &Upstreams {
            frame: Frame::new(state, signed, "/console/upstreams", "Upstreams".into()),
            upstreams,
            form,
            field,
            refused: refused.map(|r| forms::scrubbed(&r.message)),
        },
    )
}

pub(in crate::admin) async fn upstreams(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    upstreams_page(&state, &signed, Registration::default(), None).await
}

/// Registers an upstream, through the admin API's own handler (name, allowlist and connection checked there).
pub(in crate::admin) async fn register(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    axum::Form(form): axum::Form<Registration>,
) -> Response {
    let name = form.name.trim().to_string();
    let answer = inventory::register_upstream(
        State(state.clone()),
        axum::Extension(signed.admin.clone()),
        form.upstream(&name),
    )
    .await;
    match api(answer).await {
        Ok(answer) => done(
            &state,
            &signed,
            "/console/upstreams",
            format!(
                "Upstream `{name}` registered with {} tools.",
                answer["tools"].as_u64().unwrap_or(0)
            ),
        ),
        Err(refused) => upstreams_page(&state, &signed, form, Some(refused)).await,
    }
}

/// `update` (its connection replaced by the form's), `enable`, `disable` or `remove` a registered upstream.
pub(in crate::admin) async fn change(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath((name, action)): UrlPath<(String, String)>,
    axum::Form(form): axum::Form<Registration>,
) -> Response {
    let admin = axum::Extension(signed.admin.clone());
    let answer = match action.as_str() {
        "remove" => {
            inventory::remove_upstream(State(state.clone()), admin, UrlPath(name.clone())).await
        }
        "update" => {
            let body = form.upstream(&name);
            let answer = inventory::update_upstream(
                State(state.clone()),
                admin,
                UrlPath(name.clone()),
                body,
            )
            .await;
            return match api(answer).await {
                Ok(_) => done(
                    &state,
                    &signed,
                    "/console/upstreams",
                    format!("Upstream `{name}` updated."),
                ),
                Err(refused) => answered(
                    &state,
                    &signed,
                    "/console/upstreams",
                    format!(
                        "Upstream `{name}`: update refused: {}",
                        forms::scrubbed(&refused.message)
                    ),
                    refused.status,
                ),
            };
        }
        _ => {
            inventory::switch_upstream(
                State(state.clone()),
                admin,
                UrlPath((name.clone(), action.clone())),
            )
            .await
        }
    };
    let (message, status) = match api(answer).await {
        Ok(_) => (format!("Upstream `{name}`: {action} done."), StatusCode::OK),
        Err(refused) => (
            format!("Upstream `{name}`: {action} refused: {}", refused.message),
            refused.status,
        ),
    };
    answered(&state, &signed, "/console/upstreams", message, status)
}

/// One exposed tool as the tools page lists it.
struct ToolRow {
    name: String,
    upstream: String,
    classification: String,
    risk: String,
    /// Whether a manifest declares it (else the safe default applies).
    declared: bool,
    pin: String,
}

#[derive(Template)]
#[template(path = "tools.html")]
struct Tools {
    frame: Frame,
    tools: Vec<ToolRow>,
    quarantined: Vec<Pin>,
}

fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(in crate::admin) async fn tools(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    let gateway = &state.gateway;
    let bundle = gateway.policy.current();
    let declared: std::collections::BTreeSet<(&str, &str)> = bundle.manifests.tools().collect();
    let pins = gateway.pins.list();
    let mut rows: Vec<ToolRow> = gateway
        .catalog
        .tools()
        .iter()
        .map(|tool| {
            let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
            let pin = pins.iter().find(|p| p.tool == tool.name.as_ref());
            ToolRow {
                name: tool.name.to_string(),
                upstream: tool.upstream.to_string(),
                classification: label(&manifest.classification),
                risk: label(&manifest.risk),
                declared: declared.contains(&(tool.upstream.as_ref(), tool.original.as_ref())),
                pin: pin.map_or_else(|| "not pinned".into(), |p| label(&p.status)),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let quarantined = pins
        .into_iter()
        .filter(|p| p.status == PinStatus::Quarantined)
        .collect();
    render(&Tools {
        frame: Frame::new(&state, &signed, "/console/tools", "Tools".into()),
        tools: rows,
        quarantined,
    })
}

/// One line of a side-by-side diff: the approved side, the reported side, and how they differ.
struct DiffLine {
    old: String,
    new: String,
    /// `same`, `changed`, `removed` or `added`.
    change: &'static str,
}

#[derive(Template)]
#[template(path = "review.html")]
struct Review {
    frame: Frame,
    pin: Pin,
    status: String,
    lines: Vec<DiffLine>,
}

/// The approved definition beside the reported one, line by line.
fn side_by_side(pin: &Pin) -> Vec<DiffLine> {
    let old = forms::pretty(pin.definition.as_ref());
    let new = forms::pretty(pin.pending_definition.as_ref());
    let diff = similar::TextDiff::from_lines(&old, &new);
    let mut lines = Vec::new();
    for op in diff.ops() {
        let olds: Vec<&str> = old
            .lines()
            .skip(op.old_range().start)
            .take(op.old_range().len())
            .collect();
        let news: Vec<&str> = new
            .lines()
            .skip(op.new_range().start)
            .take(op.new_range().len())
            .collect();
        let change = match op.tag() {
            similar::DiffTag::Equal => "same",
            similar::DiffTag::Delete => "removed",
            similar::DiffTag::Insert => "added",
            similar::DiffTag::Replace => "changed",
        };
        for i in 0..olds.len().max(news.len()) {
            lines.push(DiffLine {
                old: olds.get(i).copied().unwrap_or_default().to_string(),
                new: news.get(i).copied().unwrap_or_default().to_string(),
                change,
            });
        }
    }
    lines
}

pub(in crate::admin) async fn review(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath(tool): UrlPath<String>,
) -> Response {
    let Some(pin) = state.gateway.pins.get(&tool) else {
        return done(
            &state,
            &signed,
            "/console/tools",
            format!("No pin for `{tool}`."),
        );
    };
    render(&Review {
        frame: Frame::new(&state, &signed, "/console/tools", format!("Tool {tool}")),
        lines: side_by_side(&pin),
        status: label(&pin.status),
        pin,
    })
}

#[derive(Debug, Deserialize)]
pub(in crate::admin) struct Reviewed {
    /// The hash of the definition the admin looked at: another one is not approved unseen.
    hash: Option<String>,
}

pub(in crate::admin) async fn decide(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath((tool, verdict)): UrlPath<(String, String)>,
    axum::Form(form): axum::Form<Reviewed>,
) -> Response {
    let answer = reviews::decide_pin(
        State(state.clone()),
        axum::Extension(signed.admin.clone()),
        UrlPath((tool.clone(), verdict.clone())),
        axum::extract::Query(reviews::PinReview { hash: form.hash }),
    )
    .await;
    let (message, status) = match api(answer).await {
        Ok(_) if verdict == "approve" => (
            format!("The reported definition of `{tool}` is approved."),
            StatusCode::OK,
        ),
        Ok(_) => (
            format!("The reported definition of `{tool}` is rejected; the tool stays hidden."),
            StatusCode::OK,
        ),
        Err(refused) => (
            format!("`{tool}`: {verdict} refused: {}", refused.message),
            refused.status,
        ),
    };
    answered(&state, &signed, "/console/tools", message, status)
}
