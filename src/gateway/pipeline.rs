//! The request pipeline, top to bottom as in the design:
//! authenticate → resolve tool → authorize → call upstream → redact → record → reply.
//! It serves a [`CallContext`] (the verified caller, the session id, the request id), whatever the transport.

use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorData, ListToolsResult, RequestId};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::refusal::{self, Refusal};
use super::{Gateway, elapsed_us};
use crate::audit::{DecisionRecord, arguments_hash, recorded_arguments};
use crate::catalog::{CallSink, ExposedTool};
use crate::classification::Classification;
use crate::identity::Caller;
use crate::manifest::ToolManifest;
use crate::policy::input::{CallerInput, ToolRef};
use crate::policy::{Action, Bundle, Decision, PolicyInput, facts};
use crate::redact::{RedactError, RedactionSummary, Rules, widen_output_schema};
use crate::store::{Approval, ApprovalStatus, Escalation};
use crate::telemetry;

/// What the pipeline needs of the request it serves: who is asking (verified for this very request), in which
/// session, under which request id. Never the transport's session itself.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    pub caller: &'a Caller,
    pub session: &'a str,
    pub request_id: &'a RequestId,
}

impl<'a> CallContext<'a> {
    pub fn new(caller: &'a Caller, session: &'a str, request_id: &'a RequestId) -> Self {
        Self {
            caller,
            session,
            request_id,
        }
    }
}

impl Gateway {
    /// `tools/list`: the tools whose `list` decision allows this caller, one page at a time.
    pub async fn list_tools(
        &self,
        call: &CallContext<'_>,
        cursor: Option<&str>,
    ) -> Result<ListToolsResult, ErrorData> {
        let CallContext {
            caller,
            session,
            request_id,
        } = *call;
        // 1. authenticate: `caller` was verified for this very request.
        let started = Instant::now();
        let page_size = self.config.limits.page_size;
        let after = match cursor {
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
            ),
            None => None,
        };
        // 2–3. resolve and authorize every tool with one bundle version: in scope, and allowed by policy.
        let bundle = self.policy.current();
        let who = CallerInput::new(caller, session, &request_id_text(request_id));
        let failures = std::cell::Cell::new(0usize);
        // One tool more than a page tells whether there is a next page.
        let mut tools = tracing::info_span!("authorize").in_scope(|| {
            self.catalog
                .tools_after(after.as_deref(), page_size.saturating_add(1), |t| {
                    // Quarantined tools (a definition not approved) are shown to nobody.
                    if !caller.in_scope(&t.name) || !self.pins.approved(t) {
                        return false;
                    }
                    let decision = bundle.decide(&list_input(&who, &bundle, t));
                    if let Some(error) = &decision.error {
                        // A tool the policy cannot decide on is not shown (the decision denies it).
                        failures.set(failures.get() + 1);
                        tracing::error!(tool = %t.name, reason = error.reason_id(), "policy failed on tools/list: {error}");
                    }
                    decision.allow
                })
        });
        let next_cursor = if tools.len() > page_size {
            tools.truncate(page_size);
            tools.last().map(|t| encode_cursor(&t.name))
        } else {
            None
        };
        let mut result =
            ListToolsResult::with_all_items(tools.iter().map(|t| advertised(&bundle, t)).collect());
        result.result_type = None;
        result.next_cursor = next_cursor;
        // One record for the whole listing.
        let mut record = caller_record("tools/list", call);
        record.decision = "allow".into();
        record.outcome = "listed".into();
        record.listed = Some(result.tools.len() as u64);
        record.policy_version = Some(bundle.version.clone());
        if failures.get() > 0 {
            record.reasons = vec![format!(
                "{} tool(s) hidden because the policy could not decide",
                failures.get()
            )];
        }
        record.latency.authorize_us = Some(elapsed_us(started));
        record.latency.total_us = elapsed_us(started);
        self.commit(record, Ok(result)).await
    }

    /// `tools/call`: resolve, authorize, forward, redact, record. Every outcome leaves a decision record, and the
    /// answer leaves only once its record is committed.
    pub async fn call_tool(
        &self,
        call: &CallContext<'_>,
        params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        tracing::debug!(session = %call.session, request = ?call.request_id, tool = %params.name, "tools/call received");
        let mut record = caller_record("tools/call", call);
        record.tool = Some(params.name.to_string());
        record.arguments = recorded_arguments(
            self.config.audit.arguments,
            params.arguments.as_ref(),
            &self.redactor,
            self.config.redaction.default_clearance,
        );
        let answer = self
            .decide_and_call(call, params, sink, cancel, &mut record)
            .await;
        record.latency.total_us = elapsed_us(started);
        self.commit(record, answer).await
    }

    /// Steps 2–3 of a call: resolve the tool and authorize these arguments, with one bundle version. Breaks with
    /// the answer when the call goes no further; fills in `record` as it goes.
    async fn authorize(
        &self,
        call: &CallContext<'_>,
        params: &CallToolRequestParams,
        record: &mut DecisionRecord,
        request: &tracing::Span,
    ) -> ControlFlow<Result<CallToolResult, ErrorData>, (Arc<ExposedTool>, Rules)> {
        // 2. resolve the tool; unknown tools and tools outside the caller's scope get the same answer.
        let CallContext {
            caller,
            session,
            request_id,
        } = *call;
        let authorizing = Instant::now();
        let bundle = self.policy.current();
        record.policy_version = Some(bundle.version.clone());
        let Some(tool) = self
            .catalog
            .resolve(&params.name)
            .filter(|t| caller.in_scope(&t.name))
        else {
            record.deny("unknown_tool", Vec::new());
            return Break(Refusal::UnknownTool { name: &params.name }.answer());
        };
        record.upstream = Some(tool.upstream.to_string());
        // 3. authorize, with one bundle version. A tool hidden from this caller's list is unknown to it; when the
        // policy cannot decide whether the caller may see the tool, it is hidden as in `tools/list`.
        let who = CallerInput::new(caller, session, &request_id_text(request_id));
        let listing = bundle.decide(&list_input(&who, &bundle, &tool));
        let hidden = match (&listing.error, listing.allow) {
            (Some(error), _) => Some(format!("hidden: {} ({error})", error.reason_id())),
            (None, true) => None,
            (None, false) => Some("hidden by policy".to_string()),
        };
        if let Some(why) = hidden {
            record.deny("unknown_tool", vec![why]);
            return Break(Refusal::UnknownTool { name: &params.name }.answer());
        }
        // A tool the caller may see names the request's span; a name a caller made up, or a hidden tool, does not.
        telemetry::named_tool(request, &tool.name, &tool.upstream);
        record.pin = Some(tool.pin_hash.to_string());
        // A tool whose definition changed upstream is not trusted until an admin approves it.
        if !self.pins.approved(&tool) {
            record.deny(
                "tool_quarantined",
                vec!["the tool's definition is not approved".into()],
            );
            return Break(Refusal::Quarantined { tool: &tool.name }.answer());
        }
        // The arguments must match the tool's advertised inputSchema before anything reads them (absent = `{}`).
        if let Err(refused) = tool.input_schema.check(params.arguments.as_ref()) {
            record.deny(refused.reason_id(), refused.reasons());
            let text = refused.message(&tool.name);
            return Break(Refusal::Refused { text }.answer());
        }
        // The arguments: facts computed by real parsers as the manifest directs, then the decision.
        let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
        let arguments = params.arguments.as_ref();
        let mut facts = facts::for_call_blocking(manifest, arguments).await;
        // What the detectors find in the arguments is a fact too (exfiltration).
        if let Some(arguments) = arguments {
            add_detected(&mut facts, arguments, self.redactor.detectors());
        }
        // The record shows the facts the decision used (redacted like arguments, bounded).
        record.facts = recorded_facts(
            &facts,
            &self.redactor,
            self.config.redaction.default_clearance,
        );
        let input = who.for_tool(tool_ref(&tool, manifest), Action::Call, arguments, facts);
        let decision = bundle.decide(&input);
        if let Some(error) = &decision.error {
            record.fail(error.reason_id(), decision.reasons.clone());
            return Break(
                Refusal::CannotDecide {
                    reason: error.reason_id(),
                }
                .answer(),
            );
        }
        record.reasons.clone_from(&decision.reasons);
        if decision.escalate {
            match self
                .escalate(caller, &tool, &decision, &bundle.version, arguments)
                .await
            {
                Ok(Escalation::Granted(id)) => {
                    tracing::info!(approval = %id, tool = %tool.name, "approved call goes through (approval consumed)");
                    record.reasons.push(format!("approved: {id}"));
                }
                Ok(Escalation::Pending { id, expires_at }) => {
                    record.decision = "escalate".into();
                    record.outcome = "approval_required".into();
                    record.reasons.push(format!("approval: {id}"));
                    return Break(
                        Refusal::ApprovalRequired {
                            tool: &tool.name,
                            id: &id,
                            expires_at,
                            reasons: &decision.reasons,
                        }
                        .answer(),
                    );
                }
                Ok(Escalation::Denied { id, expires_at }) => {
                    record.deny("approval_denied", decision.reasons.clone());
                    record.reasons.push(format!("approval: {id}"));
                    return Break(
                        Refusal::ApprovalDenied {
                            tool: &tool.name,
                            id: &id,
                            expires_at,
                        }
                        .answer(),
                    );
                }
                Err(error) => {
                    tracing::error!("cannot hold the call for approval: {error}");
                    record.fail("store_unavailable", decision.reasons.clone());
                    return Break(
                        Refusal::CannotDecide {
                            reason: "store_unavailable",
                        }
                        .answer(),
                    );
                }
            }
        } else if !decision.allow {
            record.deny("policy_denied", decision.reasons.clone());
            return Break(
                Refusal::PolicyDenied {
                    tool: &tool.name,
                    reasons: &decision.reasons,
                }
                .answer(),
            );
        }
        // The clearance the result is redacted to: the policy's obligation (else the configured default), never
        // above the chain's lowest maximum (enforced here, not only in Rego).
        let clearance = decision
            .obligations
            .clearance
            .unwrap_or(self.config.redaction.default_clearance)
            .min(caller.clearance);
        let also_mask = decision.obligations.redact.clone();
        let mut rules = Rules::for_tool(manifest, clearance, also_mask);
        // Columns granted masked are masked by name in a tabular answer; with no table to find them in, the
        // call is refused rather than answered unmasked.
        if !decision.obligations.mask_columns.is_empty() {
            let Some(shape) = manifest.output.table.clone() else {
                let why = "the policy grants columns only masked, but the tool's manifest declares no table shape \
                           (`output.table`) to mask them in"
                    .to_string();
                record.deny("policy_denied", vec![why.clone()]);
                let reasons = [why];
                return Break(
                    Refusal::PolicyDenied {
                        tool: &tool.name,
                        reasons: &reasons,
                    }
                    .answer(),
                );
            };
            rules.columns = Some(crate::redact::ColumnMasks {
                shape,
                names: decision.obligations.mask_columns.clone(),
            });
        }
        record.obligations = Some(serde_json::json!({
            "clearance": clearance,
            "policy_clearance": decision.obligations.clearance,
            "redact": decision.obligations.redact,
            "mask_columns": decision.obligations.mask_columns.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        }));
        record.latency.authorize_us = Some(elapsed_us(authorizing));
        Continue((tool, rules))
    }

    /// Steps 2–5 of a call, each in its own span; fills in `record` as it goes.
    async fn decide_and_call(
        &self,
        call: &CallContext<'_>,
        params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
        record: &mut DecisionRecord,
    ) -> Result<CallToolResult, ErrorData> {
        // 1. authenticate: `caller` was verified for this very request (its span is a sibling of these).
        let request = tracing::Span::current();
        let authorized = self
            .authorize(call, &params, record, &request)
            .instrument(tracing::info_span!("authorize"))
            .await;
        let (tool, rules) = match authorized {
            Continue(authorized) => authorized,
            Break(answer) => return answer,
        };
        // Nothing reaches an upstream while decisions cannot be recorded.
        if !self.audit.healthy() {
            record.fail("audit_unavailable", Vec::new());
            return Refusal::CannotDecide {
                reason: "audit_unavailable",
            }
            .answer();
        }
        // 4. call the upstream; the call's notifications go back to this client only, redacted like the result.
        let sink = {
            let (redactor, rules) = (Arc::clone(&self.redactor), rules.clone());
            sink.with_filter(Arc::new(move |value: &mut serde_json::Value| {
                redactor.redact_value(value, &rules).is_ok()
            }))
        };
        let calling = Instant::now();
        let outcome = self
            .catalog
            .call(&tool, params.arguments, sink, cancel)
            .instrument(tracing::info_span!(
                "upstream",
                otel.kind = "client",
                toolgate.upstream = %tool.upstream,
                gen_ai.tool.name = %tool.original,
            ))
            .await;
        record.latency.upstream_us = Some(elapsed_us(calling));
        record.decision = "allow".into();
        let result = match outcome {
            Ok(mut result) => {
                result.result_type = None;
                record.outcome = "allowed".into();
                record.upstream_outcome = Some(
                    if result.is_error == Some(true) {
                        "tool_error"
                    } else {
                        "ok"
                    }
                    .into(),
                );
                result
            }
            Err(error) => {
                record.outcome = error.reason_id().into();
                record.upstream_outcome = Some(error.reason_id().into());
                // The upstream's words may carry values: recorded redacted, like arguments.
                let mut said = serde_json::Value::String(error.to_string());
                let plain = Rules::plain(self.config.redaction.default_clearance);
                if self.redactor.redact_value(&mut said, &plain).is_ok()
                    && let serde_json::Value::String(said) = said
                {
                    record.reasons.push(said);
                }
                // The tool ran and failed: an `isError` result, redacted like any other.
                Refusal::UpstreamFailed {
                    tool: &tool.name,
                    upstream: &tool.upstream,
                    error: &error,
                }
                .answer()?
            }
        };
        // 5. redact every plane of the result (error text included) to the caller's clearance; a result that
        // cannot be redacted is withheld.
        let redacting = Instant::now();
        let redacted = tracing::info_span!("redact").in_scope(|| self.redact(result, &rules));
        record.latency.redact_us = Some(elapsed_us(redacting));
        // 6. record: by the caller of this function, before the answer leaves.
        match redacted {
            Ok((result, summary)) => {
                if !summary.is_empty() {
                    record.redactions = serde_json::to_value(&summary).ok();
                }
                Ok(result)
            }
            Err(error) => {
                record.fail("redaction_failed", vec![error.to_string()]);
                Refusal::CannotDecide {
                    reason: "redaction_failed",
                }
                .answer()
            }
        }
    }

    /// Redacts a result through its JSON form, so that every plane (`_meta` included) is seen.
    fn redact(
        &self,
        result: CallToolResult,
        rules: &Rules,
    ) -> Result<(CallToolResult, RedactionSummary), RedactError> {
        let mut value =
            serde_json::to_value(&result).map_err(|e| RedactError::Shape(e.to_string()))?;
        let summary = self.redactor.redact_result(&mut value, rules)?;
        if summary.is_empty() {
            return Ok((result, summary));
        }
        let mut redacted: CallToolResult =
            serde_json::from_value(value).map_err(|e| RedactError::Shape(e.to_string()))?;
        redacted.result_type = None;
        Ok((redacted, summary))
    }

    /// Commits `record`, then lets `answer` go; if the record cannot be written, the answer is withheld.
    async fn commit<T>(
        &self,
        record: DecisionRecord,
        answer: Result<T, ErrorData>,
    ) -> Result<T, ErrorData> {
        tracing::info!(
            record = %record.id,
            session = record.session.as_deref().unwrap_or(""),
            request = record.request_id.as_deref().unwrap_or(""),
            mode = record.mode.as_deref().unwrap_or(""),
            issuer = record.issuer.as_deref().unwrap_or(""),
            subject = record.subject.as_deref().unwrap_or(""),
            chain = ?record.chain,
            tool = record.tool.as_deref().unwrap_or(""),
            upstream = record.upstream.as_deref().unwrap_or(""),
            decision = %record.decision,
            outcome = %record.outcome,
            reasons = ?record.reasons,
            policy_version = record.policy_version.as_deref().unwrap_or(""),
            elapsed_us = record.latency.total_us,
            "{}", record.kind
        );
        self.metrics.decided(&record);
        let request = tracing::Span::current();
        telemetry::decided(&request, &record, answered_error(&record));
        let committing = Instant::now();
        let committed = self
            .audit
            .append(record)
            .instrument(tracing::info_span!("record"))
            .await;
        self.metrics.step("record", committing.elapsed());
        let answer = match committed {
            Ok(()) => answer,
            Err(error) => {
                tracing::error!("answer withheld: {error}");
                telemetry::failed(&request, "audit_unavailable");
                Err(refusal::cannot_decide("audit_unavailable"))
            }
        };
        if let Err(error) = &answer {
            request.record("rpc.response.status_code", error.code.0);
        }
        answer
    }

    /// Holds an escalated call for approval, or consumes the approval that grants it.
    async fn escalate(
        &self,
        caller: &Caller,
        tool: &ExposedTool,
        decision: &Decision,
        policy_version: &str,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Escalation, crate::store::StoreError> {
        let now = crate::clock::unix_now();
        let ttl = i64::try_from(self.config.policy.approval_ttl.as_secs()).unwrap_or(i64::MAX);
        let request = Approval {
            id: format!("apr_{}", uuid::Uuid::now_v7().simple()),
            status: ApprovalStatus::Pending,
            issuer: caller.issuer.clone(),
            subject: caller.subject.clone(),
            chain: caller.chain.clone(),
            tool: tool.name.to_string(),
            pin: None,
            arguments_hash: arguments_hash(arguments),
            reasons: decision.reasons.clone(),
            policy_version: policy_version.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            decided_by: None,
            decided_at: None,
            used_at: None,
        };
        self.store.escalate(request, now).await
    }
}

fn request_id_text(id: &RequestId) -> String {
    match id {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
    }
}

fn tool_ref<'a>(tool: &'a ExposedTool, manifest: &'a ToolManifest) -> ToolRef<'a> {
    ToolRef {
        name: &tool.name,
        upstream: &tool.upstream,
        original: &tool.original,
        manifest,
        annotations: tool.annotations_json.as_ref(),
    }
}

fn list_input(who: &CallerInput, bundle: &Bundle, tool: &ExposedTool) -> PolicyInput {
    let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
    who.for_tool(
        tool_ref(tool, manifest),
        Action::List,
        None,
        serde_json::Map::new(),
    )
}

/// Cursors are opaque to clients: the last listed name, base64url-encoded.
fn encode_cursor(name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// A tool's definition as this bundle advertises it: the output schema accepts masks at classified fields.
fn advertised(bundle: &Bundle, tool: &ExposedTool) -> rmcp::model::Tool {
    let mut definition = tool.definition.clone();
    let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
    if !manifest.output.fields.is_empty()
        && let Some(schema) = definition.output_schema.take()
    {
        let mut schema = std::sync::Arc::unwrap_or_clone(schema);
        widen_output_schema(&mut schema, manifest);
        definition.output_schema = Some(std::sync::Arc::new(schema));
    }
    definition
}

/// Largest facts document a record keeps; a larger one is recorded as its size and hash.
const MAX_RECORDED_FACTS: usize = 16 * 1024;

/// The facts as a record keeps them: values in them (error texts quote the statement) redacted like recorded
/// arguments, and bounded.
fn recorded_facts(
    facts: &serde_json::Map<String, serde_json::Value>,
    redactor: &crate::redact::Redactor,
    clearance: Classification,
) -> Option<serde_json::Value> {
    use sha2::Digest;
    if facts.is_empty() {
        return None;
    }
    let mut value = serde_json::Value::Object(facts.clone());
    if redactor
        .redact_value(&mut value, &Rules::plain(clearance))
        .is_err()
    {
        return Some(serde_json::json!({"unrecorded": "the facts could not be redacted"}));
    }
    let text = serde_json::to_vec(&value).unwrap_or_default();
    if text.len() > MAX_RECORDED_FACTS {
        return Some(serde_json::json!({
            "truncated": true,
            "bytes": text.len(),
            "sha256": hex::encode(sha2::Sha256::digest(&text)),
        }));
    }
    Some(value)
}

/// Adds what the detectors find in each argument to its facts: `detected: [{detector, class, path}]`.
fn add_detected(
    facts: &mut serde_json::Map<String, serde_json::Value>,
    arguments: &serde_json::Map<String, serde_json::Value>,
    detectors: &crate::redact::Detectors,
) {
    fn strings<'a>(
        value: &'a serde_json::Value,
        path: String,
        out: &mut Vec<(String, &'a str)>,
        depth: usize,
    ) {
        if depth > 32 {
            return;
        }
        match value {
            serde_json::Value::String(s) => out.push((path, s)),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    strings(item, format!("{path}[{i}]"), out, depth + 1);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    strings(v, format!("{path}.{k}"), out, depth + 1);
                }
            }
            _ => {}
        }
    }
    for (name, value) in arguments {
        let mut found = Vec::new();
        let mut texts = Vec::new();
        strings(value, format!("$.{name}"), &mut texts, 0);
        for (path, text) in texts {
            for hit in detectors.find(text) {
                found.push(
                    serde_json::json!({"detector": hit.detector, "class": hit.class, "path": path}),
                );
            }
        }
        if found.is_empty() {
            continue;
        }
        let fact = facts
            .entry(name.clone())
            .or_insert_with(|| serde_json::json!({"kind": "value", "present": true}));
        fact["detected"] = serde_json::Value::Array(found);
    }
}

/// A record with who is asking filled in.
fn caller_record(kind: &str, call: &CallContext<'_>) -> DecisionRecord {
    let CallContext {
        caller,
        session,
        request_id,
    } = *call;
    let mut record = DecisionRecord::new(kind);
    record.request_id = Some(request_id_text(request_id));
    record.session = Some(session.to_string());
    record.mode = Some(
        match caller.mode {
            crate::identity::Mode::PrincipalContext => "principal_context",
            crate::identity::Mode::AgentOnly => "agent_only",
        }
        .into(),
    );
    record.issuer = Some(caller.issuer.clone());
    record.subject = Some(caller.subject.clone());
    record.principal = caller.principal.as_ref().map(|p| p.subject.clone());
    record.agent = Some(caller.actor.clone());
    record.chain.clone_from(&caller.chain);
    record.latency.authenticate_us = Some(caller.authenticated_us);
    record
}

/// The error type of an answer that is an error (a JSON-RPC error or an `isError` result), as its reason id.
fn answered_error(record: &DecisionRecord) -> Option<&str> {
    match (record.decision.as_str(), record.outcome.as_str()) {
        ("allow", "allowed") if record.upstream_outcome.as_deref() == Some("tool_error") => {
            Some("tool_error")
        }
        ("allow", "allowed" | "listed") => None,
        (_, outcome) => Some(outcome),
    }
}

trait Outcome {
    fn deny(&mut self, outcome: &str, reasons: Vec<String>);
    fn fail(&mut self, outcome: &str, reasons: Vec<String>);
}

impl Outcome for DecisionRecord {
    fn deny(&mut self, outcome: &str, reasons: Vec<String>) {
        self.decision = "deny".into();
        self.outcome = outcome.into();
        self.reasons = reasons;
    }

    fn fail(&mut self, outcome: &str, reasons: Vec<String>) {
        self.decision = "error".into();
        self.outcome = outcome.into();
        self.reasons = reasons;
    }
}
