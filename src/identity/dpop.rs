//! DPoP (RFC 9449): a token bound to a key by `cnf.jkt` is accepted only with a proof, made for this very request,
//! that the caller holds that key. Checked on every request: the proof's type and signature by the key it carries,
//! that key's thumbprint against `cnf.jkt`, the method and URL, `iat` within a window, `ath` (the hash of the
//! access token) and its `jti` never seen before within the window.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AuthError;

/// How a request presents its access token (`Authorization: Bearer …` or `Authorization: DPoP …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// What the transport knows of the request a token came with, to check a DPoP proof against.
#[derive(Debug, Clone)]
pub struct ProofRequest<'a> {
    pub scheme: Scheme,
    /// The `DPoP` header; `Err` when the request carries more than one.
    pub proof: Result<Option<&'a str>, ()>,
    /// The HTTP method, as sent.
    pub method: &'a str,
    /// The URL the client addressed: scheme, authority and path (query and fragment are not part of `htu`).
    pub url: String,
}

/// JWK members that belong to a private (or symmetric) key, never to the public key a proof carries.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Largest proof read.
const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted.
const MAX_JTI: usize = 256;
/// How far in the future a proof's `iat` may lie (clock skew).
const FUTURE_SKEW: i64 = 5;

/// The claims of a proof.
#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
}

/// Proofs seen recently, to refuse a replayed one; bounded.
pub struct Proofs {
    /// `SHA-256(jkt, jti)` → when the entry may be forgotten (unix seconds).
    seen: dashmap::DashMap<[u8; 32], i64>,
    lifetime: Duration,
    max: usize,
}

impl Proofs {
    pub fn new(lifetime: Duration, max: usize) -> Self {
        Self {
            seen: dashmap::DashMap::new(),
            lifetime,
            max,
        }
    }

    /// Checks the proof of `request` for `token`, bound to the key with thumbprint `jkt`, at `now`.
    pub fn verify(
        &self,
        request: &ProofRequest<'_>,
        token: &str,
        jkt: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if request.scheme != Scheme::Dpop {
            return Err(AuthError::DpopMissing);
        }
        let proof = match request.proof {
            Ok(Some(proof)) => proof,
            Ok(None) => return Err(AuthError::DpopMissing),
            Err(()) => return Err(invalid("the request carries more than one DPoP header")),
        };
        if proof.len() > MAX_PROOF_BYTES {
            return Err(invalid("the proof is too large"));
        }
        let jwk = proof_key(proof)?;
        let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("malformed"))?;
        // A public-key algorithm that fits the key the proof carries (the rule issuer keys follow too).
        if !super::jwt::key_algorithms(&jwk).contains(&header.alg) {
            return Err(invalid(
                "its algorithm is not a public-key algorithm for its key",
            ));
        }
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| invalid("its key has no thumbprint"))?;
        if thumbprint != jkt {
            return Err(invalid(
                "it is signed by another key than the token is bound to",
            ));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("its key cannot be used"))?;
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid("its signature is invalid")
                }
                jsonwebtoken::errors::ErrorKind::Json(_) => {
                    invalid("it lacks jti, htm, htu or iat, or one has the wrong type")
                }
                _ => invalid("it cannot be verified with the key it carries"),
            })?
            .claims;
        if claims.htm != request.method {
            return Err(invalid("it was made for another HTTP method"));
        }
        if !same_target(&claims.htu, &request.url) {
            return Err(invalid("it was made for another URL"));
        }
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        if claims.iat < now.saturating_sub(lifetime) || claims.iat > now.saturating_add(FUTURE_SKEW)
        {
            return Err(invalid("its iat is outside the accepted window"));
        }
        let expected_ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if claims.ath.as_deref() != Some(expected_ath.as_str()) {
            return Err(invalid("its ath is not the hash of this access token"));
        }
        if claims.jti.is_empty() || claims.jti.len() > MAX_JTI {
            return Err(invalid("its jti is empty or too long"));
        }
        self.remember(
            jkt,
            &claims.jti,
            claims
                .iat
                .saturating_add(lifetime)
                .saturating_add(FUTURE_SKEW),
            now,
        )
    }

    /// Records a proof's `jti` until `until`; a `jti` already seen for the same key is a replay.
    fn remember(&self, jkt: &str, jti: &str, until: i64, now: i64) -> Result<(), AuthError> {
        let mut hash = Sha256::new();
        hash.update(jkt.as_bytes());
        hash.update([0u8]);
        hash.update(jti.as_bytes());
        let key: [u8; 32] = hash.finalize().into();
        if self.seen.len() >= self.max {
            self.seen.retain(|_, until| *until >= now);
            if self.seen.len() >= self.max {
                // Fail closed: a proof that cannot be remembered could be replayed.
                tracing::warn!(max = self.max, "DPoP replay cache full; proof refused");
                return Err(invalid(
                    "too many recent proofs to remember; try again shortly",
                ));
            }
        }
        match self.seen.entry(key) {
            dashmap::Entry::Occupied(mut seen) => {
                if *seen.get() >= now {
                    return Err(AuthError::DpopReplayed);
                }
                seen.insert(until);
            }
            dashmap::Entry::Vacant(slot) => {
                slot.insert(until);
            }
        }
        Ok(())
    }
}

fn invalid(why: &str) -> AuthError {
    AuthError::DpopInvalid(why.to_string())
}

/// The public key a proof carries in its header, after checking the header's shape: `typ: dpop+jwt`, no `crit`,
/// a public key only.
fn proof_key(proof: &str) -> Result<Jwk, AuthError> {
    let encoded = proof.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| invalid("malformed"))?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("malformed"))?;
    if !header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(invalid("its typ is not dpop+jwt"));
    }
    if header.get("crit").is_some() {
        return Err(invalid("it marks a header critical"));
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(invalid("it carries no jwk"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(invalid("its jwk is not a public key"));
    }
    serde_json::from_value(Value::Object(jwk.clone())).map_err(|_| invalid("its jwk is malformed"))
}

/// Whether a proof's `htu` names the request's URL: same scheme, host (any case), port (default ports filled
/// in) and path; query and fragment are ignored (RFC 9449 §4.3).
fn same_target(htu: &str, url: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(htu), url::Url::parse(url)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_without_query_case_or_default_port() {
        assert!(same_target(
            "http://LOCALHOST:80/mcp?x=1#f",
            "http://localhost/mcp"
        ));
        assert!(same_target(
            "https://a.example/mcp",
            "https://a.example:443/mcp"
        ));
        assert!(!same_target(
            "https://a.example/mcp",
            "http://a.example/mcp"
        ));
        assert!(!same_target(
            "http://a.example/mcp/",
            "http://a.example/mcp"
        ));
        assert!(!same_target("http://b.example/mcp", "http://a.example/mcp"));
        assert!(!same_target("not a url", "http://a.example/mcp"));
    }

    #[test]
    fn a_jti_is_refused_again_until_it_expires_and_the_cache_is_bounded() {
        let proofs = Proofs::new(Duration::from_secs(60), 2);
        assert_eq!(proofs.remember("k", "a", 100, 10), Ok(()));
        assert_eq!(
            proofs.remember("k", "a", 100, 11),
            Err(AuthError::DpopReplayed)
        );
        // Another key may use the same jti.
        assert_eq!(proofs.remember("j", "a", 100, 11), Ok(()));
        // Full of live entries: refused, never forgotten early.
        assert!(matches!(
            proofs.remember("k", "b", 100, 12),
            Err(AuthError::DpopInvalid(_))
        ));
        // Once they expire, there is room again, and an expired jti may be seen anew.
        assert_eq!(proofs.remember("k", "b", 300, 200), Ok(()));
        assert_eq!(proofs.remember("k", "a", 300, 200), Ok(()));
    }
}
