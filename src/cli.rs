//! The `toolgate` command line: serve, check, and the commands that administer or inspect a gateway.

mod admin;
mod offline;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::gateway::Gateway;
use admin::{AdminArgs, AdminCommand, ApprovalsCommand};
use offline::{AuditCommand, PolicyCommand, ReportFormat};

#[derive(Parser)]
#[command(
    name = "toolgate",
    version,
    about = "MCP gateway that enforces tool-level access for AI agents"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// Development mode: trust issuers marked `dev: true` (the quickstart's, whose signing key is public).
        /// Never for a gateway anyone else can reach.
        #[arg(long)]
        dev: bool,
    },
    /// Check a config file and exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Revoke a credential in the running gateway, through its admin API. Takes effect on the next request.
    Revoke {
        #[command(flatten)]
        admin: AdminArgs,
        /// Revoke one token by its `jti` (of the --issuer, or of any issuer).
        #[arg(long, group = "target")]
        jti: Option<String>,
        /// Revoke every token of a subject (with --issuer).
        #[arg(long, group = "target", requires = "issuer")]
        subject: Option<String>,
        #[arg(long)]
        issuer: Option<String>,
        /// Revoke an agent wherever it appears in a delegation chain.
        #[arg(long, group = "target")]
        agent: Option<String>,
        /// Only tokens issued before this time (RFC 3339, e.g. 2026-11-24T12:00:00Z).
        #[arg(long, value_parser = humantime::parse_rfc3339)]
        issued_before: Option<std::time::SystemTime>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Apply the store's schema migrations (PostgreSQL or the SQLite file) and exit; a gateway applies them at
    /// start too, and refuses a schema newer than it knows.
    Migrate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Decision records: verify the tamper-evident chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Per-tool, per-agent and per-person access report from the decision records.
    Report {
        #[arg(long, short)]
        config: PathBuf,
        /// Start of the period: RFC 3339 time, or a duration before now (`24h`, `7days`).
        #[arg(long)]
        since: Option<String>,
        /// End of the period (exclusive): RFC 3339 time, or a duration before now.
        #[arg(long)]
        until: Option<String>,
        /// Only this tool (exposed name).
        #[arg(long)]
        tool: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Administer the running gateway through its admin API.
    Admin {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Held calls waiting for a human approver, through the running gateway's admin API.
    Approvals {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// The policy bundle: test and evaluate it offline (like `opa test` / `opa eval`), or reload the running
    /// gateway's.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Mint a development token signed with the quickstart's development key (trusted only by an issuer marked
    /// `dev: true`, on a loopback listener).
    Token {
        #[command(flatten)]
        token: offline::TokenArgs,
    },
}

/// Runs the command line: parses the arguments, sets up logs and spans, runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The serving config says how to log and where spans go; a config that does not load is reported by `serve`
    // itself.
    let (format, tracing) = match &cli.command {
        Command::Serve { config, .. } => Config::load(config)
            .map(|c| (c.logging.format, c.tracing))
            .unwrap_or_default(),
        _ => Default::default(),
    };
    // Outside the runtime: the span exporter runs on its own thread.
    let telemetry = match crate::telemetry::init(format, &tracing) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    let result = runtime.block_on(run(cli));
    drop(runtime);
    // Spans still buffered leave after the gateway has drained and flushed its records.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Revoke {
            admin,
            jti,
            subject,
            issuer,
            agent,
            issued_before,
            reason,
        } => {
            let mut body = match (jti, subject, issuer, agent) {
                (Some(jti), None, issuer, None) => match issuer {
                    Some(issuer) => {
                        serde_json::json!({"kind": "token", "jti": jti, "issuer": issuer})
                    }
                    None => serde_json::json!({"kind": "token", "jti": jti}),
                },
                (None, Some(subject), Some(issuer), None) => {
                    serde_json::json!({"kind": "subject", "issuer": issuer, "subject": subject})
                }
                (None, None, _, Some(agent)) => {
                    serde_json::json!({"kind": "agent", "agent": agent})
                }
                _ => {
                    anyhow::bail!("give exactly one of --jti, --subject with --issuer, or --agent")
                }
            };
            if let Some(time) = issued_before {
                let secs = time.duration_since(std::time::UNIX_EPOCH)?.as_secs();
                body["issued_before"] = serde_json::json!(secs);
            }
            if let Some(reason) = reason {
                body["reason"] = serde_json::json!(reason);
            }
            admin
                .call(reqwest::Method::POST, "/admin/revocations", Some(body))
                .await
        }
        Command::Admin { admin, command } => admin::run(admin, command).await,
        Command::Approvals { admin, command } => admin::approvals(&admin, command).await,
        Command::Policy { command } => offline::policy(command).await,
        Command::Audit {
            command:
                AuditCommand::Verify {
                    config,
                    no_head,
                    heads,
                },
        } => offline::verify_audit(&config, &heads, no_head),
        Command::Migrate { config } => {
            let config = Config::load(&config)?;
            crate::store::Store::open(&config.storage).await?;
            eprintln!("the store's schema is up to date");
            Ok(())
        }
        Command::Report {
            config,
            since,
            until,
            tool,
            format,
            out,
        } => offline::report(&config, since, until, tool, format, out),
        Command::Token { token } => offline::token(token),
        Command::Check { config } => offline::check(&config).await,
        Command::Serve {
            config,
            listen,
            stdio,
            dev,
        } => {
            // Not dumpable: another process of the same user (a stdio upstream not run as another user, say) can
            // neither attach to the gateway nor read its memory or environment through /proc.
            if let Err(e) = rustix::process::set_dumpable_behavior(
                rustix::process::DumpableBehavior::NotDumpable,
            ) {
                tracing::warn!("cannot make the gateway process non-dumpable: {e}");
            }
            let mut config = Config::load(&config)?;
            config.dev_mode = dev;
            if let Some(listen) = listen {
                config.listen = listen;
                config.validate()?;
            }
            let credentials = crate::admin::Credentials {
                bootstrap: crate::admin::bootstrap_credential(&config.admin.bootstrap_token_file)?,
                scrape: crate::admin::bootstrap_credential(&config.admin.scrape_token_file)?,
            };
            let gateway = Gateway::start(config).await?;
            crate::server::serve(gateway, credentials, stdio).await?;
            Ok(())
        }
    }
}
