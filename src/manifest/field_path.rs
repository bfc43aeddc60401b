//! Field paths of classified output, a small JSONPath subset: `$` then any of `.name`, `['name']`, `[N]`, `[*]`
//! and `..name` (that name at any depth).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
    Wildcard,
    Descend(String),
}

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn name(chars: &[char], i: &mut usize) -> String {
    let start = *i;
    while *i < chars.len() && (chars[*i].is_alphanumeric() || matches!(chars[*i], '_' | '-')) {
        *i += 1;
    }
    chars[start..*i].iter().collect()
}

/// A field path that does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldPathError(String);

impl FieldPath {
    pub fn parse(text: &str) -> Result<Self, FieldPathError> {
        Self::parse_text(text).map_err(FieldPathError)
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let chars: Vec<char> = text.chars().collect();
        if chars.first() != Some(&'$') {
            return Err("a field path starts with `$`".into());
        }
        let mut segments = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' if chars.get(i + 1) == Some(&'.') => {
                    i += 2;
                    let n = name(&chars, &mut i);
                    if n.is_empty() {
                        return Err("`..` must be followed by a name".into());
                    }
                    segments.push(Segment::Descend(n));
                }
                '.' => {
                    i += 1;
                    if chars.get(i) == Some(&'*') {
                        i += 1;
                        segments.push(Segment::Wildcard);
                        continue;
                    }
                    let n = name(&chars, &mut i);
                    if n.is_empty() {
                        return Err(format!("a name is expected at position {i}"));
                    }
                    segments.push(Segment::Key(n));
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .ok_or("unclosed `[`")?
                        + i;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let inner = inner.trim();
                    let segment = if inner == "*" {
                        Segment::Wildcard
                    } else if let Ok(n) = inner.parse::<usize>() {
                        Segment::Index(n)
                    } else if inner.len() >= 2
                        && ((inner.starts_with('\'') && inner.ends_with('\''))
                            || (inner.starts_with('"') && inner.ends_with('"')))
                    {
                        Segment::Key(inner[1..inner.len() - 1].to_string())
                    } else {
                        return Err(format!("`[{inner}]` is not `[*]`, `[N]` or `['name']`"));
                    };
                    segments.push(segment);
                    i = close + 1;
                }
                other => return Err(format!("unexpected `{other}` at position {i}")),
            }
        }
        if segments.is_empty() {
            return Err(
                "`$` alone would classify the whole output: use `output.classification`".into(),
            );
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    /// Calls `f` on every value the path selects.
    pub fn visit_mut(&self, value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        visit(value, &self.segments, f, 0);
    }

    /// JSON pointers of the sub-schemas of `schema` (a JSON Schema, `$ref`s into `#/…` followed) that describe the
    /// values the path selects.
    pub fn schema_pointers(&self, schema: &Value) -> Vec<String> {
        let mut out = Vec::new();
        schema_walk(schema, schema, String::new(), &self.segments, &mut out, 0);
        out.sort();
        out.dedup();
        out
    }
}

const MAX_DEPTH: usize = 128;

fn visit(value: &mut Value, segments: &[Segment], f: &mut dyn FnMut(&mut Value), depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some((first, rest)) = segments.split_first() else {
        f(value);
        return;
    };
    match (first, value) {
        (Segment::Key(k), Value::Object(map)) => {
            if let Some(child) = map.get_mut(k) {
                visit(child, rest, f, depth + 1);
            }
        }
        (Segment::Index(n), Value::Array(items)) => {
            if let Some(child) = items.get_mut(*n) {
                visit(child, rest, f, depth + 1);
            }
        }
        (Segment::Wildcard, Value::Array(items)) => {
            for child in items {
                visit(child, rest, f, depth + 1);
            }
        }
        (Segment::Wildcard, Value::Object(map)) => {
            for child in map.values_mut() {
                visit(child, rest, f, depth + 1);
            }
        }
        (Segment::Descend(k), Value::Object(map)) => {
            for (key, child) in map.iter_mut() {
                if key == k {
                    visit(child, rest, f, depth + 1);
                } else {
                    visit(child, segments, f, depth + 1);
                }
            }
        }
        (Segment::Descend(_), Value::Array(items)) => {
            for child in items {
                visit(child, segments, f, depth + 1);
            }
        }
        _ => {}
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Follows a local `$ref` (`#/…`) to its target and pointer.
fn resolve<'a>(root: &'a Value, node: &'a Value, pointer: String) -> (&'a Value, String) {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => match root.pointer(&r[1..]) {
            Some(target) => (target, r[1..].to_string()),
            None => (node, pointer),
        },
        _ => (node, pointer),
    }
}

fn schema_walk(
    root: &Value,
    node: &Value,
    pointer: String,
    segments: &[Segment],
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let (node, pointer) = resolve(root, node, pointer);
    let Some((first, rest)) = segments.split_first() else {
        out.push(pointer);
        return;
    };
    // Alternatives describe the same value.
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(options)) = node.get(combinator) {
            for (i, option) in options.iter().enumerate() {
                schema_walk(
                    root,
                    option,
                    format!("{pointer}/{combinator}/{i}"),
                    segments,
                    out,
                    depth + 1,
                );
            }
        }
    }
    let properties = node.get("properties").and_then(Value::as_object);
    let items = node.get("items").filter(|i| i.is_object());
    match first {
        Segment::Key(k) => {
            if let Some(child) = properties.and_then(|p| p.get(k)) {
                schema_walk(
                    root,
                    child,
                    format!("{pointer}/properties/{}", escape(k)),
                    rest,
                    out,
                    depth + 1,
                );
            }
        }
        Segment::Index(_) | Segment::Wildcard => {
            if let Some(child) = items {
                schema_walk(
                    root,
                    child,
                    format!("{pointer}/items"),
                    rest,
                    out,
                    depth + 1,
                );
            }
            if matches!(first, Segment::Wildcard)
                && let Some(properties) = properties
            {
                for (k, child) in properties {
                    schema_walk(
                        root,
                        child,
                        format!("{pointer}/properties/{}", escape(k)),
                        rest,
                        out,
                        depth + 1,
                    );
                }
            }
        }
        Segment::Descend(k) => {
            if let Some(properties) = properties {
                for (key, child) in properties {
                    let here = format!("{pointer}/properties/{}", escape(key));
                    if key == k {
                        schema_walk(root, child, here, rest, out, depth + 1);
                    } else {
                        schema_walk(root, child, here, segments, out, depth + 1);
                    }
                }
            }
            if let Some(child) = items {
                schema_walk(
                    root,
                    child,
                    format!("{pointer}/items"),
                    segments,
                    out,
                    depth + 1,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_subset_and_refuses_the_rest() {
        for ok in [
            "$.a",
            "$.employees[*].ssn",
            "$..national_id",
            "$['a b'][0]",
            "$.*",
        ] {
            assert!(FieldPath::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a.b", "$", "$.", "$[", "$[?(@.x)]", "$..", "$.a b"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selects_values() {
        let mut v = json!({"employees": [{"ssn": 1, "n": {"ssn": 2}}, {"ssn": 3}], "ssn": 4});
        let mut seen = Vec::new();
        FieldPath::parse("$.employees[*].ssn")
            .unwrap()
            .visit_mut(&mut v, &mut |x| seen.push(x.clone()));
        assert_eq!(seen, vec![json!(1), json!(3)]);
        let mut count = 0;
        FieldPath::parse("$..ssn")
            .unwrap()
            .visit_mut(&mut v, &mut |_| count += 1);
        assert_eq!(count, 4);
    }

    #[test]
    fn finds_sub_schemas_through_refs() {
        let schema = json!({
            "type": "object",
            "properties": {"employees": {"type": "array", "items": {"$ref": "#/$defs/Employee"}}},
            "$defs": {"Employee": {"type": "object", "properties": {"salary": {"type": "integer"}}}}
        });
        let pointers = FieldPath::parse("$..salary")
            .unwrap()
            .schema_pointers(&schema);
        assert_eq!(pointers, vec!["/$defs/Employee/properties/salary"]);
    }
}
