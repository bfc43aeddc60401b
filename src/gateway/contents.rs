//! Redaction of what resources and prompts return: a read's contents and a prompt's messages are redacted as the
//! content blocks of a tool result would be (`Redactor::redact_result`, which also reads embedded resources'
//! blobs that are text as text), every other member as any value.

use serde_json::{Map, Value, json};

use crate::redact::{RedactError, RedactionSummary, Rules};

/// Redacts `blocks` as a tool result's content (every plane MCP defines, JSON in text with the manifest's field
/// paths), then the rest of the answer as any value.
fn redact_blocks(
    redactor: &crate::redact::Redactor,
    blocks: Vec<Value>,
    rest: &mut Value,
    rules: &Rules,
) -> Result<(Vec<Value>, RedactionSummary), RedactError> {
    let mut wrapped = json!({"content": blocks});
    let mut summary = redactor.redact_result(&mut wrapped, rules)?;
    let rest_summary = redactor.redact_value(rest, rules)?;
    for (class, count) in rest_summary.by_class {
        *summary.by_class.entry(class).or_default() += count;
    }
    for path in rest_summary.paths {
        if summary.paths.len() < 256 && !summary.paths.contains(&path) {
            summary.paths.push(path);
        }
    }
    let blocks = match wrapped.get_mut("content").map(Value::take) {
        Some(Value::Array(blocks)) => blocks,
        _ => return Err(RedactError::Shape("redacted content lost its shape".into())),
    };
    Ok((blocks, summary))
}

/// Takes the member `key` (a list) out of an answer that must be an object.
fn take_list(result: &mut Value, key: &str, what: &str) -> Result<Vec<Value>, RedactError> {
    let Some(object) = result.as_object_mut() else {
        return Err(RedactError::Shape(format!(
            "a {what} result is not an object"
        )));
    };
    Ok(match object.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    })
}

/// Puts the member `key` back into the (redacted) answer.
fn put_list(
    result: &mut Value,
    key: &str,
    items: Vec<Value>,
    what: &str,
) -> Result<(), RedactError> {
    match result.as_object_mut() {
        Some(object) => {
            object.insert(key.into(), Value::Array(items));
            Ok(())
        }
        None => Err(RedactError::Shape(format!(
            "a {what} result lost its shape"
        ))),
    }
}

/// A `resources/read` answer: a text content as a text block of a tool result (detectors, JSON in it with the
/// manifest's field paths), a blob as an embedded resource (read as text when it is text); the contents' other
/// members and the rest of the answer as any value. URIs and media types stay as they are.
pub(super) fn redact_read(
    redactor: &crate::redact::Redactor,
    result: &mut Value,
    rules: &Rules,
) -> Result<RedactionSummary, RedactError> {
    let contents = take_list(result, "contents", "resources/read")?;
    // Per content: its members beside the text (none for a blob, which goes whole as an embedded resource).
    let mut sides: Vec<Option<Map<String, Value>>> = Vec::new();
    let mut blocks = Vec::new();
    for content in contents {
        let Value::Object(mut content) = content else {
            continue;
        };
        match content.remove("text") {
            Some(text @ Value::String(_)) => {
                blocks.push(json!({"type": "text", "text": text}));
                sides.push(Some(content));
            }
            other => {
                if let Some(other) = other {
                    content.insert("text".into(), other);
                }
                blocks.push(json!({"type": "resource", "resource": content}));
                sides.push(None);
            }
        }
    }
    // Members beside a text are redacted with the rest of the answer, keeping the URI and media type.
    let mut kept = Vec::new();
    let mut others = Vec::new();
    for side in sides.iter_mut().flatten() {
        kept.push((side.remove("uri"), side.remove("mimeType")));
        others.push(Value::Object(std::mem::take(side)));
    }
    let mut rest = json!({"result": result.take(), "others": others});
    let (blocks, summary) = redact_blocks(redactor, blocks, &mut rest, rules)?;
    let others = match rest.get_mut("others").map(Value::take) {
        Some(Value::Array(others)) => others,
        _ => Vec::new(),
    };
    *result = rest.get_mut("result").map(Value::take).unwrap_or(json!({}));
    let mut beside = others.into_iter().zip(kept);
    let mut contents = Vec::new();
    for (mut block, side) in blocks.into_iter().zip(sides) {
        let content = match side {
            None => block
                .get_mut("resource")
                .map(Value::take)
                .unwrap_or(Value::Null),
            Some(_) => {
                let (other, (uri, mime)) = beside.next().unwrap_or_default();
                let mut content = match other {
                    Value::Object(content) => content,
                    _ => Map::new(),
                };
                if let Some(uri) = uri {
                    content.insert("uri".into(), uri);
                }
                if let Some(mime) = mime {
                    content.insert("mimeType".into(), mime);
                }
                content.insert(
                    "text".into(),
                    block.get_mut("text").map(Value::take).unwrap_or_default(),
                );
                Value::Object(content)
            }
        };
        contents.push(content);
    }
    put_list(result, "contents", contents, "resources/read")?;
    Ok(summary)
}

/// A `prompts/get` answer: every message's content block as in a tool result.
pub(super) fn redact_prompt(
    redactor: &crate::redact::Redactor,
    result: &mut Value,
    rules: &Rules,
) -> Result<RedactionSummary, RedactError> {
    let mut messages = take_list(result, "messages", "prompts/get")?;
    let blocks: Vec<Value> = messages
        .iter_mut()
        .map(|m| m.get_mut("content").map(Value::take).unwrap_or(Value::Null))
        .collect();
    let mut rest = json!({"result": result.take(), "messages": messages});
    let (blocks, summary) = redact_blocks(redactor, blocks, &mut rest, rules)?;
    let mut messages = match rest.get_mut("messages").map(Value::take) {
        Some(Value::Array(messages)) => messages,
        _ => Vec::new(),
    };
    for (message, block) in messages.iter_mut().zip(blocks) {
        if let Some(message) = message.as_object_mut() {
            message.insert("content".into(), block);
        }
    }
    *result = rest.get_mut("result").map(Value::take).unwrap_or(json!({}));
    put_list(result, "messages", messages, "prompts/get")?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::classification::Classification;
    use crate::redact::UNREADABLE_BLOB;
    use base64::Engine;

    fn redactor() -> crate::redact::Redactor {
        crate::redact::Redactor::new(&crate::config::RedactionConfig::default()).unwrap()
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn a_read_is_redacted_on_every_plane_and_keeps_its_shape() {
        let secret = "national id 123-45-6789";
        let mut result = json!({
            "contents": [
                {"uri": "a://text", "mimeType": "text/plain", "text": secret},
                {"uri": "a://blob-text", "mimeType": "text/markdown; charset=utf-8", "blob": b64(secret)},
                {"uri": "a://blob-json", "mimeType": "application/ld+json", "blob": b64(&format!("{{\"n\": \"{secret}\"}}"))},
                {"uri": "a://png", "mimeType": "image/png", "blob": b64("\u{89}PNG 123-45-6789")},
                {"uri": "a://bad", "mimeType": "text/plain", "blob": "%%% not base64"},
                {"uri": "a://meta", "mimeType": "text/plain", "text": "ok", "_meta": {"note": secret}},
                {"uri": "a://undeclared", "blob": b64(secret)},
            ],
            "_meta": {"trace": secret},
        });
        let rules = Rules::plain(Classification::Internal);
        let summary = redact_read(&redactor(), &mut result, &rules).unwrap();
        assert!(!summary.is_empty());
        let contents = result["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 7);
        let uris: Vec<&str> = contents
            .iter()
            .map(|c| c["uri"].as_str().unwrap())
            .collect();
        assert_eq!(
            uris,
            [
                "a://text",
                "a://blob-text",
                "a://blob-json",
                "a://png",
                "a://bad",
                "a://meta",
                "a://undeclared"
            ]
        );
        let text = contents[0]["text"].as_str().unwrap();
        assert!(
            !text.contains("123-45-6789") && text.starts_with("national id"),
            "{text}"
        );
        // Blobs declared as text are read as text, redacted, and given back as blobs.
        for content in &contents[1..3] {
            assert!(content.get("text").is_none());
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(content["blob"].as_str().unwrap())
                .unwrap();
            let decoded = String::from_utf8(decoded).unwrap();
            assert!(!decoded.contains("123-45-6789"), "{decoded}");
            assert!(decoded.contains("national id"), "{decoded}");
        }
        assert_eq!(contents[1]["mimeType"], "text/markdown; charset=utf-8");
        // A binary blob is MCP's opaque payload: left as it is.
        assert_eq!(contents[3]["blob"], b64("\u{89}PNG 123-45-6789"));
        // A blob declared as text that is not text is withheld, never passed on unread.
        assert_eq!(contents[4]["text"], UNREADABLE_BLOB);
        assert!(contents[4].get("blob").is_none());
        assert!(
            !contents[5]["_meta"]["note"]
                .as_str()
                .unwrap()
                .contains("123-45-6789")
        );
        assert!(
            !result["_meta"]["trace"]
                .as_str()
                .unwrap()
                .contains("123-45-6789")
        );
        // A blob that declares no type but is text is read as text.
        let undeclared = base64::engine::general_purpose::STANDARD
            .decode(contents[6]["blob"].as_str().unwrap())
            .unwrap();
        let undeclared = String::from_utf8(undeclared).unwrap();
        assert!(undeclared.starts_with("national id") && !undeclared.contains("123-45-6789"));
    }

    #[test]
    fn an_answer_that_is_not_an_object_is_refused_not_indexed() {
        let rules = Rules::plain(Classification::Internal);
        for mut odd in [json!("x"), json!(3), json!([1]), json!(null)] {
            assert!(redact_read(&redactor(), &mut odd.clone(), &rules).is_err());
            assert!(redact_prompt(&redactor(), &mut odd, &rules).is_err());
        }
    }

    #[test]
    fn a_prompt_is_redacted_message_by_message() {
        let mut result = json!({
            "description": "for 123-45-6789",
            "messages": [
                {"role": "user", "content": {"type": "text", "text": "call +1-555-0101"}},
                {"role": "user", "content": {"type": "resource", "resource":
                    {"uri": "a://x", "mimeType": "text/plain", "blob": b64("id 123-45-6789")}}},
                {"role": "assistant", "content": {"type": "image", "mimeType": "image/png", "data": b64("img")}},
            ],
        });
        let rules = Rules::plain(Classification::Internal);
        redact_prompt(&redactor(), &mut result, &rules).unwrap();
        let text = result.to_string();
        assert!(
            !text.contains("123-45-6789") && !text.contains("555-0101"),
            "{text}"
        );
        let messages = result["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["role"], "user");
        assert_eq!(messages[2]["content"]["data"], b64("img"));
        let blob = messages[1]["content"]["resource"]["blob"].as_str().unwrap();
        let blob = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(blob)
                .unwrap(),
        )
        .unwrap();
        assert!(
            blob.starts_with("id ") && !blob.contains("123-45-6789"),
            "{blob}"
        );
    }
}

#[cfg(test)]
mod fuzz;
