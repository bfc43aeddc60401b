//! Redaction of tool results by data classification: classified output fields from the tool's manifest, and
//! detectors of sensitive values in free text, masked above the caller's clearance in every plane of a result
//! (text, JSON inside text, `structuredContent`, embedded resources, resource links, `_meta`, error text).

mod detect;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::manifest::FieldPath;
pub use detect::{DetectorError, Detectors, Found};

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

/// Content-block discriminators of MCP results.
const BLOCK_TYPES: &[&str] = &["text", "image", "audio", "resource", "resource_link"];

/// Where a value sits in what is being redacted: only the places where MCP defines opaque fields are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The top of a tool result.
    Result,
    /// The result's `content` array.
    Content,
    /// One block of the result's `content`.
    Block,
    /// The `resource` of an embedded-resource block.
    Resource,
    /// Anywhere else: nothing is opaque here, whatever its keys.
    Elsewhere,
}

impl At {
    /// Where `key` of an object at `self` sits.
    /// `resource_block`: the object is a block of type `resource`.
    fn key(self, key: &str, resource_block: bool) -> Self {
        match (self, key) {
            (Self::Result, "content") => Self::Content,
            (Self::Block, "resource") if resource_block => Self::Resource,
            _ => Self::Elsewhere,
        }
    }

    /// Where an item of an array at `self` sits.
    fn item(self) -> Self {
        match self {
            Self::Content => Self::Block,
            _ => Self::Elsewhere,
        }
    }
}

/// Whether `key` of this object holds what MCP defines as opaque, and only where MCP defines it: a content
/// block's discriminator and media type, an image's or audio's base64 `data`, an embedded resource's `mimeType`
/// and base64 `blob`. The same keys anywhere else (in `structuredContent`, in `_meta`, in a nested object that
/// merely has `type` and `data`) are inspected like any other value.
fn opaque(map: &Map<String, Value>, key: &str, value: &Value, at: At) -> bool {
    let Value::String(text) = value else {
        return false;
    };
    let kind = map.get("type").and_then(Value::as_str);
    match (at, key) {
        (At::Block, "type") => BLOCK_TYPES.contains(&text.as_str()),
        (At::Block | At::Resource, "mimeType") => {
            text.len() <= 128
                && text.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && text.bytes().all(|c| {
                            c.is_ascii_alphanumeric()
                                || matches!(c, b'/' | b'.' | b'+' | b'-' | b';' | b'=' | b' ')
                        })
                })
        }
        (At::Block, "data") => matches!(kind, Some("image" | "audio")),
        (At::Resource, "blob") => map.contains_key("uri"),
        _ => false,
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

    fn apply_fields(
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

    /// Every string in `value`: JSON inside it redacted structurally (and field paths applied to it when it is a
    /// text block's), other text through the detectors.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        value: &mut Value,
        rules: &Rules,
        place: &dyn Fn() -> String,
        at: At,
        depth: usize,
        summary: &mut RedactionSummary,
    ) -> Result<(), RedactError> {
        if depth > self.max_depth {
            return Err(RedactError::TooDeep(self.max_depth));
        }
        match value {
            Value::String(text) => self.redact_string(text, rules, place, depth, summary),
            Value::Array(items) => {
                self.mask_split(items.iter_mut(), rules, place, summary);
                for (i, item) in items.iter_mut().enumerate() {
                    // Where a value is, worked out only when something in it is masked.
                    let here = || format!("{}[{i}]", place());
                    self.walk(item, rules, &here, at.item(), depth + 1, summary)?;
                }
                Ok(())
            }
            Value::Object(map) => self.walk_object(map, rules, place, at, depth, summary),
            // A card number sent as a JSON number.
            Value::Number(number)
                if rules.hides(Classification::Restricted)
                    && number
                        .as_u64()
                        .or_else(|| number.as_i64().map(i64::unsigned_abs))
                        // Only integers of 13 or more digits can be a card: no text is made of the others.
                        .is_some_and(|n| {
                            n >= 1_000_000_000_000 && self.detectors.is_card_number(&n.to_string())
                        }) =>
            {
                summary.add(Classification::Restricted, || {
                    format!("{}:card_number", place())
                });
                *value = Value::String(mask(Classification::Restricted).to_string());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_object(
        &self,
        map: &mut Map<String, Value>,
        rules: &Rules,
        place: &dyn Fn() -> String,
        at: At,
        depth: usize,
        summary: &mut RedactionSummary,
    ) -> Result<(), RedactError> {
        let is_text_block = map.get("type").and_then(Value::as_str) == Some("text");
        let resource_block = map.get("type").and_then(Value::as_str) == Some("resource");
        let skip: Vec<String> = map
            .iter()
            .filter(|(k, v)| opaque(map, k, v, at))
            .map(|(k, _)| k.clone())
            .collect();
        self.mask_split(
            map.iter_mut()
                .filter(|(k, _)| !skip.contains(k))
                .map(|(_, v)| v),
            rules,
            place,
            summary,
        );
        for (key, child) in map.iter_mut() {
            if skip.contains(key) {
                continue;
            }
            let here = || {
                let parent = place();
                if parent.is_empty() {
                    key.clone()
                } else {
                    format!("{parent}.{key}")
                }
            };
            // JSON carried in a text block gets the tool's field classes too.
            if is_text_block
                && key == "text"
                && let Value::String(text) = child
                && let Some(mut parsed) = parse_json(text)
            {
                self.apply_fields(&mut parsed, rules, &here(), summary);
                self.walk(&mut parsed, rules, &here, At::Elsewhere, depth + 1, summary)?;
                *text = serde_json::to_string(&parsed)
                    .map_err(|e| RedactError::Shape(e.to_string()))?;
                continue;
            }
            let child_at = at.key(key, resource_block);
            self.walk(child, rules, &here, child_at, depth + 1, summary)?;
        }
        Ok(())
    }

    /// Values split across the plain strings among `values` (the fields of one object, the items of one array):
    /// detected over the strings joined, each part masked in its own string.
    fn mask_split<'a>(
        &self,
        values: impl Iterator<Item = &'a mut Value>,
        rules: &Rules,
        place: &dyn Fn() -> String,
        summary: &mut RedactionSummary,
    ) {
        let mut texts: Vec<&mut String> = values
            .filter_map(|v| match v {
                Value::String(t) if !looks_like_json(t) => Some(t),
                _ => None,
            })
            .collect();
        if texts.len() > 1 {
            // In the order the reader gets them: a result's object is sent with its keys sorted, as here.
            self.detectors
                .mask_across(&mut texts, rules, summary, place);
        }
    }

    fn redact_string(
        &self,
        text: &mut String,
        rules: &Rules,
        place: &dyn Fn() -> String,
        depth: usize,
        summary: &mut RedactionSummary,
    ) -> Result<(), RedactError> {
        // JSON nested in a string (in `structuredContent`, an embedded resource's text, an argument, JSON in JSON):
        // the tool's field classes apply to it as to the output itself, then it is redacted structurally, so that
        // it stays valid JSON.
        if let Some(mut parsed) = parse_json(text) {
            self.apply_fields(&mut parsed, rules, &place(), summary);
            self.walk(&mut parsed, rules, place, At::Elsewhere, depth + 1, summary)?;
            *text =
                serde_json::to_string(&parsed).map_err(|e| RedactError::Shape(e.to_string()))?;
            return Ok(());
        }
        self.detectors.mask(text, rules, summary, place);
        Ok(())
    }
}

/// With columns masked by name, content that does not carry the table where the manifest says cannot be
/// masked by name: it is withheld (`structuredContent` too, when it is not the table).
fn withhold_untabular(result: &mut Value, columns: &ColumnMasks, summary: &mut RedactionSummary) {
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

/// Fuzzing redaction: any JSON, its strings made of sensitive values, encodings, separators, invisible characters
/// and JSON nested in strings, never panics; redacting twice changes nothing more; and once redacted for the lowest
/// clearance, no detector finds anything above it in any string of the result.
#[cfg(test)]
mod fuzz {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "123-45-6789",
                "ada.lovelace@example.com",
                "4111 1111 1111 1111",
                "4111.1111.1111.1111",
                "AKIAIOSFODNN7EXAMPLE",
                "+1-555-0101",
                " ",
                "-",
                ".",
                "/",
                "\u{200B}",
                "１２３",
                "@",
                "{",
                "\"",
                "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
                "GB82 WEST 1234 5698 7654 32",
                "9",
            ])
            .prop_map(String::from),
            prop::sample::select(vec![
                "123-45-6789",
                "ada.lovelace@example.com",
                "4111111111111111"
            ])
            .prop_map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
            prop::sample::select(vec!["123-45-6789", "ada.lovelace@example.com"])
                .prop_map(hex::encode),
            "[a-z0-9 ]{0,12}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(), 0..6).prop_map(|parts| parts.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(5, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "secret", "note", "type", "data", "text", "a", "b"
                        ])
                        .prop_map(String::from),
                        inner.clone(),
                    ),
                    0..5,
                )
                .prop_map(|f| Value::Object(f.into_iter().collect())),
                // JSON carried in a string.
                inner.prop_map(|v| Value::String(v.to_string())),
            ]
        })
    }

    /// The text leaves of a value (JSON carried in strings opened up) and its integers.
    fn leaves(value: &Value, out: &mut Vec<String>, numbers: &mut Vec<String>) {
        match value {
            Value::String(s) => match parse_json(s) {
                Some(inner) => leaves(&inner, out, numbers),
                None => out.push(s.clone()),
            },
            Value::Array(items) => items.iter().for_each(|v| leaves(v, out, numbers)),
            Value::Object(map) => map.values().for_each(|v| leaves(v, out, numbers)),
            Value::Number(n) if n.is_i64() || n.is_u64() => numbers.push(n.to_string()),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)))]

        #[test]
        fn redaction_leaves_nothing_the_detectors_find(input in value()) {
            let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
            let rules = Rules::plain(Classification::Public);
            let mut once = input.clone();
            if redactor.redact_value(&mut once, &rules).is_err() {
                return Ok(());
            }
            let mut twice = once.clone();
            prop_assert!(redactor.redact_value(&mut twice, &rules).is_ok());
            prop_assert_eq!(&once, &twice);
            let (mut found, mut numbers) = (Vec::new(), Vec::new());
            leaves(&once, &mut found, &mut numbers);
            for s in found {
                let hits = redactor.detectors().find(&s);
                prop_assert!(hits.is_empty(), "{:?} still holds {:?} (from {})", s, hits, input);
            }
            for n in numbers {
                prop_assert!(!redactor.detectors().is_card_number(n.trim_start_matches('-')), "{} (from {})", n, input);
            }
        }

        #[test]
        fn results_of_any_shape_are_redacted_or_withheld(input in value(), structured in value()) {
            let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
            let rules = Rules::plain(Classification::Internal);
            let mut result = serde_json::json!({"content": [{"type": "text", "text": input.to_string()}, input], "structuredContent": structured});
            let _ = redactor.redact_result(&mut result, &rules);
        }
    }
}
