//! The upstream MCP servers: stdio children and streamable-HTTP servers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{default_true, expand_env};

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

impl UpstreamConfig {
    /// Resolves a relative command and working folder against `base`, and expands `${NAME}` in env and headers.
    pub(super) fn resolve(&mut self, base: &Path) -> Result<(), String> {
        match &mut self.transport {
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
                    *value = expand_env(value)
                        .map_err(|e| format!("upstream `{}` env `{key}`: {e}", self.name))?;
                }
            }
            UpstreamTransport::Http(http) => {
                for (key, value) in http.headers.iter_mut() {
                    *value = expand_env(value)
                        .map_err(|e| format!("upstream `{}` header `{key}`: {e}", self.name))?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        crate::names::validate_upstream_name(&self.name).map_err(|e| e.to_string())?;
        match &self.transport {
            UpstreamTransport::Stdio(stdio) => {
                if stdio.command.trim().is_empty() {
                    return Err(format!("upstream `{}`: empty command", self.name));
                }
            }
            UpstreamTransport::Http(http) => {
                let url = reqwest::Url::parse(&http.url).map_err(|e| {
                    format!("upstream `{}`: bad url `{}`: {e}", self.name, http.url)
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!(
                        "upstream `{}`: url scheme must be http or https, not `{}`",
                        self.name,
                        url.scheme()
                    ));
                }
                for (key, value) in &http.headers {
                    http::HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                        format!("upstream `{}`: bad header name `{key}`", self.name)
                    })?;
                    http::HeaderValue::from_str(value).map_err(|_| {
                        format!("upstream `{}`: bad value for header `{key}`", self.name)
                    })?;
                }
            }
        }
        Ok(())
    }
}
