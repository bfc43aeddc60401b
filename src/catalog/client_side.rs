//! What the client of the request in flight declared of itself, for the upstream that serves it: protocol
//! 2026-07-28 asks every request to carry its client's capabilities and log level, and a retried request
//! (multi round-trip) carries the client's input and the upstream's state. Set by the downstream around each
//! request (a task-local: it follows the request through the pipeline to the upstream call without every layer
//! passing it on); read when a request goes to a modern upstream.

use serde_json::{Map, Value};

/// The client's side of one request.
#[derive(Clone, Debug, Default)]
pub struct ClientSide {
    /// What the client declared it can do (`sampling`, `elicitation`, `roots` …), as JSON.
    pub capabilities: Value,
    /// The least severe log level the client wants for this request (2026-07-28 `_meta`, or its session's
    /// `logging/setLevel`), if it said; a legacy client that did not gets every level.
    pub log_level: Option<String>,
    /// The client speaks 2026-07-28: an upstream's `input_required` result goes back to it (checked and sealed)
    /// instead of being resolved by asking the client in between.
    pub modern: bool,
    /// A retried request's input: the client's answers to the upstream's input requests.
    pub input_responses: Option<Value>,
    /// A retried request's upstream state, after toolgate checked its own seal around it.
    pub request_state: Option<String>,
    /// A digest of a modern request's arguments, which a sealed `requestState` is bound to.
    pub arguments: Option<String>,
}

/// Whether a request may be answered `input_required` (protocol 2026-07-28): a tool call, a read or a prompt.
pub fn may_ask_for_input(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

tokio::task_local! {
    static CLIENT: ClientSide;
}

impl ClientSide {
    /// Runs `work` with this as the client's side of the request.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        CLIENT.scope(self, work).await
    }

    /// The client's side of the request in flight (outside one: a legacy client that declared nothing of its own,
    /// as toolgate's own requests and a legacy session's are).
    pub fn current() -> Self {
        CLIENT.try_with(Clone::clone).unwrap_or_default()
    }

    /// What an upstream is told the client can do: of what toolgate relays (sampling, elicitation, roots), what a
    /// modern client declared; all of it for a legacy client, whose session's capabilities toolgate checks itself
    /// when it relays (as it does with a legacy upstream), so that such a client sees the same either way.
    pub fn relayed_capabilities(&self) -> Value {
        if !self.modern {
            return super::relayed_capabilities();
        }
        let mut relayed = Map::new();
        for key in ["sampling", "elicitation", "roots"] {
            if let Some(value) = self.capabilities.get(key).filter(|v| !v.is_null()) {
                relayed.insert(key.to_string(), value.clone());
            }
        }
        Value::Object(relayed)
    }
}
