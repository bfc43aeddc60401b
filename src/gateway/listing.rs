//! What `tools/list` and the policy input see of a tool: its reference in the input, its advertised definition,
//! opaque cursors; and what the detectors find in a call's arguments.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::catalog::ExposedTool;
use crate::identity::Caller;
use crate::manifest::ToolManifest;
use crate::policy::input::{CallerInput, ToolRef};
use crate::policy::{Action, Bundle, PolicyInput};
use crate::redact::widen_output_schema;

pub(super) fn tool_ref<'a>(tool: &'a ExposedTool, manifest: &'a ToolManifest) -> ToolRef<'a> {
    ToolRef {
        name: &tool.name,
        upstream: &tool.upstream,
        original: &tool.original,
        manifest,
        annotations: tool.annotations_json.as_ref(),
    }
}

pub(super) fn list_input(who: &CallerInput, bundle: &Bundle, tool: &ExposedTool) -> PolicyInput {
    let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
    who.for_tool(
        tool_ref(tool, manifest),
        Action::List,
        None,
        serde_json::Map::new(),
    )
}

/// Pagination cursors: opaque to clients, and bound to the caller and the listing. A cursor is the last listed
/// name and an HMAC-SHA256 (with a key of this process) over the listing, the caller's `(iss, sub)`, its chain
/// and that name; a forged cursor, or one handed out to another caller or for another listing, is refused.
pub struct Cursors {
    key: [u8; 32],
}

/// Bytes of the MAC kept in a cursor.
const CURSOR_TAG: usize = 16;

/// The listing `tools/list` cursors belong to.
pub(super) const TOOLS_LIST: &str = "tools/list";

impl Cursors {
    /// Cursors signed with `key`: the process's own, or the one replicas share.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, listing: &str, caller: &Caller, name: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for part in [
            listing,
            &caller.subject_key(),
            &caller.chain.join("\u{1f}"),
            name,
        ] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The cursor that continues `listing` for `caller` after `name`.
    pub fn encode(&self, listing: &str, caller: &Caller, name: &str) -> String {
        let tag = self.mac(listing, caller, name).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(name),
            URL_SAFE_NO_PAD.encode(&tag[..CURSOR_TAG])
        )
    }

    /// The name a cursor continues after, if this process handed it to this caller for this listing.
    pub fn decode(&self, listing: &str, caller: &Caller, cursor: &str) -> Option<String> {
        // Long enough for the longest resource URI a page may end on; anything longer is not one of ours.
        if cursor.len() > 8192 {
            return None;
        }
        let (name, tag) = cursor.split_once('.')?;
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != CURSOR_TAG {
            return None;
        }
        self.mac(listing, caller, &name)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(name)
    }
}

/// A tool's definition as this bundle advertises it: the output schema accepts masks at classified fields.
pub(super) fn advertised(bundle: &Bundle, tool: &ExposedTool) -> rmcp::model::Tool {
    let mut definition = tool.definition.clone();
    let manifest = bundle.manifests.get(&tool.upstream, &tool.original);
    if !manifest.output.fields.is_empty()
        && let Some(schema) = definition.output_schema.take()
    {
        let mut schema = std::sync::Arc::unwrap_or_clone(schema);
        widen_output_schema(&mut schema, manifest);
        definition.output_schema = Some(std::sync::Arc::new(schema));
    }
    definition
}

/// Most levels of JSON looked into in an argument (JSON inside strings counts as a level).
const MAX_DETECT_DEPTH: usize = 32;

/// What the detectors find in one value, each with where: in every string, in JSON carried in strings, in base64
/// or hex (the detectors decode), and across the strings of one object or array (a value split across fields).
fn detected_in(
    value: &serde_json::Value,
    path: &str,
    depth: usize,
    detectors: &crate::redact::Detectors,
    out: &mut Vec<serde_json::Value>,
) {
    use serde_json::Value;
    if depth > MAX_DETECT_DEPTH {
        return;
    }
    let mut push = |hit: crate::redact::Found, path: String| {
        out.push(serde_json::json!({"detector": hit.detector, "class": hit.class, "path": path}));
    };
    let children: Vec<(String, &Value)> = match value {
        Value::String(text) => {
            match crate::redact::parse_json(text) {
                Some(parsed) => detected_in(&parsed, path, depth + 1, detectors, out),
                None => detectors
                    .find(text)
                    .into_iter()
                    .for_each(|hit| push(hit, path.to_string())),
            }
            return;
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}[{i}]"), v))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (format!("{path}.{k}"), v))
            .collect(),
        _ => return,
    };
    let texts: Vec<&str> = children
        .iter()
        .filter_map(|(_, v)| {
            v.as_str()
                .filter(|t| crate::redact::parse_json(t).is_none())
        })
        .collect();
    if texts.len() > 1 {
        for (hit, _) in detectors.find_across(&texts) {
            push(hit, format!("{path} (split across fields)"));
        }
    }
    for (child_path, child) in children {
        detected_in(child, &child_path, depth + 1, detectors, out);
    }
}

/// Adds what the detectors find in each argument to its facts: `detected: [{detector, class, path}]`. A value
/// split across several string arguments is a fact of each of them.
pub(super) fn add_detected(
    facts: &mut serde_json::Map<String, serde_json::Value>,
    arguments: &serde_json::Map<String, serde_json::Value>,
    detectors: &crate::redact::Detectors,
) {
    let strings: Vec<(&String, &str)> = arguments
        .iter()
        .filter_map(|(name, v)| Some((name, v.as_str()?)))
        .filter(|(_, t)| crate::redact::parse_json(t).is_none())
        .collect();
    let mut split: std::collections::HashMap<&String, Vec<serde_json::Value>> =
        std::collections::HashMap::new();
    if strings.len() > 1 {
        let texts: Vec<&str> = strings.iter().map(|(_, t)| *t).collect();
        for (hit, parts) in detectors.find_across(&texts) {
            for part in parts {
                if let Some((name, _)) = strings.get(part) {
                    split.entry(name).or_default().push(serde_json::json!({
                        "detector": hit.detector, "class": hit.class,
                        "path": format!("$.{name} (split across arguments)"),
                    }));
                }
            }
        }
    }
    for (name, value) in arguments {
        let mut found = split.remove(name).unwrap_or_default();
        detected_in(value, &format!("$.{name}"), 0, detectors, &mut found);
        if found.is_empty() {
            continue;
        }
        let fact = facts
            .entry(name.clone())
            .or_insert_with(|| serde_json::json!({"kind": "value", "present": true}));
        fact["detected"] = serde_json::Value::Array(found);
    }
}

/// Fuzzing cursors: any string is refused unless this process made it for this caller and listing; every cursor
/// made decodes back to its name for its caller only, and a cursor with any byte changed is refused.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn caller(subject: &str, chain: &[&str]) -> Caller {
        Caller {
            mode: crate::identity::Mode::AgentOnly,
            issuer: "toolgate-dev".into(),
            subject: subject.into(),
            principal: None,
            chain: chain.iter().map(|c| c.to_string()).collect(),
            actor: chain.last().map(|c| c.to_string()).unwrap_or_default(),
            scopes: Vec::new(),
            token_scopes: None,
            token_scope: None,
            clearance: crate::classification::Classification::Internal,
            authenticated_us: 0,
            token_id: None,
            issued_at: 0,
            expires_at: 0,
        }
    }

    fn rand_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).unwrap();
        key
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)))]

        #[test]
        fn made_up_cursors_are_refused(cursor in ".{0,200}", dotted in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}") {
            let cursors = Cursors::new(rand_key());
            let me = caller("alice", &["assistant"]);
            prop_assert_eq!(cursors.decode("tools/list", &me, &cursor), None);
            prop_assert_eq!(cursors.decode("tools/list", &me, &dotted), None);
        }

        #[test]
        fn cursors_belong_to_their_caller_and_listing(name in ".{0,100}", flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let cursors = Cursors::new(rand_key());
            let me = caller("alice", &["assistant"]);
            let cursor = cursors.encode("tools/list", &me, &name);
            prop_assert_eq!(cursors.decode("tools/list", &me, &cursor), Some(name.clone()));
            prop_assert_eq!(cursors.decode("resources/list", &me, &cursor), None);
            prop_assert_eq!(cursors.decode("tools/list", &caller("bob", &["assistant"]), &cursor), None);
            prop_assert_eq!(cursors.decode("tools/list", &caller("alice", &["assistant", "summarizer"]), &cursor), None);
            // Another process's key.
            prop_assert_eq!(Cursors::new(rand_key()).decode("tools/list", &me, &cursor), None);
            // Any one bit changed.
            let mut bytes = cursor.into_bytes();
            let at = flip.index(bytes.len());
            bytes[at] ^= 1 << bit;
            if let Ok(changed) = String::from_utf8(bytes) {
                let decoded = cursors.decode("tools/list", &me, &changed);
                prop_assert!(decoded.is_none() || decoded == Some(name), "{:?}", changed);
            }
        }
    }
}
