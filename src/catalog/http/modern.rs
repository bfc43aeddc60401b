//! Protocol revision 2026-07-28 towards an HTTP upstream that speaks it: found with `server/discover` before any
//! `initialize`; then every request is stateless, carrying in `_meta` the version, toolgate's identity and what
//! the client of the request declared (of what toolgate relays), with the `Mcp-Method` and `Mcp-Name` headers
//! built from the body toolgate sends. Change notifications come on `subscriptions/listen` streams (one for the
//! lists, one per subscribed resource) instead of a session's GET stream. An `input_required` result goes back to
//! a modern client as it is (the gateway checks and seals it); for a legacy client toolgate asks the client each
//! input request on the call's own stream and retries the request with the answers.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::HttpConn;
use super::wire::request_body;
use crate::catalog::UpstreamError;
use crate::catalog::client_side::ClientSide;
use crate::catalog::routing::CallSink;
use crate::catalog::schema::mirrors::{Mirror, mirrored_value};
use crate::config::UpstreamProtocol;

/// The modern protocol revision.
pub(super) const MODERN_VERSION: &str = "2026-07-28";

/// Most rounds of input one request may take when toolgate answers the upstream's input requests itself.
const MAX_ROUNDS: usize = 8;
/// Most input requests one `input_required` result may carry.
const MAX_INPUT_REQUESTS: usize = 32;

/// What a request names for its `Mcp-Name` header: the name of `tools/call` and `prompts/get`, the URI of
/// `resources/read`; read from the params toolgate sends.
pub(super) trait Named {
    fn named(&self, method: &str) -> Option<&str>;
    /// A tool call's arguments, for its argument mirrors.
    fn arguments(&self) -> Option<&rmcp::model::JsonObject>;
}

impl Named for Value {
    fn named(&self, method: &str) -> Option<&str> {
        let field = match method {
            "tools/call" | "prompts/get" => "name",
            "resources/read" => "uri",
            _ => return None,
        };
        self.get(field).and_then(Value::as_str)
    }

    fn arguments(&self) -> Option<&rmcp::model::JsonObject> {
        self.get("arguments").and_then(Value::as_object)
    }
}

impl Named for rmcp::model::CallToolRequestParams {
    fn named(&self, method: &str) -> Option<&str> {
        (method == "tools/call").then_some(self.name.as_ref())
    }

    fn arguments(&self) -> Option<&rmcp::model::JsonObject> {
        self.arguments.as_ref()
    }
}

/// The argument mirrors of a modern tool call (`Mcp-Param-{name}`), from the arguments toolgate sends and the
/// tool's definition as its upstream listed it.
pub(super) fn mirror_headers(
    mirrors: &[Mirror],
    params: &impl Named,
) -> Vec<(HeaderName, HeaderValue)> {
    let Some(arguments) = params.arguments() else {
        return Vec::new();
    };
    mirrors
        .iter()
        .filter_map(|mirror| {
            let value = mirrored_value(arguments, &mirror.path)?;
            let name =
                HeaderName::from_bytes(format!("mcp-param-{}", mirror.header).as_bytes()).ok()?;
            let value = HeaderValue::from_str(&crate::names::encode_header_value(&value)).ok()?;
            Some((name, value))
        })
        .collect()
}

/// A request's params in the modern form: `_meta` says the version, toolgate and the client's side; a retried
/// request carries the client's input and the upstream's state.
pub(super) fn modern_params(method: &str, params: Value, client: &ClientSide) -> Value {
    let mut params = match params {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(
            "io.modelcontextprotocol/protocolVersion".into(),
            json!(MODERN_VERSION),
        );
        meta.insert(
            "io.modelcontextprotocol/clientInfo".into(),
            json!({"name": "toolgate", "version": env!("CARGO_PKG_VERSION")}),
        );
        meta.insert(
            "io.modelcontextprotocol/clientCapabilities".into(),
            client.relayed_capabilities(),
        );
        // A legacy client that set no level gets every level, as from a legacy upstream; a modern one says.
        let level = match &client.log_level {
            Some(level) => Some(level.as_str()),
            None if !client.modern => Some("debug"),
            None => None,
        };
        if let Some(level) = level {
            meta.insert("io.modelcontextprotocol/logLevel".into(), json!(level));
        }
    }
    if crate::catalog::may_ask_for_input(method) {
        if let Some(responses) = &client.input_responses {
            params.insert("inputResponses".into(), responses.clone());
        }
        if let Some(state) = &client.request_state {
            params.insert("requestState".into(), json!(state));
        }
    }
    Value::Object(params)
}

/// The routing headers of a modern request, from its body.
pub(super) fn routing_headers(method: &str, params: &impl Named) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(2);
    if let Ok(value) = HeaderValue::from_str(method) {
        headers.push((HeaderName::from_static("mcp-method"), value));
    }
    if let Some(name) = params.named(method)
        && let Ok(value) = HeaderValue::from_str(&crate::names::encode_header_value(name))
    {
        headers.push((HeaderName::from_static("mcp-name"), value));
    }
    headers
}

/// Whether a result asks for input.
pub(super) fn input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

impl HttpConn {
    /// A modern request's headers, from the body toolgate sends: routing (`Mcp-Method`, `Mcp-Name`) and, for a
    /// tool call, the tool's argument mirrors.
    pub(super) fn modern_headers(
        &self,
        method: &str,
        params: &impl Named,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = routing_headers(method, params);
        if let Some(mirrors) = params
            .named(method)
            .and_then(|tool| self.mirrored.get(tool))
        {
            headers.extend(mirror_headers(&mirrors, params));
        }
        headers
    }

    /// Keeps the argument mirrors of the tools just listed (a modern upstream's calls carry them).
    pub(super) fn remember_mirrors(&self, tools: &[rmcp::model::Tool]) {
        if !self.modern {
            return;
        }
        self.mirrored.clear();
        for tool in tools {
            if let Ok(mirrors) = crate::catalog::schema::mirrors::mirrors(&tool.input_schema)
                && !mirrors.is_empty()
            {
                self.mirrored.insert(tool.name.to_string(), mirrors.into());
            }
        }
    }

    /// Whether to speak 2026-07-28 to the upstream: as `protocol` pins it, else as `server/discover` says (asked
    /// for at most 5 s). Pinned to 2026-07-28, an upstream that does not speak it is not connected.
    pub(super) async fn speaks_modern(
        &self,
        protocol: UpstreamProtocol,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<bool, UpstreamError> {
        match protocol {
            UpstreamProtocol::Legacy => Ok(false),
            UpstreamProtocol::Auto => Ok(self
                .discover(timeout.min(Duration::from_secs(5)), max_bytes)
                .await),
            UpstreamProtocol::Modern => {
                if self.discover(timeout, max_bytes).await {
                    Ok(true)
                } else {
                    Err(UpstreamError::Connect(format!(
                        "it does not speak protocol {MODERN_VERSION} (`protocol` pins it)"
                    )))
                }
            }
        }
    }

    /// Asks the upstream what it speaks; `Ok(true)` when it speaks 2026-07-28. Anything but a discovery result
    /// (an HTTP refusal, a legacy error, no answer in time) means a legacy upstream.
    pub(super) async fn discover(&self, timeout: Duration, max_bytes: usize) -> bool {
        let client = ClientSide::default();
        let params = modern_params("server/discover", json!({}), &client);
        let id = self.fresh_id();
        let Ok(body) = request_body(id, "server/discover", &params) else {
            return false;
        };
        let mut extra = routing_headers("server/discover", &params);
        extra.push((
            HeaderName::from_static("mcp-protocol-version"),
            HeaderValue::from_static(MODERN_VERSION),
        ));
        let answer = tokio::time::timeout(timeout, async {
            let response = self.post_with(body, &extra).await?;
            self.read_answer(response, id, None, max_bytes).await
        })
        .await;
        match answer {
            Ok(Ok(result)) => result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v == MODERN_VERSION)),
            _ => false,
        }
    }

    /// One modern request and its answer; an `input_required` result goes back to a modern client, and is answered
    /// by asking a legacy one.
    pub(super) async fn modern_exchange(
        &self,
        method: &str,
        params: Value,
        sink: Option<&CallSink>,
        cancel: &CancellationToken,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Value, UpstreamError> {
        let client = ClientSide::current();
        let sent = modern_params(method, params, &client);
        let result = self
            .exchange(method, &sent, sink, cancel, timeout, max_bytes)
            .await?;
        if !input_required(&result) {
            return Ok(result);
        }
        // Only these requests may ask for input (2026-07-28); asking on any other is not an answer.
        if !crate::catalog::may_ask_for_input(method) {
            return Err(UpstreamError::Malformed(format!(
                "`input_required` is not an answer to `{method}`"
            )));
        }
        let count = result
            .get("inputRequests")
            .and_then(Value::as_object)
            .map_or(0, |requests| requests.len());
        if count > MAX_INPUT_REQUESTS {
            return Err(UpstreamError::Malformed(format!(
                "the upstream asked for {count} inputs at once (at most {MAX_INPUT_REQUESTS})"
            )));
        }
        if client.modern {
            return Err(UpstreamError::InputRequired(Box::new(result)));
        }
        self.answer_input(method, &sent, result, sink, cancel, (timeout, max_bytes))
            .await
    }

    /// Answers an upstream's `input_required` result for a legacy client: each input request is asked of the
    /// client (decided and recorded on the way), and the request is sent again with the answers and the upstream's
    /// state, for at most [`MAX_ROUNDS`] rounds.
    pub(super) async fn answer_input(
        &self,
        method: &str,
        params: &Value,
        mut result: Value,
        sink: Option<&CallSink>,
        cancel: &CancellationToken,
        (timeout, max_bytes): (Duration, usize),
    ) -> Result<Value, UpstreamError> {
        for _ in 0..MAX_ROUNDS {
            if !input_required(&result) {
                return Ok(result);
            }
            let Some(sink) = sink else {
                return Err(UpstreamError::Malformed(format!(
                    "the upstream needs input from the client, which `{method}` cannot carry to a client of \
                     protocol 2025-11-25"
                )));
            };
            let mut responses = Map::new();
            if let Some(requests) = result.get("inputRequests").and_then(Value::as_object) {
                for (key, request) in requests {
                    let asked = request.get("method").and_then(Value::as_str).unwrap_or("");
                    let asked_params = request.get("params").cloned().unwrap_or_else(|| json!({}));
                    let answer = sink
                        .ask(asked, asked_params)
                        .await
                        .map_err(UpstreamError::Rpc)?;
                    responses.insert(key.clone(), answer);
                }
            }
            let mut client = ClientSide::current();
            client.input_responses = Some(Value::Object(responses));
            client.request_state = result
                .get("requestState")
                .and_then(Value::as_str)
                .map(str::to_string);
            let retry = modern_params(method, params.clone(), &client);
            result = self
                .exchange(method, &retry, Some(sink), cancel, timeout, max_bytes)
                .await?;
        }
        Err(UpstreamError::Malformed(format!(
            "the upstream still needs input after {MAX_ROUNDS} rounds"
        )))
    }

    /// Listens on a `subscriptions/listen` stream for the list changes (no resource) or the updates of one
    /// resource, until the session ends or `stop` is cancelled; reopened when it breaks.
    pub(super) async fn listen_modern(
        self: Arc<Self>,
        uri: Option<String>,
        stop: CancellationToken,
    ) {
        let mut delay = Duration::from_millis(500);
        let notifications = match &uri {
            None => {
                json!({"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true})
            }
            Some(uri) => json!({"resourceSubscriptions": [uri]}),
        };
        while !self.closed.is_cancelled() && !stop.is_cancelled() {
            let params = modern_params(
                "subscriptions/listen",
                json!({"notifications": notifications}),
                &ClientSide::default(),
            );
            let id = self.fresh_id();
            let Ok(body) = request_body(id, "subscriptions/listen", &params) else {
                return;
            };
            let extra = routing_headers("subscriptions/listen", &params);
            let response = tokio::select! {
                r = self.post_with(body, &extra) => r,
                () = self.closed.cancelled() => return,
                () = stop.cancelled() => return,
            };
            match response {
                Ok(r) if r.status() == StatusCode::OK => {
                    if !self.follow(r, &stop).await {
                        return;
                    }
                    delay = Duration::from_millis(500);
                }
                // Not served at all: nothing to listen to. Anything else (busy, failing) is asked again later.
                Ok(r)
                    if matches!(
                        r.status(),
                        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                    ) =>
                {
                    tracing::debug!(upstream = %self.upstream, status = %r.status(), "listen stream refused");
                    break;
                }
                Ok(r) => {
                    tracing::debug!(upstream = %self.upstream, status = %r.status(), "listen stream refused for now");
                }
                Err(e) => {
                    tracing::debug!(upstream = %self.upstream, "listen stream failed: {e}");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.closed.cancelled() => return,
                () = stop.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// `resources/subscribe` and `resources/unsubscribe` of a modern upstream: a listen stream per resource.
    pub(super) fn subscription(self: &Arc<Self>, method: &str, params: &Value) -> Option<Value> {
        let uri = params.get("uri").and_then(Value::as_str)?.to_string();
        match method {
            "resources/subscribe" => {
                if let dashmap::Entry::Vacant(slot) = self.listens.entry(uri.clone()) {
                    let (stop, mine) = (CancellationToken::new(), self.fresh_id());
                    slot.insert((mine, stop.clone()));
                    let conn = Arc::clone(self);
                    tokio::spawn(async move {
                        Arc::clone(&conn)
                            .listen_modern(Some(uri.clone()), stop)
                            .await;
                        // Ended for good (unsubscribed, or not served): a later subscription starts anew.
                        conn.listens.remove_if(&uri, |_, (id, _)| *id == mine);
                    });
                }
                Some(json!({}))
            }
            "resources/unsubscribe" => {
                if let Some((_, (_, stop))) = self.listens.remove(&uri) {
                    stop.cancel();
                }
                Some(json!({}))
            }
            _ => None,
        }
    }
}
