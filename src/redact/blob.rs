//! An embedded resource's `blob` is MCP's opaque payload only when it is not text: declared as text by its
//! `mimeType` (or declaring no type and decoding to text), it is read as text, redacted, and encoded again; one
//! declared as text that is not base64 of UTF-8 cannot be inspected and is withheld.

use base64::Engine;
use serde_json::{Map, Value};

use super::{RedactError, RedactionSummary, Redactor, Rules};
use crate::classification::Classification;

/// What is withheld of a blob declared as text that cannot be read as text.
pub(crate) const UNREADABLE_BLOB: &str =
    "[toolgate withheld this content: it is declared as text but is not base64 of UTF-8 text]";

/// Media types whose bytes are text: a blob declared as one of them is read and redacted as text.
pub(crate) fn declared_text(mime: &str) -> bool {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/sql"
                | "application/x-sh"
                | "application/csv"
        )
}

impl Redactor {
    /// Redacts the `blob` of an embedded resource (`resource`) when it is text; leaves a binary one as it is.
    pub(super) fn redact_blob(
        &self,
        resource: &mut Map<String, Value>,
        rules: &Rules,
        place: &dyn Fn() -> String,
        depth: usize,
        summary: &mut RedactionSummary,
    ) -> Result<(), RedactError> {
        let undeclared = match resource.get("mimeType") {
            None => true,
            Some(Value::String(mime)) if declared_text(mime) => false,
            Some(_) => return Ok(()),
        };
        let Some(Value::String(blob)) = resource.get_mut("blob") else {
            return Ok(());
        };
        let text = base64::engine::general_purpose::STANDARD
            .decode(blob.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match (text, undeclared) {
            (Some(mut text), _) => {
                let here = || format!("{}.blob", place());
                self.redact_string(&mut text, rules, &here, depth + 1, summary)?;
                *blob = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            }
            // Declares no type and is not text: an opaque payload.
            (None, true) => {}
            // Declared as text, yet not text: it cannot be inspected, so nothing of it leaves.
            (None, false) => {
                resource.remove("blob");
                resource.insert("text".into(), Value::String(UNREADABLE_BLOB.into()));
                summary.add(Classification::Restricted, || {
                    format!("{}.blob:unreadable", place())
                });
            }
        }
        Ok(())
    }
}
