//! The policy bundle's section, and how tool definitions seen for the first time are pinned.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Pinning of tool definitions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinningConfig {
    /// What happens to a tool seen for the first time.
    pub first_sight: FirstSight,
}

/// How the policy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evaluator {
    /// regorus's compiled virtual machine (fastest); falls back to the interpreter for a bundle it cannot compile
    /// or on which the two disagree.
    Vm,
    /// regorus's tree-walking interpreter.
    Interpreter,
}

/// What to do with a tool seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FirstSight {
    /// Pin it as it is.
    #[default]
    TrustOnFirstUse,
    /// Quarantine it until an admin approves it.
    RequireApproval,
}

/// The policy bundle: Rego policies and data, the tool manifests, evaluation limits, approvals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Folder of Rego policies (`*.rego`, tests in `*_test.rego`) and policy data (`*.yaml`, `*.json`).
    pub dir: PathBuf,
    /// Folder of tool manifests (`<upstream>.yaml`).
    pub manifests: PathBuf,
    pub evaluator: Evaluator,
    /// Longest one decision may take; longer is a denial.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most VM instructions one decision may execute; more is a denial.
    pub max_instructions: usize,
    /// Reload when a file under `dir` or `manifests` changes.
    pub watch: bool,
    /// How long an escalated call waits for an approver, and how long a granted approval stays usable.
    #[serde(with = "humantime_serde")]
    pub approval_ttl: Duration,
    /// Most calls one caller `(iss, sub)` may have waiting for an approver at once.
    pub max_pending_approvals: usize,
    /// Remember decisions per bundle version, keyed by the input fields the policy reads (see README).
    pub decision_cache: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("policies"),
            manifests: PathBuf::from("tool-manifests"),
            evaluator: Evaluator::Vm,
            timeout: Duration::from_millis(50),
            max_instructions: 1_000_000,
            watch: true,
            approval_ttl: Duration::from_secs(3600),
            max_pending_approvals: 20,
            decision_cache: true,
        }
    }
}

impl PolicyConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.timeout.is_zero() || self.max_instructions == 0 {
            return Err(
                "policy.timeout and policy.max_instructions must be positive: every decision would fail".into(),
            );
        }
        if self.max_pending_approvals == 0 {
            return Err("policy.max_pending_approvals must be at least 1".into());
        }
        if self.approval_ttl < Duration::from_secs(1) {
            return Err("policy.approval_ttl must be at least 1s".into());
        }
        Ok(())
    }
}
