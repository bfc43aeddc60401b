//! Any JSON answer to `resources/read` or `prompts/get`, shaped by MCP's words, is redacted or refused without a
//! panic; a redacted one keeps its `contents` or `messages` as a list, and no detector finds a value above the
//! lowest clearance in any of its texts (blobs declared as text, or declaring nothing, included).

use super::*;
use crate::classification::Classification;
use base64::Engine;
use proptest::prelude::*;

fn answer() -> impl Strategy<Value = Value> {
    let words = vec![
        "text",
        "resource",
        "resource_link",
        "image",
        "text/plain",
        "application/json",
        "image/png",
        "123-45-6789",
        "ada.lovelace@example.com",
        "MTIzLTQ1LTY3ODk=",
        "user",
        "assistant",
        "a://x",
        "{\"national_id\": \"123-45-6789\"}",
    ];
    let keys = vec![
        "contents",
        "messages",
        "uri",
        "mimeType",
        "text",
        "blob",
        "role",
        "content",
        "type",
        "resource",
        "description",
        "_meta",
        "data",
    ];
    crate::fuzzing::json_value(words, keys, 5)
}

fn texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
        Value::Object(map) => {
            // A blob declared as text (or declaring nothing) that decodes to text: it must be clean too.
            let mime = map.get("mimeType").and_then(Value::as_str);
            if let Some(Value::String(blob)) = map.get("blob")
                && mime.is_none_or(crate::redact::declared_text)
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(blob)
                && let Ok(text) = String::from_utf8(bytes)
            {
                out.push(text);
            }
            map.iter()
                .filter(|(k, _)| *k != "blob" && *k != "data")
                .for_each(|(_, v)| texts(v, out));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn answers_are_redacted_or_refused_never_a_panic(read in answer(), prompt in answer()) {
        let redactor = crate::redact::Redactor::new(&crate::config::RedactionConfig::default()).unwrap();
        let rules = Rules::plain(Classification::Public);
        for (mut value, list, redact) in [
            (read, "contents", redact_read as fn(&_, &mut Value, &Rules) -> _),
            (prompt, "messages", redact_prompt),
        ] {
            if redact(&redactor, &mut value, &rules).is_ok() {
                prop_assert!(value.get(list).is_some_and(Value::is_array), "{}", value);
                let mut found = Vec::new();
                texts(&value, &mut found);
                for text in found {
                    prop_assert!(
                        !text.contains("123-45-6789") && !text.contains("ada.lovelace@example.com"),
                        "left in the clear: {}", text
                    );
                }
            }
        }
    }
}
