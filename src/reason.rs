//! Reason ids: what every refusal, failure and outcome is called in decision records, metrics, spans and the
//! answers clients read. One enum, so that a reason id is a value the compiler checks, never a string typed twice.

use std::fmt;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, )*) => {
        /// A stable, documented reason id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason id.
            pub const ALL: &'static [Reason] = &[$( Reason::$variant, )*];

            /// The reason id as written in records, metrics and answers.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$variant => $id, )*
                }
            }
        }
    };
}

reasons! {
    // Outcomes that are not refusals.
    /// The call was allowed and forwarded.
    Allowed = "allowed",
    /// A `tools/list` page was served.
    Listed = "listed",
    /// The gateway stopped (a marker record).
    Shutdown = "shutdown",

    // The pipeline's refusals.
    /// The tool does not exist, or this caller may not see it.
    UnknownTool = "unknown_tool",
    /// The resource, resource template or prompt does not exist, or this caller may not see it.
    UnknownItem = "unknown_item",
    /// The session holds as many resource subscriptions as it may.
    SubscriptionLimit = "subscription_limit",
    /// An upstream asked the client for something toolgate does not relay.
    MethodNotRelayed = "method_not_relayed",
    /// The client answered an upstream's request (sampling, elicitation, roots) with an error, or not at all.
    ClientFailed = "client_failed",
    /// An upstream asked the client for what the client did not declare it can do.
    ClientCapabilityMissing = "client_capability_missing",
    /// The upstream needs input from the client first (protocol 2026-07-28): its input requests went back to the
    /// client, checked, with toolgate's sealed state.
    InputRequired = "input_required",
    /// A retried request's `requestState` is not one toolgate sealed for this caller and request, or it lapsed.
    RequestStateInvalid = "request_state_invalid",
    /// A method toolgate does not have.
    UnknownMethod = "unknown_method",
    /// The caller's chain may use the tool, but the token's `scope` leaves it out (step-up).
    InsufficientScope = "insufficient_scope",
    /// The tool's definition awaits an admin's review.
    ToolQuarantined = "tool_quarantined",
    /// The arguments do not match the tool's `inputSchema`.
    InvalidArguments = "invalid_arguments",
    /// The tool's `inputSchema` cannot be used to check arguments.
    InvalidInputSchema = "invalid_input_schema",
    /// Policy refused these arguments.
    PolicyDenied = "policy_denied",
    /// The call waits for a human approver.
    ApprovalRequired = "approval_required",
    /// An approver refused this exact call.
    ApprovalDenied = "approval_denied",
    /// The caller already has its share of calls waiting for an approver.
    ApprovalLimit = "approval_limit",

    // The gateway cannot decide or record.
    /// Decision records cannot be written.
    AuditUnavailable = "audit_unavailable",
    /// The store cannot answer.
    StoreUnavailable = "store_unavailable",
    /// A result could not be redacted, so it was withheld.
    RedactionFailed = "redaction_failed",
    /// The policy gave no decision.
    PolicyUndefined = "policy_undefined",
    /// The policy's decision has the wrong shape.
    PolicyWrongShape = "policy_wrong_shape",
    /// The policy could not be evaluated.
    PolicyError = "policy_error",
    /// The policy exceeded its time or instruction limit.
    PolicyLimit = "policy_limit",

    // The upstream.
    /// The upstream is not connected.
    UpstreamUnavailable = "upstream_unavailable",
    /// The upstream closed the connection during the call.
    UpstreamClosed = "upstream_closed",
    /// The upstream did not answer in time.
    UpstreamTimeout = "upstream_timeout",
    /// The upstream's answer is over the size limit.
    UpstreamResponseTooLarge = "upstream_response_too_large",
    /// The upstream answered with malformed data.
    UpstreamMalformed = "upstream_malformed",
    /// The upstream answered with a JSON-RPC error.
    UpstreamError = "upstream_error",
    /// The transport to the upstream failed.
    UpstreamTransport = "upstream_transport",
    /// The client cancelled the call.
    Cancelled = "cancelled",

    // Credentials.
    TokenMissing = "token_missing",
    TokenInQuery = "token_in_query",
    TokenMalformed = "token_malformed",
    TokenHeaderKey = "token_header_key",
    TokenAlgorithm = "token_algorithm",
    TokenUnknownKey = "token_unknown_key",
    TokenUnknownIssuer = "token_unknown_issuer",
    TokenSignature = "token_signature",
    TokenExpired = "token_expired",
    TokenNotYetValid = "token_not_yet_valid",
    TokenAudience = "token_audience",
    TokenIssuer = "token_issuer",
    TokenClaimMissing = "token_claim_missing",
    TokenScopeInvalid = "token_scope_invalid",
    TokenRevoked = "token_revoked",
    /// Revocation state shared by replicas could not be confirmed lately: no credential is accepted.
    RevocationStateUnknown = "revocation_state_unknown",
    /// The JOSE `typ` is not an access token's.
    TokenType = "token_type",
    /// A header marked critical that toolgate does not understand.
    TokenCritical = "token_crit",
    /// An ID token or security event presented as an access token.
    TokenNotAccessToken = "token_not_access_token",
    /// Bound to a key by a confirmation method toolgate cannot verify.
    TokenBindingUnsupported = "token_binding_unsupported",
    /// A development token in a request that came through a proxy.
    TokenDevThroughProxy = "token_dev_through_proxy",
    /// A token bound to a key (`cnf.jkt`) came without a DPoP proof (or with `Bearer`).
    DpopProofMissing = "dpop_proof_missing",
    /// The DPoP proof is invalid for this request and token.
    DpopProofInvalid = "dpop_proof_invalid",
    /// The DPoP proof was used before.
    DpopProofReplayed = "dpop_proof_replayed",
    /// `Authorization: DPoP` with a token bound to no key.
    DpopTokenUnbound = "dpop_token_unbound",
    SessionSubjectMismatch = "session_subject_mismatch",

    // Agents and delegation.
    AgentUnregistered = "agent_unregistered",
    AgentMissing = "agent_missing",
    AgentMayNotActAlone = "agent_may_not_act_alone",
    AgentBindingMismatch = "agent_binding_mismatch",
    AgentMayNotActForHumans = "agent_may_not_act_for_humans",
    DelegationNotAllowed = "delegation_not_allowed",
    DelegationCycle = "delegation_cycle",
    DelegationTooDeep = "delegation_too_deep",
    DelegationEscalation = "delegation_escalation",
    PrincipalIsAgent = "principal_is_agent",
    DelegationActInvalid = "delegation_act_invalid",
    DelegationMayActInvalid = "delegation_may_act_invalid",
    DelegationMayActRefused = "delegation_may_act_refused",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.as_str().to_string()
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_ids_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let id = reason.as_str();
            assert!(seen.insert(id), "{id} twice");
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{id}"
            );
        }
    }
}
