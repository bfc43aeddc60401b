//! The walk over a value being redacted: every string in it, JSON nested in strings opened and redacted
//! structurally, values split across sibling strings detected over the strings joined, and what MCP defines as
//! opaque (only where it defines it, and an embedded resource's blob only when it is not text) passed over.

use serde_json::{Map, Value};

use super::{RedactError, RedactionSummary, Redactor, Rules, looks_like_json, mask, parse_json};
use crate::classification::Classification;

/// Content-block discriminators of MCP results.
const BLOCK_TYPES: &[&str] = &["text", "image", "audio", "resource", "resource_link"];

/// Where a value sits in what is being redacted: only the places where MCP defines opaque fields are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
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

impl Redactor {
    /// Every string in `value`: JSON inside it redacted structurally (and field paths applied to it when it is a
    /// text block's), other text through the detectors.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn walk(
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
        // An embedded resource's blob that is text is redacted as text (then passed over as opaque below).
        if at == At::Resource {
            self.redact_blob(map, rules, place, depth, summary)?;
        }
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

    pub(super) fn redact_string(
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
