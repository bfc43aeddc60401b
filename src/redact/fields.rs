//! Classified output fields and masked table columns applied to a value; content that holds a masked column in a
//! form that cannot be masked by name withheld; output schemas widened so that masks are accepted.

use serde_json::{Map, Value};

use super::{ColumnMasks, RedactionSummary, Redactor, Rules, mask, parse_json};
use crate::classification::Classification;
use crate::manifest::{FieldPath, ToolManifest};

impl ColumnMasks {
    /// Masks the named columns of the table in `value`; false when `value` holds no such table.
    fn apply(&self, value: &mut Value, plane: &str, summary: &mut RedactionSummary) -> bool {
        let Some(object) = value.as_object_mut() else {
            return false;
        };
        let Some(Value::Array(columns)) = object.get(&self.shape.columns) else {
            return false;
        };
        let masked: Vec<(usize, String, Classification)> = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let name = c.as_str()?;
                self.names
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(n, class)| (i, n.clone(), *class))
            })
            .collect();
        let Some(Value::Array(rows)) = object.get_mut(&self.shape.rows) else {
            return false;
        };
        for row in rows.iter_mut() {
            for (i, name, class) in &masked {
                let cell = match row {
                    Value::Array(cells) => cells.get_mut(*i),
                    Value::Object(cells) => cells.get_mut(name),
                    _ => None,
                };
                if let Some(cell) = cell {
                    *cell = Value::String(mask(*class).to_string());
                    summary.add(*class, || format!("{plane}:column {name}"));
                }
            }
        }
        true
    }
}

impl Redactor {
    pub(super) fn apply_fields(
        &self,
        value: &mut Value,
        rules: &Rules,
        plane: &str,
        summary: &mut RedactionSummary,
    ) {
        if let Some(columns) = &rules.columns {
            columns.apply(value, plane, summary);
        }
        for (path, class) in rules.fields.iter() {
            if rules.hides(*class) {
                path.visit_mut(value, &mut |v| {
                    *v = Value::String(mask(*class).to_string());
                    summary.add(*class, || format!("{plane}:{path}"));
                });
            }
        }
    }
}

/// With columns masked by name, content that does not carry the table where the manifest says cannot be
/// masked by name: it is withheld (`structuredContent` too, when it is not the table).
pub(super) fn withhold_untabular(
    result: &mut Value,
    columns: &ColumnMasks,
    summary: &mut RedactionSummary,
) {
    let class = columns
        .names
        .iter()
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(Classification::Restricted);
    let note = format!(
        "{} toolgate withheld this part of the result: it holds a masked column in a form that cannot be masked by name",
        mask(class)
    );
    let is_table = |v: &Value| {
        v.get(&columns.shape.columns).is_some_and(Value::is_array)
            && v.get(&columns.shape.rows).is_some_and(Value::is_array)
    };
    if let Some(Value::Array(blocks)) = result.get_mut("content") {
        for block in blocks.iter_mut() {
            let tabular = block.get("type").and_then(Value::as_str) == Some("text")
                && block
                    .get("text")
                    .and_then(Value::as_str)
                    .and_then(parse_json)
                    .is_some_and(|v| is_table(&v));
            if !tabular {
                *block = serde_json::json!({"type": "text", "text": note});
                summary.add(class, || "content:untabular".into());
            }
        }
    }
    if let Some(structured) = result.get_mut("structuredContent")
        && !is_table(structured)
    {
        *structured = Value::Null;
        summary.add(class, || "structuredContent:untabular".into());
    }
}

/// Widens a tool's `outputSchema` at its classified fields so that a mask (a string) is accepted there: clients
/// that validate structured results against the schema then accept redacted ones.
pub fn widen_output_schema(schema: &mut Map<String, Value>, manifest: &ToolManifest) {
    if manifest.output.fields.is_empty() {
        return;
    }
    let mut root = Value::Object(std::mem::take(schema));
    for path in manifest.output.fields.keys() {
        if let Ok(path) = FieldPath::parse(path) {
            for pointer in path.schema_pointers(&root) {
                if let Some(node) = root.pointer_mut(&pointer) {
                    let original = node.take();
                    let already = original
                        .get("anyOf")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|s| s.get("x-toolgate-mask").is_some()));
                    *node = if already {
                        original
                    } else {
                        serde_json::json!({"anyOf": [original, {
                            "type": "string",
                            "pattern": "^\\[REDACTED:[a-z]+\\]$",
                            "x-toolgate-mask": true
                        }]})
                    };
                }
            }
        }
    }
    if let Value::Object(map) = root {
        *schema = map;
    }
}
