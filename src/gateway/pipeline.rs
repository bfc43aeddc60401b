//! The request pipeline, top to bottom as in the design:
//! authenticate → resolve tool → authorize → call upstream → redact → record → reply.
//! It serves a [`CallContext`] (the verified caller, the session id, the request id), whatever the transport.
//! Each step of a call runs through [`step`](super::record::step): its own span, timed, its latency kept in the
//! decision record; every refusal is one [`Refusal`] with a typed [`Reason`](crate::reason::Reason).

use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorData, ListToolsResult};
use tokio_util::sync::CancellationToken;

use super::listing::{TOOLS_LIST, add_detected, advertised, list_input, tool_ref};
use super::record::{Outcome, Step, caller_record, recorded_facts, request_id_text, step};
use super::refusal::Refusal;
use super::{CallContext, Gateway, elapsed_us};
use crate::audit::{DecisionRecord, recorded_arguments};
use crate::catalog::{CallSink, ExposedTool, UpstreamError};
use crate::policy::input::CallerInput;
use crate::policy::{Action, facts};
use crate::reason::Reason;
use crate::redact::Rules;
use crate::telemetry;

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
                self.cursors
                    .decode(TOOLS_LIST, caller, c)
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
                        tracing::error!(tool = %t.name, reason = %error.reason_id(), "policy failed on tools/list: {error}");
                    }
                    decision.allow
                })
        });
        let next_cursor = if tools.len() > page_size {
            tools.truncate(page_size);
            tools
                .last()
                .map(|t| self.cursors.encode(TOOLS_LIST, caller, &t.name))
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
        record.outcome = Reason::Listed.into();
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
        params: &mut CallToolRequestParams,
        record: &mut DecisionRecord,
        request: &tracing::Span,
    ) -> ControlFlow<Result<CallToolResult, ErrorData>, (Arc<ExposedTool>, Rules)> {
        // 2. resolve the tool; unknown tools and tools outside the caller's scope get the same answer.
        let CallContext {
            caller,
            session,
            request_id,
        } = *call;
        let bundle = self.policy.current();
        record.policy_version = Some(bundle.version.clone());
        let Some(tool) = self.catalog.resolve(&params.name) else {
            record.deny(Reason::UnknownTool, Vec::new());
            return Break(Refusal::UnknownTool { name: &params.name }.answer());
        };
        let in_scope = caller.in_scope(&tool.name);
        // Out of the chain's reach, the tool is unknown to this caller, and the policy is not asked.
        if !in_scope && !caller.needs_scope(&tool.name) {
            record.deny(Reason::UnknownTool, Vec::new());
            return Break(Refusal::UnknownTool { name: &params.name }.answer());
        }
        record.upstream = Some(tool.upstream.to_string());
        // 3. authorize, with one bundle version. A tool hidden from this caller's list is unknown to it; when the
        // policy cannot decide whether the caller may see the tool, it is hidden as in `tools/list`. Quarantined
        // tools are shown to nobody, so a step-up is never offered for one.
        let who = CallerInput::new(caller, session, &request_id_text(request_id));
        let listing = bundle.decide(&list_input(&who, &bundle, &tool));
        let hidden = match (&listing.error, listing.allow) {
            (Some(error), _) => Some(format!("hidden: {} ({error})", error.reason_id())),
            (None, true) if !in_scope && !self.pins.approved(&tool) => {
                Some("outside the token's scope, and quarantined".to_string())
            }
            (None, true) => None,
            (None, false) => Some("hidden by policy".to_string()),
        };
        if let Some(why) = hidden {
            record.deny(Reason::UnknownTool, vec![why]);
            return Break(Refusal::UnknownTool { name: &params.name }.answer());
        }
        // Only the token's `scope` keeps the tool out: the client may ask for a token that reaches it.
        if !in_scope {
            record.deny(
                Reason::InsufficientScope,
                vec![format!("the token's scope leaves out `{}`", tool.name)],
            );
            return Break(Refusal::InsufficientScope { tool: &tool.name }.answer());
        }
        // A tool the caller may see names the request's span; a name a caller made up, or a hidden tool, does not.
        telemetry::named_tool(request, &tool.name, &tool.upstream);
        record.pin = Some(tool.pin_hash.to_string());
        // A tool whose definition changed upstream is not trusted until an admin approves it.
        if !self.pins.approved(&tool) {
            record.deny(
                Reason::ToolQuarantined,
                vec!["the tool's definition is not approved".into()],
            );
            return Break(Refusal::Quarantined { tool: &tool.name }.answer());
        }
        // The arguments must match the tool's advertised inputSchema before anything reads them (absent = `{}`).
        if let Err(refused) = tool.input_schema.check(&mut params.arguments) {
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
            self.held_for_approval(caller, &tool, &decision, &bundle.version, arguments, record)
                .await?;
        } else if !decision.allow {
            record.deny(Reason::PolicyDenied, decision.reasons.clone());
            return Break(
                Refusal::PolicyDenied {
                    tool: &tool.name,
                    reasons: &decision.reasons,
                }
                .answer(),
            );
        }
        // 4. obligations: what of the result the caller may see.
        let rules = self.obligations(&decision, manifest, caller, &tool, record)?;
        Continue((tool, rules))
    }

    /// Steps 2–5 of a call, each in its own span; fills in `record` as it goes.
    async fn decide_and_call(
        &self,
        call: &CallContext<'_>,
        mut params: CallToolRequestParams,
        sink: CallSink,
        cancel: &CancellationToken,
        record: &mut DecisionRecord,
    ) -> Result<CallToolResult, ErrorData> {
        // 1. authenticate: `caller` was verified for this very request (its span is a sibling of these).
        let request = tracing::Span::current();
        let authorized = step(
            record,
            Step::Authorize,
            tracing::info_span!("authorize"),
            async |record| self.authorize(call, &mut params, record, &request).await,
        )
        .await;
        let (tool, rules) = match authorized {
            Continue(authorized) => authorized,
            Break(answer) => return answer,
        };
        // Nothing reaches an upstream while decisions cannot be recorded.
        if !self.audit.healthy() {
            record.fail(Reason::AuditUnavailable, Vec::new());
            return Refusal::CannotDecide {
                reason: Reason::AuditUnavailable,
            }
            .answer();
        }
        // 4. call the upstream; the call's notifications and requests go back to this client only, redacted like
        // the result, its requests decided and recorded.
        let sink = self.call_sink(sink, call, &tool, &rules);
        let span = tracing::info_span!(
            "upstream",
            otel.kind = "client",
            toolgate.upstream = %tool.upstream,
            gen_ai.tool.name = %tool.original,
        );
        let outcome = step(record, Step::Upstream, span, async |_| {
            self.catalog
                .call(&tool, params.arguments, sink, cancel)
                .await
        })
        .await;
        record.decision = "allow".into();
        let result = match outcome {
            Ok(mut result) => {
                result.result_type = None;
                record.outcome = Reason::Allowed.into();
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
            Err(UpstreamError::InputRequired(result)) => {
                return self
                    .call_input_required(call, &tool, &rules, *result, record)
                    .await;
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
        let redacted = step(
            record,
            Step::Redact,
            tracing::info_span!("redact"),
            async |_| self.redact(result, &rules),
        )
        .await;
        // 6. record: by the caller of this function, before the answer leaves.
        match redacted {
            Ok((result, summary)) => {
                if !summary.is_empty() {
                    record.redactions = serde_json::to_value(&summary).ok();
                }
                Ok(result)
            }
            Err(error) => {
                record.fail(Reason::RedactionFailed, vec![error.to_string()]);
                Refusal::CannotDecide {
                    reason: Reason::RedactionFailed,
                }
                .answer()
            }
        }
    }
}
