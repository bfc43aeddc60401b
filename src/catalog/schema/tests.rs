#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde_json::json;

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => panic!("not an object"),
    }
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

fn reasons(compiled: &InputSchema, arguments: Value) -> Vec<String> {
    match compiled.check(&mut Some(args(arguments))) {
        Err(ArgumentsRefused::Invalid(reasons)) => reasons,
        other => panic!("expected invalid arguments, got {other:?}"),
    }
}

fn strict() -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {"text": {"type": "string"}, "times": {"type": "integer", "minimum": 1}},
        "required": ["text"],
        "additionalProperties": false
    }))
}

#[test]
fn valid_arguments_pass_and_missing_arguments_are_an_empty_object() {
    let compiled = InputSchema::compile(&strict());
    assert_eq!(
        compiled.check(&mut Some(args(json!({"text": "hi", "times": 2})))),
        Ok(())
    );
    let optional = InputSchema::compile(&schema(json!({"type": "object"})));
    assert_eq!(optional.check(&mut None), Ok(()));
    // No arguments at all are checked as `{}`: a required property is then missing.
    assert_eq!(
        compiled.check(&mut None),
        Err(ArgumentsRefused::Invalid(vec![
            "arguments: missing required property `text`".into()
        ]))
    );
}

#[test]
fn reasons_name_the_place_and_the_fault_but_never_the_value() {
    let compiled = InputSchema::compile(&strict());
    let found = reasons(
        &compiled,
        json!({"times": "secret-value-123", "extra": 1, "more": "secret-value-456"}),
    );
    let joined = found.join("; ");
    assert!(
        joined.contains("`/times`: expected integer, got string"),
        "{joined}"
    );
    assert!(
        joined.contains("arguments: missing required property `text`"),
        "{joined}"
    );
    assert!(
        joined.contains("2 properties are not allowed: `extra`, `more`")
            || joined.contains("2 properties are not allowed: `more`, `extra`"),
        "{joined}"
    );
    assert!(!joined.contains("secret-value"), "{joined}");
    let none = InputSchema::compile(&schema(
        json!({"type": "object", "additionalProperties": false}),
    ));
    assert_eq!(
        reasons(&none, json!({"extra": "secret-value"})),
        vec!["arguments: no property is allowed here".to_string()]
    );
    let below = reasons(&compiled, json!({"text": "secret-value", "times": 0}));
    assert_eq!(
        below,
        vec!["`/times`: the value is less than the minimum of 1".to_string()]
    );
}

#[test]
fn reasons_are_bounded_whatever_the_caller_sends() {
    let compiled = InputSchema::compile(&schema(json!({
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "propertyNames": {"maxLength": 10000000}
    })));
    let mut huge = JsonObject::new();
    for i in 0..1000 {
        huge.insert(format!("{i}-{}", "k".repeat(10_000)), json!("x"));
    }
    let Err(refused) = compiled.check(&mut Some(huge.clone())) else {
        panic!("accepted")
    };
    let ArgumentsRefused::Invalid(found) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(found.len(), MAX_ERRORS + 1);
    assert_eq!(found.last().map(String::as_str), Some("and more errors"));
    assert!(found.iter().all(|r| r.chars().count() <= MAX_REASON + 1));
    assert!(
        refused.message("t").len() < 2_000,
        "{}",
        refused.message("t")
    );
    // Many unexpected names in one error are cut short too.
    let closed = InputSchema::compile(&schema(json!({
        "type": "object",
        "properties": {"known": {}},
        "additionalProperties": false
    })));
    let names = reasons(&closed, Value::Object(huge));
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("arguments: 1000 properties are not allowed: `"),
        "{}",
        names[0]
    );
    assert!(names[0].chars().count() <= MAX_REASON + 1);
}

#[test]
fn a_schema_is_compiled_once_and_reused_while_it_stays_the_same() {
    let first = InputSchema::reuse_or_compile(None, &strict(), "t");
    // A refresh brings a new but equal schema: the compiled one is kept.
    let again = InputSchema::reuse_or_compile(Some(&first), &strict(), "t");
    assert!(Arc::ptr_eq(&first, &again));
    // A changed schema is compiled anew, from the new object.
    let changed = schema(json!({"type": "object", "required": ["other"]}));
    let recompiled = InputSchema::reuse_or_compile(Some(&first), &changed, "t");
    assert!(!Arc::ptr_eq(&first, &recompiled));
    assert!(Arc::ptr_eq(recompiled.source(), &changed));
    assert!(
        recompiled
            .check(&mut Some(args(json!({"text": "hi"}))))
            .is_err()
    );
}

#[test]
fn the_dialect_is_chosen_by_dollar_schema_defaulting_to_2020_12() {
    // `prefixItems` is 2020-12's (draft-07 ignores it); an array `items` is draft-07's tuple form (2020-12
    // refuses it).
    let prefix = json!({
        "type": "object",
        "properties": {"p": {"type": "array", "prefixItems": [{"type": "integer"}]}}
    });
    let tuple = json!({
        "type": "object",
        "properties": {"p": {"type": "array", "items": [{"type": "integer"}]}}
    });
    let wrong = args(json!({"p": ["a"]}));
    let right = args(json!({"p": [1]}));
    for named in [
        None,
        Some("https://json-schema.org/draft/2020-12/schema"),
        Some("https://json-schema.org/draft/2020-12/schema#"),
    ] {
        let with = |body: &Value| {
            let mut body = body.clone();
            if let Some(uri) = named {
                body["$schema"] = json!(uri);
            }
            InputSchema::compile(&schema(body))
        };
        let modern = with(&prefix);
        assert!(modern.check(&mut Some(wrong.clone())).is_err(), "{named:?}");
        assert!(modern.check(&mut Some(right.clone())).is_ok(), "{named:?}");
        assert!(with(&tuple).unusable().is_some(), "{named:?}");
    }
    for uri in [
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
    ] {
        let with = |body: &Value| {
            let mut body = body.clone();
            body["$schema"] = json!(uri);
            InputSchema::compile(&schema(body))
        };
        assert!(
            with(&prefix).check(&mut Some(wrong.clone())).is_ok(),
            "{uri}"
        );
        let draft7 = with(&tuple);
        assert!(draft7.unusable().is_none(), "{:?}", draft7.unusable());
        assert!(draft7.check(&mut Some(wrong.clone())).is_err(), "{uri}");
        assert!(draft7.check(&mut Some(right.clone())).is_ok(), "{uri}");
    }
}

#[test]
fn other_dialects_and_broken_schemas_are_unusable() {
    for (bad, expected) in [
        (
            json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}),
            "not a supported dialect",
        ),
        (json!({"$schema": 7, "type": "object"}), "not a string"),
        (
            json!({"type": "object", "properties": {"x": {"type": "nonsense"}}}),
            "",
        ),
        (
            json!({"type": "object", "properties": {"x": {"pattern": "("}}}),
            "",
        ),
    ] {
        let compiled = InputSchema::compile(&schema(bad.clone()));
        let why = compiled
            .unusable()
            .unwrap_or_else(|| panic!("{bad} compiled"));
        assert!(why.contains(expected), "{why}");
        let refused = compiled.check(&mut None).unwrap_err();
        assert_eq!(refused.reason_id().as_str(), "invalid_input_schema");
        assert!(
            refused.message("up__tool").starts_with(
                "toolgate refused this call to `up__tool` (reason `invalid_input_schema`)"
            ),
            "{}",
            refused.message("up__tool")
        );
    }
}

#[test]
fn references_resolve_inside_the_schema_only() {
    let local = InputSchema::compile(&schema(json!({
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/count"}},
        "$defs": {"count": {"type": "integer"}}
    })));
    assert!(local.check(&mut Some(args(json!({"n": 1})))).is_ok());
    assert!(local.check(&mut Some(args(json!({"n": "1"})))).is_err());
    // Nothing is fetched: a reference elsewhere makes the schema unusable (fail closed).
    for remote in [
        "https://example.invalid/schema.json",
        "http://127.0.0.1:9/schema.json",
        "file:///etc/passwd",
    ] {
        let compiled = InputSchema::compile(&schema(json!({
            "type": "object",
            "properties": {"n": {"$ref": remote}}
        })));
        assert!(compiled.unusable().is_some(), "{remote} resolved");
    }
}
