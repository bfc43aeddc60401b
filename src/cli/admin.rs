//! Commands that administer a running gateway through its admin API.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum AdminCommand {
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
pub enum AgentsCommand {
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
pub enum UpstreamsCommand {
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
pub struct UpstreamArgs {
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
pub enum PinsCommand {
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
pub enum ApprovalsCommand {
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
pub struct AdminArgs {
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

    pub async fn get(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, path, None).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Calls the admin API and returns its JSON answer; a refusal is an error.
    pub async fn fetch(
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
    pub async fn call(
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

/// Runs one admin command.
pub async fn run(admin: AdminArgs, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Upstreams { command } => match command {
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
        AdminCommand::Pins { command } => match command {
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
        AdminCommand::Approvals { command } => approvals(&admin, command).await,
        AdminCommand::Agents { command } => match command {
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
        AdminCommand::Revocations => admin.get("/admin/revocations").await,
        AdminCommand::Policy { reload } => {
            if reload {
                admin.post("/admin/policy/reload").await
            } else {
                admin.get("/admin/policy").await
            }
        }
    }
}

/// Approvals through the admin API.
pub async fn approvals(admin: &AdminArgs, command: ApprovalsCommand) -> anyhow::Result<()> {
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
