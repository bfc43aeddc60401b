//! Shared start-up for the example MCP servers: stdio by default, `--http ADDR` for streamable HTTP.

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

/// Value of `--name VALUE` in the process arguments.
pub fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("{name}=")) {
            return Some(v.to_string());
        }
    }
    None
}

/// Serves `make()`'s handler over stdio, or over streamable HTTP when `--http ADDR` is given (the bound
/// address is printed as `listening on http://ADDR/mcp`).
pub async fn serve<S, F>(make: F) -> anyhow::Result<()>
where
    S: rmcp::ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    // Logs go to stderr; stdout is the protocol in stdio mode.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXAMPLE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    match arg("--http") {
        None => {
            let service = make().serve(rmcp::transport::stdio()).await?;
            service.waiting().await?;
        }
        Some(addr) => serve_http(&addr, make, |router| router).await?,
    }
    Ok(())
}

/// Serves over streamable HTTP on `addr` (printing `listening on http://ADDR/mcp`); `wrap` may add layers.
pub async fn serve_http<S, F>(
    addr: &str,
    make: F,
    wrap: impl FnOnce(axum::Router) -> axum::Router,
) -> anyhow::Result<()>
where
    S: rmcp::ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let mut config = StreamableHttpServerConfig::default();
    config.json_response = std::env::var("EXAMPLE_JSON_RESPONSE").is_ok();
    let service = StreamableHttpService::new(
        move || Ok(make()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = wrap(axum::Router::new().nest_service("/mcp", service));
    println!("listening on http://{local}/mcp");
    // Small answers must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}
