//! Argument mirrors (protocol 2026-07-28, `x-mcp-header`): a tool's `inputSchema` may ask that a parameter's value
//! travel in an HTTP header `Mcp-Param-{name}` too, so that intermediaries can route on it. toolgate, the client of
//! its upstreams, mirrors them from the arguments it sends (never from a client's headers); a definition whose
//! annotations break the rules is refused from the catalog, as the revision tells clients to.

use rmcp::model::JsonObject;
use serde_json::Value;

/// One mirrored parameter: its header's name part and the chain of `properties` keys that leads to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub header: String,
    pub path: Vec<String>,
}

/// Most nesting followed through `properties`.
const MAX_DEPTH: usize = 32;

/// The mirrors a schema asks for, or why its annotations are invalid: each names a token (RFC 9110 `tchar`s),
/// case-insensitively unique, on a `string`, `integer` or `boolean` property reached from the root through
/// `properties` alone; an annotation anywhere else invalidates the definition.
pub fn mirrors(schema: &JsonObject) -> Result<Vec<Mirror>, String> {
    let mut found = Vec::new();
    collect(schema, &mut Vec::new(), &mut found)?;
    let everywhere = count_annotations(&Value::Object(schema.clone()), 0);
    if everywhere != found.len() {
        return Err(
            "`x-mcp-header` may only annotate a property reached through `properties` alone".into(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for mirror in &found {
        if !seen.insert(mirror.header.to_ascii_lowercase()) {
            return Err(format!(
                "`x-mcp-header` `{}` is used twice",
                mirror.header.escape_debug()
            ));
        }
    }
    Ok(found)
}

fn collect(
    schema: &JsonObject,
    path: &mut Vec<String>,
    found: &mut Vec<Mirror>,
) -> Result<(), String> {
    if path.len() > MAX_DEPTH {
        return Ok(());
    }
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return Ok(());
    };
    for (key, property) in properties {
        let Value::Object(property) = property else {
            continue;
        };
        path.push(key.clone());
        if let Some(header) = property.get("x-mcp-header") {
            let header = header
                .as_str()
                .filter(|h| !h.is_empty() && h.bytes().all(is_tchar))
                .ok_or_else(|| {
                    format!(
                        "`x-mcp-header` of `{}` is not a header name token",
                        key.escape_debug()
                    )
                })?;
            let primitive = matches!(
                property.get("type").and_then(Value::as_str),
                Some("string" | "integer" | "boolean")
            );
            if !primitive {
                return Err(format!(
                    "`x-mcp-header` annotates `{}`, which is not a string, integer or boolean",
                    key.escape_debug()
                ));
            }
            found.push(Mirror {
                header: header.to_string(),
                path: path.clone(),
            });
        }
        collect(property, path, found)?;
        path.pop();
    }
    Ok(())
}

/// Every `x-mcp-header` annotation anywhere in a schema.
fn count_annotations(value: &Value, depth: usize) -> usize {
    if depth > 64 {
        return 0;
    }
    match value {
        Value::Object(map) => {
            usize::from(map.contains_key("x-mcp-header"))
                + map
                    .values()
                    .map(|v| count_annotations(v, depth + 1))
                    .sum::<usize>()
        }
        Value::Array(items) => items.iter().map(|v| count_annotations(v, depth + 1)).sum(),
        _ => 0,
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The header value of a mirrored parameter in these arguments: a string as it is, an integer in decimal, a
/// boolean as `true` or `false`; none when the value is absent or null (or not of a primitive type).
pub fn mirrored_value(arguments: &JsonObject, path: &[String]) -> Option<String> {
    let (last, parents) = path.split_last()?;
    let mut object = arguments;
    for key in parents {
        object = object.get(key)?.as_object()?;
    }
    match object.get(last)? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> JsonObject {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn annotations_reached_through_properties_are_mirrored() {
        let found = mirrors(&schema(json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "query": {"type": "string"},
            "opts": {"type": "object", "properties": {"tenant": {"type": "integer", "x-mcp-header": "Tenant"}}},
        }})))
        .unwrap();
        for (header, path) in [
            ("Region", vec!["region"]),
            ("Tenant", vec!["opts", "tenant"]),
        ] {
            let mirror = Mirror {
                header: header.into(),
                path: path.into_iter().map(String::from).collect(),
            };
            assert!(found.contains(&mirror), "{found:?}");
        }
        assert_eq!(found.len(), 2);
        let arguments = schema(json!({"region": "us-west1", "opts": {"tenant": 42}, "query": "x"}));
        assert_eq!(
            mirrored_value(&arguments, &["region".into()]).as_deref(),
            Some("us-west1")
        );
        assert_eq!(
            mirrored_value(&arguments, &["opts".into(), "tenant".into()]).as_deref(),
            Some("42")
        );
        assert_eq!(mirrored_value(&arguments, &["missing".into()]), None);
    }

    #[test]
    fn annotations_against_the_rules_invalidate_the_definition() {
        for bad in [
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "object", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A\r\nX: y"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Same"},
                                  "b": {"type": "string", "x-mcp-header": "same"}}}),
            json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
            json!({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
            json!({"$defs": {"d": {"type": "string", "x-mcp-header": "A"}}}),
        ] {
            assert!(mirrors(&schema(bad.clone())).is_err(), "{bad}");
        }
        assert_eq!(
            mirrors(&schema(json!({"properties": {"a": {"type": "string"}}}))),
            Ok(vec![])
        );
    }
}
