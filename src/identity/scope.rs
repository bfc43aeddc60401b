//! Scopes: sets of patterns over exposed names (tools and prompts, and resource URIs such as
//! `toolgate://hr/*`), each a literal name or a `prefix*`.

/// A scope pattern that is neither a tool name nor `prefix*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "scope pattern `{0}` is invalid: use an exposed name (a tool, a prompt, a resource URI) or `prefix*`, \
         printable ASCII without spaces, quotes or backslashes"
    )]
    Invalid(String),
    #[error("empty scope pattern")]
    Empty,
}

/// One set of tool patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, ScopeError> {
        let body = text.strip_suffix('*');
        let core = body.unwrap_or(text);
        if core.contains('*')
            || !core
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'\''))
        {
            return Err(ScopeError::Invalid(text.to_string()));
        }
        if body.is_none() && core.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(match body {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(text.to_string()),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(n) => n == name,
            Pattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }

    /// Whether everything `other` matches, `self` matches too.
    fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Prefix(p), Pattern::Prefix(q)) => q.starts_with(p.as_str()),
            (Pattern::Prefix(p), Pattern::Exact(n)) => n.starts_with(p.as_str()),
            (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
            (Pattern::Exact(_), Pattern::Prefix(_)) => false,
        }
    }
}

impl Scope {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, ScopeError> {
        let patterns = patterns
            .iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { patterns })
    }

    /// A scope from a space-separated token `scope` claim.
    pub fn from_claim(claim: &str) -> Result<Self, ScopeError> {
        let parts: Vec<&str> = claim.split_whitespace().collect();
        Self::parse(&parts)
    }

    pub fn allows(&self, tool: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(tool))
    }

    /// Whether every tool `other` allows is allowed here too.
    pub fn covers(&self, other: &Scope) -> bool {
        other
            .patterns
            .iter()
            .all(|o| self.patterns.iter().any(|p| p.covers(o)))
    }

    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| match p {
                Pattern::Exact(n) => n.clone(),
                Pattern::Prefix(p) => format!("{p}*"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_coverage() {
        let files = Scope::parse(&["files__*"]).unwrap();
        let read = Scope::parse(&["files__read_file", "files__list_*"]).unwrap();
        let all = Scope::parse(&["*"]).unwrap();
        assert!(files.allows("files__read_file") && !files.allows("sql__query"));
        assert!(files.covers(&read));
        assert!(!read.covers(&files));
        assert!(all.covers(&files));
        assert!(!files.covers(&all));
        assert!(Scope::parse(&["a*b"]).is_err());
        assert!(Scope::parse(&["a b"]).is_err());
        let docs = Scope::parse(&["toolgate://hr/policy://*"]).unwrap();
        assert!(docs.allows("toolgate://hr/policy://handbook"));
        assert!(!docs.allows("toolgate://hr/employee://E1/profile"));
        assert!(Scope::parse(&["toolgate://hr/*"]).unwrap().covers(&docs));
        for bad in ["a\"b", "a\\b", "a'b", "é", "a\tb"] {
            assert!(Scope::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
