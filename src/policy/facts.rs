//! Argument facts: what a tool's arguments mean, worked out by real parsers as the tool's manifest directs.
//! They reach policy as `input.facts`, keyed by argument name.

pub mod path;

use serde_json::{Map, Value, json};

use crate::manifest::{ArgumentKind, ToolManifest};

/// Facts for every argument the manifest describes. An argument of the wrong type is a fact too (`invalid`),
/// so that policy refuses it rather than skipping it.
pub fn for_call(
    manifest: &ToolManifest,
    arguments: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    manifest
        .arguments
        .iter()
        .map(|(name, kind)| {
            (
                name.clone(),
                fact(kind, arguments.and_then(|a| a.get(name))),
            )
        })
        .collect()
}

/// [`for_call`], with SQL statements analysed off the async worker threads: preparing one is bounded (100 ms,
/// SQLite's limits) but is CPU work that must not hold up other requests. Only the statements and their
/// schemas travel to the blocking thread. If the analysis itself fails, each statement's fact says so, and
/// policies refuse it.
pub async fn for_call_blocking(
    manifest: &ToolManifest,
    arguments: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut facts = Map::new();
    let mut statements = Vec::new();
    for (name, kind) in &manifest.arguments {
        let value = arguments.and_then(|a| a.get(name));
        match (kind, value) {
            (ArgumentKind::Sql { compiled, .. }, Some(Value::String(text))) => {
                statements.push((name.clone(), compiled.database(), text.clone()));
            }
            _ => {
                facts.insert(name.clone(), fact(kind, value));
            }
        }
    }
    if statements.is_empty() {
        return facts;
    }
    let names: Vec<String> = statements.iter().map(|(name, ..)| name.clone()).collect();
    let analysed = tokio::task::spawn_blocking(move || {
        statements
            .into_iter()
            .map(|(name, database, text)| (name, sql_fact(&database, &text)))
            .collect::<Vec<_>>()
    })
    .await;
    match analysed {
        Ok(analysed) => facts.extend(analysed),
        Err(_) => facts.extend(names.into_iter().map(|name| {
            let failed = json!({"kind": "sql", "dialect": "sqlite", "prepared": false, "read_only": false,
                                "error": "the statement could not be analysed", "present": true});
            (name, failed)
        })),
    }
    facts
}

/// One argument's fact.
fn fact(kind: &ArgumentKind, value: Option<&Value>) -> Value {
    let mut fact = match (kind, value) {
        (ArgumentKind::Sql { compiled, .. }, Some(Value::String(text))) => {
            return sql_fact(&compiled.database(), text);
        }
        (ArgumentKind::Path { root }, Some(Value::String(text))) => {
            tagged(serde_json::to_value(path::analyse(text, root)), "path")
        }
        // Left out, the tool uses its own default: for a path that is taken to be the root (the most it could
        // mean); SQL that is not there cannot be parsed.
        (ArgumentKind::Path { root }, None) => {
            tagged(serde_json::to_value(path::analyse("", root)), "path")
        }
        (ArgumentKind::Sql { .. }, _) => {
            json!({"kind": "sql", "dialect": "sqlite", "prepared": false, "read_only": false,
                   "error": if value.is_some() { "not a string" } else { "missing" }})
        }
        (ArgumentKind::Path { .. }, Some(_)) => {
            json!({"kind": "path", "invalid": true, "escapes_root": true})
        }
    };
    fact["present"] = json!(value.is_some());
    fact
}

/// The fact of a SQL statement that was sent.
fn sql_fact(database: &crate::sql::SqlDatabase, text: &str) -> Value {
    let mut fact = tagged(serde_json::to_value(database.analyse(text)), "sql");
    fact["present"] = json!(true);
    fact
}

/// A serialised fact with its `kind`.
fn tagged(fact: Result<Value, serde_json::Error>, kind: &str) -> Value {
    let mut fact = fact.unwrap_or_else(|_| json!({"invalid": true, "prepared": false}));
    fact["kind"] = json!(kind);
    fact
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifests;

    #[test]
    fn facts_follow_the_manifest() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
        let manifests = Manifests::load_dir(&dir).unwrap();
        let args = json!({"sql": "WITH d AS (SELECT 1) DELETE FROM customers"});
        let facts = for_call(manifests.get("sql", "query"), args.as_object());
        assert_eq!(facts["sql"]["kind"], "sql");
        assert_eq!(facts["sql"]["read_only"], false);
        assert_eq!(facts["sql"]["tables"], json!(["customers"]));
        assert!(
            facts["sql"]["kinds"]
                .as_array()
                .unwrap()
                .contains(&json!("delete"))
        );
        let args = json!({"path": "../../etc/passwd", "content": "x"});
        let facts = for_call(manifests.get("files", "write_file"), args.as_object());
        assert_eq!(facts["path"]["escapes_root"], true);
        // Wrong types are facts, not silence; undescribed tools have no facts.
        let facts = for_call(
            manifests.get("sql", "query"),
            json!({"sql": 42}).as_object(),
        );
        assert_eq!(facts["sql"]["prepared"], false);
        assert!(for_call(manifests.get("x", "y"), json!({"a": "b"}).as_object()).is_empty());
        // Left out: a path means the root, SQL is unparseable.
        let facts = for_call(manifests.get("files", "list_files"), json!({}).as_object());
        assert_eq!(facts["path"]["normalized"], "");
        assert_eq!(facts["path"]["present"], false);
        let facts = for_call(manifests.get("sql", "query"), None);
        assert_eq!(facts["sql"]["prepared"], false);
    }
}
