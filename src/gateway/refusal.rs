//! What the caller sees when a call goes no further: one type, one `answer()`. Two MCP error planes, as in
//! DESIGN's refusal table:
//!
//! | refusal | answer |
//! | --- | --- |
//! | tool unknown, or hidden from this caller | JSON-RPC error `-32602` `Unknown tool: NAME`, identical in both cases |
//! | the chain may use the tool but the token's `scope` leaves it out | JSON-RPC error `-32001` with `data.scope` (HTTP: `403` and an `insufficient_scope` challenge) |
//! | the tool's definition awaits review, arguments do not match its `inputSchema`, policy refused these arguments | `CallToolResult` with `isError: true` and an actionable reason |
//! | held for a human approver, or an approver refused this exact call | `isError: true` naming the approval id and how long it holds |
//! | the upstream failed, timed out, answered too much | `isError: true` with the reason |
//! | the gateway itself cannot decide or record (policy error, store or records down, redaction failed) | JSON-RPC error `-32603` with `data.reason`; nothing reached the upstream |

use rmcp::model::{CallToolResult, ContentBlock, ErrorCode, ErrorData};

use crate::catalog::UpstreamError;
use crate::reason::Reason;

/// Why a call ends here.
#[derive(Debug)]
pub enum Refusal<'a> {
    /// The tool does not exist, or this caller may not see it.
    UnknownTool { name: &'a str },
    /// The caller's chain may use the tool, but the token's `scope` leaves it out: a token asking for `tool`
    /// would reach it (step-up).
    InsufficientScope { tool: &'a str },
    /// The gateway cannot decide or record (`reason` is the reason id).
    CannotDecide { reason: Reason },
    /// Policy refused these arguments.
    PolicyDenied {
        tool: &'a str,
        reasons: &'a [String],
    },
    /// The call waits for a human approver.
    ApprovalRequired {
        tool: &'a str,
        id: &'a str,
        expires_at: i64,
        reasons: &'a [String],
    },
    /// The caller already has its share of calls waiting for an approver.
    ApprovalLimit { tool: &'a str, max: usize },
    /// An approver refused this exact call.
    ApprovalDenied {
        tool: &'a str,
        id: &'a str,
        expires_at: i64,
    },
    /// The tool's definition changed upstream (or is new) and awaits review.
    Quarantined { tool: &'a str },
    /// Refused by a check with its own reason id and message (the tool's `inputSchema`).
    Refused { text: String },
    /// The upstream failed.
    UpstreamFailed {
        tool: &'a str,
        upstream: &'a str,
        error: &'a UpstreamError,
    },
}

impl Refusal<'_> {
    /// The answer the caller gets: a JSON-RPC error, or an `isError` result the model can act on.
    pub fn answer(self) -> Result<CallToolResult, ErrorData> {
        match self {
            Self::UnknownTool { name } => Err(ErrorData::new(
                ErrorCode::INVALID_PARAMS,
                format!("Unknown tool: {name}"),
                None,
            )),
            Self::InsufficientScope { tool } => Err(ErrorData::new(
                INSUFFICIENT_SCOPE,
                format!(
                    "toolgate refused this call to `{tool}` (reason `insufficient_scope`): the token's scope leaves \
                     the tool out; ask the authorization server for a token with scope `{tool}`"
                ),
                Some(
                    serde_json::json!({"reason": Reason::InsufficientScope.as_str(), "scope": tool}),
                ),
            )),
            Self::CannotDecide { reason } => Err(cannot_decide(reason)),
            Self::PolicyDenied { tool, reasons } => {
                let why = if reasons.is_empty() {
                    "no rule allows this call".to_string()
                } else {
                    reasons.join("; ")
                };
                Ok(error_result(format!(
                    "toolgate refused this call to `{tool}` (reason `policy_denied`): {why}"
                )))
            }
            Self::ApprovalRequired {
                tool,
                id,
                expires_at,
                reasons,
            } => Ok(error_result(format!(
                "toolgate is holding this call to `{tool}` for human approval (reason `approval_required`). Approval \
                 id: {id}, valid until {}. Once an approver has granted it, repeat the identical call. Why: {}",
                rfc3339(expires_at),
                reasons.join("; ")
            ))),
            Self::ApprovalDenied {
                tool,
                id,
                expires_at,
            } => Ok(error_result(format!(
                "toolgate refused this call to `{tool}` (reason `approval_denied`): an approver refused this exact \
                 call (approval id {id}); it will not be put to an approver again before {}",
                rfc3339(expires_at)
            ))),
            Self::ApprovalLimit { tool, max } => Ok(error_result(format!(
                "toolgate refused this call to `{tool}` (reason `approval_limit`): {max} of this caller's calls \
                 already wait for an approver (policy.max_pending_approvals); wait for a decision, or for one to \
                 expire, then call again"
            ))),
            Self::Quarantined { tool } => Ok(error_result(format!(
                "toolgate refused this call to `{tool}` (reason `tool_quarantined`): the tool's definition changed \
                 upstream (or is new) and awaits an admin's review"
            ))),
            Self::Refused { text } => Ok(error_result(text)),
            // The upstream needs a capability the client did not declare (2026-07-28): the client is told which,
            // as the upstream said, so that it can declare it and ask again.
            Self::UpstreamFailed {
                error: UpstreamError::Rpc(e),
                ..
            } if e.code == MISSING_CAPABILITY => Err(ErrorData::new(
                MISSING_CAPABILITY,
                "Missing required client capability",
                Some(serde_json::json!({
                    "requiredCapabilities": e
                        .data
                        .as_ref()
                        .and_then(|d| d.get("requiredCapabilities"))
                        .filter(|c| c.is_object())
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({})),
                    "reason": Reason::ClientCapabilityMissing.as_str(),
                })),
            )),
            Self::UpstreamFailed {
                tool,
                upstream,
                error,
            } => Ok(error_result(format!(
                "toolgate: {error} (tool `{tool}`, upstream `{upstream}`, reason `{}`)",
                error.reason_id()
            ))),
        }
    }
}

/// `MissingRequiredClientCapability` (protocol 2026-07-28).
pub const MISSING_CAPABILITY: ErrorCode = ErrorCode(-32021);

/// The JSON-RPC error code of a step-up refusal (`insufficient_scope`); over HTTP it comes with status 403.
pub const INSUFFICIENT_SCOPE: ErrorCode = ErrorCode(-32001);

/// The scope a step-up refusal asks for, when `error` is one.
pub fn step_up_scope(error: &ErrorData) -> Option<&str> {
    if error.code != INSUFFICIENT_SCOPE {
        return None;
    }
    error.data.as_ref()?.get("scope")?.as_str()
}

/// The JSON-RPC error of a gateway that cannot decide or record: nothing reached the upstream.
pub fn cannot_decide(reason: Reason) -> ErrorData {
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        format!("toolgate cannot decide this call right now ({reason}); it was not forwarded"),
        Some(serde_json::json!({"reason": reason.as_str()})),
    )
}

fn error_result(text: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.result_type = None;
    result
}

fn rfc3339(unix: i64) -> String {
    u64::try_from(unix)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_missing_tools_get_the_same_error() {
        let hidden = Refusal::UnknownTool { name: "hr__x" }.answer().unwrap_err();
        assert_eq!(hidden.code, ErrorCode::INVALID_PARAMS);
        assert_eq!(hidden.message, "Unknown tool: hr__x");
        assert!(hidden.data.is_none());
    }

    #[test]
    fn refusals_of_arguments_are_results_the_model_reads() {
        let reasons = vec!["argument `sql` reads table `salaries`".to_string()];
        let denied = Refusal::PolicyDenied {
            tool: "sql__query",
            reasons: &reasons,
        }
        .answer()
        .unwrap();
        assert_eq!(denied.is_error, Some(true));
        let cannot = Refusal::CannotDecide {
            reason: Reason::AuditUnavailable,
        }
        .answer()
        .unwrap_err();
        assert_eq!(cannot.code, ErrorCode::INTERNAL_ERROR);
        assert_eq!(
            cannot.data,
            Some(serde_json::json!({"reason": "audit_unavailable"}))
        );
    }
}
