//! The downstream MCP endpoint: toolgate's own streamable-HTTP session layer on axum, and stdio mode.

mod asker;
pub mod dispatch;
mod guard;
mod handlers;
mod jsonrpc;
mod listen;
mod modern;
mod parked;
mod post;
mod probes;
mod replay;
mod session;
mod sessions;
mod stdio;
mod stream;
mod tickets;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use rmcp::model::{
    ErrorCode, ServerJsonRpcMessage, ServerNotification, ToolListChangedNotification,
};

pub use guard::HostGuard;
pub use session::{Session, Sessions};
pub use stdio::serve_stdio;

use crate::gateway::Gateway;
use dispatch::LEGACY_PROTOCOL_VERSIONS;
use handlers::http_error;
use post::post_message;
use probes::{healthz, readyz, resource_metadata};
use stream::{delete_session, get_stream};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Shared state of the HTTP listener.
#[derive(Clone)]
pub struct AppState {
    gateway: Arc<Gateway>,
    sessions: Arc<Sessions>,
    guard: Arc<HostGuard>,
    /// Modern tool calls held for their clients' input.
    held: Arc<parked::Held>,
}

/// Builds the router: `/mcp`, `/healthz`, `/readyz`, behind the Host/Origin guard.
pub fn router(gateway: Arc<Gateway>, guard: Arc<HostGuard>, sessions: Arc<Sessions>) -> Router {
    let state = AppState {
        gateway,
        sessions,
        guard,
        held: Arc::default(),
    };
    Router::new()
        .route(
            "/mcp",
            get(get_stream).post(post_message).delete(delete_session),
        )
        .route("/healthz", get(healthz))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .with_state(state)
}

/// The admin listener's router: the admin API behind the same Host/Origin guard as `/mcp`, refusing in the admin
/// API's own error form.
pub fn admin_router(
    gateway: Arc<Gateway>,
    credentials: crate::admin::Credentials,
    guard: Arc<HostGuard>,
    sessions: Arc<Sessions>,
) -> Router {
    let open = Arc::new(move || sessions.len());
    crate::admin::router(gateway, credentials, open).layer(middleware::from_fn(
        move |request: Request, next: Next| {
            let guard = Arc::clone(&guard);
            async move {
                match guard.check(request.headers()) {
                    Ok(()) => next.run(request).await,
                    Err(reason) => (
                        StatusCode::FORBIDDEN,
                        axum::Json(
                            serde_json::json!({"error": reason, "reason": "host_not_allowed"}),
                        ),
                    )
                        .into_response(),
                }
            }
        },
    ))
}

/// Serves the gateway: the admin listener and either `/mcp` over HTTP or one client over stdio, both behind one
/// Host/Origin guard, until Ctrl-C or SIGTERM (HTTP) or the end of stdin (stdio); then drains and flushes the
/// records.
pub async fn serve(
    gateway: Arc<Gateway>,
    credentials: crate::admin::Credentials,
    stdio: bool,
) -> std::io::Result<()> {
    let guard = Arc::new(HostGuard::new(
        &gateway.config.allowed_hosts,
        &gateway.config.allowed_origins,
    ));
    let sessions = Sessions::new(&gateway.config.limits);
    let admin_listener = tokio::net::TcpListener::bind(gateway.config.admin.listen).await?;
    let admin_address = admin_listener.local_addr()?;
    let admin_line = format!("toolgate admin listening on http://{admin_address}/admin");
    let admin = admin_router(
        Arc::clone(&gateway),
        credentials,
        Arc::clone(&guard),
        Arc::clone(&sessions),
    );
    let admin_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin).await {
            tracing::error!("admin listener failed: {e}");
        }
    });
    let served = if stdio {
        // stdout is the protocol in stdio mode.
        eprintln!("{admin_line}");
        serve_stdio(Arc::clone(&gateway)).await
    } else {
        let listener = tokio::net::TcpListener::bind(gateway.config.listen).await?;
        let address = listener.local_addr()?;
        // Machine-readable lines so that scripts and tests can find ephemeral ports.
        println!("{admin_line}");
        println!("toolgate listening on http://{address}/mcp");
        tracing::info!(%address, %admin_address, "listening");
        serve_http(
            Arc::clone(&gateway),
            guard,
            sessions,
            listener,
            shutdown_signal(),
        )
        .await
    };
    admin_task.abort();
    gateway.shutdown().await;
    served
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Serves HTTP until `shutdown` resolves; also runs session expiry and tool-list-change fan-out.
pub async fn serve_http(
    gateway: Arc<Gateway>,
    guard: Arc<HostGuard>,
    sessions: Arc<Sessions>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(Arc::clone(&gateway), guard, Arc::clone(&sessions));
    let idle = gateway.config.timeouts.session_idle;
    {
        let sessions = Arc::clone(&sessions);
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10).min(idle));
            loop {
                tick.tick().await;
                for id in sessions.expire(idle) {
                    gateway.forget_session(&id);
                }
            }
        });
    }
    deliver_updates(&gateway, &sessions);
    {
        let sessions = Arc::clone(&sessions);
        let mut changes = gateway.subscribe_changes();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        sessions.for_each(|s| s.announce_list_changed());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    // On shutdown: `/readyz` turns unready and GET streams end (they would hold the drain forever) while
    // everything is still served for `timeouts.unready`; then no new connection is accepted and calls in flight
    // finish, for at most `timeouts.drain`; then the sessions are closed, which cancels what is left (each
    // cancelled call is still recorded).
    let draining = gateway.draining.clone();
    let unready = gateway.config.timeouts.unready;
    let shutdown = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: unready, then draining calls in flight");
            draining.cancel();
            tokio::time::sleep(unready).await;
        }
    };
    let serve = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .into_future();
    tokio::pin!(serve);
    let limit = gateway.config.timeouts.drain;
    tokio::select! {
        result = &mut serve => result,
        () = async { draining.cancelled().await; tokio::time::sleep(unready + limit).await } => {
            tracing::warn!("calls still in flight after {limit:?}: cancelling them");
            sessions.for_each(|s| s.close());
            tokio::time::timeout(Duration::from_secs(5), serve)
                .await
                .unwrap_or(Ok(()))
        }
    }
}

/// `notifications/tools/list_changed`.
pub fn list_changed() -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::notification(ServerNotification::ToolListChangedNotification(
        ToolListChangedNotification::default(),
    ))
}

/// What a client is told when what it may see may have changed: its tools, resources and prompts.
pub fn list_changes() -> [ServerJsonRpcMessage; 3] {
    [
        list_changed(),
        ServerJsonRpcMessage::notification(ServerNotification::ResourceListChangedNotification(
            rmcp::model::ResourceListChangedNotification::default(),
        )),
        ServerJsonRpcMessage::notification(ServerNotification::PromptListChangedNotification(
            rmcp::model::PromptListChangedNotification::default(),
        )),
    ]
}

/// `notifications/resources/updated` for a subscribed resource (its exposed URI).
pub fn resource_updated(uri: &str) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::notification(ServerNotification::ResourceUpdatedNotification(
        rmcp::model::ResourceUpdatedNotification::new(
            rmcp::model::ResourceUpdatedNotificationParam::new(uri),
        ),
    ))
}

/// Delivers decided resource updates to their sessions' GET streams; a session that is gone has its
/// subscriptions ended.
fn deliver_updates(gateway: &Arc<Gateway>, sessions: &Arc<Sessions>) {
    let mut updates = gateway.resource_updates();
    let (gateway, sessions) = (Arc::downgrade(gateway), Arc::clone(sessions));
    tokio::spawn(async move {
        loop {
            let delivery = match updates.recv().await {
                Ok(delivery) => delivery,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} resource updates dropped (too many at once)");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            match sessions.peek(&delivery.session) {
                Some(session) => session.push(resource_updated(&delivery.uri)),
                None => match gateway.upgrade() {
                    Some(gateway) => gateway.forget_session(&delivery.session),
                    None => return,
                },
            }
        }
    });
}

async fn host_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.guard.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::warn!(reason, "request refused by the Host/Origin guard");
            http_error(StatusCode::FORBIDDEN, ErrorCode::INVALID_REQUEST, reason)
        }
    }
}
