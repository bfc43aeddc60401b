//! Escalation: a call the policy sends to a human is held as a pending approval, or goes through once when an
//! approver granted this exact call.

use std::ops::ControlFlow::{self, Break, Continue};

use rmcp::model::{CallToolResult, ErrorData};

use super::Gateway;
use super::record::Outcome;
use super::refusal::Refusal;
use crate::audit::{DecisionRecord, arguments_hash};
use crate::catalog::ExposedTool;
use crate::identity::Caller;
use crate::policy::Decision;
use crate::reason::Reason;
use crate::store::{Approval, ApprovalStatus, Escalation, Held};

/// Largest arguments (serialized) kept for the approver; beyond, the approver sees their size and hash.
const MAX_HELD_ARGUMENTS: usize = 64 * 1024;

impl Gateway {
    /// Continues when an approval grants this exact call (consuming it); otherwise breaks with the answer: held
    /// for an approver, refused by one, or the store cannot hold it.
    pub(super) async fn held_for_approval(
        &self,
        caller: &Caller,
        tool: &ExposedTool,
        decision: &Decision,
        policy_version: &str,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
        record: &mut DecisionRecord,
    ) -> ControlFlow<Result<CallToolResult, ErrorData>> {
        let now = crate::clock::unix_now();
        let ttl = i64::try_from(self.config.policy.approval_ttl.as_secs()).unwrap_or(i64::MAX);
        // The approval this exact call would need (bound to the caller, the chain, the tool, its pinned definition
        // and the arguments' hash); the store consumes a granted one, or holds this one as pending.
        let request = Approval {
            id: format!("apr_{}", uuid::Uuid::now_v7().simple()),
            status: ApprovalStatus::Pending,
            issuer: caller.issuer.clone(),
            subject: caller.subject.clone(),
            chain: caller.chain.clone(),
            tool: tool.name.to_string(),
            // Bound to the definition the approver is shown: a changed definition voids the approval.
            pin: Some(tool.pin_hash.to_string()),
            arguments_hash: arguments_hash(arguments),
            reasons: decision.reasons.clone(),
            policy_version: policy_version.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            decided_by: None,
            decided_at: None,
            used_at: None,
            held: Some(Held {
                arguments: held_arguments(arguments),
                facts: record.facts.clone(),
            }),
        };
        let max_pending = self.config.policy.max_pending_approvals;
        match self.store.escalate(request, now, max_pending).await {
            Ok(Escalation::Granted(id)) => {
                tracing::info!(approval = %id, tool = %tool.name, "approved call goes through (approval consumed)");
                record.reasons.push(format!("approved: {id}"));
            }
            Ok(Escalation::Pending { id, expires_at }) => {
                record.decision = "escalate".into();
                record.outcome = Reason::ApprovalRequired.into();
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
                record.deny(Reason::ApprovalDenied, decision.reasons.clone());
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
            Ok(Escalation::Limited(max)) => {
                record.deny(Reason::ApprovalLimit, decision.reasons.clone());
                return Break(
                    Refusal::ApprovalLimit {
                        tool: &tool.name,
                        max,
                    }
                    .answer(),
                );
            }
            Err(error) => {
                tracing::error!("cannot hold the call for approval: {error}");
                record.fail(Reason::StoreUnavailable, decision.reasons.clone());
                return Break(
                    Refusal::CannotDecide {
                        reason: Reason::StoreUnavailable,
                    }
                    .answer(),
                );
            }
        }
        Continue(())
    }
}

/// The arguments as the approver will see them (redacted when shown): whole, or beyond
/// [`MAX_HELD_ARGUMENTS`] only their size and hash.
fn held_arguments(
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<serde_json::Value> {
    let value = serde_json::Value::Object(arguments.cloned().unwrap_or_default());
    let bytes = serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if bytes > MAX_HELD_ARGUMENTS {
        return Some(serde_json::json!({
            "omitted": format!("{bytes} bytes, more than {MAX_HELD_ARGUMENTS} are not kept for the approver"),
            "sha256": arguments_hash(arguments),
        }));
    }
    Some(value)
}
