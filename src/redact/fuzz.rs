//! Fuzzing redaction: any JSON, its strings made of sensitive values, encodings, separators, invisible characters
//! and JSON nested in strings, never panics; redacting twice changes nothing more; and once redacted for the lowest
//! clearance, no detector finds anything above it in any string of the result.

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
        prop::sample::select(vec!["123-45-6789", "ada.lovelace@example.com"]).prop_map(hex::encode),
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
                    prop::sample::select(vec!["secret", "note", "type", "data", "text", "a", "b"])
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
