//! Why a request's credentials were refused, with the reason id of each refusal.

use crate::reason::Reason;

/// Why a request's credentials were refused. Each has a stable reason id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token in the Authorization header")]
    Missing,
    #[error("tokens are accepted only in the Authorization header, not in the URL")]
    InQuery,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token names its own verification key (jku, x5u or jwk), which is never trusted")]
    HeaderKey,
    #[error("the token's algorithm is not accepted for this issuer and key")]
    Algorithm,
    #[error("the token's key id is not known for its issuer")]
    UnknownKey,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this gateway (audience)")]
    Audience,
    #[error("the token's issuer does not match")]
    Issuer,
    #[error("the token lacks a required claim (exp, iat, iss, aud, sub)")]
    ClaimMissing,
    #[error("agent `{0}` is not registered")]
    AgentUnregistered(String),
    #[error("the token names no acting agent")]
    AgentMissing,
    #[error("agent `{0}` may not act alone")]
    ActAloneForbidden(String),
    #[error("agent `{0}` may not be asserted by this issuer and subject")]
    BindingMismatch(String),
    #[error("agent `{0}` may not act for a human")]
    NotForHumans(String),
    #[error("agent `{from}` may not delegate to `{to}`")]
    DelegationNotAllowed { from: String, to: String },
    #[error("agent `{0}` appears twice in the delegation chain")]
    ChainCycle(String),
    #[error("the delegation chain is longer than {0}")]
    ChainTooDeep(usize),
    #[error("the token asks for scope beyond what its delegation chain allows")]
    Escalation,
    #[error("the token's scope claim is invalid")]
    BadScope,
    #[error("this session belongs to another subject")]
    SessionSubject,
    #[error("credential revoked: {0}")]
    Revoked(String),
    #[error(
        "revocations cannot be confirmed (the shared store has not answered for {0} ms): every credential is \
         refused until it does"
    )]
    RevocationStateUnknown(u64),
    #[error("`{0}` is an agent and cannot be the human principal of a delegation")]
    PrincipalIsAgent(String),
    #[error("the token's type `{0}` is not an access token (`at+jwt`)")]
    TokenType(String),
    #[error("the token marks header `{0}` critical, which toolgate does not understand")]
    Critical(String),
    #[error("the token carries `{0}`: it is an ID token or a security event, not an access token")]
    NotAccessToken(String),
    #[error("the `act` claim is not a chain of actors: {0}")]
    ActInvalid(String),
    #[error("the `may_act` claim is invalid: {0}")]
    MayActInvalid(String),
    #[error("the token's `may_act` does not permit `{0}` to act for its subject")]
    MayActRefused(String),
    #[error("the token is bound to a key by `cnf.{0}`, which toolgate cannot verify")]
    BindingUnsupported(String),
    #[error(
        "a development token is never accepted through a proxy (the request carries forwarding headers)"
    )]
    DevThroughProxy,
    #[error(
        "the token is bound to a key (cnf.jkt): present it as `Authorization: DPoP <token>` with a DPoP proof of \
         that key for this request (RFC 9449); over stdio a bound token cannot be used"
    )]
    DpopMissing,
    #[error("the DPoP proof is invalid: {0}")]
    DpopInvalid(String),
    #[error("the DPoP proof was used before; make a new proof for every request")]
    DpopReplayed,
    #[error(
        "`Authorization: DPoP` needs a token bound to a key (cnf.jkt); this token is a bearer token"
    )]
    DpopUnbound,
}

impl AuthError {
    /// Stable, documented reason id.
    pub fn reason_id(&self) -> Reason {
        match self {
            Self::Missing => Reason::TokenMissing,
            Self::InQuery => Reason::TokenInQuery,
            Self::Malformed => Reason::TokenMalformed,
            Self::HeaderKey => Reason::TokenHeaderKey,
            Self::Algorithm => Reason::TokenAlgorithm,
            Self::UnknownKey => Reason::TokenUnknownKey,
            Self::UnknownIssuer => Reason::TokenUnknownIssuer,
            Self::Signature => Reason::TokenSignature,
            Self::Expired => Reason::TokenExpired,
            Self::NotYetValid => Reason::TokenNotYetValid,
            Self::Audience => Reason::TokenAudience,
            Self::Issuer => Reason::TokenIssuer,
            Self::ClaimMissing => Reason::TokenClaimMissing,
            Self::AgentUnregistered(_) => Reason::AgentUnregistered,
            Self::AgentMissing => Reason::AgentMissing,
            Self::ActAloneForbidden(_) => Reason::AgentMayNotActAlone,
            Self::BindingMismatch(_) => Reason::AgentBindingMismatch,
            Self::NotForHumans(_) => Reason::AgentMayNotActForHumans,
            Self::DelegationNotAllowed { .. } => Reason::DelegationNotAllowed,
            Self::ChainCycle(_) => Reason::DelegationCycle,
            Self::ChainTooDeep(_) => Reason::DelegationTooDeep,
            Self::Escalation => Reason::DelegationEscalation,
            Self::BadScope => Reason::TokenScopeInvalid,
            Self::SessionSubject => Reason::SessionSubjectMismatch,
            Self::Revoked(_) => Reason::TokenRevoked,
            Self::RevocationStateUnknown(_) => Reason::RevocationStateUnknown,
            Self::PrincipalIsAgent(_) => Reason::PrincipalIsAgent,
            Self::TokenType(_) => Reason::TokenType,
            Self::Critical(_) => Reason::TokenCritical,
            Self::NotAccessToken(_) => Reason::TokenNotAccessToken,
            Self::ActInvalid(_) => Reason::DelegationActInvalid,
            Self::MayActInvalid(_) => Reason::DelegationMayActInvalid,
            Self::MayActRefused(_) => Reason::DelegationMayActRefused,
            Self::BindingUnsupported(_) => Reason::TokenBindingUnsupported,
            Self::DevThroughProxy => Reason::TokenDevThroughProxy,
            Self::DpopMissing => Reason::DpopProofMissing,
            Self::DpopInvalid(_) => Reason::DpopProofInvalid,
            Self::DpopReplayed => Reason::DpopProofReplayed,
            Self::DpopUnbound => Reason::DpopTokenUnbound,
        }
    }

    /// The refusal concerns a DPoP proof (its challenge is `DPoP error="invalid_dpop_proof"`).
    pub fn is_proof(&self) -> bool {
        matches!(self, Self::DpopInvalid(_) | Self::DpopReplayed)
    }

    /// The credential is valid, but may not use the gateway this way (an escalation attempt, a broken chain);
    /// otherwise the credential itself is bad. Transports answer the first 403, the second 401.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::AgentUnregistered(_)
                | Self::AgentMissing
                | Self::ActAloneForbidden(_)
                | Self::BindingMismatch(_)
                | Self::NotForHumans(_)
                | Self::DelegationNotAllowed { .. }
                | Self::ChainCycle(_)
                | Self::ChainTooDeep(_)
                | Self::Escalation
                | Self::BadScope
                | Self::PrincipalIsAgent(_)
                | Self::MayActRefused(_)
                | Self::DevThroughProxy
                | Self::SessionSubject
        )
    }
}
