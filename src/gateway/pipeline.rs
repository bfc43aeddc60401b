//! The request pipeline, top to bottom as in the design:
//! authenticate → resolve tool → authorize → call upstream → redact → record → reply.
//!
//! Steps that later capabilities fill in (redaction, durable records) are explicit here so that every call already
//! passes through them in this order.

use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode, ErrorData, ListToolsResult,
    RequestId,
};
use tokio_util::sync::CancellationToken;

use super::Gateway;
use crate::catalog::manifest::ToolManifest;
use crate::catalog::{CallSink, ExposedTool, UpstreamError};
use crate::identity::Caller;
use crate::policy::input::{CallerInput, ToolRef};
use crate::policy::{Action, Bundle, Decision, PolicyInput, facts};
use crate::server::Session;
use crate::store::{Approval, ApprovalStatus, Escalation};

impl Gateway {
    /// `tools/list`: the tools whose `list` decision allows this caller, one page at a time.
    pub(super) fn list_tools(
        &self,
        session: &Session,
        caller: &Caller,
        request_id: &RequestId,
        cursor: Option<&str>,
    ) -> Result<ListToolsResult, ErrorData> {
        // 1. authenticate: `caller` was verified for this very request.
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
        let who = CallerInput::new(caller, &session.id, &request_id_text(request_id));
        let failures = std::cell::Cell::new(0usize);
        // One tool more than a page tells whether there is a next page.
        let mut tools =
            self.catalog
                .tools_after(after.as_deref(), page_size.saturating_add(1), |t| {
                    if !caller.in_scope(&t.name) {
                        return false;
                    }
                    match bundle.decide(&list_input(&who, &bundle, t)) {
                        Ok(decision) => decision.allow,
                        Err(error) => {
                            // Fail closed: a tool the policy cannot decide on is not shown.
                            failures.set(failures.get() + 1);
                            tracing::error!(tool = %t.name, reason = error.reason_id(), "policy failed on tools/list: {error}");
                            false
                        }
                    }
                });
        let next_cursor = if tools.len() > page_size {
            tools.truncate(page_size);
            tools.last().map(|t| encode_cursor(&t.name))
        } else {
            None
        };
        let mut result =
            ListToolsResult::with_all_items(tools.iter().map(|t| t.definition.clone()).collect());
        result.result_type = None;
        result.next_cursor = next_cursor;
        tracing::info!(
            session = %session.id, request = ?request_id, issuer = %caller.issuer, subject = %caller.subject,
            chain = ?caller.chain, count = result.tools.len(), policy_failures = failures.get(),
            policy_version = %bundle.version, "tools/list"
        );
        Ok(result)
    }

    /// `tools/call`: resolve, authorize, forward, redact, record.
    pub(super) async fn call_tool(
        &self,
        session: &Session,
        caller: &Caller,
        request_id: &RequestId,
        params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        tracing::debug!(session = %session.id, request = ?request_id, tool = %params.name, "tools/call received");
        // 1. authenticate: `caller` was verified for this very request.
        // 2. resolve the tool; unknown tools and tools outside the caller's scope get the same answer.
        let bundle = self.policy.current();
        let mut record = Record {
            session,
            caller,
            request_id,
            tool: &params.name,
            upstream: None,
            policy_version: &bundle.version,
            started,
        };
        let Some(tool) = self
            .catalog
            .resolve(&params.name)
            .filter(|t| caller.in_scope(&t.name))
        else {
            record.done("unknown_tool", &[]);
            return Err(unknown_tool(&params.name));
        };
        record.upstream = Some(&tool.upstream);
        // 3. authorize, with one bundle version. A tool hidden from this caller's list is unknown to it.
        let who = CallerInput::new(caller, &session.id, &request_id_text(request_id));
        // When the policy cannot decide whether the caller may see the tool, it is hidden as in `tools/list`.
        match bundle.decide(&list_input(&who, &bundle, &tool)) {
            Ok(decision) if decision.allow => {}
            Ok(_) => {
                record.done("unknown_tool", &["hidden by policy".into()]);
                return Err(unknown_tool(&params.name));
            }
            Err(error) => {
                record.done(
                    "unknown_tool",
                    &[format!("hidden: {} ({error})", error.reason_id())],
                );
                return Err(unknown_tool(&params.name));
            }
        }
        // The arguments: facts computed by real parsers as the manifest directs, then the decision.
        let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
        let arguments = params.arguments.as_ref();
        let facts = facts::for_call(manifest, arguments);
        let input = who.for_tool(tool_ref(&tool, manifest), Action::Call, arguments, facts);
        let decision = match bundle.decide(&input) {
            Ok(decision) => decision,
            Err(error) => {
                record.done(error.reason_id(), &[error.to_string()]);
                return Err(cannot_decide(error.reason_id()));
            }
        };
        if decision.escalate {
            match self
                .escalate(caller, &tool, &decision, &bundle.version, arguments)
                .await
            {
                Ok(Escalation::Granted(id)) => {
                    tracing::info!(approval = %id, tool = %tool.name, "approved call goes through (approval consumed)");
                }
                Ok(Escalation::Pending { id, expires_at }) => {
                    record.done("approval_required", &decision.reasons);
                    return Ok(approval_required(&tool, &id, expires_at, &decision.reasons));
                }
                Ok(Escalation::Denied { id, expires_at }) => {
                    record.done("approval_denied", &decision.reasons);
                    return Ok(refusal_result(format!(
                        "toolgate refused this call to `{}` (reason `approval_denied`): an approver refused this \
                         exact call (approval id {id}); it will not be put to an approver again before {}",
                        tool.name,
                        rfc3339(expires_at)
                    )));
                }
                Err(error) => {
                    tracing::error!("cannot hold the call for approval: {error}");
                    record.done("store_unavailable", &decision.reasons);
                    return Err(cannot_decide("store_unavailable"));
                }
            }
        } else if !decision.allow {
            record.done("policy_denied", &decision.reasons);
            return Ok(policy_denied(&tool, &decision.reasons));
        }
        // The clearance the result will be redacted to: the policy's obligation, never above the chain's lowest
        // maximum (enforced here, not only in Rego).
        let clearance = decision
            .obligations
            .clearance
            .map_or(caller.clearance, |c| c.min(caller.clearance));
        tracing::debug!(tool = %tool.name, ?clearance, redact = ?decision.obligations.redact, "obligations");
        // 4. call the upstream; the call's notifications go back to this client only.
        let outcome = self
            .catalog
            .call(&tool, params.arguments, sink, cancel)
            .await;
        // 5. redact: responses pass unchanged until classifications are configured.
        // 6. record.
        let result = match outcome {
            Ok(mut result) => {
                result.result_type = None;
                record.done("allowed", &decision.reasons);
                result
            }
            Err(error) => {
                record.done(error.reason_id(), &[error.to_string()]);
                upstream_failure(&tool, &error)
            }
        };
        Ok(result)
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
        let now = unix_now();
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

fn unix_now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}

/// SHA-256 of the arguments' canonical JSON (RFC 8785), so that key order never matters.
pub fn arguments_hash(arguments: Option<&serde_json::Map<String, serde_json::Value>>) -> String {
    use sha2::Digest;
    let empty = serde_json::Map::new();
    let canonical = serde_jcs::to_vec(arguments.unwrap_or(&empty)).unwrap_or_default();
    let digest = sha2::Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

/// The gateway itself cannot decide (policy error, store down): nothing reaches the upstream.
fn cannot_decide(reason: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        format!("toolgate cannot decide this call right now ({reason}); it was not forwarded"),
        Some(serde_json::json!({"reason": reason})),
    )
}

fn refusal_result(text: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.result_type = None;
    result
}

/// Arguments refused by policy: an actionable result the model can correct itself from.
fn policy_denied(tool: &ExposedTool, reasons: &[String]) -> CallToolResult {
    let why = if reasons.is_empty() {
        "no rule allows this call".to_string()
    } else {
        reasons.join("; ")
    };
    refusal_result(format!(
        "toolgate refused this call to `{}` (reason `policy_denied`): {why}",
        tool.name
    ))
}

fn rfc3339(unix: i64) -> String {
    u64::try_from(unix)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

/// A call held for a human approver.
fn approval_required(
    tool: &ExposedTool,
    id: &str,
    expires_at: i64,
    reasons: &[String],
) -> CallToolResult {
    let until = rfc3339(expires_at);
    refusal_result(format!(
        "toolgate is holding this call to `{}` for human approval (reason `approval_required`). Approval id: {id}, \
         valid until {until}. Once an approver has granted it, repeat the identical call. Why: {}",
        tool.name,
        reasons.join("; ")
    ))
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

/// The JSON-RPC error for a tool that does not exist or that the caller may not see.
pub fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_PARAMS,
        format!("Unknown tool: {name}"),
        None,
    )
}

/// A failed upstream call becomes an `isError` result the model can read.
fn upstream_failure(tool: &ExposedTool, error: &UpstreamError) -> CallToolResult {
    let text = format!(
        "toolgate: {} (tool `{}`, upstream `{}`, reason `{}`)",
        error,
        tool.name,
        tool.upstream,
        error.reason_id()
    );
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.result_type = None;
    result
}

/// What a decision leaves behind (a log line today; a durable decision record with the audit capability).
struct Record<'a> {
    session: &'a Session,
    caller: &'a Caller,
    request_id: &'a RequestId,
    tool: &'a str,
    upstream: Option<&'a str>,
    policy_version: &'a str,
    started: Instant,
}

impl Record<'_> {
    fn done(&self, outcome: &str, reasons: &[String]) {
        tracing::info!(
            session = %self.session.id,
            request = ?self.request_id,
            mode = ?self.caller.mode,
            issuer = %self.caller.issuer,
            subject = %self.caller.subject,
            chain = ?self.caller.chain,
            tool = %self.tool,
            upstream = self.upstream.unwrap_or(""),
            outcome,
            reasons = ?reasons,
            policy_version = %self.policy_version,
            elapsed_us = self.started.elapsed().as_micros() as u64,
            "tools/call"
        );
    }
}
