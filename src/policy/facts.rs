//! Argument facts: what a tool's arguments mean, worked out by real parsers as the tool's manifest directs.
//! They reach policy as `input.facts`, keyed by argument name.

pub mod path;
pub mod sql;

use serde_json::{Map, Value, json};

use crate::catalog::manifest::{ArgumentKind, ToolManifest};

/// Facts for every argument the manifest describes. An argument of the wrong type is a fact too (`invalid`),
/// so that policy refuses it rather than skipping it.
pub fn for_call(
    manifest: &ToolManifest,
    arguments: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut facts = Map::new();
    for (name, kind) in &manifest.arguments {
        let Some(value) = arguments.and_then(|a| a.get(name)) else {
            continue;
        };
        let fact = match (kind, value.as_str()) {
            (ArgumentKind::Sql, Some(text)) => {
                let mut fact = serde_json::to_value(sql::analyse(text)).unwrap_or(Value::Null);
                fact["kind"] = json!("sql");
                fact
            }
            (ArgumentKind::Path { root }, Some(text)) => {
                let mut fact =
                    serde_json::to_value(path::analyse(text, root)).unwrap_or(Value::Null);
                fact["kind"] = json!("path");
                fact
            }
            (ArgumentKind::Sql, None) => {
                json!({"kind": "sql", "parsed": false, "error": "not a string"})
            }
            (ArgumentKind::Path { .. }, None) => {
                json!({"kind": "path", "invalid": true, "escapes_root": true})
            }
        };
        facts.insert(name.clone(), fact);
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::manifest::Manifests;

    #[test]
    fn facts_follow_the_manifest() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
        let manifests = Manifests::load_dir(&dir).unwrap();
        let args = json!({"sql": "WITH d AS (SELECT 1) DELETE FROM customers"});
        let facts = for_call(manifests.get("sql", "query"), args.as_object());
        assert_eq!(facts["sql"]["kind"], "sql");
        assert_eq!(facts["sql"]["read_only"], false);
        assert_eq!(facts["sql"]["tables"], json!(["customers"]));
        let args = json!({"path": "../../etc/passwd", "content": "x"});
        let facts = for_call(manifests.get("files", "write_file"), args.as_object());
        assert_eq!(facts["path"]["escapes_root"], true);
        // Wrong types are facts, not silence; undescribed tools have no facts.
        let facts = for_call(
            manifests.get("sql", "query"),
            json!({"sql": 42}).as_object(),
        );
        assert_eq!(facts["sql"]["parsed"], false);
        assert!(for_call(manifests.get("x", "y"), json!({"a": "b"}).as_object()).is_empty());
    }
}
