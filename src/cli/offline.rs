//! Commands that read the gateway's files without it running: policy tests and decisions, the audit chain,
//! access reports, config checks, development tokens.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::admin::AdminArgs;
use crate::config::Config;

/// Where a policy command finds the bundle: a gateway config, or the folders directly.
#[derive(clap::Args)]
pub struct BundleArgs {
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
    fn sources(&self) -> anyhow::Result<crate::policy::Sources> {
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
                crate::config::PolicyConfig {
                    dir: self.dir.clone(),
                    manifests: self.manifests.clone(),
                    ..Default::default()
                },
                self.agents.clone(),
            ),
        };
        Ok(crate::policy::Sources::new(policy, agents_file))
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the record chain with its key, compare it with the published head, and name the first record
    /// that was altered, removed, inserted or cut off. Exits non-zero if the chain does not verify.
    Verify {
        #[arg(long, short)]
        config: PathBuf,
        /// Accept records after the published head (or no head at all): they are verified link by link, but
        /// whether the chain's tail was cut off cannot be checked, and the output says so.
        #[arg(long)]
        no_head: bool,
        /// A head file published by another replica (repeatable): with PostgreSQL, each replica's chain is
        /// checked against its own head.
        #[arg(long = "head")]
        heads: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
    Html,
}

/// A point in time from `RFC 3339` or `a duration before now`, as Unix milliseconds.
pub fn point_in_time(text: &str) -> anyhow::Result<i64> {
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
pub enum PolicyCommand {
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

/// `toolgate audit verify`: every chain of decision records, checked against its key and published head (the
/// config's head file, and the head files of other replicas given with `--head`).
pub fn verify_audit(config: &Path, heads: &[PathBuf], no_head: bool) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let key = crate::audit::ChainKey::load(&config.audit.key_file)?;
    let mut published = Vec::new();
    for path in std::iter::once(&config.audit.head_file).chain(heads) {
        if let Some(head) = crate::audit::ChainHead::read(path)? {
            published.push(head);
        }
    }
    let reports = crate::audit::postgres::off_runtime(|| {
        crate::audit::verify::verify(&config.storage, &key, &published, !no_head)
    })?;
    // The embedded store's one chain prints as it always has; replicas' chains as a list.
    match reports.as_slice() {
        [only] if only.chain.is_none() => {
            println!("{}", serde_json::to_string_pretty(&only.report)?)
        }
        _ => println!("{}", serde_json::to_string_pretty(&reports)?),
    }
    let mut failed = Vec::new();
    for chain in &reports {
        let name = chain
            .chain
            .as_deref()
            .map_or_else(|| "chain".to_string(), |c| format!("chain `{c}`"));
        let report = &chain.report;
        if let Some(problem) = &report.problem {
            let failure = format!("{name} does not verify: {problem}");
            eprintln!("{failure}");
            failed.push(failure);
            continue;
        }
        match report.unverifiable_tail {
            Some((first, last)) => eprintln!(
                "{name} verified link by link: {} records; records {first} to {last} come after the published \
                 head, so whether the tail was cut off is unverifiable (--no-head)",
                report.records
            ),
            None => eprintln!(
                "{name} verified: {} records, up to and through the published head",
                report.records
            ),
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        [only] => anyhow::bail!("{only}"),
        [first, ..] => anyhow::bail!(
            "{} of {} chains do not verify; first: {first}",
            failed.len(),
            reports.len()
        ),
    }
}

/// `toolgate report`: the access report of a gateway's records, as JSON, CSV or HTML.
pub fn report(
    config: &Path,
    since: Option<String>,
    until: Option<String>,
    tool: Option<String>,
    format: ReportFormat,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let query = crate::report::ReportQuery {
        since: since.as_deref().map(point_in_time).transpose()?,
        until: until.as_deref().map(point_in_time).transpose()?,
        tool,
    };
    let report =
        crate::audit::postgres::off_runtime(|| crate::report::for_config(&config, &query))?;
    let text = match format {
        ReportFormat::Json => report.to_json(),
        ReportFormat::Csv => report.to_csv()?,
        ReportFormat::Html => report.to_html(),
    };
    match out {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// What a development token says.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// The human the agents act for (principal-context); omit for an agent acting alone.
    #[arg(long)]
    pub sub: Option<String>,
    /// The human's roles, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// The first agent acting for the human, or the agent acting alone.
    #[arg(long)]
    pub agent: Option<String>,
    /// A later actor in the delegation chain (repeatable; the last is the current actor).
    #[arg(long)]
    pub via: Vec<String>,
    /// Space-separated tool patterns narrowing what the token may do.
    #[arg(long)]
    pub scope: Option<String>,
    #[arg(long, default_value = "toolgate")]
    pub audience: String,
    /// Lifetime, for example `1h` or `15m`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
}

/// `toolgate token`: a development token, signed with the public development key.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let request = crate::identity::token::TokenRequest {
        subject: args.sub,
        roles: args.roles,
        agent: args.agent,
        via: args.via,
        scope: args.scope,
        audience: args.audience,
        ttl: args.ttl,
    };
    let token = crate::identity::token::mint_dev(&request)?;
    println!("{token}");
    Ok(())
}

/// `toolgate check`: a config, its keys, inventory, policy bundle and manifests, without serving.
pub async fn check(config: &Path) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    if let Some(auth) = &config.auth {
        // Checks keys and inventory without touching the configured store.
        let store = crate::store::Store::in_memory()?;
        let revocations = std::sync::Arc::new(crate::identity::Revocations::load(store).await?);
        crate::identity::Identity::load(auth, &config.base, revocations)?;
        let bundle = crate::policy::Bundle::load(&crate::policy::Sources::new(
            config.policy.clone(),
            config.base.join(&auth.agents_file),
        ))?;
        bundle.check_tests()?;
        println!(
            "policy ok: bundle {} ({} Rego tests passed)",
            bundle.version,
            bundle.test_count()
        );
    }
    if config.auth.is_none() && config.policy.manifests.is_dir() {
        // No bundle to load: the manifests (and the schemas they declare) are still checked.
        let manifests = crate::manifest::Manifests::load_dir(&config.policy.manifests)?;
        println!("manifests ok: {} tool(s) described", manifests.len());
    }
    println!("config ok: {} upstream(s)", config.upstreams.len());
    Ok(())
}

pub async fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Reload { admin } => admin.post("/admin/policy/reload").await,
        PolicyCommand::Test { bundle } => {
            let bundle = crate::policy::Bundle::load(&bundle.sources()?)?;
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
            let bundle = crate::policy::Bundle::load(&bundle.sources()?)?;
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&input)
                    .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", input.display()))?
            };
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("input `{}` is not JSON: {e}", input.display()))?;
            let input = crate::policy::PolicyInput::from_json(json);
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
