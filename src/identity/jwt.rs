//! Verifying bearer tokens: issuer by `iss`, key by `kid` from the issuer's JWKS, algorithm from the issuer's
//! allowlist and consistent with the key, then `exp`, `iat`, `nbf`, `iss` and `aud`.

use std::collections::BTreeMap;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::AuthError;
use crate::config::IssuerConfig;

/// The RFC 8693 `act` claim: the actor, and the one before it. Read from the claim's JSON by [`Act::parse`],
/// which refuses anything but an object with a string `sub` at every level.
#[derive(Debug, Clone)]
pub struct Act {
    pub sub: String,
    pub iss: Option<String>,
    pub act: Option<Box<Act>>,
}

/// Deepest `act` nesting read at all (the configured chain depth refuses long chains before this).
const MAX_ACT_NESTING: usize = 64;

impl Act {
    /// The `act` claim as a chain; `Err` names what is wrong with its shape.
    pub fn parse(value: &Value) -> Result<Self, String> {
        Self::parse_at(value, 0)
    }

    fn parse_at(value: &Value, depth: usize) -> Result<Self, String> {
        if depth >= MAX_ACT_NESTING {
            return Err(format!("nested deeper than {MAX_ACT_NESTING} levels"));
        }
        let Value::Object(object) = value else {
            return Err(format!(
                "level {} is {}, not an object",
                depth + 1,
                kind(value)
            ));
        };
        let sub = match object.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(other) => {
                return Err(format!(
                    "level {}: `sub` is {}, not a string",
                    depth + 1,
                    kind(other)
                ));
            }
            None => return Err(format!("level {} has no `sub`", depth + 1)),
        };
        let iss = match object.get("iss") {
            None => None,
            Some(Value::String(iss)) => Some(iss.clone()),
            Some(other) => {
                return Err(format!(
                    "level {}: `iss` is {}, not a string",
                    depth + 1,
                    kind(other)
                ));
            }
        };
        let act = match object.get("act") {
            None => None,
            Some(inner) => Some(Box::new(Self::parse_at(inner, depth + 1)?)),
        };
        Ok(Self { sub, iss, act })
    }
}

/// The RFC 8693 `may_act` claim: who may act for the token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MayAct {
    pub sub: String,
    pub iss: Option<String>,
}

impl MayAct {
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(object) = value else {
            return Err(format!("`may_act` is {}, not an object", kind(value)));
        };
        let sub = match object.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err("`may_act` has no string `sub`".into()),
        };
        let iss = match object.get("iss") {
            None => None,
            Some(Value::String(iss)) => Some(iss.clone()),
            Some(_) => return Err("`may_act.iss` is not a string".into()),
        };
        Ok(Self { sub, iss })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JOSE `typ` values of an access token (RFC 9068): `at+jwt`, with or without `application/`, any case.
fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ == "at+jwt" || typ == "application/at+jwt"
}

/// Plain `JWT` (or no `typ` at all), accepted only from issuers configured for it.
fn is_plain_type(typ: Option<&str>) -> bool {
    typ.is_none_or(|t| t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("application/jwt"))
}

/// Claims that make a plain JWT an ID token (OpenID Connect) or a security event (logout, RFC 8417), never an
/// access token.
const NOT_ACCESS_CLAIMS: &[&str] = &["nonce", "at_hash", "c_hash", "s_hash", "events", "sid_hash"];

/// The claims toolgate reads from a verified token.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// One audience or several.
    #[serde(default)]
    pub aud: Value,
    /// Key id the token was verified with (from its header, not a claim).
    #[serde(skip)]
    pub kid: Option<String>,
    /// Thumbprint of the key the token was verified with.
    #[serde(skip)]
    pub key_thumbprint: Option<String>,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// Every other claim, `act`, `may_act` and `cnf` included (their shapes are checked where they are read).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One verification key of an issuer, with its RFC 7638 thumbprint: what a cached verification is bound to, so that
/// a rotation (even one that reuses the key id, or a key set without ids) ends it.
struct Key {
    kid: Option<String>,
    jwk: Jwk,
    decoding: DecodingKey,
    thumbprint: String,
}

/// A key's RFC 7638 SHA-256 thumbprint; for key types without one, a digest of its JSON.
fn thumbprint(jwk: &Jwk) -> String {
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap_or_else(|_| {
            use sha2::Digest;
            let json = serde_json::to_vec(&jwk.algorithm).unwrap_or_default();
            hex::encode(sha2::Sha256::digest(json))
        })
}

/// One trusted issuer, built once at start; keys from a JWKS file, or from a JWKS URL refreshed periodically.
pub struct Issuer {
    pub config: IssuerConfig,
    keys: arc_swap::ArcSwap<Vec<Key>>,
    /// Asks the refresher for an early fetch (a token named a key id not seen yet).
    pub refresh: tokio::sync::Notify,
}

/// The signature algorithms a key of this type may verify: public-key ones only.
pub(super) fn key_algorithms(jwk: &Jwk) -> &'static [Algorithm] {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        // Symmetric keys are never accepted from a JWKS: a public key set must not hold secrets.
        AlgorithmParameters::OctetKey(_) => &[],
        _ => &[],
    }
}

/// Why an issuer's keys cannot be had.
#[derive(Debug, Clone, thiserror::Error)]
#[error("issuer `{issuer}`: {problem}")]
pub struct IssuerError {
    pub issuer: String,
    pub problem: KeyProblem,
}

/// What is wrong with an issuer's keys.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyProblem {
    #[error("cannot read JWKS `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("give exactly one of jwks_file and jwks_url")]
    Source,
    #[error("JWKS fetch failed: {0}")]
    Fetch(String),
    #[error("JWKS URL answered {0}")]
    Status(String),
    #[error("JWKS larger than 1 MiB")]
    TooLarge,
    #[error("JWKS is not valid: {0}")]
    Invalid(String),
    #[error("JWKS has no usable public signing key")]
    NoKey,
    #[error("the JWKS holds the public development key; refused for an issuer not marked `dev`")]
    DevKey,
}

fn issuer_error(issuer: &str, problem: KeyProblem) -> IssuerError {
    IssuerError {
        issuer: issuer.to_string(),
        problem,
    }
}

/// Parses a JWKS document, keeping the keys usable for verifying signatures: symmetric keys, encryption keys
/// and unknown key types are skipped with a warning; a set with no usable key is an error.
fn parse_jwks(issuer: &str, text: &str) -> Result<Vec<Key>, IssuerError> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|e| issuer_error(issuer, KeyProblem::Invalid(e.to_string())))?;
    let mut keys = Vec::new();
    for jwk in set.keys {
        let kid = jwk.common.key_id.clone();
        let for_encryption = matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        if key_algorithms(&jwk).is_empty() || for_encryption {
            tracing::warn!(issuer, kid = ?kid, "JWKS key skipped: not a public signing key");
            continue;
        }
        match DecodingKey::from_jwk(&jwk) {
            Ok(decoding) => keys.push(Key {
                kid,
                thumbprint: thumbprint(&jwk),
                jwk,
                decoding,
            }),
            Err(e) => tracing::warn!(issuer, kid = ?kid, "JWKS key skipped: {e}"),
        }
    }
    if keys.is_empty() {
        return Err(issuer_error(issuer, KeyProblem::NoKey));
    }
    Ok(keys)
}

fn holds_dev_key(keys: &[Key]) -> bool {
    let Some(dev) = dev_modulus() else {
        return false;
    };
    keys.iter().any(|key| match &key.jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => rsa.n == dev,
        _ => false,
    })
}

/// The RSA modulus of the quickstart's development key, to keep it out of any issuer not marked `dev`.
fn dev_modulus() -> Option<String> {
    let set: JwkSet = serde_json::from_str(super::token::DEV_JWKS).ok()?;
    set.keys.into_iter().find_map(|k| match k.algorithm {
        AlgorithmParameters::RSA(rsa) => Some(rsa.n),
        _ => None,
    })
}

impl Issuer {
    /// Loads the issuer's keys from its JWKS file; an issuer with a JWKS URL starts with none (every token is
    /// refused) until [`Issuer::fetch`] succeeds.
    pub fn load(config: &IssuerConfig, base: &Path) -> Result<Self, IssuerError> {
        let keys = match (&config.jwks_file, &config.jwks_url) {
            (Some(file), None) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    let problem = KeyProblem::Read {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    };
                    issuer_error(&config.issuer, problem)
                })?;
                parse_jwks(&config.issuer, &text)?
            }
            (None, Some(_)) => Vec::new(),
            _ => {
                return Err(issuer_error(&config.issuer, KeyProblem::Source));
            }
        };
        Ok(Self {
            config: config.clone(),
            keys: arc_swap::ArcSwap::from_pointee(keys),
            refresh: tokio::sync::Notify::new(),
        })
    }

    /// Fetches the JWKS URL and swaps the keys in; on failure the previous keys stay.
    pub async fn fetch(&self, client: &reqwest::Client) -> Result<usize, IssuerError> {
        let failed = |problem| issuer_error(&self.config.issuer, problem);
        let Some(url) = &self.config.jwks_url else {
            return Ok(self.keys.load().len());
        };
        let response = client
            .get(url)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| failed(KeyProblem::Fetch(e.to_string())))?;
        if !response.status().is_success() {
            return Err(failed(KeyProblem::Status(response.status().to_string())));
        }
        if response.content_length().is_some_and(|n| n > 1024 * 1024) {
            return Err(failed(KeyProblem::TooLarge));
        }
        let text = response
            .text()
            .await
            .map_err(|e| failed(KeyProblem::Fetch(e.to_string())))?;
        if text.len() > 1024 * 1024 {
            return Err(failed(KeyProblem::TooLarge));
        }
        let keys = parse_jwks(&self.config.issuer, &text)?;
        if !self.config.dev && holds_dev_key(&keys) {
            return Err(failed(KeyProblem::DevKey));
        }
        let count = keys.len();
        self.keys.store(std::sync::Arc::new(keys));
        Ok(count)
    }

    /// Whether this issuer's current keys include the public development key.
    pub fn holds_dev_key(&self) -> bool {
        holds_dev_key(&self.keys.load())
    }

    /// Whether the very key with this thumbprint is still in the key set (not merely one with the same id).
    pub fn still_holds(&self, thumbprint: Option<&str>) -> bool {
        thumbprint.is_some_and(|t| self.keys.load().iter().any(|k| k.thumbprint == t))
    }

    /// Verifies a token of this issuer.
    pub fn verify(&self, token: &str, audience: &[String]) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // Keys named by the token itself are never followed or trusted.
        if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() {
            return Err(AuthError::HeaderKey);
        }
        if !self.config.algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        let keys = self.keys.load();
        let found = match &header.kid {
            Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None if keys.len() == 1 => keys.first(),
            None => None,
        };
        let Some(Key {
            jwk,
            decoding: key,
            thumbprint,
            ..
        }) = found
        else {
            if self.config.jwks_url.is_some() {
                // Perhaps the issuer rotated its keys: ask for an early refresh.
                self.refresh.notify_one();
            }
            return Err(AuthError::UnknownKey);
        };
        // The algorithm must fit the key: an RSA public key never verifies an HMAC token.
        if !key_algorithms(jwk).contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        if let Some(pinned) = jwk.common.key_algorithm
            && format!("{pinned:?}") != format!("{:?}", header.alg)
        {
            return Err(AuthError::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(map_error)?;
        // Signed by the issuer; now what it is. Header parameters marked critical must be understood, and
        // toolgate understands no extension (RFC 7515 §4.1.11).
        if let Some(critical) = &header.crit {
            return Err(AuthError::Critical(
                critical.join(", ").chars().take(64).collect(),
            ));
        }
        // An access token, typed as one (RFC 8725 §3.11, RFC 9068): ID tokens, logout tokens, security events and
        // DPoP proofs are refused whatever they carry.
        let typ = header.typ.as_deref();
        let plain = is_plain_type(typ);
        let accepted =
            typ.is_some_and(is_access_token_type) || (plain && self.config.accept_plain_jwt);
        if !accepted {
            return Err(AuthError::TokenType(
                typ.unwrap_or("(none)").chars().take(64).collect(),
            ));
        }
        let mut claims = data.claims;
        claims.kid = header.kid.clone();
        claims.key_thumbprint = Some(thumbprint.clone());
        if plain
            && let Some(claim) = NOT_ACCESS_CLAIMS
                .iter()
                .find(|c| claims.other.contains_key(**c))
        {
            return Err(AuthError::NotAccessToken(claim.to_string()));
        }
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if claims.iat > now + self.config.leeway.as_secs() as i64 {
            return Err(AuthError::NotYetValid);
        }
        Ok(claims)
    }
}

fn map_error(error: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => AuthError::Algorithm,
        ErrorKind::MissingRequiredClaim(_) => AuthError::ClaimMissing,
        ErrorKind::Json(e) if e.to_string().contains("missing field") => AuthError::ClaimMissing,
        _ => AuthError::Malformed,
    }
}

/// The unverified `iss` of a token, only to pick which issuer verifies it.
pub fn peek_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let claims: Iss =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| AuthError::Malformed)?;
    claims.iss.ok_or(AuthError::ClaimMissing)
}

#[cfg(test)]
mod fuzz;
