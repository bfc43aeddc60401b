//! Requests an upstream makes of the client during a tool call (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`): decided, recorded and relayed only to the client whose call caused them. The policy decides
//! `sample`, `elicit` or `roots` with the call's tool, the caller and the request's parameters as arguments (and
//! the detectors' findings in them as facts, after the parameters were redacted to the caller's clearance). The request leaves redacted like the call's result; the record holds its parameters as
//! `audit.arguments` says and the answer's outcome, never the answer itself.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use rmcp::model::{ErrorCode, ErrorData, RequestId};
use serde_json::{Map, Value, json};

use super::listing::{add_detected, tool_ref};
use super::record::{Outcome, caller_record, recorded_facts};
use super::{CallContext, Gateway, elapsed_us};
use crate::audit::recorded_arguments;
use crate::catalog::{Asker, CallSink, ExposedTool};
use crate::identity::Caller;
use crate::policy::Action;
use crate::policy::input::CallerInput;
use crate::reason::Reason;
use crate::redact::Rules;

/// The client's side of a call, guarded: every request is decided and recorded before it reaches the client.
pub(super) struct Guarded {
    inner: Arc<dyn Asker>,
    gateway: GatewayParts,
    caller: Caller,
    session: String,
    request_id: RequestId,
    tool: Arc<ExposedTool>,
}

/// What a guarded request needs of the gateway, owned (it outlives the borrow of the call).
#[derive(Clone)]
struct GatewayParts {
    policy: Arc<crate::policy::PolicyEngine>,
    audit: Arc<crate::audit::Audit>,
    redactor: Arc<crate::redact::Redactor>,
    config: Arc<crate::config::Config>,
}

impl Gateway {
    /// A call's sink as the upstream gets it: what it sends the client is redacted by the call's rules, and its
    /// requests of the client are decided and recorded.
    pub(super) fn call_sink(
        &self,
        sink: CallSink,
        call: &CallContext<'_>,
        tool: &Arc<ExposedTool>,
        rules: &Rules,
    ) -> CallSink {
        let (redactor, rules) = (Arc::clone(&self.redactor), rules.clone());
        let sink = sink.with_filter(Arc::new(move |value: &mut Value| {
            redactor.redact_value(value, &rules).is_ok()
        }));
        match sink.asker() {
            Some(inner) => {
                let guarded = self.guard_asker(inner, call, tool);
                sink.with_asker(guarded)
            }
            None => sink,
        }
    }

    /// Guards the client's side of a call to `tool`.
    fn guard_asker(
        &self,
        inner: Arc<dyn Asker>,
        call: &CallContext<'_>,
        tool: &Arc<ExposedTool>,
    ) -> Arc<dyn Asker> {
        Arc::new(Guarded {
            inner,
            gateway: self.parts(),
            caller: call.caller.clone(),
            session: call.session.to_string(),
            request_id: call.request_id.clone(),
            tool: Arc::clone(tool),
        })
    }
}

/// What a relayed request of the client is made for: a tool call, or a prompt or resource request.
#[derive(Clone, Copy)]
pub(super) enum Relayed<'a> {
    Tool(&'a ExposedTool),
    Item(&'a super::surface::Item),
}

impl Relayed<'_> {
    /// The exposed name of the tool, prompt or resource.
    pub(super) fn name(&self) -> &str {
        match self {
            Self::Tool(tool) => &tool.name,
            Self::Item(item) => &item.exposed,
        }
    }

    fn upstream(&self) -> &str {
        match self {
            Self::Tool(tool) => &tool.upstream,
            Self::Item(item) => &item.upstream.name,
        }
    }
}

impl Gateway {
    /// What a relayed request's decision needs of the gateway, owned.
    fn parts(&self) -> GatewayParts {
        GatewayParts {
            policy: Arc::clone(&self.policy),
            audit: Arc::clone(&self.audit),
            redactor: Arc::clone(&self.redactor),
            config: Arc::clone(&self.config),
        }
    }
}

impl GatewayParts {
    /// Decides a request of the client for `tool`'s upstream (`sampling/createMessage`, `elicitation/create`,
    /// `roots/list`): the record to finish once the client answered, or the refusal (recorded).
    async fn decide(
        &self,
        call: &CallContext<'_>,
        relayed: Relayed<'_>,
        method: &str,
        params: &Value,
    ) -> Result<(crate::audit::DecisionRecord, Instant), ErrorData> {
        let parts = self;
        let started = Instant::now();
        let mut record = caller_record(method, call);
        record.tool = Some(relayed.name().to_string());
        record.upstream = Some(relayed.upstream().to_string());
        let clearance = parts.config.redaction.default_clearance;
        let arguments = match params {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        record.arguments = recorded_arguments(
            parts.config.audit.arguments,
            Some(&arguments),
            &parts.redactor,
            clearance,
        );
        let action = match method {
            "sampling/createMessage" => Action::Sample,
            "elicitation/create" => Action::Elicit,
            "roots/list" => Action::Roots,
            other => {
                record.deny(Reason::MethodNotRelayed, Vec::new());
                let _ = parts.audit.append(record).await;
                return Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("`{other}` requests are not relayed to clients by toolgate"),
                    None,
                ));
            }
        };
        let bundle = parts.policy.current();
        record.policy_version = Some(bundle.version.clone());
        let mut facts = Map::new();
        add_detected(&mut facts, &arguments, parts.redactor.detectors());
        record.facts = recorded_facts(&facts, &parts.redactor, clearance);
        let who = CallerInput::new(
            call.caller,
            call.session,
            &super::record::request_id_text(call.request_id),
        );
        let input = match relayed {
            Relayed::Tool(tool) => {
                let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
                who.for_tool(tool_ref(tool, manifest), action, Some(&arguments), facts)
            }
            Relayed::Item(item) => {
                super::surface::item_input(&who, &bundle, item, action, Some(&arguments))
            }
        };
        let decision = bundle.decide(&input);
        let refused = match (&decision.error, decision.allow && !decision.escalate) {
            (Some(error), _) => {
                record.fail(error.reason_id(), decision.reasons.clone());
                Some(format!("the policy cannot decide ({})", error.reason_id()))
            }
            (None, false) => {
                record.deny(Reason::PolicyDenied, decision.reasons.clone());
                Some(if decision.reasons.is_empty() {
                    "the policy does not allow it".to_string()
                } else {
                    decision.reasons.join("; ")
                })
            }
            (None, true) => None,
        };
        if let Some(why) = refused {
            record.latency.total_us = elapsed_us(started);
            let _ = parts.audit.append(record).await;
            return Err(ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                format!(
                    "toolgate refused `{method}` from `{}`: {why}",
                    relayed.name()
                ),
                Some(json!({"reason": Reason::PolicyDenied.as_str()})),
            ));
        }
        record.reasons.clone_from(&decision.reasons);
        // Nothing reaches the client while its decision cannot be recorded.
        if !parts.audit.healthy() {
            record.fail(Reason::AuditUnavailable, Vec::new());
            return Err(super::refusal::cannot_decide(Reason::AuditUnavailable));
        }
        Ok((record, started))
    }
}

impl Gateway {
    /// Decides the input requests of an upstream's `input_required` result for a modern client, as requests of
    /// the client relayed during a call are decided; each allowed one is recorded as asked (`input_required`), its
    /// parameters redacted by the call's rules. One refused request refuses the call.
    pub(super) async fn decide_input_requests(
        &self,
        call: &CallContext<'_>,
        relayed: Relayed<'_>,
        rules: &Rules,
        requests: &mut Map<String, Value>,
    ) -> Result<(), ErrorData> {
        let parts = self.parts();
        for request in requests.values_mut() {
            let method = request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
            let (mut record, started) = parts.decide(call, relayed, &method, &params).await?;
            if let Some(params) = request.get_mut("params")
                && self.redactor.redact_value(params, rules).is_err()
            {
                record.fail(Reason::RedactionFailed, Vec::new());
                let _ = self.audit.append(record).await;
                return Err(super::refusal::cannot_decide(Reason::RedactionFailed));
            }
            record.decision = "allow".into();
            record.outcome = Reason::InputRequired.into();
            record.latency.total_us = elapsed_us(started);
            self.audit.append(record).await.map_err(|error| {
                tracing::error!("input request withheld: {error}");
                super::refusal::cannot_decide(Reason::AuditUnavailable)
            })?;
        }
        Ok(())
    }
}

impl Asker for Guarded {
    fn ask(&self, method: String, params: Value) -> BoxFuture<'static, Result<Value, ErrorData>> {
        let inner = Arc::clone(&self.inner);
        let parts = self.gateway.clone();
        let (caller, session, request_id, tool) = (
            self.caller.clone(),
            self.session.clone(),
            self.request_id.clone(),
            Arc::clone(&self.tool),
        );
        Box::pin(async move {
            let call = CallContext::new(&caller, &session, &request_id);
            let (mut record, started) = parts
                .decide(&call, Relayed::Tool(&tool), &method, &params)
                .await?;
            let answer = inner.ask(method, params).await;
            record.decision = "allow".into();
            match &answer {
                Ok(result) => {
                    record.outcome = Reason::Allowed.into();
                    // An elicitation's answer says what the user did; its content stays out of the record.
                    let said = result
                        .get("action")
                        .and_then(Value::as_str)
                        .unwrap_or("answered");
                    record.upstream_outcome = Some(said.chars().take(32).collect());
                }
                Err(error) => {
                    // The client's side says when the client was never asked (no such capability).
                    let missing = error.data.as_ref().and_then(|d| d.get("reason"))
                        == Some(&json!(Reason::ClientCapabilityMissing.as_str()));
                    if missing {
                        record.outcome = Reason::ClientCapabilityMissing.into();
                        record.reasons.push(error.message.to_string());
                    } else {
                        record.outcome = Reason::ClientFailed.into();
                        record
                            .reasons
                            .push(format!("client answered {}", error.code.0));
                    }
                }
            }
            record.latency.total_us = elapsed_us(started);
            if let Err(error) = parts.audit.append(record).await {
                tracing::error!("answer to the upstream withheld: {error}");
                return Err(super::refusal::cannot_decide(Reason::AuditUnavailable));
            }
            answer
        })
    }
}
