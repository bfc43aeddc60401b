//! What `tools/list` and the policy input see of a tool: its reference in the input, its advertised definition,
//! opaque cursors; and what the detectors find in a call's arguments.

use crate::catalog::ExposedTool;
use crate::manifest::ToolManifest;
use crate::policy::input::{CallerInput, ToolRef};
use crate::policy::{Action, Bundle, PolicyInput};
use crate::redact::widen_output_schema;

pub(super) fn tool_ref<'a>(tool: &'a ExposedTool, manifest: &'a ToolManifest) -> ToolRef<'a> {
    ToolRef {
        name: &tool.name,
        upstream: &tool.upstream,
        original: &tool.original,
        manifest,
        annotations: tool.annotations_json.as_ref(),
    }
}

pub(super) fn list_input(who: &CallerInput, bundle: &Bundle, tool: &ExposedTool) -> PolicyInput {
    let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
    who.for_tool(
        tool_ref(tool, manifest),
        Action::List,
        None,
        serde_json::Map::new(),
    )
}

/// Cursors are opaque to clients: the last listed name, base64url-encoded.
pub(super) fn encode_cursor(name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

pub(super) fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// A tool's definition as this bundle advertises it: the output schema accepts masks at classified fields.
pub(super) fn advertised(bundle: &Bundle, tool: &ExposedTool) -> rmcp::model::Tool {
    let mut definition = tool.definition.clone();
    let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
    if !manifest.output.fields.is_empty()
        && let Some(schema) = definition.output_schema.take()
    {
        let mut schema = std::sync::Arc::unwrap_or_clone(schema);
        widen_output_schema(&mut schema, manifest);
        definition.output_schema = Some(std::sync::Arc::new(schema));
    }
    definition
}

/// Adds what the detectors find in each argument to its facts: `detected: [{detector, class, path}]`.
pub(super) fn add_detected(
    facts: &mut serde_json::Map<String, serde_json::Value>,
    arguments: &serde_json::Map<String, serde_json::Value>,
    detectors: &crate::redact::Detectors,
) {
    fn strings<'a>(
        value: &'a serde_json::Value,
        path: String,
        out: &mut Vec<(String, &'a str)>,
        depth: usize,
    ) {
        if depth > 32 {
            return;
        }
        match value {
            serde_json::Value::String(s) => out.push((path, s)),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    strings(item, format!("{path}[{i}]"), out, depth + 1);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    strings(v, format!("{path}.{k}"), out, depth + 1);
                }
            }
            _ => {}
        }
    }
    for (name, value) in arguments {
        let mut found = Vec::new();
        let mut texts = Vec::new();
        strings(value, format!("$.{name}"), &mut texts, 0);
        for (path, text) in texts {
            for hit in detectors.find(text) {
                found.push(
                    serde_json::json!({"detector": hit.detector, "class": hit.class, "path": path}),
                );
            }
        }
        if found.is_empty() {
            continue;
        }
        let fact = facts
            .entry(name.clone())
            .or_insert_with(|| serde_json::json!({"kind": "value", "present": true}));
        fact["detected"] = serde_json::Value::Array(found);
    }
}
