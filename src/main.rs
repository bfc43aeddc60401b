//! The `toolgate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use toolgate::config::Config;
use toolgate::gateway::Gateway;

#[derive(Parser)]
#[command(
    name = "toolgate",
    version,
    about = "MCP gateway that enforces tool-level access for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway over streamable HTTP (default) or stdio.
    Serve {
        /// Config file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Listen address, overriding the config's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve one client over stdin/stdout instead of HTTP.
        #[arg(long)]
        stdio: bool,
    },
    /// Check a config file and exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Mint a development token signed with the quickstart's development key (trusted only by an issuer marked
    /// `dev: true`, on a loopback listener).
    Token {
        /// The human the agents act for (principal-context); omit for an agent acting alone.
        #[arg(long)]
        sub: Option<String>,
        /// The human's roles, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// The first agent acting for the human, or the agent acting alone.
        #[arg(long)]
        agent: Option<String>,
        /// A later actor in the delegation chain (repeatable; the last is the current actor).
        #[arg(long)]
        via: Vec<String>,
        /// Space-separated tool patterns narrowing what the token may do.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long, default_value = "toolgate")]
        audience: String,
        /// Lifetime, for example `1h` or `15m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout belongs to the protocol in stdio mode.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("TOOLGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Token {
            sub,
            roles,
            agent,
            via,
            scope,
            audience,
            ttl,
        } => {
            let request = toolgate::identity::token::TokenRequest {
                subject: sub,
                roles,
                agent,
                via,
                scope,
                audience,
                ttl,
            };
            let token =
                toolgate::identity::token::mint_dev(&request).map_err(|e| anyhow::anyhow!(e))?;
            println!("{token}");
            Ok(())
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            if let Some(auth) = &config.auth {
                let identity = toolgate::identity::Identity::load(auth, &config.base)
                    .map_err(|e| anyhow::anyhow!(e))?;
                drop(identity);
            }
            println!("config ok: {} upstream(s)", config.upstreams.len());
            Ok(())
        }
        Command::Serve {
            config,
            listen,
            stdio,
        } => {
            let mut config = Config::load(&config)?;
            if let Some(listen) = listen {
                config.listen = listen;
                config.validate().map_err(|e| anyhow::anyhow!(e))?;
            }
            let gateway = Gateway::start(config).map_err(|e| anyhow::anyhow!(e))?;
            if stdio {
                toolgate::server::serve_stdio(std::sync::Arc::clone(&gateway)).await?;
                gateway.shutdown();
                return Ok(());
            }
            let listener = tokio::net::TcpListener::bind(gateway.config.listen).await?;
            let address = listener.local_addr()?;
            // A machine-readable line so that scripts and tests can find an ephemeral port.
            println!("toolgate listening on http://{address}/mcp");
            tracing::info!(%address, "listening");
            let shutdown = async {
                let ctrl_c = tokio::signal::ctrl_c();
                #[cfg(unix)]
                {
                    let mut term = match tokio::signal::unix::signal(
                        tokio::signal::unix::SignalKind::terminate(),
                    ) {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                #[cfg(not(unix))]
                let _ = ctrl_c.await;
            };
            toolgate::server::serve_http(std::sync::Arc::clone(&gateway), listener, shutdown)
                .await?;
            gateway.shutdown();
            Ok(())
        }
    }
}
