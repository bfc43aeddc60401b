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
    /// Whether this upstream's tools are exposed under its name (overrides the gateway's `naming`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<Naming>,
    /// `/readyz` waits for required upstreams to answer `tools/list`.
    #[serde(default = "default_true")]
    pub required: bool,
    #[serde(flatten)]
    pub transport: UpstreamTransport,
}

/// How exposed tool names are formed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// `<upstream><separator><tool>`, always.
    #[default]
    Always,
    /// Prefixed only when the config file names more than one upstream (upstreams registered at run time are
    /// always prefixed, so that registering one never renames another's tools).
    WhenSeveral,
    /// The tool's own name: names that collide across upstreams are refused.
    Never,
}

impl Naming {
    /// Whether an upstream's tools are prefixed: `configured` upstreams in the config file, `registered` at run
    /// time.
    pub fn prefixes(self, configured: usize, registered: bool) -> bool {
        match self {
            Self::Always => true,
            Self::WhenSeveral => registered || configured > 1,
            Self::Never => false,
        }
    }
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
    /// Run the child as another user (and group), so that it cannot read the gateway's state or memory. Needs the
    /// gateway to run as root or hold `CAP_SETUID` and `CAP_SETGID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
}

/// The user (and group) a stdio upstream runs as: names or numeric ids.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    pub user: String,
    /// Default: the user's primary group.
    #[serde(default)]
    pub group: Option<String>,
}

impl RunAs {
    /// The numeric user and group, names looked up in the system's user database. Root (uid or gid 0) is refused:
    /// running a child as root isolates nothing.
    pub fn resolve(&self) -> Result<(u32, u32), String> {
        use nix::unistd::{Group, User};
        let user = match self.user.parse::<u32>() {
            Ok(uid) => User::from_uid(uid.into())
                .ok()
                .flatten()
                .map_or((uid, None), |u| (uid, Some(u.gid.as_raw()))),
            Err(_) => User::from_name(&self.user)
                .map_err(|e| format!("run_as: cannot look up user `{}`: {e}", self.user))?
                .map(|u| (u.uid.as_raw(), Some(u.gid.as_raw())))
                .ok_or_else(|| format!("run_as: no user `{}`", self.user))?,
        };
        let gid = match &self.group {
            Some(group) => match group.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => Group::from_name(group)
                    .map_err(|e| format!("run_as: cannot look up group `{group}`: {e}"))?
                    .map(|g| g.gid.as_raw())
                    .ok_or_else(|| format!("run_as: no group `{group}`"))?,
            },
            None => user.1.ok_or_else(|| {
                format!(
                    "run_as: uid {} has no entry in the user database; give `group` too",
                    user.0
                )
            })?,
        };
        if user.0 == 0 || gid == 0 {
            return Err(
                "run_as: a child run as root (uid or gid 0) is not isolated; name another user"
                    .into(),
            );
        }
        Ok((user.0, gid))
    }
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
    /// The protocol revision toolgate speaks to it: `auto` (the default) asks it with `server/discover` and
    /// speaks 2026-07-28 when it can, 2025-11-25 otherwise; `2025-11-25` or `2026-07-28` pins one.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

/// Which protocol revision toolgate speaks to an HTTP upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum UpstreamProtocol {
    /// What `server/discover` says it speaks: 2026-07-28 when it can.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// 2025-11-25 (sessions opened with `initialize`), even when it speaks 2026-07-28 too.
    #[serde(rename = "2025-11-25")]
    Legacy,
    /// 2026-07-28 only: an upstream that does not speak it is not connected.
    #[serde(rename = "2026-07-28")]
    Modern,
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

    /// Checks an upstream's settings (names, command, URL, headers, `run_as`), as for one registered at run time.
    pub fn validate(&self) -> Result<(), String> {
        crate::names::validate_upstream_name(&self.name).map_err(|e| e.to_string())?;
        match &self.transport {
            UpstreamTransport::Stdio(stdio) => {
                if stdio.command.trim().is_empty() {
                    return Err(format!("upstream `{}`: empty command", self.name));
                }
                if let Some(run_as) = &stdio.run_as {
                    run_as
                        .resolve()
                        .map_err(|e| format!("upstream `{}`: {e}", self.name))?;
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
