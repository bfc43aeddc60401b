//! Each upstream's life: connect and list, watch, reconnect with backoff; every tool list checked (names,
//! duplicates, collisions) before it joins the index.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::Tool;

use super::http::HttpConn;
use super::stdio::StdioConn;
use super::{
    Catalog, Conn, ExposedTool, Index, InputSchema, RefusedTool, Upstream, UpstreamError, pin_hash,
};
use crate::config::UpstreamTransport;
use crate::names;

impl Catalog {
    pub(super) async fn connect(
        &self,
        upstream: &Upstream,
    ) -> Result<(Arc<Conn>, Vec<Tool>), UpstreamError> {
        // A registered upstream only ever gets its own (allowlisted) client; fail closed if it cannot be found.
        let client = match self.registered_clients.lock() {
            Ok(clients) => clients.get(&upstream.name).cloned(),
            Err(_) if upstream.registered => {
                return Err(UpstreamError::Connect(
                    "registered clients unavailable".into(),
                ));
            }
            Err(_) => None,
        };
        if upstream.registered
            && matches!(upstream.transport, UpstreamTransport::Http(_))
            && client.is_none()
        {
            return Err(UpstreamError::Connect(
                "no allowlisted client for this upstream".into(),
            ));
        }
        self.connect_with(upstream, client).await
    }

    pub(super) async fn connect_with(
        &self,
        upstream: &Upstream,
        client: Option<reqwest::Client>,
    ) -> Result<(Arc<Conn>, Vec<Tool>), UpstreamError> {
        let conn = match &upstream.transport {
            UpstreamTransport::Stdio(config) => Conn::Stdio(
                StdioConn::connect(
                    Arc::clone(&upstream.name),
                    config,
                    Arc::clone(&upstream.refresh),
                    self.events_of(&upstream.name),
                    self.timeouts.connect,
                )
                .await?,
            ),
            UpstreamTransport::Http(config) => Conn::Http(
                HttpConn::connect(
                    Arc::clone(&upstream.name),
                    config,
                    client.unwrap_or_else(|| self.client.clone()),
                    Arc::clone(&upstream.refresh),
                    self.events_of(&upstream.name),
                    self.limits.max_response_bytes,
                    self.timeouts.connect,
                )
                .await?,
            ),
        };
        let conn = Arc::new(conn);
        match conn
            .list_tools(self.timeouts.connect, self.limits.max_response_bytes)
            .await
        {
            Ok(tools) => Ok((conn, tools)),
            Err(e) => {
                conn.shutdown();
                Err(e)
            }
        }
    }

    pub(super) async fn supervise(self: Arc<Self>, upstream: Arc<Upstream>) {
        let mut delay = self.timeouts.reconnect_initial;
        loop {
            if upstream.stop.is_cancelled() {
                return;
            }
            upstream.set_status(|s| s.state = "connecting");
            let attempt = tokio::select! {
                // Each phase of connecting is bounded by the connect timeout inside `connect`, so that a phase
                // that times out still cleans up what it started.
                a = self.connect(&upstream) => a,
                () = upstream.stop.cancelled() => return,
            };
            match attempt {
                Ok((conn, tools)) => {
                    delay = self.timeouts.reconnect_initial;
                    upstream.conn.store(Some(Arc::clone(&conn)));
                    self.events_of(&upstream.name).connected();
                    self.accept(&upstream, tools);
                    tracing::info!(upstream = %upstream.name, "upstream ready");
                    loop {
                        tokio::select! {
                            () = conn.closed().cancelled() => break,
                            () = upstream.refresh.notified() => {
                                match conn.list_tools(self.timeouts.connect, self.limits.max_response_bytes).await {
                                    Ok(tools) => self.accept(&upstream, tools),
                                    Err(e) => tracing::warn!(upstream = %upstream.name, "refresh failed: {e}"),
                                }
                            }
                            () = upstream.stop.cancelled() => {
                                conn.shutdown();
                                return;
                            }
                        }
                    }
                    upstream.conn.store(None);
                    conn.shutdown();
                    tracing::warn!(upstream = %upstream.name, "upstream connection lost; reconnecting");
                    upstream.set_status(|s| {
                        s.state = "down";
                        s.reconnects += 1;
                        s.last_error = Some("connection lost".into());
                    });
                }
                Err(e) => {
                    tracing::warn!(upstream = %upstream.name, "upstream not reachable: {e}");
                    upstream.set_status(|s| {
                        s.state = "down";
                        s.last_error = Some(e.to_string());
                    });
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = upstream.stop.cancelled() => return,
            }
            delay = (delay * 2).min(self.timeouts.reconnect_max);
        }
    }

    /// Takes an upstream's tool list: refuses bad and duplicate names, then rebuilds the index.
    pub(super) fn accept(&self, upstream: &Upstream, tools: Vec<Tool>) {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for tool in &tools {
            *counts.entry(tool.name.as_ref()).or_default() += 1;
        }
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        for tool in &tools {
            let verdict = if counts.get(tool.name.as_ref()).copied().unwrap_or(0) > 1 {
                Err(format!(
                    "upstream lists tool `{}` more than once",
                    tool.name.escape_debug()
                ))
            } else {
                names::exposed_name(&upstream.name, &self.separator, &tool.name, upstream.prefix)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                    // Argument mirrors that break the rules make the definition invalid (2026-07-28).
                    .and_then(|()| {
                        super::schema::mirrors::mirrors(&tool.input_schema)
                            .map(|_| ())
                            .map_err(|e| format!("invalid argument mirror: {e}"))
                    })
            };
            match verdict {
                Ok(()) => accepted.push(tool.clone()),
                Err(reason) => {
                    tracing::error!(upstream = %upstream.name, "tool refused: {reason}");
                    refused.push(RefusedTool {
                        tool: tool.name.escape_debug().to_string(),
                        reason,
                    });
                }
            }
        }
        let count = accepted.len();
        if let Ok(mut map) = self.accepted.lock() {
            map.insert(Arc::clone(&upstream.name), accepted);
        }
        let collisions = self.rebuild();
        refused.extend(
            collisions
                .into_iter()
                .filter(|(owner, _)| owner == &upstream.name)
                .map(|(_, r)| r),
        );
        upstream.set_status(|s| {
            s.state = "ready";
            s.listed = true;
            s.tools = count;
            s.last_error = None;
            s.refused_tools = refused;
        });
    }

    /// Rebuilds the exposed index from every upstream's accepted tools. A name claimed by two upstreams stays
    /// with the upstream that already held it; with no prior holder every claimant is refused.
    pub(super) fn rebuild(&self) -> Vec<(Arc<str>, RefusedTool)> {
        let Ok(accepted) = self.accepted.lock() else {
            return Vec::new();
        };
        let old = self.index.load_full();
        let mut claims: BTreeMap<String, Vec<(Arc<str>, &Tool)>> = BTreeMap::new();
        for upstream in self.upstreams.load().iter() {
            let Some(tools) = accepted.get(&upstream.name) else {
                continue;
            };
            for tool in tools {
                if let Ok(exposed) = names::exposed_name(
                    &upstream.name,
                    &self.separator,
                    &tool.name,
                    upstream.prefix,
                ) {
                    claims
                        .entry(exposed)
                        .or_default()
                        .push((Arc::clone(&upstream.name), tool));
                }
            }
        }
        let mut index = Index::default();
        let mut refused = Vec::new();
        for (exposed, claimants) in claims {
            let winner = if claimants.len() == 1 {
                claimants.first().cloned()
            } else {
                let holder = old
                    .tools
                    .get(exposed.as_str())
                    .map(|t| Arc::clone(&t.upstream));
                claimants
                    .iter()
                    .find(|(u, _)| Some(u) == holder.as_ref())
                    .cloned()
            };
            for (upstream, tool) in &claimants {
                if winner.as_ref().is_some_and(|(w, _)| w == upstream) {
                    continue;
                }
                let reason =
                    format!("exposed name `{exposed}` collides with another upstream's tool");
                tracing::error!(upstream = %upstream, tool = %tool.name, "tool refused: {reason}");
                refused.push((
                    Arc::clone(upstream),
                    RefusedTool {
                        tool: tool.name.to_string(),
                        reason,
                    },
                ));
            }
            if let Some((upstream, tool)) = winner {
                let name: Arc<str> = Arc::from(exposed.as_str());
                let mut definition = tool.clone();
                definition.name = exposed.clone().into();
                // Compiled once: a rebuild keeps the compiled schema of a tool whose schema did not change, and
                // the definition then advertises the very object that was compiled.
                let input_schema = InputSchema::reuse_or_compile(
                    old.tools.get(exposed.as_str()).map(|t| &t.input_schema),
                    &definition.input_schema,
                    &exposed,
                );
                definition.input_schema = Arc::clone(input_schema.source());
                let annotations_json = definition
                    .annotations
                    .as_ref()
                    .and_then(|a| serde_json::to_value(a).ok());
                index.tools.insert(
                    Arc::clone(&name),
                    Arc::new(ExposedTool {
                        name,
                        upstream,
                        original: Arc::from(tool.name.as_ref()),
                        pin_hash: pin_hash(tool),
                        definition,
                        input_schema,
                        annotations_json,
                    }),
                );
            }
        }
        let changed = old.tools.len() != index.tools.len()
            || old
                .tools
                .iter()
                .zip(index.tools.iter())
                .any(|((a, ta), (b, tb))| a != b || ta.definition != tb.definition);
        self.index.store(Arc::new(index));
        if changed {
            let _ = self.changed.send(());
        }
        refused
    }
}
