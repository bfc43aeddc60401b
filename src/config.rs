//! The gateway's configuration file: listen address, upstreams, timeouts and limits, validated on load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::names;

/// Errors raised while loading or validating a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config `{path}` is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the MCP listener. Loopback by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Host names (without port) accepted in the `Host` header. Loopback names by default.
    #[serde(default = "default_allowed_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) accepted in the `Origin` header. By default any origin whose host is in
    /// `allowed_hosts`; requests without `Origin` (non-browser clients) are accepted.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Binding to a non-loopback address must be asked for explicitly.
    #[serde(default)]
    pub allow_non_loopback: bool,
    /// Separator between upstream name and tool name in exposed tool names.
    #[serde(default = "default_separator")]
    pub namespace_separator: String,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Who may call: trusted token issuers and the agent inventory. Required: without it nothing is served.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// The admin API's listener and credentials.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The embedded store (revocations; later decision records and registered upstreams).
    #[serde(default)]
    pub storage: StorageConfig,
    /// The Rego policy bundle and the tool manifests it decides with.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Decision records: durability, chain key, published head, what is kept of arguments.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Redaction of tool results: the clearance when a decision names none, and extra detectors.
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// Pinning of tool definitions.
    #[serde(default)]
    pub pinning: PinningConfig,
    /// Upstreams registered at run time through the admin API.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// How log lines are written (to stderr); the level comes from `TOOLGATE_LOG`.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Traces: a span per request and per pipeline step, exported over OTLP when `tracing.otlp` is set.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Folder the config file was read from; relative paths in it are resolved against it.
    #[serde(skip)]
    pub base: PathBuf,
}

/// The admin API: a separate listener, authenticated from the start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Loopback by default; a non-loopback address also needs `allow_non_loopback`.
    pub listen: SocketAddr,
    /// Audience of admin tokens; user and agent tokens (another audience) are never admin tokens.
    pub audience: String,
    /// Admin subjects: `(issuer, subject)` pairs whose admin tokens are accepted.
    pub subjects: Vec<AdminSubject>,
    /// File holding the bootstrap admin credential; created with a random secret (mode 0600) if missing.
    pub bootstrap_token_file: PathBuf,
}

/// One admin identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSubject {
    pub issuer: String,
    pub subject: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8701)),
            audience: "toolgate-admin".into(),
            subjects: Vec::new(),
            bootstrap_token_file: PathBuf::from("admin.token"),
        }
    }
}

/// Where the embedded store lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite file, relative to the config file.
    pub path: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("toolgate.db"),
        }
    }
}

/// Upstreams registered at run time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Networks (CIDR) or addresses registered HTTP upstreams may be reached on besides public addresses —
    /// loopback, private, link-local; cloud metadata addresses only when listed exactly.
    pub allowed_networks: Vec<String>,
}

/// Pinning of tool definitions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinningConfig {
    /// What happens to a tool seen for the first time.
    pub first_sight: FirstSight,
}

/// A detector of sensitive values added in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub name: String,
    /// A regular expression (Rust `regex` syntax; linear time, no backreferences).
    pub pattern: String,
    pub class: crate::classification::Classification,
}

/// Redaction of tool results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Clearance applied when a decision carries no obligation (still lowered to the chain's maximum).
    pub default_clearance: crate::classification::Classification,
    pub detectors: Vec<CustomDetector>,
    /// Deepest nesting (JSON in JSON strings included) redacted; deeper results are withheld.
    pub max_depth: usize,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            default_clearance: crate::classification::Classification::Internal,
            detectors: Vec::new(),
            max_depth: 64,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub format: LogFormat,
}

/// `pretty`: one human-readable line per event; `json`: one JSON object per line, fields flattened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Traces: spans of each request and pipeline step, exported over OTLP when `otlp` is set (never written to the
/// log lines).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Where to export spans; none by default.
    pub otlp: Option<OtlpConfig>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of the traces that start here (no sampled parent from the client) that are exported, 0.0 to 1.0.
    /// A client's own sampling decision (the `sampled` flag of its `traceparent`) is always followed.
    pub sample_ratio: f64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp: None,
            service_name: "toolgate".into(),
            sample_ratio: 1.0,
        }
    }
}

/// An OTLP/HTTP trace exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://collector:4318`); `/v1/traces` is appended unless the path already
    /// ends with it.
    pub endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (a collector's API key, say); `${VAR}` is read from the environment.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Longest one export may take.
    #[serde(default = "default_otlp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Spans are sent in batches, at least this often.
    #[serde(default = "default_otlp_batch_delay", with = "humantime_serde")]
    pub batch_delay: Duration,
}

/// OTLP over HTTP: binary protobuf (the default every collector takes) or JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

impl TracingConfig {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "tracing.sample_ratio `{}` must lie between 0.0 and 1.0",
                self.sample_ratio
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err("tracing.service_name is empty".into());
        }
        let Some(otlp) = &self.otlp else {
            return Ok(());
        };
        let url = url::Url::parse(&otlp.endpoint)
            .map_err(|e| format!("tracing.otlp.endpoint `{}`: {e}", otlp.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "tracing.otlp.endpoint `{}` must be an http:// or https:// URL (OTLP over HTTP)",
                otlp.endpoint
            ));
        }
        for (key, value) in &otlp.headers {
            http::HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| format!("tracing.otlp header name `{key}` is not valid"))?;
            http::HeaderValue::from_str(value).map_err(|_| {
                format!("tracing.otlp header `{key}` has a value that is not valid")
            })?;
        }
        if otlp.timeout.is_zero() || otlp.batch_delay.is_zero() {
            return Err(
                "tracing.otlp.timeout and tracing.otlp.batch_delay must be positive".into(),
            );
        }
        Ok(())
    }
}

impl OtlpConfig {
    /// The URL spans are posted to.
    pub fn traces_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        }
    }
}

fn default_otlp_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_otlp_batch_delay() -> Duration {
    Duration::from_secs(5)
}

/// How hard a committed decision record is to lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// SQLite WAL with `synchronous=NORMAL`: survives the gateway being killed, not an OS crash.
    Normal,
    /// `synchronous=FULL`: every batch is fsynced; survives an OS crash.
    Full,
}

/// What a decision record keeps of a call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentsRule {
    /// Redacted by the same rules as results, at `redaction.default_clearance`.
    Redacted,
    /// The SHA-256 of their canonical JSON (RFC 8785): provable, not readable.
    Hashed,
    /// The arguments as sent.
    Full,
}

/// Decision records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub durability: Durability,
    pub arguments: ArgumentsRule,
    /// HMAC key of the record chain, created if missing (mode 0600); keep it out of the database's backups.
    pub key_file: PathBuf,
    /// Where the chain head is published.
    pub head_file: PathBuf,
    /// How often the head is published and aggregated refusals are written.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Most records committed in one transaction.
    pub batch_max: usize,
    /// Records waiting for the writer before callers wait too.
    pub queue: usize,
    /// How long a write waits for a locked database before failing.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            arguments: ArgumentsRule::Redacted,
            key_file: PathBuf::from("audit.key"),
            head_file: PathBuf::from("audit.head"),
            flush_interval: Duration::from_secs(5),
            batch_max: 1024,
            queue: 65_536,
            busy_timeout: Duration::from_secs(2),
        }
    }
}

/// How the policy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evaluator {
    /// regorus's compiled virtual machine (fastest); falls back to the interpreter for a bundle it cannot compile
    /// or on which the two disagree.
    Vm,
    /// regorus's tree-walking interpreter.
    Interpreter,
}

/// What to do with a tool seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FirstSight {
    /// Pin it as it is.
    #[default]
    TrustOnFirstUse,
    /// Quarantine it until an admin approves it.
    RequireApproval,
}

/// The policy bundle: Rego policies and data, the tool manifests, evaluation limits, approvals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Folder of Rego policies (`*.rego`, tests in `*_test.rego`) and policy data (`*.yaml`, `*.json`).
    pub dir: PathBuf,
    /// Folder of tool manifests (`<upstream>.yaml`).
    pub manifests: PathBuf,
    pub evaluator: Evaluator,
    /// Longest one decision may take; longer is a denial.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most VM instructions one decision may execute; more is a denial.
    pub max_instructions: usize,
    /// Reload when a file under `dir` or `manifests` changes.
    pub watch: bool,
    /// How long an escalated call waits for an approver, and how long a granted approval stays usable.
    #[serde(with = "humantime_serde")]
    pub approval_ttl: Duration,
    /// Remember decisions per bundle version, keyed by the input fields the policy reads (see README).
    pub decision_cache: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("policies"),
            manifests: PathBuf::from("tool-manifests"),
            evaluator: Evaluator::Vm,
            timeout: Duration::from_millis(50),
            max_instructions: 1_000_000,
            watch: true,
            approval_ttl: Duration::from_secs(3600),
            decision_cache: true,
        }
    }
}

/// Authentication of callers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuers: Vec<IssuerConfig>,
    /// The agent inventory (YAML), relative to the config file.
    pub agents_file: PathBuf,
    /// Longest delegation chain accepted.
    #[serde(default = "default_chain_depth")]
    pub max_chain_depth: usize,
    /// Authorization servers named in the protected-resource metadata (RFC 9728).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Public base URL of the gateway (for example `https://tools.example.com`) when it is reached through a
    /// proxy or TLS terminator; by default it is `http://` plus the request's (allowlisted) Host.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Environment variable holding the caller's token in stdio mode.
    #[serde(default = "default_token_env")]
    pub stdio_token_env: String,
    /// Skip re-verifying the signature of a token seen before (keyed on a hash of the whole token, never past its
    /// `exp`). Revocation, lineage and scope are still checked on every request.
    #[serde(default = "default_true")]
    pub verified_token_cache: bool,
}

/// One trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Accepted signing algorithms (public-key algorithms only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// JWKS file with the issuer's public keys, relative to the config file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL (http or https), fetched at start and every `jwks_refresh`, and early when a token names an
    /// unknown key id. Until the first fetch succeeds, the issuer's tokens are refused.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// Allowed clock skew for `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Claim carrying a human's roles.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim carrying a human's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The quickstart's development issuer: accepted on a loopback listener only.
    #[serde(default)]
    pub dev: bool,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(600)
}

fn default_chain_depth() -> usize {
    4
}

fn default_token_env() -> String {
    "TOOLGATE_TOKEN".into()
}

fn default_algorithms() -> Vec<jsonwebtoken::Algorithm> {
    vec![
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::ES256,
    ]
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// Time limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Longest a `tools/call` may wait for its upstream.
    #[serde(with = "humantime_serde")]
    pub call: Duration,
    /// Longest connecting to an upstream (spawn or connect, initialize and `tools/list`) may take.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Sessions idle for longer are closed.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// First delay before reconnecting to a failed upstream; doubles up to `reconnect_max`.
    #[serde(with = "humantime_serde")]
    pub reconnect_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// On SIGTERM, how long `/readyz` answers unready while everything is still served, so that load balancers
    /// stop sending new work before the listener closes.
    #[serde(with = "humantime_serde")]
    pub unready: Duration,
    /// Then, how long calls in flight may take to finish before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(60),
            connect: Duration::from_secs(20),
            session_idle: Duration::from_secs(30 * 60),
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            unready: Duration::from_secs(2),
            drain: Duration::from_secs(30),
        }
    }
}

/// Size and count limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted on `/mcp` (and largest stdio line); larger bodies are refused before parsing.
    pub max_request_bytes: usize,
    /// Largest answer accepted from an upstream for one call.
    pub max_response_bytes: usize,
    /// Most downstream sessions open at once.
    pub max_sessions: usize,
    /// Tools per `tools/list` page.
    pub page_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            max_sessions: 10_000,
            page_size: 200,
        }
    }
}

/// One upstream MCP server.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Namespace of the upstream's tools: lowercase ASCII letters, digits and `-`, starting with a letter, ≤ 32.
    pub name: String,
    /// `/readyz` waits for required upstreams to answer `tools/list`.
    #[serde(default = "default_true")]
    pub required: bool,
    #[serde(flatten)]
    pub transport: UpstreamTransport,
}

/// How to reach an upstream.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamTransport {
    Stdio(StdioUpstream),
    Http(HttpUpstream),
}

/// A child process speaking MCP over stdin/stdout.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdioUpstream {
    /// Program to run. A relative path containing `/` is resolved against the config file's folder.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (`${NAME}` is expanded from the gateway's environment).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the config file's folder.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

/// A streamable-HTTP MCP server.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUpstream {
    /// Endpoint URL, `http` or `https`.
    pub url: String,
    /// Headers sent on every request: the upstream's own credentials (`${NAME}` is expanded from the
    /// environment). A client's token is never forwarded.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}

fn default_allowed_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
}

fn default_separator() -> String {
    "__".into()
}

fn default_true() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allowed_hosts: default_allowed_hosts(),
            allowed_origins: Vec::new(),
            allow_non_loopback: false,
            namespace_separator: default_separator(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            upstreams: Vec::new(),
            auth: None,
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            policy: PolicyConfig::default(),
            audit: AuditConfig::default(),
            redaction: RedactionConfig::default(),
            pinning: PinningConfig::default(),
            registry: RegistryConfig::default(),
            logging: LoggingConfig::default(),
            tracing: TracingConfig::default(),
            base: PathBuf::from("."),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file; relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Absolute, so that a relative command still resolves when the upstream gets its own `cwd`.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        Self::from_yaml(&text, &base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text; `base` is the folder relative paths are resolved against.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config
            .resolve(base)
            .map_err(|message| ConfigError::Invalid {
                path: PathBuf::new(),
                message,
            })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        })?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) -> Result<(), String> {
        self.base = base.to_path_buf();
        self.storage.path = base.join(&self.storage.path);
        self.admin.bootstrap_token_file = base.join(&self.admin.bootstrap_token_file);
        self.policy.dir = base.join(&self.policy.dir);
        self.policy.manifests = base.join(&self.policy.manifests);
        self.audit.key_file = base.join(&self.audit.key_file);
        self.audit.head_file = base.join(&self.audit.head_file);
        if let Some(otlp) = &mut self.tracing.otlp {
            for (key, value) in otlp.headers.iter_mut() {
                *value =
                    expand_env(value).map_err(|e| format!("tracing.otlp header `{key}`: {e}"))?;
            }
        }
        for upstream in &mut self.upstreams {
            match &mut upstream.transport {
                UpstreamTransport::Stdio(stdio) => {
                    if stdio.command.contains('/') && Path::new(&stdio.command).is_relative() {
                        stdio.command = base.join(&stdio.command).to_string_lossy().into_owned();
                    }
                    if let Some(cwd) = &stdio.cwd
                        && cwd.is_relative()
                    {
                        stdio.cwd = Some(base.join(cwd));
                    }
                    for (key, value) in stdio.env.iter_mut() {
                        *value = expand_env(value).map_err(|e| {
                            format!("upstream `{}` env `{key}`: {e}", upstream.name)
                        })?;
                    }
                }
                UpstreamTransport::Http(http) => {
                    for (key, value) in http.headers.iter_mut() {
                        *value = expand_env(value).map_err(|e| {
                            format!("upstream `{}` header `{key}`: {e}", upstream.name)
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks everything that can be checked without starting anything.
    pub fn validate(&self) -> Result<(), String> {
        if !self.allow_non_loopback && !self.listen.ip().is_loopback() {
            return Err(format!(
                "listen address `{}` is not loopback; set `allow_non_loopback: true` to expose the gateway",
                self.listen
            ));
        }
        names::validate_separator(&self.namespace_separator).map_err(|e| e.to_string())?;
        self.tracing.validate()?;
        if self.policy.timeout.is_zero() || self.policy.max_instructions == 0 {
            return Err(
                "policy.timeout and policy.max_instructions must be positive: every decision would fail".into(),
            );
        }
        if self.audit.batch_max == 0 || self.audit.queue == 0 || self.audit.flush_interval.is_zero()
        {
            return Err(
                "audit.batch_max, audit.queue and audit.flush_interval must be positive".into(),
            );
        }
        if self.policy.approval_ttl < Duration::from_secs(1) {
            return Err("policy.approval_ttl must be at least 1s".into());
        }
        if !self.allow_non_loopback && !self.admin.listen.ip().is_loopback() {
            return Err(format!(
                "admin listen address `{}` is not loopback; set `allow_non_loopback: true` to expose it",
                self.admin.listen
            ));
        }
        if self.auth.as_ref().is_some_and(|a| {
            a.issuers
                .iter()
                .any(|i| i.audience.contains(&self.admin.audience))
        }) {
            return Err("an issuer's caller audience equals the admin audience: admin tokens must be distinct".into());
        }
        if let Some(auth) = &self.auth {
            if auth.issuers.is_empty() {
                return Err("auth.issuers is empty: no caller could ever be authenticated".into());
            }
            if auth.max_chain_depth == 0 {
                return Err("auth.max_chain_depth must be at least 1".into());
            }
            for issuer in &auth.issuers {
                if issuer.dev
                    && !(self.listen.ip().is_loopback() && self.admin.listen.ip().is_loopback())
                {
                    return Err(format!(
                        "issuer `{}` is a development issuer and is accepted on a loopback listener only",
                        issuer.issuer
                    ));
                }
                if issuer.jwks_file.is_some() == issuer.jwks_url.is_some() {
                    return Err(format!(
                        "issuer `{}`: give exactly one of jwks_file and jwks_url",
                        issuer.issuer
                    ));
                }
                if let Some(url) = &issuer.jwks_url {
                    let parsed = reqwest::Url::parse(url)
                        .map_err(|e| format!("issuer `{}`: bad jwks_url: {e}", issuer.issuer))?;
                    let loopback = match parsed.host() {
                        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                        Some(url::Host::Domain(d)) => d == "localhost",
                        None => false,
                    };
                    // Keys fetched over plain HTTP could be swapped by anyone on the path.
                    if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback)) {
                        return Err(format!(
                            "issuer `{}`: jwks_url must be https (plain http only on loopback)",
                            issuer.issuer
                        ));
                    }
                }
                if issuer.leeway > Duration::from_secs(600) {
                    return Err(format!(
                        "issuer `{}`: leeway above 10 minutes is not accepted",
                        issuer.issuer
                    ));
                }
                if issuer.jwks_refresh < Duration::from_millis(100) {
                    return Err(format!(
                        "issuer `{}`: jwks_refresh is too short",
                        issuer.issuer
                    ));
                }
                if issuer.audience.is_empty() {
                    return Err(format!("issuer `{}` has no audience", issuer.issuer));
                }
                for alg in &issuer.algorithms {
                    if matches!(
                        alg,
                        jsonwebtoken::Algorithm::HS256
                            | jsonwebtoken::Algorithm::HS384
                            | jsonwebtoken::Algorithm::HS512
                    ) {
                        return Err(format!(
                            "issuer `{}`: symmetric algorithm `{alg:?}` is not accepted; use public-key algorithms",
                            issuer.issuer
                        ));
                    }
                }
            }
        }
        if self.limits.page_size == 0 {
            return Err("limits.page_size must be at least 1".into());
        }
        if self.limits.max_request_bytes < 1024 {
            return Err("limits.max_request_bytes must be at least 1024".into());
        }
        if self.limits.max_response_bytes < 1024 {
            return Err("limits.max_response_bytes must be at least 1024".into());
        }
        let t = &self.timeouts;
        if [
            t.call,
            t.connect,
            t.session_idle,
            t.reconnect_initial,
            t.reconnect_max,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            return Err("timeouts must be greater than zero".into());
        }
        if t.reconnect_max < t.reconnect_initial {
            return Err(
                "timeouts.reconnect_max must not be below timeouts.reconnect_initial".into(),
            );
        }
        if self.limits.max_sessions == 0 {
            return Err("limits.max_sessions must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for upstream in &self.upstreams {
            names::validate_upstream_name(&upstream.name).map_err(|e| e.to_string())?;
            if !seen.insert(upstream.name.as_str()) {
                return Err(format!("upstream name `{}` is used twice", upstream.name));
            }
            match &upstream.transport {
                UpstreamTransport::Stdio(stdio) => {
                    if stdio.command.trim().is_empty() {
                        return Err(format!("upstream `{}`: empty command", upstream.name));
                    }
                }
                UpstreamTransport::Http(http) => {
                    let url = reqwest::Url::parse(&http.url).map_err(|e| {
                        format!("upstream `{}`: bad url `{}`: {e}", upstream.name, http.url)
                    })?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(format!(
                            "upstream `{}`: url scheme must be http or https, not `{}`",
                            upstream.name,
                            url.scheme()
                        ));
                    }
                    for (key, value) in &http.headers {
                        http::HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                            format!("upstream `{}`: bad header name `{key}`", upstream.name)
                        })?;
                        http::HeaderValue::from_str(value).map_err(|_| {
                            format!("upstream `{}`: bad value for header `{key}`", upstream.name)
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Expands `${NAME}` from the process environment; an unset variable is an error, not an empty string.
fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${`".to_string())?;
        let name = &after[..end];
        let var =
            std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))?;
        out.push_str(&var);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_safe() {
        let config = Config::from_yaml("{}", Path::new(".")).unwrap();
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.listen.port(), 8700);
        assert_eq!(config.namespace_separator, "__");
    }

    #[test]
    fn tracing_exports_nothing_unless_asked_and_bad_settings_refuse_to_start() {
        let config = Config::from_yaml("{}", Path::new(".")).unwrap();
        assert!(config.tracing.otlp.is_none());
        let config = Config::from_yaml(
            "tracing:\n  otlp:\n    endpoint: http://collector:4318\n",
            Path::new("."),
        )
        .unwrap();
        let otlp = config.tracing.otlp.unwrap();
        assert_eq!(otlp.traces_url(), "http://collector:4318/v1/traces");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        let config = Config::from_yaml(
            "tracing:\n  otlp:\n    endpoint: https://c.example/otlp/v1/traces/\n    protocol: http/json\n",
            Path::new("."),
        )
        .unwrap();
        let otlp = config.tracing.otlp.unwrap();
        assert_eq!(otlp.traces_url(), "https://c.example/otlp/v1/traces");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
        for (bad, says) in [
            ("tracing:\n  sample_ratio: 1.5\n", "sample_ratio"),
            (
                "tracing:\n  otlp:\n    endpoint: collector:4317\n",
                "http://",
            ),
            (
                "tracing:\n  otlp:\n    endpoint: grpc://collector:4317\n",
                "http://",
            ),
            (
                "tracing:\n  otlp:\n    endpoint: http://c:4318\n    protocol: grpc\n",
                "unknown variant",
            ),
            (
                "tracing:\n  otlp:\n    endpoint: http://c:4318\n    headers:\n      \"bad name\": x\n",
                "header name",
            ),
            (
                "tracing:\n  otlp:\n    endpoint: http://c:4318\n    batch_delay: 0s\n",
                "batch_delay",
            ),
        ] {
            let err = Config::from_yaml(bad, Path::new(".")).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn non_loopback_listen_needs_opt_in() {
        let err = Config::from_yaml("listen: 0.0.0.0:8700", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("not loopback"), "{err}");
        Config::from_yaml(
            "listen: 0.0.0.0:8700\nallow_non_loopback: true",
            Path::new("."),
        )
        .unwrap();
    }

    #[test]
    fn upstream_names_are_checked() {
        for bad in [
            "A",
            "a__b",
            "1a",
            "a_b",
            "",
            "abcdefghijklmnopqrstuvwxyzabcdefg",
        ] {
            let yaml = format!("upstreams:\n  - name: \"{bad}\"\n    stdio: {{command: x}}\n");
            assert!(
                Config::from_yaml(&yaml, Path::new(".")).is_err(),
                "{bad} accepted"
            );
        }
        let dup = "upstreams:\n  - name: a\n    stdio: {command: x}\n  - name: a\n    stdio: {command: y}\n";
        let err = Config::from_yaml(dup, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
    }

    #[test]
    fn relative_command_resolves_against_config_folder() {
        let yaml = "upstreams:\n  - name: a\n    stdio: {command: ./bin/server, cwd: data}\n  - name: b\n    stdio: {command: python3}\n";
        let config = Config::from_yaml(yaml, Path::new("/etc/tg")).unwrap();
        let UpstreamTransport::Stdio(a) = &config.upstreams[0].transport else {
            panic!("stdio expected")
        };
        assert_eq!(a.command, "/etc/tg/./bin/server");
        assert_eq!(a.cwd.as_deref(), Some(Path::new("/etc/tg/data")));
        let UpstreamTransport::Stdio(b) = &config.upstreams[1].transport else {
            panic!("stdio expected")
        };
        assert_eq!(b.command, "python3");
    }

    #[test]
    fn policy_limits_must_allow_a_decision() {
        for bad in [
            "policy: {timeout: 0s}",
            "policy: {max_instructions: 0}",
            "policy: {approval_ttl: 0s}",
            "policy: {evaluator: fast}",
        ] {
            assert!(Config::from_yaml(bad, Path::new(".")).is_err(), "{bad}");
        }
        let config =
            Config::from_yaml("policy: {evaluator: interpreter}", Path::new("/etc/tg")).unwrap();
        assert_eq!(config.policy.evaluator, Evaluator::Interpreter);
        assert_eq!(config.policy.dir, Path::new("/etc/tg/policies"));
    }

    #[test]
    fn env_expansion_refuses_unset_variables() {
        assert!(expand_env("Bearer ${TOOLGATE_SURELY_UNSET_VAR}").is_err());
        assert_eq!(expand_env("plain").unwrap(), "plain");
    }

    #[test]
    fn quickstart_config_loads_with_absolute_paths() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/toolgate.yaml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.upstreams.len(), 3);
        for upstream in &config.upstreams {
            let UpstreamTransport::Stdio(stdio) = &upstream.transport else {
                panic!("stdio expected")
            };
            assert!(Path::new(&stdio.command).is_absolute(), "{}", stdio.command);
        }
    }

    #[test]
    fn issuer_limits() {
        let issuer = |extra: &str| {
            format!(
                "auth:\n  issuers:\n    - issuer: i\n      audience: a\n      jwks_file: k.json\n{extra}  agents_file: a.yaml\n"
            )
        };
        Config::from_yaml(&issuer(""), Path::new(".")).unwrap();
        for (extra, message) in [
            ("      leeway: 1000years\n", "leeway"),
            ("      algorithms: [HS256]\n", "symmetric"),
            ("      audience: toolgate-admin\n", "admin"),
        ] {
            let yaml = issuer(extra).replace(
                "      audience: a\n",
                if extra.contains("audience") {
                    ""
                } else {
                    "      audience: a\n"
                },
            );
            let err = Config::from_yaml(&yaml, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{extra}: {err}");
        }
        let url = |u: &str| {
            format!(
                "auth:\n  issuers:\n    - issuer: i\n      audience: a\n      jwks_url: \"{u}\"\n  agents_file: a.yaml\n"
            )
        };
        assert!(Config::from_yaml(&url("http://idp.example/jwks"), Path::new(".")).is_err());
        Config::from_yaml(&url("https://idp.example/jwks"), Path::new(".")).unwrap();
        Config::from_yaml(&url("http://127.0.0.1:9/jwks"), Path::new(".")).unwrap();
    }

    #[test]
    fn zero_timeouts_are_refused() {
        for yaml in [
            "timeouts: {call: 0s}",
            "timeouts: {session_idle: 0s}",
            "timeouts: {reconnect_initial: 0s}",
        ] {
            assert!(Config::from_yaml(yaml, Path::new(".")).is_err(), "{yaml}");
        }
        let config =
            Config::from_yaml("timeouts: {call: 1500ms, session_idle: 2m}", Path::new("."))
                .unwrap();
        assert_eq!(config.timeouts.call, Duration::from_millis(1500));
    }

    #[test]
    fn http_upstream_needs_http_scheme() {
        let yaml = "upstreams:\n  - name: a\n    http: {url: \"ftp://x\"}\n";
        assert!(Config::from_yaml(yaml, Path::new(".")).is_err());
    }
}
