//! The web console: server-rendered pages for admins and reviewers on the admin listener, under `/console/`.
//! An admin signs in once with an admin credential and gets a short-lived session cookie (HttpOnly,
//! SameSite=Strict, Secure over HTTPS); every state-changing form carries the session's CSRF token and comes from
//! the console's own origin; every change is recorded like the admin API's. Nothing outside the binary is loaded,
//! no script runs inline, and no page may be framed.

mod decisions;
mod forms;
mod overview;
mod people;
mod session;
mod tools;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use subtle::ConstantTimeEq;

use super::{ActionStatus, AdminState, action_record, admin_of, recorded};
use crate::config::AdminRole;
pub(super) use session::ConsoleSessions;
use session::Signed;

/// The cookie holding a console session's id.
const COOKIE: &str = "toolgate_console";
/// The largest form the console accepts.
const MAX_FORM: usize = 256 * 1024;

const CSS: &str = include_str!("console/assets/console.css");
const JS: &str = include_str!("console/assets/console.js");

/// The console's routes (merged beside the admin API, outside its bearer-token check).
pub(super) fn router(state: AdminState) -> Router<AdminState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/overview", get(overview::page))
        .route(
            "/console/upstreams",
            get(tools::upstreams).post(tools::register),
        )
        .route("/console/upstreams/{name}/{action}", post(tools::change))
        .route("/console/tools", get(tools::tools))
        .route("/console/tools/{tool}", get(tools::review))
        .route("/console/tools/{tool}/{verdict}", post(tools::decide))
        .route("/console/agents", get(people::agents))
        .route("/console/agents/{id}/revoke", post(people::revoke_agent))
        .route("/console/revocations", post(people::revoke_credential))
        .route("/console/approvals", get(people::approvals))
        .route("/console/approvals/{id}", get(people::approval))
        .route("/console/approvals/{id}/{verdict}", post(people::decide))
        .route("/console/decisions", get(decisions::search))
        .route("/console/decisions/verify", post(decisions::verify))
        .route("/console/decisions/{position}", get(decisions::detail))
        .route("/console/reports", get(decisions::report))
        .route("/console/reports/export", get(decisions::export))
        .layer(middleware::from_fn_with_state(state, signed_in))
        .layer(middleware::from_fn(hardened))
}

/// Every console response: no framing, no script or style but the console's own, nothing cached or leaked.
async fn hardened(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Pages anyone may load: the sign-in form and the console's own assets.
fn public(path: &str) -> bool {
    matches!(
        path,
        "/console/sign-in" | "/console/assets/console.css" | "/console/assets/console.js"
    )
}

/// Pages and actions a reviewer may use: decision records and access reports, and signing out.
fn for_reviewers(path: &str) -> bool {
    matches!(path, "/console" | "/console/" | "/console/sign-out")
        || path.starts_with("/console/decisions")
        || path.starts_with("/console/reports")
}

/// The session of a request's cookie.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// A state-changing request must come from the console's own origin: with an `Origin`, that of its `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Browsers send Origin with every POST; a client that sends none still needs the session's CSRF token.
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// Everything behind the sign-in: a live session (its admin token still unrevoked), the role's pages, and for
/// every change the console's origin and the session's CSRF token; each change is recorded.
async fn signed_in(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if public(&path) {
        if !reads && !same_origin(request.headers()) {
            return plain(StatusCode::FORBIDDEN, "cross-origin form refused");
        }
        return next.run(request).await;
    }
    let signed = cookie(request.headers()).and_then(|id| state.console.get(id));
    let Some(signed) = signed.filter(|s| still_admin(&state, s)) else {
        if reads {
            return Redirect::to("/console/sign-in").into_response();
        }
        // Counted like refused admin credentials.
        state
            .gateway
            .audit
            .count_auth_failure("admin", "console_session_missing");
        return plain(
            StatusCode::UNAUTHORIZED,
            "not signed in (or the session has ended): sign in again",
        );
    };
    let action = format!("{} {path} (console)", request.method());
    let refused = |outcome: &str| {
        let record = action_record(&signed.admin, &action, "deny", outcome.to_string());
        state.gateway.audit.append_detached(record);
    };
    if signed.admin.role == AdminRole::Reviewer && !for_reviewers(&path) {
        refused("reviewer_read_only");
        return plain(
            StatusCode::FORBIDDEN,
            "a reviewer reads decision records and access reports and changes nothing",
        );
    }
    if reads {
        let mut request = request;
        request.extensions_mut().insert(signed);
        return next.run(request).await;
    }
    if !same_origin(request.headers()) {
        refused("cross_origin_refused");
        return plain(StatusCode::FORBIDDEN, "cross-origin form refused");
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large");
    };
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !bool::from(token.as_bytes().ct_eq(signed.csrf.as_bytes())) {
        tracing::warn!(admin = %signed.admin.label, %path, "console form refused: CSRF token missing or wrong");
        refused("csrf_refused");
        return plain(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page and try again",
        );
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(signed.clone());
    recorded(&state, &signed.admin, action, true, next.run(request)).await
}

/// An admin token's session lasts while the token is unrevoked (its expiry bounds the session already).
fn still_admin(state: &AdminState, signed: &Signed) -> bool {
    let (Some((issuer, subject)), Some((jti, iat, _))) =
        (&signed.admin.token, &signed.admin.claims)
    else {
        return true;
    };
    let revoked = state.gateway.identity.revocations().check_parts(
        issuer,
        subject,
        jti.as_deref(),
        *iat,
        &[],
    );
    if revoked.is_err() {
        state.console.end(&signed.id);
    }
    revoked.is_ok()
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

/// Renders a page; a template that cannot be rendered is the gateway's fault, told by kind only.
fn render(template: &impl Template) -> Response {
    render_with(StatusCode::OK, template)
}

fn render_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("console page failed to render: {e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
        }
    }
}

/// What every signed-in page shows around its content.
pub(super) struct Frame {
    pub title: String,
    pub csrf: String,
    pub who: String,
    pub flash: Option<String>,
    /// `(href, label, current)` of each page the admin may open.
    pub nav: Vec<(&'static str, &'static str, bool)>,
}

const PAGES: &[(&str, &str, bool)] = &[
    ("/console/overview", "Overview", false),
    ("/console/upstreams", "Upstreams", false),
    ("/console/tools", "Tools", false),
    ("/console/agents", "Agents", false),
    ("/console/approvals", "Approvals", false),
    ("/console/decisions", "Decisions", true),
    ("/console/reports", "Reports", true),
];

impl Frame {
    /// The frame of page `current` (its href) titled `title`, taking the flash kept for this session.
    pub fn new(state: &AdminState, signed: &Signed, current: &str, title: String) -> Self {
        let reviewer = signed.admin.role == AdminRole::Reviewer;
        Self {
            title,
            csrf: signed.csrf.clone(),
            who: signed.admin.label.clone(),
            flash: state.console.take_flash(&signed.id),
            nav: PAGES
                .iter()
                .filter(|(_, _, open)| *open || !reviewer)
                .map(|(href, label, _)| (*href, *label, current.starts_with(href)))
                .collect(),
        }
    }
}

/// After an action: back to `to`, with `message` shown there once.
fn done(state: &AdminState, signed: &Signed, to: &str, message: String) -> Response {
    state.console.flash(&signed.id, message);
    Redirect::to(to).into_response()
}

/// After an action the admin API answered with `status`: like [`done`], and its record says what the API said
/// (a refusal is recorded as one, though the browser is sent back to the page).
fn answered(
    state: &AdminState,
    signed: &Signed,
    to: &str,
    message: String,
    status: StatusCode,
) -> Response {
    let mut response = done(state, signed, to, message);
    response.extensions_mut().insert(ActionStatus(status));
    response
}

async fn home(request: Request) -> Response {
    let to = match request.extensions().get::<Signed>() {
        Some(s) if s.admin.role == AdminRole::Reviewer => "/console/decisions",
        _ => "/console/overview",
    };
    Redirect::to(to).into_response()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignIn {
    error: Option<String>,
}

async fn sign_in_page() -> Response {
    render(&SignIn { error: None })
}

#[derive(serde::Deserialize)]
struct Credential {
    credential: String,
}

/// Signs an admin in with an admin credential (the bootstrap credential or an admin token), recorded like the
/// API's refused credentials when it fails and like an admin action when it succeeds.
async fn sign_in(
    State(state): State<AdminState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Credential>,
) -> Response {
    let mut bearer = HeaderMap::new();
    let presented = HeaderValue::from_str(&format!("Bearer {}", form.credential.trim()));
    let admin = match presented {
        Ok(value) => {
            bearer.insert(header::AUTHORIZATION, value);
            admin_of(&state, &bearer, None, false)
        }
        Err(_) => Err((
            "malformed_token",
            "the credential is not a token".to_string(),
        )),
    };
    let admin = match admin {
        Ok(admin) => admin,
        Err((reason, message)) => {
            tracing::warn!(reason, "console sign-in refused");
            state.gateway.audit.count_auth_failure("admin", reason);
            return render_with(
                StatusCode::UNAUTHORIZED,
                &SignIn {
                    error: Some(format!("Sign-in refused: {message}")),
                },
            );
        }
    };
    // A new sign-in ends the session this browser had.
    if let Some(old) = cookie(&headers) {
        state.console.end(old);
    }
    let ttl = state.gateway.config.admin.console_session_ttl;
    let exp = admin.claims.as_ref().map(|(_, _, exp)| *exp);
    let Some(signed) = state.console.start(admin.clone(), ttl, exp) else {
        return render_with(
            StatusCode::SERVICE_UNAVAILABLE,
            &SignIn {
                error: Some(
                    "Too many console sessions are open right now; try again later.".into(),
                ),
            },
        );
    };
    let secure = state.gateway.config.admin.console_secure_cookie
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        signed.id,
        ConsoleSessions::left(&signed),
        if secure { "; Secure" } else { "" }
    );
    let to = if admin.role == AdminRole::Reviewer {
        "/console/decisions"
    } else {
        "/console/overview"
    };
    let sign_in = async move {
        let mut response = Redirect::to(to).into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response
    };
    let response = recorded(
        &state,
        &admin,
        "POST /console/sign-in".into(),
        true,
        sign_in,
    )
    .await;
    if !response.status().is_redirection() {
        // Not recorded, so not signed in.
        state.console.end(&signed.id);
    }
    response
}

async fn sign_out(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    state.console.end(&signed.id);
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "toolgate_console=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict",
        ),
    );
    response
}
