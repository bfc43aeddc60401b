//! The decision record of a request: built with who is asking, filled in as the pipeline goes, committed before
//! the answer leaves (and the answer withheld when it cannot be).

use std::time::Instant;

use rmcp::model::{ErrorData, RequestId};
use tracing::Instrument;

use super::Gateway;
use super::refusal;
use super::{CallContext, elapsed_us};
use crate::audit::DecisionRecord;
use crate::classification::Classification;
use crate::reason::Reason;
use crate::redact::Rules;
use crate::telemetry;

impl Gateway {
    /// Commits `record`, then lets `answer` go; if the record cannot be written, the answer is withheld.
    pub(super) async fn commit<T>(
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
                telemetry::failed(&request, Reason::AuditUnavailable.as_str());
                Err(refusal::cannot_decide(Reason::AuditUnavailable))
            }
        };
        if let Err(error) = &answer {
            request.record("rpc.response.status_code", error.code.0);
        }
        answer
    }
}

/// A record with who is asking filled in.
pub(super) fn caller_record(kind: &str, call: &CallContext<'_>) -> DecisionRecord {
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

/// Largest facts document a record keeps; a larger one is recorded as its size and hash.
const MAX_RECORDED_FACTS: usize = 16 * 1024;

/// The facts as a record keeps them: values in them (error texts quote the statement) redacted like recorded
/// arguments, and bounded.
pub(super) fn recorded_facts(
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

/// How a record ends when the call goes no further.
pub(super) trait Outcome {
    fn deny(&mut self, outcome: Reason, reasons: Vec<String>);
    fn fail(&mut self, outcome: Reason, reasons: Vec<String>);
}

impl Outcome for DecisionRecord {
    fn deny(&mut self, outcome: Reason, reasons: Vec<String>) {
        self.decision = "deny".into();
        self.outcome = outcome.as_str().into();
        self.reasons = reasons;
    }

    fn fail(&mut self, outcome: Reason, reasons: Vec<String>) {
        self.decision = "error".into();
        self.outcome = outcome.as_str().into();
        self.reasons = reasons;
    }
}

/// A request id as records and policy input show it.
pub(super) fn request_id_text(id: &RequestId) -> String {
    match id {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
    }
}

/// The steps whose time a record keeps.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    Authorize,
    Upstream,
    Redact,
}

/// Runs one step of a call: in its own span, timed, its latency stored in the record whatever the outcome.
pub(super) async fn step<T>(
    record: &mut DecisionRecord,
    step: Step,
    span: tracing::Span,
    work: impl AsyncFnOnce(&mut DecisionRecord) -> T,
) -> T {
    let started = Instant::now();
    let out = work(record).instrument(span).await;
    let latency = &mut record.latency;
    let slot = match step {
        Step::Authorize => &mut latency.authorize_us,
        Step::Upstream => &mut latency.upstream_us,
        Step::Redact => &mut latency.redact_us,
    };
    *slot = Some(elapsed_us(started));
    out
}
