//! Obligations: what of an allowed call's result the caller may see. The clearance is the policy's (else the
//! configured default), never above the chain's lowest maximum, enforced here and not only in Rego; columns
//! granted masked are masked by name in a tabular answer.

use std::ops::ControlFlow::{self, Break, Continue};

use rmcp::model::{CallToolResult, ErrorData};

use super::Gateway;
use super::record::Outcome;
use super::refusal::Refusal;
use crate::audit::DecisionRecord;
use crate::catalog::ExposedTool;
use crate::identity::Caller;
use crate::manifest::ToolManifest;
use crate::policy::Decision;
use crate::reason::Reason;
use crate::redact::{RedactError, RedactionSummary, Rules};

impl Gateway {
    /// The redaction rules of an allowed call, recorded; breaks when the obligations cannot be met.
    pub(super) fn obligations(
        &self,
        decision: &Decision,
        manifest: &ToolManifest,
        caller: &Caller,
        tool: &ExposedTool,
        record: &mut DecisionRecord,
    ) -> ControlFlow<Result<CallToolResult, ErrorData>, Rules> {
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
                record.deny(Reason::PolicyDenied, vec![why.clone()]);
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
        Continue(rules)
    }

    /// Redacts a result through its JSON form, so that every plane (`_meta` included) is seen.
    pub(super) fn redact(
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
}
