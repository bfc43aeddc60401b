//! The caller model: who is acting on a request once its token is verified (a principal and the agents acting for
//! them, or an agent alone), and which tools its scopes reach.

use super::Scope;
use crate::classification::Classification;

/// How the caller acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A human principal and the agents acting for them.
    PrincipalContext,
    /// A registered agent acting alone.
    AgentOnly,
}

/// The human on whose behalf agents act.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Principal {
    pub issuer: String,
    pub subject: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

/// Who is acting on this request, verified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Caller {
    pub mode: Mode,
    /// The token's `iss` and `sub`: identity is this pair, never `sub` alone.
    pub issuer: String,
    pub subject: String,
    pub principal: Option<Principal>,
    /// Agent ids, oldest first; the last is the current actor.
    pub chain: Vec<String>,
    pub actor: String,
    /// The scopes of every actor in the chain: a tool is within the chain's reach when each allows it.
    #[serde(skip)]
    pub scopes: Vec<Scope>,
    /// The token's `scope` claim, which may only narrow the chain's.
    #[serde(skip)]
    pub token_scopes: Option<Scope>,
    /// The token's own `scope` claim, as tool patterns, when it has one.
    pub token_scope: Option<Vec<String>>,
    /// Highest class every actor of the chain may carry.
    pub clearance: Classification,
    /// How long authenticating this request took (µs).
    #[serde(skip)]
    pub authenticated_us: u64,
    pub token_id: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl Caller {
    /// Whether the effective scope (every actor ∩ token) includes `tool`.
    pub fn in_scope(&self, tool: &str) -> bool {
        self.chain_reaches(tool) && self.token_scopes.as_ref().is_none_or(|s| s.allows(tool))
    }

    /// Whether only the token's `scope` keeps `tool` out: a token for this chain that asks for it would reach it
    /// (step-up, `insufficient_scope`).
    pub fn needs_scope(&self, tool: &str) -> bool {
        self.chain_reaches(tool) && self.token_scopes.as_ref().is_some_and(|s| !s.allows(tool))
    }

    fn chain_reaches(&self, tool: &str) -> bool {
        self.scopes.iter().all(|s| s.allows(tool))
    }

    /// The subject a session is bound to.
    pub fn subject_key(&self) -> String {
        format!("{}\u{1f}{}", self.issuer, self.subject)
    }
}
