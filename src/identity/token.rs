//! Development tokens for the quickstart, signed with the quickstart's development key. Only an issuer marked
//! `dev: true` trusts that key, and only on a loopback listener.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// The development issuer's name.
pub const DEV_ISSUER: &str = "toolgate-dev";
/// Key id of the development key in `examples/quickstart/dev-keys/dev.jwks.json`.
pub const DEV_KEY_ID: &str = "toolgate-dev-1";
const DEV_KEY_PEM: &str = include_str!("../../examples/quickstart/dev-keys/dev-signing-key.pem");
/// The development key's public JWKS.
pub const DEV_JWKS: &str = include_str!("../../examples/quickstart/dev-keys/dev.jwks.json");

/// What to put in a development token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Human subject (principal-context); without it the token is agent-only for `agent`.
    pub subject: Option<String>,
    pub roles: Vec<String>,
    /// First agent acting for the human, or the agent acting alone.
    pub agent: Option<String>,
    /// Later actors, the last being the current actor.
    pub via: Vec<String>,
    pub scope: Option<String>,
    pub audience: String,
    pub ttl: Duration,
}

/// Builds the claims of a development token (also used by tests to craft variations).
pub fn claims(request: &TokenRequest, now: i64) -> Result<Map<String, Value>, String> {
    let agent = request.agent.clone();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(DEV_ISSUER));
    claims.insert("aud".into(), json!(request.audience));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + request.ttl.as_secs() as i64));
    claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
    match (&request.subject, &agent) {
        (Some(subject), Some(first)) => {
            claims.insert("sub".into(), json!(subject));
            // The outermost `act` is the current actor; each nested `act` the one before it.
            let mut act: Option<Value> = None;
            for actor in std::iter::once(first).chain(request.via.iter()) {
                let mut node = Map::new();
                node.insert("sub".into(), json!(actor));
                if let Some(previous) = act.take() {
                    node.insert("act".into(), previous);
                }
                act = Some(Value::Object(node));
            }
            if let Some(act) = act {
                claims.insert("act".into(), act);
            }
        }
        (None, Some(agent)) => {
            if !request.via.is_empty() {
                return Err("--via needs a human --sub: an agent acting alone has no chain".into());
            }
            claims.insert("sub".into(), json!(agent));
        }
        (Some(subject), None) => {
            claims.insert("sub".into(), json!(subject));
        }
        (None, None) => return Err("give --sub and/or --agent".into()),
    }
    if !request.roles.is_empty() {
        claims.insert("roles".into(), json!(request.roles));
    }
    if let Some(scope) = &request.scope {
        claims.insert("scope".into(), json!(scope));
    }
    Ok(claims)
}

/// Why a development token cannot be minted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MintError {
    #[error("{0}")]
    Request(String),
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// Signs arbitrary claims with the development key.
pub fn sign_dev(claims: &Map<String, Value>) -> Result<String, MintError> {
    let key = EncodingKey::from_rsa_pem(DEV_KEY_PEM.as_bytes())
        .map_err(|e| MintError::Sign(format!("development key: {e}")))?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_KEY_ID.into());
    // An access token, typed as one (RFC 9068).
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| MintError::Sign(e.to_string()))
}

/// Mints a development token.
pub fn mint_dev(request: &TokenRequest) -> Result<String, MintError> {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    sign_dev(&claims(request, now).map_err(MintError::Request)?)
}
