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
}
