//! The `toolgate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::{Parser, Subcommand};

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

/// Where a policy command finds the bundle: a gateway config, or the folders directly.
#[derive(clap::Args)]
struct BundleArgs {
    /// Gateway config whose `policy` and `auth.agents_file` name the bundle.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Policy folder (without --config).
    #[arg(long, default_value = "policies")]
    dir: PathBuf,
    /// Tool manifest folder (without --config).
    #[arg(long, default_value = "tool-manifests")]
    manifests: PathBuf,
    /// Agent inventory (without --config).
    #[arg(long, default_value = "tool-manifests/agents.yaml")]
    agents: PathBuf,
}

impl BundleArgs {
    fn sources(&self) -> anyhow::Result<toolgate::policy::Sources> {
        let (policy, agents_file) = match &self.config {
            Some(path) => {
                let config = Config::load(path)?;
                let auth = config
                    .auth
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("the config has no `auth` section"))?;
                (config.policy.clone(), config.base.join(&auth.agents_file))
            }
            None => (
                toolgate::config::PolicyConfig {
                    dir: self.dir.clone(),
                    manifests: self.manifests.clone(),
                    ..Default::default()
                },
                self.agents.clone(),
            ),
        };
        Ok(toolgate::policy::Sources::new(policy, agents_file))
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// The agent inventory: list agents with owners and activity, add or change one, remove one.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Held calls waiting for a human approver.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Stored revocations and how many revoked credentials were presented (revoke with `toolgate revoke`).
    Revocations,
    /// The policy bundle in force (version, evaluator, last reload error); `--reload` reloads it now.
    Policy {
        #[arg(long)]
        reload: bool,
    },
    /// Upstream servers: list them, register one at run time, remove one.
    Upstreams {
        #[command(subcommand)]
        command: UpstreamsCommand,
    },
    /// Pinned tool definitions: list them, show a quarantined tool's diff, approve or reject it.
    Pins {
        #[command(subcommand)]
        command: PinsCommand,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Every agent: owner, scope, whether it may act alone, delegation rights, calls and last activity.
    List,
    /// Add or change an agent from a YAML or JSON file with the inventory file's fields for one agent.
    Put {
        id: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Remove an agent added at run time.
    Remove { id: String },
}

#[derive(Subcommand)]
enum UpstreamsCommand {
    /// Every upstream with its health and tool count.
    List,
    /// Register an upstream: `--url` for streamable HTTP (with `--header NAME=VALUE` credentials), or
    /// `--command` (with `--arg`) for a child process.
    Add(UpstreamArgs),
    /// Replace a registered upstream's configuration (same options as `add`).
    Update(UpstreamArgs),
    /// Stop a registered upstream, keeping it registered.
    Disable { name: String },
    /// Start a disabled upstream again.
    Enable { name: String },
    /// Remove an upstream registered at run time.
    Remove { name: String },
}

/// An upstream as the CLI describes it: `--url` (with `--header`s) or `--command` (with `--arg`s).
#[derive(clap::Args)]
struct UpstreamArgs {
    name: String,
    #[arg(long, group = "transport", required = true)]
    url: Option<String>,
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    #[arg(long, group = "transport")]
    command: Option<String>,
    #[arg(long = "arg")]
    args: Vec<String>,
}

impl UpstreamArgs {
    /// The admin API's JSON for this upstream.
    fn body(self) -> anyhow::Result<serde_json::Value> {
        Ok(match (self.url, self.command) {
            (Some(url), None) => {
                let mut map = serde_json::Map::new();
                for header in self.headers {
                    let (k, v) = header
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("`{header}` is not NAME=VALUE"))?;
                    map.insert(k.to_string(), serde_json::json!(v));
                }
                serde_json::json!({"name": self.name, "http": {"url": url, "headers": map}})
            }
            (None, Some(command)) => {
                serde_json::json!({"name": self.name, "stdio": {"command": command, "args": self.args}})
            }
            _ => anyhow::bail!("give --url or --command"),
        })
    }
}

#[derive(Subcommand)]
enum PinsCommand {
    /// Every pinned tool (or only those of a status: approved, quarantined, rejected).
    List {
        #[arg(long)]
        status: Option<String>,
    },
    /// One tool's pin and the diff from its approved definition to the one its upstream reports (`--json`: the
    /// pin as JSON).
    Show { tool: String },
    /// Approve the reported definition: it becomes the pin and the tool is usable again.
    Approve {
        tool: String,
        /// The pending hash `show` printed: refused if the upstream changed the definition again since.
        #[arg(long)]
        hash: Option<String>,
    },
    /// Reject the reported definition: the tool stays hidden and refused.
    Reject { tool: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the record chain with its key, compare it with the published head, and name the first record
    /// that was altered, removed, inserted or cut off. Exits non-zero if the chain does not verify.
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
    Html,
}

/// A point in time from `RFC 3339` or `a duration before now`, as Unix milliseconds.
fn point_in_time(text: &str) -> anyhow::Result<i64> {
    let time = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| {
                anyhow::anyhow!("`{text}` is neither an RFC 3339 time nor a duration such as `24h`")
            })?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| anyhow::anyhow!("`{text}` is too long ago"))?
        }
    };
    Ok(i64::try_from(
        time.duration_since(std::time::UNIX_EPOCH)?.as_millis(),
    )?)
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List approvals, newest first.
    List {
        /// Only this status: pending, approved, denied, used or expired.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one approval.
    Show { id: String },
    /// Grant a held call: the caller's next identical call goes through, once.
    Approve { id: String },
    /// Refuse a held call.
    Deny { id: String },
}

/// How to reach the running gateway's admin API.
#[derive(clap::Args)]
struct AdminArgs {
    /// Admin API base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8701")]
    admin_url: String,
    /// File holding the admin credential (the bootstrap credential or an admin token); else
    /// `TOOLGATE_ADMIN_TOKEN`.
    #[arg(long, global = true, env = "TOOLGATE_ADMIN_CREDENTIAL_FILE")]
    credential_file: Option<PathBuf>,
    /// Print the API's answer as one line of JSON (for scripts) instead of indented.
    #[arg(long, global = true)]
    json: bool,
}

impl AdminArgs {
    fn credential(&self) -> anyhow::Result<String> {
        match (
            &self.credential_file,
            std::env::var("TOOLGATE_ADMIN_TOKEN").ok(),
        ) {
            (Some(path), _) => Ok(std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", path.display()))?
                .trim()
                .to_string()),
            (None, Some(token)) => Ok(token),
            (None, None) => anyhow::bail!("give --credential-file or set TOOLGATE_ADMIN_TOKEN"),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, path, None).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Calls the admin API and returns its JSON answer; a refusal is an error.
    async fn fetch(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.admin_url.trim_end_matches('/'));
        let response = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(self.credential()?)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            anyhow::bail!("admin API answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Calls the admin API and prints its JSON answer; a refusal is an error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.admin_url.trim_end_matches('/'));
        let mut request = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(self.credential()?);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            anyhow::bail!("admin API answered {status}: {text}");
        }
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(value) if !self.json => println!("{}", serde_json::to_string_pretty(&value)?),
            Ok(value) => println!("{value}"),
            Err(_) => println!("{text}"),
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Ask the running gateway to reload its policies and manifests now.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Compile the bundle and run its Rego tests (`test_*` rules in `*_test.rego`).
    Test {
        #[command(flatten)]
        bundle: BundleArgs,
    },
    /// Decide one input document (JSON) and print the decision.
    Eval {
        #[command(flatten)]
        bundle: BundleArgs,
        /// Input document (JSON; `-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Also print every rule of the decision's package that produced a value.
        #[arg(long)]
        explain: bool,
    },
}

fn main() -> ExitCode {
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
    let telemetry = match toolgate::telemetry::init(format, &tracing) {
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
        Command::Admin {
            admin,
            command: AdminCommand::Upstreams { command },
        } => match command {
            UpstreamsCommand::List => {
                admin
                    .call(reqwest::Method::GET, "/admin/upstreams", None)
                    .await
            }
            UpstreamsCommand::Add(upstream) => {
                admin
                    .call(
                        reqwest::Method::POST,
                        "/admin/upstreams",
                        Some(upstream.body()?),
                    )
                    .await
            }
            UpstreamsCommand::Update(upstream) => {
                let path = format!("/admin/upstreams/{}", upstream.name);
                admin
                    .call(reqwest::Method::PUT, &path, Some(upstream.body()?))
                    .await
            }
            UpstreamsCommand::Disable { name } => {
                admin
                    .post(&format!("/admin/upstreams/{name}/disable"))
                    .await
            }
            UpstreamsCommand::Enable { name } => {
                admin.post(&format!("/admin/upstreams/{name}/enable")).await
            }
            UpstreamsCommand::Remove { name } => {
                admin.delete(&format!("/admin/upstreams/{name}")).await
            }
        },
        Command::Admin {
            admin,
            command: AdminCommand::Pins { command },
        } => match command {
            PinsCommand::List { status } => {
                let path = match status {
                    Some(status) => format!("/admin/pins?status={status}"),
                    None => "/admin/pins".to_string(),
                };
                admin.get(&path).await
            }
            PinsCommand::Show { tool } if admin.json => {
                admin.get(&format!("/admin/pins/{tool}")).await
            }
            PinsCommand::Show { tool } => {
                let pin = admin
                    .fetch(reqwest::Method::GET, &format!("/admin/pins/{tool}"))
                    .await?;
                println!(
                    "{} ({}): {}; pending hash {}",
                    pin["tool"].as_str().unwrap_or_default(),
                    pin["upstream"].as_str().unwrap_or_default(),
                    pin["status"].as_str().unwrap_or_default(),
                    pin["pending_hash"].as_str().unwrap_or("none")
                );
                print!("{}", pin["diff"].as_str().unwrap_or_default());
                Ok(())
            }
            PinsCommand::Approve { tool, hash } => {
                let query = hash.map(|h| format!("?hash={h}")).unwrap_or_default();
                admin
                    .post(&format!("/admin/pins/{tool}/approve{query}"))
                    .await
            }
            PinsCommand::Reject { tool } => admin.post(&format!("/admin/pins/{tool}/reject")).await,
        },
        Command::Approvals { admin, command }
        | Command::Admin {
            admin,
            command: AdminCommand::Approvals { command },
        } => approvals_command(&admin, command).await,
        Command::Admin {
            admin,
            command: AdminCommand::Agents { command },
        } => match command {
            AgentsCommand::List => admin.get("/admin/agents").await,
            AgentsCommand::Put { id, file } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", file.display()))?;
                let spec: serde_json::Value = serde_yaml_ng::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("`{}` is not YAML or JSON: {e}", file.display())
                })?;
                admin
                    .call(
                        reqwest::Method::PUT,
                        &format!("/admin/agents/{id}"),
                        Some(spec),
                    )
                    .await
            }
            AgentsCommand::Remove { id } => admin.delete(&format!("/admin/agents/{id}")).await,
        },
        Command::Admin {
            admin,
            command: AdminCommand::Revocations,
        } => admin.get("/admin/revocations").await,
        Command::Admin {
            admin,
            command: AdminCommand::Policy { reload },
        } => {
            if reload {
                admin.post("/admin/policy/reload").await
            } else {
                admin.get("/admin/policy").await
            }
        }
        Command::Policy { command } => policy_command(command).await,
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => {
            let config = Config::load(&config)?;
            let key = toolgate::audit::ChainKey::load(&config.audit.key_file)
                .map_err(|e| anyhow::anyhow!(e))?;
            let head = toolgate::audit::ChainHead::read(&config.audit.head_file)
                .map_err(|e| anyhow::anyhow!(e))?;
            let report = toolgate::audit::verify::verify(&config.storage.path, &key, head.as_ref())
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            match &report.problem {
                None => {
                    eprintln!(
                        "chain verified: {} records{}",
                        report.records,
                        if head.is_some() {
                            ", up to and through the published head"
                        } else {
                            " (no head published yet)"
                        }
                    );
                    Ok(())
                }
                Some(problem) => anyhow::bail!("chain does not verify: {problem}"),
            }
        }
        Command::Report {
            config,
            since,
            until,
            tool,
            format,
            out,
        } => {
            let config = Config::load(&config)?;
            let query = toolgate::report::ReportQuery {
                since: since.as_deref().map(point_in_time).transpose()?,
                until: until.as_deref().map(point_in_time).transpose()?,
                tool,
            };
            let report =
                toolgate::report::for_config(&config, &query).map_err(|e| anyhow::anyhow!(e))?;
            let text = match format {
                ReportFormat::Json => report.to_json(),
                ReportFormat::Csv => report.to_csv().map_err(|e| anyhow::anyhow!(e))?,
                ReportFormat::Html => report.to_html(),
            };
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
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
                // Checks keys and inventory without touching the configured store.
                let store = toolgate::store::Store::in_memory()?;
                let revocations =
                    std::sync::Arc::new(toolgate::identity::Revocations::load(store).await?);
                toolgate::identity::Identity::load(auth, &config.base, revocations)
                    .map_err(|e| anyhow::anyhow!(e))?;
                let bundle = toolgate::policy::Bundle::load(&toolgate::policy::Sources::new(
                    config.policy.clone(),
                    config.base.join(&auth.agents_file),
                ))
                .map_err(|e| anyhow::anyhow!(e))?;
                bundle.check_tests().map_err(|e| anyhow::anyhow!(e))?;
                println!(
                    "policy ok: bundle {} ({} Rego tests passed)",
                    bundle.version,
                    bundle.test_count()
                );
            }
            if config.auth.is_none() && config.policy.manifests.is_dir() {
                // No bundle to load: the manifests (and the schemas they declare) are still checked.
                let manifests = toolgate::manifest::Manifests::load_dir(&config.policy.manifests)
                    .map_err(|e| anyhow::anyhow!(e))?;
                println!("manifests ok: {} tool(s) described", manifests.len());
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
            let bootstrap =
                toolgate::admin::bootstrap_credential(&config.admin.bootstrap_token_file)
                    .map_err(|e| anyhow::anyhow!(e))?;
            let gateway = Gateway::start(config)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let admin_listener = tokio::net::TcpListener::bind(gateway.config.admin.listen).await?;
            let admin_address = admin_listener.local_addr()?;
            let admin_line = format!("toolgate admin listening on http://{admin_address}/admin");
            let admin = toolgate::server::admin_router(Arc::clone(&gateway), bootstrap);
            let admin_task = tokio::spawn(async move {
                if let Err(e) = axum::serve(admin_listener, admin).await {
                    tracing::error!("admin listener failed: {e}");
                }
            });
            if stdio {
                // stdout is the protocol in stdio mode.
                eprintln!("{admin_line}");
                toolgate::server::serve_stdio(Arc::clone(&gateway)).await?;
                admin_task.abort();
                gateway.shutdown().await;
                return Ok(());
            }
            let listener = tokio::net::TcpListener::bind(gateway.config.listen).await?;
            let address = listener.local_addr()?;
            // Machine-readable lines so that scripts and tests can find ephemeral ports.
            println!("{admin_line}");
            println!("toolgate listening on http://{address}/mcp");
            tracing::info!(%address, %admin_address, "listening");
            toolgate::server::serve_http(Arc::clone(&gateway), listener, shutdown_signal()).await?;
            admin_task.abort();
            gateway.shutdown().await;
            Ok(())
        }
    }
}

/// Approvals through the admin API.
async fn approvals_command(admin: &AdminArgs, command: ApprovalsCommand) -> anyhow::Result<()> {
    match command {
        ApprovalsCommand::List { status } => {
            let path = match status {
                Some(status) => format!("/admin/approvals?status={status}"),
                None => "/admin/approvals".to_string(),
            };
            admin.get(&path).await
        }
        ApprovalsCommand::Show { id } => admin.get(&format!("/admin/approvals/{id}")).await,
        ApprovalsCommand::Approve { id } => {
            admin.post(&format!("/admin/approvals/{id}/approve")).await
        }
        ApprovalsCommand::Deny { id } => admin.post(&format!("/admin/approvals/{id}/deny")).await,
    }
}

async fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Reload { admin } => admin.post("/admin/policy/reload").await,
        PolicyCommand::Test { bundle } => {
            let bundle = toolgate::policy::Bundle::load(&bundle.sources()?)
                .map_err(|e| anyhow::anyhow!(e))?;
            let outcomes = bundle.run_tests();
            let failed = outcomes.iter().filter(|t| !t.passed).count();
            for test in &outcomes {
                match &test.error {
                    None => println!("PASS {}", test.name),
                    Some(error) => println!("FAIL {} ({}): {error}", test.name, test.file),
                }
            }
            println!(
                "{} passed, {failed} failed (bundle {})",
                outcomes.len() - failed,
                bundle.version
            );
            if outcomes.is_empty() {
                anyhow::bail!("the bundle has no tests");
            }
            if failed > 0 {
                anyhow::bail!("{failed} Rego test(s) failed");
            }
            Ok(())
        }
        PolicyCommand::Eval {
            bundle,
            input,
            explain,
        } => {
            let bundle = toolgate::policy::Bundle::load(&bundle.sources()?)
                .map_err(|e| anyhow::anyhow!(e))?;
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&input)
                    .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", input.display()))?
            };
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("input `{}` is not JSON: {e}", input.display()))?;
            let input = toolgate::policy::PolicyInput::from_json(json);
            let decided = bundle.decide(&input);
            let mut decision = serde_json::to_value(&decided)?;
            if let Some(error) = &decided.error {
                decision["error"] = serde_json::json!(error.reason_id());
            }
            let mut out = serde_json::json!({
                "version": bundle.version,
                "evaluator": bundle.evaluator_name(),
                "decision": decision,
            });
            if explain {
                out["rules"] = bundle.explain(&input);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
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
