//! Redaction of tool results by data classification: classified output fields from the tool's manifest, and
//! detectors of sensitive values in free text, masked above the caller's clearance in every plane of a result
//! (text, JSON inside text, `structuredContent`, embedded resources, resource links, `_meta`, error text).

mod blob;
mod detect;
mod fields;
#[cfg(test)]
mod fuzz;
mod walk;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::manifest::FieldPath;
/// For the tests of what resources and prompts return.
#[cfg(test)]
pub(crate) use blob::{UNREADABLE_BLOB, declared_text};
pub use detect::{DetectorError, Detectors, Found};
pub use fields::widen_output_schema;
use fields::withhold_untabular;
use walk::At;

use crate::classification::Classification;
use crate::config::RedactionConfig;
use crate::manifest::ToolManifest;

/// Why a result could not be redacted: it is withheld.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("the result nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("the redacted result is not a valid tool result: {0}")]
    Shape(String),
}

/// Most places a summary names; further masked values are counted only.
const MAX_SUMMARY_PATHS: usize = 256;

/// What was masked: counts per class and where, never the values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedactionSummary {
    pub by_class: BTreeMap<String, u64>,
    /// Field paths and detector hits, as `plane:path` or `plane:detector`.
    pub paths: Vec<String>,
    /// The whole output was withheld for its class.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
}

impl RedactionSummary {
    pub fn is_empty(&self) -> bool {
        self.by_class.is_empty() && !self.withheld
    }

    /// Counts one masked value; `place` names where, and is only worked out while fewer than
    /// [`MAX_SUMMARY_PATHS`] places are kept.
    fn add(&mut self, class: Classification, place: impl FnOnce() -> String) {
        let name = class_name(class);
        match self.by_class.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                self.by_class.insert(name.to_string(), 1);
            }
        }
        if self.paths.len() < MAX_SUMMARY_PATHS {
            let place = place();
            if !self.paths.contains(&place) {
                self.paths.push(place);
            }
        }
    }
}

pub fn class_name(class: Classification) -> &'static str {
    match class {
        Classification::Public => "public",
        Classification::Internal => "internal",
        Classification::Confidential => "confidential",
        Classification::Restricted => "restricted",
    }
}

/// The mask put in place of a value.
pub fn mask(class: Classification) -> &'static str {
    match class {
        Classification::Public => "[REDACTED:public]",
        Classification::Internal => "[REDACTED:internal]",
        Classification::Confidential => "[REDACTED:confidential]",
        Classification::Restricted => "[REDACTED:restricted]",
    }
}

/// What may be seen: everything up to `clearance`, except the classes in `also_mask`.
#[derive(Debug, Clone)]
pub struct Rules {
    pub clearance: Classification,
    pub also_mask: Vec<Classification>,
    /// Classified output fields of the tool.
    pub fields: std::sync::Arc<Vec<(FieldPath, Classification)>>,
    /// The tool's output as a whole.
    pub output: Option<Classification>,
    /// Whole columns of a tabular answer to mask by name (policy granted them masked).
    pub columns: Option<ColumnMasks>,
}

/// Columns of a tabular answer masked by name, wherever the table appears (`structuredContent`, JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMasks {
    pub shape: crate::manifest::TableShape,
    /// Result column names and the class each is masked as.
    pub names: Vec<(String, Classification)>,
}

impl Rules {
    /// Rules for a tool's results; the manifest's field paths were checked when it was loaded.
    pub fn for_tool(
        manifest: &ToolManifest,
        clearance: Classification,
        also_mask: Vec<Classification>,
    ) -> Self {
        Self {
            clearance,
            also_mask,
            fields: manifest.output.parsed_fields(),
            output: manifest.output.classification,
            columns: None,
        }
    }

    /// Rules with no classified fields (for arguments and free values).
    pub fn plain(clearance: Classification) -> Self {
        Self {
            clearance,
            also_mask: Vec::new(),
            fields: std::sync::Arc::default(),
            output: None,
            columns: None,
        }
    }

    pub fn hides(&self, class: Classification) -> bool {
        class > self.clearance || self.also_mask.contains(&class)
    }
}

/// The redactor: detectors compiled once.
pub struct Redactor {
    detectors: Detectors,
    max_depth: usize,
}

impl Redactor {
    pub fn new(config: &RedactionConfig) -> Result<Self, DetectorError> {
        Ok(Self {
            detectors: Detectors::new(&config.detectors)?,
            max_depth: config.max_depth,
        })
    }

    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    /// Redacts a tool result in place (given as its JSON form) and says what was masked.
    pub fn redact_result(
        &self,
        result: &mut Value,
        rules: &Rules,
    ) -> Result<RedactionSummary, RedactError> {
        let mut summary = RedactionSummary::default();
        if let Some(class) = rules.output.filter(|c| rules.hides(*c)) {
            // The output as a whole is above the caller's clearance: nothing of it is shown.
            *result = serde_json::json!({
                "content": [{"type": "text", "text": format!(
                    "{} toolgate withheld this result: the tool's output is classified `{}`, above what this caller may see",
                    mask(class), class_name(class))}],
                "isError": true,
            });
            summary.add(class, || "result".into());
            summary.withheld = true;
            return Ok(summary);
        }
        // Values split across text blocks: detected over the blocks joined, masked in each.
        if let Some(Value::Array(blocks)) = result.get_mut("content") {
            let mut texts: Vec<&mut String> = blocks
                .iter_mut()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| match b.get_mut("text") {
                    Some(Value::String(t)) if !looks_like_json(t) => Some(t),
                    _ => None,
                })
                .collect();
            if texts.len() > 1 {
                self.detectors
                    .mask_across(&mut texts, rules, &mut summary, &|| "content".to_string());
            }
        }
        if let Some(columns) = &rules.columns {
            withhold_untabular(result, columns, &mut summary);
        }
        if let Some(structured) = result.get_mut("structuredContent") {
            self.apply_fields(structured, rules, "structuredContent", &mut summary);
        }
        self.walk(result, rules, &String::new, At::Result, 0, &mut summary)?;
        Ok(summary)
    }

    /// Redacts any JSON value (arguments, say): detectors and nested JSON, no field paths.
    pub fn redact_value(
        &self,
        value: &mut Value,
        rules: &Rules,
    ) -> Result<RedactionSummary, RedactError> {
        let mut summary = RedactionSummary::default();
        self.walk(
            value,
            rules,
            &|| "$".to_string(),
            At::Elsewhere,
            0,
            &mut summary,
        )?;
        Ok(summary)
    }
}

fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

/// A string that is a JSON object or array, parsed.
pub(crate) fn parse_json(text: &str) -> Option<Value> {
    if !looks_like_json(text) {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}
