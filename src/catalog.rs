//! Upstream MCP servers and their tools: connecting, namespacing, the exposed tool index, refresh.

pub mod allow;
pub mod pins;
pub mod schema;
mod special;

mod change;
pub mod client_side;
mod http;
mod routing;
mod stdio;
mod supervise;
pub mod surface;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorData, JsonObject, Tool};
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

pub use crate::names::validate_upstream_name;
pub use change::ChangeError;
pub use client_side::{ClientSide, may_ask_for_input};
pub use routing::{Asker, CallSink};

use crate::config::{Config, Limits, Timeouts, UpstreamConfig, UpstreamTransport};
use crate::reason::Reason;
use http::HttpConn;
use schema::InputSchema;
use stdio::StdioConn;

/// What toolgate tells upstreams it can do as their client: what it relays to the client whose call asks
/// (a client that did not declare it gets the upstream's request refused).
fn relayed_capabilities() -> serde_json::Value {
    serde_json::json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {}})
}

/// Why an upstream could not answer a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream is unavailable")]
    Unavailable,
    #[error("upstream closed the connection during the call")]
    Closed,
    #[error("upstream did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("upstream answer exceeds the {0}-byte limit")]
    TooLarge(usize),
    #[error("upstream answered with malformed data: {0}")]
    Malformed(String),
    #[error("upstream returned an error: {}", .0.message)]
    Rpc(ErrorData),
    #[error("upstream transport failed: {0}")]
    Transport(String),
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    #[error("call cancelled by the client")]
    Cancelled,
    /// A modern upstream needs input from a modern client first: its `input_required` result, as it came.
    #[error("upstream needs input from the client")]
    InputRequired(Box<serde_json::Value>),
}

impl UpstreamError {
    /// Stable reason id for records and logs.
    pub fn reason_id(&self) -> Reason {
        match self {
            Self::Unavailable | Self::Connect(_) => Reason::UpstreamUnavailable,
            Self::Closed => Reason::UpstreamClosed,
            Self::Timeout(_) => Reason::UpstreamTimeout,
            Self::TooLarge(_) => Reason::UpstreamResponseTooLarge,
            Self::Malformed(_) => Reason::UpstreamMalformed,
            Self::Rpc(_) => Reason::UpstreamError,
            Self::Transport(_) => Reason::UpstreamTransport,
            Self::Cancelled => Reason::Cancelled,
            Self::InputRequired(_) => Reason::InputRequired,
        }
    }
}

enum Conn {
    Stdio(StdioConn),
    Http(Arc<HttpConn>),
}

impl Conn {
    fn closed(&self) -> &CancellationToken {
        match self {
            Conn::Stdio(c) => c.closed(),
            Conn::Http(c) => c.closed(),
        }
    }

    fn shutdown(&self) {
        match self {
            Conn::Stdio(c) => c.shutdown(),
            Conn::Http(c) => c.shutdown(),
        }
    }

    async fn list_tools(
        &self,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Vec<Tool>, UpstreamError> {
        match self {
            Conn::Stdio(c) => tokio::time::timeout(timeout, c.list_tools())
                .await
                .map_err(|_| UpstreamError::Timeout(timeout))?,
            Conn::Http(c) => c.list_tools(timeout, max_bytes).await,
        }
    }
}

/// A tool refused from the catalog, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedTool {
    pub tool: String,
    pub reason: String,
}

/// What an upstream is doing, for `/readyz` and operators.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub transport: &'static str,
    pub required: bool,
    /// `connecting`, `ready` or `down`.
    pub state: &'static str,
    /// Whether the upstream has answered `tools/list` at least once.
    pub listed: bool,
    pub tools: usize,
    pub reconnects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_tools: Vec<RefusedTool>,
    /// Registered at run time (else from the config file, read-only).
    pub registered: bool,
}

/// One configured upstream and its current session.
pub struct Upstream {
    pub name: Arc<str>,
    transport: UpstreamTransport,
    conn: ArcSwapOption<Conn>,
    status: Mutex<UpstreamStatus>,
    refresh: Arc<Notify>,
    /// Stops this upstream's supervisor (removal, or the gateway's shutdown).
    stop: CancellationToken,
    /// Registered at run time through the admin API (else from the config file).
    pub registered: bool,
    /// Whether its tools are exposed as `<upstream><separator><tool>` (naming mode).
    pub prefix: bool,
}

impl Upstream {
    fn set_status(&self, f: impl FnOnce(&mut UpstreamStatus)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }

    /// A snapshot of the upstream's status.
    pub fn status(&self) -> Option<UpstreamStatus> {
        self.status.lock().ok().map(|s| s.clone())
    }
}

/// A tool as toolgate exposes it.
#[derive(Debug)]
pub struct ExposedTool {
    /// `<upstream><separator><tool>`.
    pub name: Arc<str>,
    pub upstream: Arc<str>,
    /// The tool's name on its upstream.
    pub original: Arc<str>,
    /// The upstream's definition, renamed to the exposed name and otherwise intact.
    pub definition: Tool,
    /// `definition.input_schema` compiled (the very object advertised), which every call's arguments must match.
    pub input_schema: Arc<InputSchema>,
    /// The definition's annotations (hints) as JSON, for policy input.
    pub annotations_json: Option<serde_json::Value>,
    /// SHA-256 of the upstream's definition (name, description, schemas, annotations) as canonical JSON
    /// (RFC 8785): what a pin approves.
    pub pin_hash: Arc<str>,
}

impl ExposedTool {
    /// The definition as its upstream reports it (under its own name).
    pub fn original_definition(&self) -> Tool {
        let mut tool = self.definition.clone();
        tool.name = self.original.to_string().into();
        tool
    }
}

/// The part of a tool's definition a pin covers, as canonical JSON (RFC 8785).
pub fn pinned_definition(tool: &Tool) -> serde_json::Value {
    serde_json::json!({
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "inputSchema": tool.input_schema,
        "outputSchema": tool.output_schema,
        "annotations": tool.annotations,
        "icons": tool.icons,
        "_meta": tool.meta,
    })
}

fn pin_hash(tool: &Tool) -> Arc<str> {
    use sha2::Digest;
    let canonical = serde_jcs::to_vec(&pinned_definition(tool)).unwrap_or_default();
    Arc::from(hex::encode(sha2::Sha256::digest(&canonical)))
}

#[derive(Default)]
struct Index {
    tools: BTreeMap<Arc<str>, Arc<ExposedTool>>,
}

/// Every upstream and the index of exposed tools.
pub struct Catalog {
    separator: String,
    /// The gateway's naming mode, for upstreams registered at run time without their own.
    naming: crate::config::Naming,
    timeouts: Timeouts,
    limits: Limits,
    upstreams: ArcSwap<Vec<Arc<Upstream>>>,
    accepted: Mutex<HashMap<Arc<str>, Vec<Tool>>>,
    index: ArcSwap<Index>,
    changed: broadcast::Sender<()>,
    /// What upstreams say of their resources and prompts.
    surface: broadcast::Sender<surface::SurfaceEvent>,
    /// The upstreams' latest listings of resources, templates and prompts.
    lists: Arc<surface::Lists>,
    client: reqwest::Client,
    /// HTTP clients of upstreams registered at run time (their resolvers enforce the allowlist).
    registered_clients: Mutex<HashMap<Arc<str>, reqwest::Client>>,
    shutdown: CancellationToken,
}

impl Catalog {
    /// Builds the catalog from config; nothing connects until [`Catalog::start`].
    pub fn new(config: &Config) -> Result<Arc<Self>, UpstreamError> {
        let shutdown = CancellationToken::new();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let prefix = u
                    .naming
                    .unwrap_or(config.naming)
                    .prefixes(config.upstreams.len(), false);
                Self::upstream(u, &shutdown, false, prefix)
            })
            .collect();
        Ok(Arc::new(Self {
            separator: config.namespace_separator.clone(),
            naming: config.naming,
            timeouts: config.timeouts.clone(),
            limits: config.limits.clone(),
            upstreams: ArcSwap::from_pointee(upstreams),
            accepted: Mutex::new(HashMap::new()),
            index: ArcSwap::from_pointee(Index::default()),
            changed: broadcast::channel(16).0,
            surface: broadcast::channel(1024).0,
            lists: Arc::default(),
            client: http::pooled_client()?,
            registered_clients: Mutex::new(HashMap::new()),
            shutdown,
        }))
    }

    fn upstream(
        u: &UpstreamConfig,
        shutdown: &CancellationToken,
        registered: bool,
        prefix: bool,
    ) -> Arc<Upstream> {
        Arc::new(Upstream {
            name: Arc::from(u.name.as_str()),
            transport: u.transport.clone(),
            conn: ArcSwapOption::empty(),
            status: Mutex::new(UpstreamStatus {
                name: u.name.clone(),
                transport: match u.transport {
                    UpstreamTransport::Stdio(_) => "stdio",
                    UpstreamTransport::Http(_) => "http",
                },
                required: u.required,
                state: "connecting",
                listed: false,
                tools: 0,
                reconnects: 0,
                last_error: None,
                refused_tools: Vec::new(),
                registered,
            }),
            refresh: Arc::new(Notify::new()),
            stop: shutdown.child_token(),
            registered,
            prefix,
        })
    }

    /// Starts one supervisor per upstream: connect, list, watch, reconnect with backoff.
    pub fn start(self: &Arc<Self>) {
        for upstream in self.upstreams.load().iter() {
            tokio::spawn(Arc::clone(self).supervise(Arc::clone(upstream)));
        }
    }

    /// Closes every upstream session.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        for upstream in self.upstreams.load().iter() {
            if let Some(conn) = upstream.conn.swap(None) {
                conn.shutdown();
            }
        }
    }

    /// True once every required upstream has answered `tools/list`.
    pub fn ready(&self) -> bool {
        self.upstreams
            .load()
            .iter()
            .all(|u| u.status().is_some_and(|s| !s.required || s.listed))
    }

    /// Status of every upstream.
    pub fn statuses(&self) -> Vec<UpstreamStatus> {
        self.upstreams
            .load()
            .iter()
            .filter_map(|u| u.status())
            .collect()
    }

    /// Fires whenever the set of exposed tools or a definition changes.
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changed.subscribe()
    }

    /// Looks up an exposed tool.
    pub fn resolve(&self, name: &str) -> Option<Arc<ExposedTool>> {
        self.index.load().tools.get(name).cloned()
    }

    /// Up to `limit` exposed tools after `cursor` (exclusive) that `keep` accepts, in name order. Stops as soon
    /// as the page is full, so a page costs the page, not the catalog.
    pub fn tools_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
        keep: impl Fn(&ExposedTool) -> bool,
    ) -> Vec<Arc<ExposedTool>> {
        let index = self.index.load();
        let range = match cursor {
            Some(c) => index
                .tools
                .range::<str, _>((Bound::Excluded(c), Bound::Unbounded)),
            None => index.tools.range::<str, _>(..),
        };
        range
            .map(|(_, t)| t)
            .filter(|t| keep(t))
            .take(limit)
            .map(Arc::clone)
            .collect()
    }

    /// Every exposed tool.
    pub fn tools(&self) -> Vec<Arc<ExposedTool>> {
        self.index.load().tools.values().cloned().collect()
    }

    /// Number of exposed tools.
    pub fn len(&self) -> usize {
        self.index.load().tools.len()
    }

    /// True when no tool is exposed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forwards a call to the tool's upstream under the upstream's own name for it.
    pub async fn call(
        &self,
        tool: &ExposedTool,
        arguments: Option<JsonObject>,
        sink: CallSink,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, UpstreamError> {
        let upstream = self
            .upstreams
            .load()
            .iter()
            .find(|u| u.name == tool.upstream)
            .cloned()
            .ok_or(UpstreamError::Unavailable)?;
        let conn = upstream
            .conn
            .load_full()
            .ok_or(UpstreamError::Unavailable)?;
        let mut params = CallToolRequestParams::new(tool.original.to_string());
        params.arguments = arguments;
        // The trace continues upstream (SEP-414); an HTTP upstream also gets it in its headers.
        let mut trace = rmcp::model::JsonObject::new();
        crate::telemetry::to_meta(&mut trace);
        if !trace.is_empty() {
            params.meta = Some(rmcp::model::RequestMetaObject(rmcp::model::MetaObject(
                trace,
            )));
        }
        let timeout = self.timeouts.call;
        let max = self.limits.max_response_bytes;
        match conn.as_ref() {
            Conn::Stdio(c) => c.call_tool(params, sink, cancel, timeout, max).await,
            Conn::Http(c) => c.call_tool(params, sink, cancel, timeout, max).await,
        }
    }
}
