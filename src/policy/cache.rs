//! Decisions remembered per bundle version. A decision is a function of the input and the bundle's data, so a
//! bundle may answer an input it has decided before without evaluating again, provided that
//!
//! - the key holds every part of the input the policy can read: the top-level input fields its Rego names
//!   (`input.tool`, `input.facts`, …), found by scanning the source. A bare `input`, `input[...]` or
//!   `import input` means the policy may read all of it, and nothing is remembered;
//! - the policy calls no builtin whose answer is not a function of input and data (the clock, randomness, the
//!   network, printing), else nothing is remembered.
//!
//! The key is the SHA-256 of the canonical JSON of those fields, so a cached entry costs a few dozen bytes.
//! Errors (time or instruction limits included) are never remembered. The cache is bounded and is dropped with
//! its bundle on reload.

use std::collections::BTreeSet;

use dashmap::DashMap;
use regorus::Value;
use sha2::Digest;

use super::Decision;

/// Entries kept per bundle; when full, the cache starts over.
const MAX_ENTRIES: usize = 16_384;

/// Builtins whose answer depends on more than input and data.
const NOT_A_FUNCTION_OF_INPUT: &[&str] = &[
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "http.send",
    "opa.runtime",
    "net.lookup_ip_addr",
    "io.jwt.decode_verify",
    "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_keys",
    "print",
    "trace",
];

pub(super) struct DecisionCache {
    /// Top-level input fields the policy can read, in order, with their key in the input object.
    fields: Vec<(String, Value)>,
    entries: DashMap<[u8; 32], Decision>,
}

impl DecisionCache {
    /// A cache for a bundle with these Rego sources, or None when its decisions cannot be remembered.
    pub(super) fn for_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut fields = BTreeSet::new();
        for source in sources {
            fields.extend(input_fields_read(source)?);
        }
        Some(Self {
            fields: fields
                .into_iter()
                .map(|f| {
                    let key = Value::from(f.as_str());
                    (f, key)
                })
                .collect(),
            entries: DashMap::new(),
        })
    }

    /// The key of `input`: a hash over the fields the policy can read, in order, names included.
    pub(super) fn key(&self, input: &Value) -> Option<[u8; 32]> {
        let Value::Object(object) = input else {
            return None;
        };
        let mut hasher = HashWriter(sha2::Sha256::new());
        for (name, key) in &self.fields {
            let value = object.get(key);
            hasher.0.update(name.as_bytes());
            hasher.0.update([0]);
            match value {
                // Absent and null are told apart.
                None => hasher.0.update([0]),
                Some(value) => {
                    hasher.0.update([1]);
                    serde_json::to_writer(&mut hasher, value).ok()?;
                }
            }
            hasher.0.update([0]);
        }
        Some(hasher.0.finalize().into())
    }

    pub(super) fn get(&self, key: &[u8; 32]) -> Option<Decision> {
        self.entries.get(key).map(|d| d.clone())
    }

    pub(super) fn put(&self, key: [u8; 32], decision: &Decision) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, decision.clone());
    }

    #[cfg(test)]
    fn fields(&self) -> Vec<&str> {
        self.fields.iter().map(|(f, _)| f.as_str()).collect()
    }
}

struct HashWriter(sha2::Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The top-level input fields one Rego source names, or None when it may read the whole input or calls a
/// builtin that is not a function of input and data. Comments and string literals are skipped; `with input…`
/// replaces the input rather than reading it.
fn input_fields_read(source: &str) -> Option<BTreeSet<String>> {
    let chars: Vec<char> = source.chars().collect();
    let mut fields = BTreeSet::new();
    let mut previous = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '`' => {
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                // A dotted reference: `a.b.c`.
                let start = i;
                loop {
                    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                    if i + 1 < chars.len()
                        && chars[i] == '.'
                        && (chars[i + 1].is_ascii_alphabetic() || chars[i + 1] == '_')
                    {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let token: String = chars[start..i].iter().collect();
                let mut parts = token.split('.');
                if parts.next() == Some("input") && previous != "with" {
                    match parts.next() {
                        Some(field) => {
                            fields.insert(field.to_string());
                        }
                        None => return None,
                    }
                }
                if NOT_A_FUNCTION_OF_INPUT
                    .iter()
                    .any(|b| token == *b || token.starts_with(&format!("{b}.")))
                    || token.starts_with("rand.")
                {
                    return None;
                }
                previous = token;
                continue;
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            previous.clear();
        }
        i += 1;
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(source: &str) -> Option<Vec<String>> {
        DecisionCache::for_sources([source])
            .map(|c| c.fields().into_iter().map(str::to_string).collect())
    }

    #[test]
    fn finds_the_fields_named() {
        let source = r#"package p
# input.context in a comment is not a read
allow if { input.tool.name == "x"; some f in input.facts; msg := "input is fine" }
t := input.mode
"#;
        assert_eq!(
            fields(source),
            Some(vec!["facts".into(), "mode".into(), "tool".into()])
        );
    }

    #[test]
    fn a_bare_input_reads_everything() {
        assert_eq!(fields("package p\nallow if input[\"tool\"]"), None);
        assert_eq!(fields("package p\nx := input"), None);
        assert_eq!(fields("package p\nimport input\n"), None);
        assert_eq!(fields("package p\nx := f(input)"), None);
        assert_eq!(fields("package p\nx := input .tool"), None);
    }

    #[test]
    fn with_replaces_rather_than_reads() {
        assert_eq!(
            fields("package p\ntest_a if { allow with input as {\"a\": 1} }\nallow if input.tool"),
            Some(vec!["tool".into()])
        );
    }

    #[test]
    fn clock_randomness_and_network_disable_the_cache() {
        for call in [
            "time.now_ns()",
            "rand.intn(\"a\", 3)",
            "http.send({})",
            "uuid.rfc4122(\"x\")",
            "print(1)",
        ] {
            assert_eq!(fields(&format!("package p\nx := {call}")), None, "{call}");
        }
        // Named only in a string or a comment: still cacheable.
        assert!(fields("package p\nx := \"time.now_ns\" # http.send\n").is_some());
    }

    #[test]
    fn keys_differ_exactly_on_the_fields_read() {
        let cache = DecisionCache::for_sources(["package p\nallow if input.tool.name == \"a\""])
            .expect("cacheable");
        let key = |v: serde_json::Value| cache.key(&Value::from(v)).expect("key");
        let a = key(serde_json::json!({"tool": {"name": "a"}, "context": {"request_id": "1"}}));
        let b = key(serde_json::json!({"tool": {"name": "a"}, "context": {"request_id": "2"}}));
        let c = key(serde_json::json!({"tool": {"name": "b"}, "context": {"request_id": "1"}}));
        let d = key(serde_json::json!({"context": {"request_id": "1"}}));
        let e = key(serde_json::json!({"tool": null, "context": {"request_id": "1"}}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(d, e);
    }
}
