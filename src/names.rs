//! Naming rules: which upstream and tool names are accepted, and how exposed names are formed.
//!
//! Upstream names may not contain `_` or `.`, and the separator consists only of those, so the first
//! separator character in an exposed name always ends the upstream name: `upstream + sep + tool` is
//! injective and no choice of tool names can make two upstreams' tools collide.

/// A name that breaks the rules, with what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "upstream name `{0}` is invalid: use lowercase ASCII letters, digits and `-`, starting with a letter, at \
         most {MAX_UPSTREAM_NAME} characters"
    )]
    Upstream(String),
    #[error("tool name `{}` is invalid: use 1 to {MAX_TOOL_NAME} of `A-Z a-z 0-9 _ . -`", .0.escape_debug())]
    Tool(String),
    #[error("namespace_separator `{0}` is invalid: use 1 to 4 characters, each `_` or `.`")]
    Separator(String),
    #[error("exposed name `{0}` would be longer than {MAX_TOOL_NAME} characters")]
    TooLong(String),
}

/// Longest upstream name.
pub const MAX_UPSTREAM_NAME: usize = 32;
/// Longest tool name (MCP's recommendation), for upstream tool names and exposed names alike.
pub const MAX_TOOL_NAME: usize = 128;

/// Checks an upstream name: lowercase ASCII letters, digits and `-`, starting with a letter, at most 32.
pub fn validate_upstream_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !first_ok || !rest_ok || name.len() > MAX_UPSTREAM_NAME {
        return Err(NameError::Upstream(name.to_string()));
    }
    Ok(())
}

/// Checks a tool name against MCP's recommended `[A-Za-z0-9_.-]{1,128}`.
pub fn validate_tool_name(name: &str) -> Result<(), NameError> {
    if name.is_empty()
        || name.len() > MAX_TOOL_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(NameError::Tool(name.to_string()));
    }
    Ok(())
}

/// Checks the namespace separator: 1 to 4 characters, each `_` or `.`.
pub fn validate_separator(separator: &str) -> Result<(), NameError> {
    if separator.is_empty()
        || separator.len() > 4
        || !separator.bytes().all(|b| matches!(b, b'_' | b'.'))
    {
        return Err(NameError::Separator(separator.to_string()));
    }
    Ok(())
}

/// Forms the exposed name of an upstream's tool, refusing names that break the rules: `upstream + separator +
/// tool`, or the tool's own name when the upstream's tools are not prefixed (naming mode).
pub fn exposed_name(
    upstream: &str,
    separator: &str,
    tool: &str,
    prefix: bool,
) -> Result<String, NameError> {
    validate_tool_name(tool)?;
    if !prefix {
        return Ok(tool.to_string());
    }
    let exposed = format!("{upstream}{separator}{tool}");
    if exposed.len() > MAX_TOOL_NAME {
        return Err(NameError::TooLong(exposed));
    }
    Ok(exposed)
}

/// The scheme of the URIs toolgate gives a prefixed upstream's resources.
const URI_SCHEME: &str = "toolgate://";

/// The exposed URI of a prefixed upstream's resource or template: `toolgate://<upstream>/<its URI>`, the
/// upstream's URI kept verbatim (so that a template's expressions still expand). Upstream names hold no `/`, so
/// the first `/` after the scheme always ends the upstream's name, whatever the upstream's URI.
pub fn exposed_uri(upstream: &str, uri: &str) -> String {
    format!("{URI_SCHEME}{upstream}/{uri}")
}

/// Whether a URI has the gateway's own form (an unprefixed upstream's URI of that form is never exposed).
pub fn is_gateway_uri(uri: &str) -> bool {
    uri.get(..URI_SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(URI_SCHEME))
}

/// The upstream and its own URI of an exposed URI of the gateway's form.
pub fn split_uri(uri: &str) -> Option<(&str, &str)> {
    if !is_gateway_uri(uri) {
        return None;
    }
    let (upstream, original) = uri[URI_SCHEME.len()..].split_once('/')?;
    validate_upstream_name(upstream).ok()?;
    Some((upstream, original))
}

/// Longest URI template matched against a URI.
const MAX_TEMPLATE: usize = 2048;

/// Whether `uri` is an expansion of the RFC 6570 `template`: literal parts match exactly, a simple expression
/// (`{id}`) matches text without `/`, `?` or `#`, any other expression (`{+path}`, `{/seg}`, `{?q}` …) any text.
pub fn template_matches(template: &str, uri: &str) -> bool {
    if template.len() > MAX_TEMPLATE || uri.len() > MAX_TEMPLATE {
        return false;
    }
    let mut pattern = String::from("^");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pattern.push_str(&regex::escape(&rest[..open]));
        let Some(close) = rest[open..].find('}') else {
            return false;
        };
        let expression = &rest[open + 1..open + close];
        let simple = expression
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '%');
        pattern.push_str(if simple { "[^/?#]*" } else { ".*" });
        rest = &rest[open + close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    regex::Regex::new(&pattern).is_ok_and(|r| r.is_match(uri))
}

/// A routing header's value (protocol 2026-07-28 `Mcp-Name`, `Mcp-Param-*`): plain visible ASCII, or the Base64 sentinel `=?base64?…?=` of UTF-8.
pub fn header_value(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    if !text
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return None;
    }
    // Blanks around a field value are not part of it (RFC 9110 §5.5).
    let text = text.trim_matches([' ', '\t']);
    match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(encoded) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(text.to_string()),
    }
}

/// A routing header's value for a body value: as it is when it is plain ASCII without surrounding blanks, else
/// the Base64 sentinel.
pub fn encode_header_value(value: &str) -> String {
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !sentinel;
    if plain {
        value.to_string()
    } else {
        use base64::Engine as _;
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

#[cfg(test)]
mod fuzz {
    //! Exposed URIs for any upstream name and any URI map back to exactly that pair; any text is split or refused
    //! without a panic, and what splits names a valid upstream; any template and any URI are matched without a
    //! panic, and every expansion of a template (values without `/`, `?`, `#`) matches it.

    use super::*;
    use proptest::prelude::*;

    fn upstream() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,31}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
        ))]

        #[test]
        fn exposed_uris_split_back_to_their_pair(upstream in upstream(), uri in ".{0,120}") {
            let exposed = exposed_uri(&upstream, &uri);
            prop_assert_eq!(split_uri(&exposed), Some((upstream.as_str(), uri.as_str())));
        }

        #[test]
        fn any_text_splits_to_a_valid_upstream_or_none(text in "(toolgate://|TOOLGATE://|toolgate:/)?.{0,80}") {
            if let Some((upstream, rest)) = split_uri(&text) {
                prop_assert!(validate_upstream_name(upstream).is_ok());
                prop_assert!(text.ends_with(rest));
                prop_assert!(is_gateway_uri(&text));
            }
        }

        #[test]
        fn templates_match_their_expansions(
            parts in prop::collection::vec(("[a-z:/._-]{0,8}", "[a-z]{1,6}", "[A-Za-z0-9 %._~-]{0,10}"), 1..5),
            tail in "[a-z:/._-]{0,8}",
            other in ".{0,60}",
        ) {
            let mut template = String::new();
            let mut expansion = String::new();
            for (literal, name, value) in &parts {
                template.push_str(literal);
                template.push('{');
                template.push_str(name);
                template.push('}');
                expansion.push_str(literal);
                expansion.push_str(value);
            }
            template.push_str(&tail);
            expansion.push_str(&tail);
            prop_assert!(template_matches(&template, &expansion), "{} {}", template, expansion);
            // Anything else is matched or not, never a panic.
            let _ = template_matches(&template, &other);
            let _ = template_matches(&other, &expansion);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names() {
        for ok in [
            "a",
            "hr",
            "sql-2",
            "a-b-c",
            "abcdefghijklmnopqrstuvwxyzabcdef",
        ] {
            validate_upstream_name(ok).unwrap();
        }
        for bad in [
            "",
            "A",
            "1a",
            "-a",
            "a_b",
            "a.b",
            "a__b",
            "héllo",
            "abcdefghijklmnopqrstuvwxyzabcdefg",
        ] {
            assert!(validate_upstream_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tool_names() {
        for ok in ["x", "get_time", "a.b-c", "A9"] {
            validate_tool_name(ok).unwrap();
        }
        let long = "x".repeat(129);
        for bad in [
            "",
            "with space",
            "slash/no",
            "ünï",
            "semi;colon",
            long.as_str(),
        ] {
            assert!(validate_tool_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn separator_tricks_cannot_collide() {
        // upstream `a` + tool `b__c` is `a__b__c`; an upstream named `a__b` cannot exist.
        assert_eq!(exposed_name("a", "__", "b__c", true).unwrap(), "a__b__c");
        assert!(validate_upstream_name("a__b").is_err());
        for sep in ["__", "_", ".", "._"] {
            validate_separator(sep).unwrap();
        }
        for sep in ["", "-", "x", "__-", "/"] {
            assert!(validate_separator(sep).is_err(), "{sep}");
        }
    }

    #[test]
    fn exposed_names_stay_within_128() {
        let tool = "t".repeat(100);
        let upstream = "u".repeat(30);
        assert!(exposed_name(&upstream, "__", &tool, true).is_err());
        assert!(exposed_name("hr", "__", &tool, true).is_ok());
    }

    #[test]
    fn without_a_prefix_the_tools_own_name_is_exposed_and_still_checked() {
        assert_eq!(exposed_name("hr", "__", "lookup", false).unwrap(), "lookup");
        assert!(exposed_name("hr", "__", "bad name", false).is_err());
        assert!(exposed_name("hr", "__", &"t".repeat(129), false).is_err());
    }

    #[test]
    fn exposed_uris_map_back_to_their_upstream_only() {
        for (upstream, uri) in [
            ("hr", "hr://policies/handbook.md"),
            ("files", "file:///etc/x"),
            ("a", "toolgate://other/x"),
            ("a", ""),
            ("a-1", "test://template/{id}/data"),
        ] {
            let exposed = exposed_uri(upstream, uri);
            assert!(is_gateway_uri(&exposed));
            assert_eq!(split_uri(&exposed), Some((upstream, uri)));
        }
        assert_eq!(split_uri("hr://x"), None);
        assert_eq!(split_uri("toolgate://Bad/x"), None);
        assert_eq!(split_uri("toolgate://nouri"), None);
        assert!(is_gateway_uri("TOOLGATE://hr/x"));
    }

    #[test]
    fn templates_match_their_expansions() {
        let t = "test://template/{id}/data";
        assert!(template_matches(t, "test://template/42/data"));
        assert!(template_matches(t, "test://template//data"));
        assert!(!template_matches(t, "test://template/4/2/data"));
        assert!(!template_matches(t, "test://template/42/data/x"));
        assert!(!template_matches(t, "xtest://template/42/data"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c"));
        assert!(template_matches("q://x{?a,b}", "q://x?a=1&b=2"));
        assert!(template_matches("lit.(x)", "lit.(x)"));
        assert!(!template_matches("lit.(x)", "litx(x)"));
        assert!(!template_matches("broken{", "broken{"));
    }
}
