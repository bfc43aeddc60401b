//! Redaction of tool results: clearance and the detectors added in config.

use serde::Deserialize;

/// A detector of sensitive values added in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub name: String,
    /// A regular expression (Rust `regex` syntax; linear time, no backreferences).
    pub pattern: String,
    pub class: crate::classification::Classification,
}

/// Redaction of tool results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Clearance applied when a decision carries no obligation (still lowered to the chain's maximum).
    pub default_clearance: crate::classification::Classification,
    pub detectors: Vec<CustomDetector>,
    /// Deepest nesting (JSON in JSON strings included) redacted; deeper results are withheld.
    pub max_depth: usize,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            default_clearance: crate::classification::Classification::Internal,
            detectors: Vec::new(),
            max_depth: 64,
        }
    }
}
