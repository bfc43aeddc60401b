//! Bounds on what a caller can put into a record: a request id, a tool name, arguments and reasons are the
//! caller's (or an upstream's) words, so a record keeps a prefix of each, with the SHA-256 of the whole, and says
//! which fields it truncated.

use sha2::Digest;

use super::DecisionRecord;

/// Longest identifier-like field kept whole (request id, tool, session, subject …), in bytes.
const MAX_NAME: usize = 256;
/// Longest reason kept whole, in bytes.
const MAX_REASON: usize = 2048;
/// Most reasons kept; the rest are summarized by their count and digest.
const MAX_REASONS: usize = 32;
/// Most actors kept of a chain.
const MAX_CHAIN: usize = 16;
/// Largest arguments document kept whole, in bytes of JSON.
const MAX_ARGUMENTS: usize = 16 * 1024;

/// `text` cut to at most `max` bytes (at a character boundary) with the size and digest of the whole; `None` when
/// it fits.
fn cut(text: &str, max: usize) -> Option<String> {
    if text.len() <= max {
        return None;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!(
        "{}… [truncated from {} bytes, sha256 {}]",
        &text[..end],
        text.len(),
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    ))
}

impl DecisionRecord {
    /// Bounds every field a caller or an upstream controls; the names of the fields cut are in `truncated`.
    pub fn bound(&mut self) {
        let mut truncated = Vec::new();
        for (name, field) in [
            ("request_id", &mut self.request_id),
            ("session", &mut self.session),
            ("source", &mut self.source),
            ("issuer", &mut self.issuer),
            ("subject", &mut self.subject),
            ("principal", &mut self.principal),
            ("agent", &mut self.agent),
            ("tool", &mut self.tool),
            ("upstream", &mut self.upstream),
        ] {
            if let Some(cut) = field.as_deref().and_then(|text| cut(text, MAX_NAME)) {
                *field = Some(cut);
                truncated.push(name);
            }
        }
        if self.chain.len() > MAX_CHAIN {
            self.chain.truncate(MAX_CHAIN);
            truncated.push("chain");
        }
        for actor in &mut self.chain {
            if let Some(cut) = cut(actor, MAX_NAME) {
                *actor = cut;
                if !truncated.contains(&"chain") {
                    truncated.push("chain");
                }
            }
        }
        let mut reasons_cut = false;
        if self.reasons.len() > MAX_REASONS {
            let rest = self.reasons.split_off(MAX_REASONS - 1);
            let joined = rest.join("\n");
            self.reasons.push(format!(
                "… {} more reasons, sha256 {}",
                rest.len(),
                hex::encode(sha2::Sha256::digest(joined.as_bytes()))
            ));
            reasons_cut = true;
        }
        for reason in &mut self.reasons {
            if let Some(cut) = cut(reason, MAX_REASON) {
                *reason = cut;
                reasons_cut = true;
            }
        }
        if reasons_cut {
            truncated.push("reasons");
        }
        if let Some(arguments) = &self.arguments {
            let text = serde_json::to_vec(arguments).unwrap_or_default();
            if text.len() > MAX_ARGUMENTS {
                self.arguments = Some(serde_json::json!({
                    "truncated": true,
                    "bytes": text.len(),
                    "sha256": hex::encode(sha2::Sha256::digest(&text)),
                }));
                truncated.push("arguments");
            }
        }
        self.truncated
            .extend(truncated.into_iter().map(str::to_string));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_field_is_bounded_and_says_so() {
        let huge = "é".repeat(100_000);
        let mut record = DecisionRecord::new("tools/call");
        record.request_id = Some(huge.clone());
        record.tool = Some(huge.clone());
        record.chain = vec![huge.clone(); 100];
        record.reasons = vec![huge.clone(); 1000];
        record.arguments = Some(serde_json::json!({"text": huge}));
        record.bound();
        let body = serde_json::to_string(&record).unwrap();
        assert!(body.len() < 128 * 1024, "{}", body.len());
        for field in ["request_id", "tool", "chain", "reasons", "arguments"] {
            assert!(record.truncated.iter().any(|t| t == field), "{field}");
        }
        let tool = record.tool.unwrap();
        assert!(tool.starts_with('é') && tool.contains("truncated from 200000 bytes, sha256 "));
        assert_eq!(record.reasons.len(), MAX_REASONS);
        assert_eq!(record.arguments.as_ref().unwrap()["truncated"], true);
        // What fits is untouched.
        let mut small = DecisionRecord::new("tools/call");
        small.tool = Some("hr__lookup_employee".into());
        small.reasons = vec!["ok".into()];
        let before = small.clone();
        small.bound();
        assert_eq!(small, before);
    }
}
