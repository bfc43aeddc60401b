//! The gateway's configuration file: listen address, upstreams, timeouts and limits, validated on load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::names;

mod admin;
mod audit;
mod auth;
mod limits;
mod policy;
mod redaction;
mod storage;
mod telemetry;
mod upstream;

pub use admin::{AdminConfig, AdminRole, AdminSubject, RegistryConfig};
pub use audit::{ArgumentsRule, AuditConfig, Durability};
pub use auth::{AuthConfig, IssuerConfig};
pub use limits::{Limits, Timeouts};
pub use policy::{Evaluator, FirstSight, PinningConfig, PolicyConfig};
pub use redaction::{CustomDetector, RedactionConfig};
pub use storage::{PostgresConfig, StorageConfig};
pub use telemetry::{LogFormat, LoggingConfig, OtlpConfig, OtlpProtocol, TracingConfig};
pub use upstream::{
    HttpUpstream, Naming, RunAs, StdioUpstream, UpstreamConfig, UpstreamProtocol, UpstreamTransport,
};

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
    /// Whether exposed tool names carry their upstream's name: `always`, `when_several`, `never`.
    #[serde(default)]
    pub naming: Naming,
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
    /// The embedded store: revocations, approvals, pins, registered upstreams and agents, decision records.
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
    /// Development mode, asked for on the command line (`toolgate serve --dev`), never in the file: only then
    /// may an issuer marked `dev` (whose key is public) be trusted.
    #[serde(skip)]
    pub dev_mode: bool,
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
            naming: Naming::default(),
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
            dev_mode: false,
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
        config.check().map_err(|message| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        })?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) -> Result<(), String> {
        self.base = base.to_path_buf();
        self.storage.path = base.join(&self.storage.path);
        if let Some(pg) = self.storage.postgres.as_mut() {
            pg.url = expand_env(&pg.url).map_err(|e| format!("storage.postgres.url: {e}"))?;
            if let Some(ca) = pg.ca_file.as_mut() {
                *ca = base.join(&*ca);
            }
        }
        self.admin.bootstrap_token_file = base.join(&self.admin.bootstrap_token_file);
        self.admin.scrape_token_file = base.join(&self.admin.scrape_token_file);
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
            upstream.resolve(base)?;
        }
        Ok(())
    }

    /// Checks everything that can be checked without starting anything: each section checks itself, and the
    /// rules that span sections are checked here.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|message| ConfigError::Invalid {
            path: self.base.clone(),
            message,
        })
    }

    fn check(&self) -> Result<(), String> {
        if !self.allow_non_loopback && !self.listen.ip().is_loopback() {
            return Err(format!(
                "listen address `{}` is not loopback; set `allow_non_loopback: true` to expose the gateway",
                self.listen
            ));
        }
        if !self.allow_non_loopback && !self.admin.listen.ip().is_loopback() {
            return Err(format!(
                "admin listen address `{}` is not loopback; set `allow_non_loopback: true` to expose it",
                self.admin.listen
            ));
        }
        names::validate_separator(&self.namespace_separator).map_err(|e| e.to_string())?;
        self.tracing.validate()?;
        self.policy.validate()?;
        self.audit.validate()?;
        if let Some(postgres) = &self.storage.postgres {
            postgres.validate()?;
        }
        if let Some(auth) = &self.auth {
            let loopback = self.listen.ip().is_loopback() && self.admin.listen.ip().is_loopback();
            auth.validate(loopback, &self.admin.audience)?;
        }
        self.limits.validate()?;
        self.timeouts.validate()?;
        let mut seen = std::collections::HashSet::new();
        for upstream in &self.upstreams {
            upstream.validate()?;
            if !seen.insert(upstream.name.as_str()) {
                return Err(format!("upstream name `{}` is used twice", upstream.name));
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
mod tests;
