//! Multi round-trip requests (protocol 2026-07-28) between a modern client and a modern upstream. An upstream's
//! `input_required` result goes back to the client with each input request decided (`sample`, `elicit`, `roots`,
//! as requests relayed during a call are) and redacted by the request's rules, and with toolgate's own
//! `requestState`: the upstream's state sealed (AES-256-GCM, a key of this process, or of every replica) together with the caller, the
//! method, the item and an expiry. The client's retry is honoured only with a state toolgate sealed for this very
//! caller and request, still fresh; the upstream gets its own state back, and the client's answers as they came.
//! Nothing is kept between rounds.

use aws_lc_rs::aead::NONCE_LEN;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::model::{CallToolResult, ErrorCode, ErrorData, ResultType};
use serde_json::{Map, Value, json};

use super::CallContext;
use super::record::Outcome;
use crate::audit::DecisionRecord;
use crate::identity::Caller;
use crate::reason::Reason;

/// How long a sealed state may be presented back.
const STATE_TTL_SECS: i64 = 600;
/// Longest sealed state accepted (an upstream's own state is bounded by the answer size; this bounds the work).
const MAX_STATE: usize = 256 * 1024;

/// Seals and opens `requestState`s: AES-256-GCM with a key of this process, so that a client can neither change
/// nor read what it carries (an upstream's state may hold data the client's clearance would not show).
pub struct Rounds {
    sealer: crate::secret::Sealer,
}

/// What a `requestState` is sealed for (bound as associated data).
const PURPOSE: &str = "toolgate requestState";

/// Most input requests one `input_required` result may carry.
pub(super) const MAX_INPUT_REQUESTS: usize = 32;

impl Rounds {
    /// States sealed with `key`: the process's own, or the one replicas share (a retry may reach any of them).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            sealer: crate::secret::Sealer::new(key),
        }
    }

    /// The state a client echoes back: the upstream's `state` and the keys of the input requests toolgate let
    /// through, bound to the caller, method and item.
    pub fn seal(
        &self,
        caller: &Caller,
        method: &str,
        item: &str,
        state: Option<&str>,
        keys: Vec<&String>,
    ) -> String {
        // Bound to the arguments of the request it answers, when the client's side names them.
        let arguments = crate::catalog::ClientSide::current().arguments;
        self.seal_inner(
            caller,
            method,
            item,
            json!({"s": state, "k": keys, "a": arguments}),
        )
    }

    /// The state a client echoes back to continue a call toolgate holds for it (by the held call's id).
    pub fn seal_held(&self, caller: &Caller, method: &str, item: &str, held: &str) -> String {
        self.seal_inner(caller, method, item, json!({"h": held}))
    }

    fn seal_inner(&self, caller: &Caller, method: &str, item: &str, inner: Value) -> String {
        let mut payload = json!({
            "who": caller.subject_key(),
            "chain": caller.chain,
            "m": method,
            "n": item,
            "exp": jsonwebtoken::get_current_timestamp() as i64 + STATE_TTL_SECS,
        });
        if let (Some(payload), Value::Object(inner)) = (payload.as_object_mut(), inner) {
            payload.extend(inner);
        }
        // A nonce that cannot be drawn leaves a state that never opens (the retry is refused), never a reused one.
        self.sealer
            .seal(PURPOSE, &serde_json::to_vec(&payload).unwrap_or_default())
            .unwrap_or_default()
    }

    /// What a sealed state holds, if toolgate sealed it for this caller, method and item and it has not lapsed;
    /// why not, otherwise.
    pub fn open(
        &self,
        caller: &Caller,
        method: &str,
        item: &str,
        sealed: &str,
        arguments: Option<&str>,
    ) -> Result<Opened, &'static str> {
        if sealed.len() > MAX_STATE {
            return Err("it is longer than any state toolgate hands out");
        }
        if URL_SAFE_NO_PAD
            .decode(sealed)
            .map_or(true, |t| t.len() <= NONCE_LEN)
        {
            return Err("it is not a state toolgate handed out");
        }
        let payload = self
            .sealer
            .open(PURPOSE, sealed)
            .ok_or("its integrity check failed")?;
        let payload: Value = serde_json::from_slice(&payload)
            .map_err(|_| "it is not a state toolgate handed out")?;
        if payload["who"] != json!(caller.subject_key()) || payload["chain"] != json!(caller.chain)
        {
            return Err("it was handed out to another caller");
        }
        if payload["m"] != json!(method) || payload["n"] != json!(item) {
            return Err("it was handed out for another request");
        }
        if let (Some(sealed_for), Some(given)) = (payload["a"].as_str(), arguments)
            && sealed_for != given
        {
            return Err("it was handed out for other arguments");
        }
        let lapsed = payload["exp"]
            .as_i64()
            .is_none_or(|exp| exp < jsonwebtoken::get_current_timestamp() as i64);
        if lapsed {
            return Err("it has lapsed");
        }
        Ok(match payload["h"].as_str() {
            Some(held) => Opened::Held(held.to_string()),
            None => Opened::Upstream {
                state: payload["s"].as_str().map(str::to_string),
                keys: payload["k"]
                    .as_array()
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        })
    }
}

/// What a sealed `requestState` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The upstream's own state (if it gave one), to send back with the client's answers to the input requests
    /// toolgate let through (`keys`; answers to anything else are not passed on).
    Upstream {
        state: Option<String>,
        keys: Vec<String>,
    },
    /// The id of a call toolgate holds for the client (its upstream asked with a request of its own).
    Held(String),
}

/// The digest a sealed state binds a request's arguments by (SHA-256 of their JSON, keys in order).
pub fn arguments_digest(arguments: Option<&rmcp::model::JsonObject>) -> String {
    use sha2::Digest as _;
    let bytes = arguments
        .map(|a| serde_json::to_vec(a).unwrap_or_default())
        .unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// The refusal of a retry whose state toolgate did not seal for it.
pub fn state_refused(why: &str, record: &mut DecisionRecord) -> ErrorData {
    record.deny(Reason::RequestStateInvalid, vec![why.to_string()]);
    ErrorData::new(
        ErrorCode::INVALID_PARAMS,
        format!("requestState integrity check failed: {why}"),
        Some(json!({"reason": Reason::RequestStateInvalid.as_str()})),
    )
}

/// Whether a result asks for input.
pub(super) fn is_input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// An `input_required` answer for the client: the decided input requests, toolgate's sealed state.
pub(super) fn interim(requests: Map<String, Value>, sealed: String) -> Value {
    json!({"resultType": "input_required", "inputRequests": requests, "requestState": sealed})
}

/// A tool call's interim answer in the pipeline's result type; the downstream gives it in the wire form
/// ([`interim_of`]).
pub(super) fn interim_call(interim: Value) -> CallToolResult {
    let mut result = CallToolResult::success(Vec::new());
    result.result_type = Some(ResultType::INPUT_REQUIRED);
    result.structured_content = Some(interim);
    result
}

/// A tool call's interim answer on the wire, if the result is one.
pub fn interim_of(result: &CallToolResult) -> Option<&Value> {
    (result.result_type == Some(ResultType::INPUT_REQUIRED))
        .then_some(result.structured_content.as_ref())
        .flatten()
}

impl super::Gateway {
    /// The state a client echoes back to continue a call toolgate holds for it.
    pub fn seal_held(&self, caller: &Caller, method: &str, item: &str, held: &str) -> String {
        self.rounds.seal_held(caller, method, item, held)
    }

    /// Opens a retried request's `requestState`: what it holds when toolgate sealed it for this caller, method
    /// and item (the refusal, recorded, otherwise).
    pub async fn open_state(
        &self,
        call: &CallContext<'_>,
        (method, item, arguments): (&str, &str, Option<&str>),
        sealed: &str,
    ) -> Result<Opened, ErrorData> {
        match self
            .rounds
            .open(call.caller, method, item, sealed, arguments)
        {
            Ok(state) => Ok(state),
            Err(why) => {
                let mut record = super::record::caller_record(method, call);
                record.tool = Some(item.to_string());
                let refusal = state_refused(why, &mut record);
                self.commit(record, Err(refusal)).await
            }
        }
    }

    /// Decides again, when a modern client comes back to a call toolgate holds for it, whether the caller may
    /// still use the tool (its scope, the policy's `list`, the tool's pin): a policy reload or a narrower token
    /// ends the call there. The refusal is recorded and answered as for a tool the caller cannot see.
    pub async fn may_continue(&self, call: &CallContext<'_>, tool: &str) -> Result<(), ErrorData> {
        let visible = self.catalog.resolve(tool).is_some_and(|exposed| {
            let bundle = self.policy.current();
            let who = crate::policy::input::CallerInput::new(
                call.caller,
                call.session,
                &super::record::request_id_text(call.request_id),
            );
            let listing = bundle.decide(&super::listing::list_input(&who, &bundle, &exposed));
            call.caller.in_scope(&exposed.name)
                && listing.error.is_none()
                && listing.allow
                && self.pins.approved(&exposed)
        });
        if visible {
            return Ok(());
        }
        let mut record = super::record::caller_record("tools/call", call);
        record.tool = Some(tool.to_string());
        record.deny(
            Reason::UnknownTool,
            vec!["no longer available to the caller when its call was continued".into()],
        );
        let refusal = ErrorData::invalid_params(format!("Unknown tool: {tool}"), None);
        self.commit(record, Err(refusal)).await
    }

    /// A tool call's `input_required` result for a modern client, in the pipeline's result type.
    pub(super) async fn call_input_required(
        &self,
        call: &CallContext<'_>,
        tool: &crate::catalog::ExposedTool,
        rules: &crate::redact::Rules,
        result: Value,
        record: &mut DecisionRecord,
    ) -> Result<CallToolResult, ErrorData> {
        let relayed = super::relay::Relayed::Tool(tool);
        let interim = self
            .pass_input_required(call, relayed, rules, "tools/call", result, record)
            .await?;
        Ok(interim_call(interim))
    }

    /// An upstream's `input_required` result for a modern client: its input requests decided (refused requests
    /// refuse the call) and redacted, its state sealed.
    pub(super) async fn pass_input_required(
        &self,
        call: &CallContext<'_>,
        asker: super::relay::Relayed<'_>,
        rules: &crate::redact::Rules,
        method: &str,
        result: Value,
        record: &mut DecisionRecord,
    ) -> Result<Value, ErrorData> {
        // Each input request rebuilt from its method and params alone (nothing else of the upstream's passes).
        let mut requests: Map<String, Value> = match result.get("inputRequests") {
            Some(Value::Object(requests)) => requests
                .iter()
                .map(|(key, request)| {
                    let method = request.get("method").cloned().unwrap_or(Value::Null);
                    let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
                    (key.clone(), json!({"method": method, "params": params}))
                })
                .collect(),
            _ => Map::new(),
        };
        let state = result.get("requestState").and_then(Value::as_str);
        if requests.len() > MAX_INPUT_REQUESTS {
            record.outcome = Reason::UpstreamMalformed.into();
            return Err(ErrorData::internal_error(
                format!("the upstream asked for more than {MAX_INPUT_REQUESTS} inputs at once"),
                Some(json!({"reason": Reason::UpstreamMalformed.as_str()})),
            ));
        }
        if requests.is_empty() && state.is_none() {
            record.outcome = Reason::UpstreamMalformed.into();
            return Err(ErrorData::internal_error(
                "the upstream asked for input without saying what (no inputRequests, no requestState)",
                Some(json!({"reason": Reason::UpstreamMalformed.as_str()})),
            ));
        }
        self.decide_input_requests(call, asker, rules, &mut requests)
            .await?;
        record.decision = "allow".into();
        record.outcome = Reason::InputRequired.into();
        record.upstream_outcome = Some(Reason::InputRequired.as_str().into());
        let keys = requests.keys().collect();
        let sealed = self
            .rounds
            .seal(call.caller, method, asker.name(), state, keys);
        Ok(interim(requests, sealed))
    }
}
