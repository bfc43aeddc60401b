//! Who is acting, decided on every request: bearer-token verification, the caller model (principal-context or
//! agent-only), delegation lineage and scope.

mod caller;
mod delegation;
mod dpop;
mod error;
mod inventory;
mod jwt;
mod revocation;
mod scope;
pub mod token;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

pub use crate::classification::Classification;
pub use caller::{Caller, Mode, Principal};
pub use dpop::{ProofRequest, Scheme};
pub use error::AuthError;
pub use inventory::{Agent, AgentSpec, Inventory, InventoryError};
pub use jwt::{Act, Claims, MayAct};
pub use revocation::Revocations;
pub use scope::Scope;

use crate::config::AuthConfig;
use jwt::Issuer;

/// The `(iss, sub)` a token claims, read without verifying it: only for recording refusals of tokens whose
/// signature did verify.
pub fn peek_subject(token: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Who {
        iss: Option<String>,
        sub: Option<String>,
    }
    let who: Who = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
    Some((who.iss?, who.sub?))
}

/// Most verified tokens kept in the signature cache.
const VERIFIED_CACHE_MAX: usize = 65_536;

/// Everything needed to authenticate a request, built once at start.
pub struct Identity {
    issuers: HashMap<String, std::sync::Arc<Issuer>>,
    /// Verified claims by SHA-256 of the whole token, never used past the token's `exp`; revocation and lineage
    /// are still checked on every request.
    verified: Option<dashmap::DashMap<[u8; 32], std::sync::Arc<Claims>>>,
    revocations: std::sync::Arc<Revocations>,
    /// Swapped whole when the inventory file is reloaded with the policy bundle.
    inventory: arc_swap::ArcSwap<Inventory>,
    max_chain_depth: usize,
    pub authorization_servers: Vec<String>,
    /// Public base URL used in the resource metadata and challenges, when configured.
    pub public_url: Option<String>,
    admin_audience: Option<String>,
    /// DPoP proofs seen recently (replay).
    proofs: dpop::Proofs,
}

/// Why identity cannot start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Issuer(#[from] jwt::IssuerError),
    #[error("issuer `{0}` uses the public development key or name but is not marked `dev: true`")]
    DevKey(String),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

impl Identity {
    /// Loads issuers' keys and the agent inventory; `base` resolves relative paths.
    pub fn load(
        config: &AuthConfig,
        base: &Path,
        revocations: std::sync::Arc<Revocations>,
    ) -> Result<Self, LoadError> {
        let mut issuers = HashMap::new();
        for issuer in &config.issuers {
            let loaded = Issuer::load(issuer, base)?;
            // The development key is public: only an issuer marked `dev` (loopback only) may hold it.
            if !issuer.dev && (issuer.issuer == token::DEV_ISSUER || loaded.holds_dev_key()) {
                return Err(LoadError::DevKey(issuer.issuer.clone()));
            }
            issuers.insert(issuer.issuer.clone(), std::sync::Arc::new(loaded));
        }
        let inventory = Inventory::load(&base.join(&config.agents_file))?;
        Ok(Self {
            issuers,
            verified: config.verified_token_cache.then(dashmap::DashMap::new),
            revocations,
            inventory: arc_swap::ArcSwap::from_pointee(inventory),
            max_chain_depth: config.max_chain_depth,
            authorization_servers: config.authorization_servers.clone(),
            public_url: config
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            admin_audience: None,
            proofs: dpop::Proofs::new(config.dpop_proof_lifetime, config.dpop_replay_max),
        })
    }

    /// The admin API's audience: tokens carrying it are never caller tokens.
    pub fn with_admin_audience(mut self, audience: &str) -> Self {
        self.admin_audience = Some(audience.to_string());
        self
    }

    /// Fetches every JWKS URL once (bounded in time), then keeps them fresh in the background: every
    /// `jwks_refresh`, and early when a token names an unknown key id. One fetch at a time per issuer, and never
    /// two within `jwks_min_interval`, however many unknown key ids arrive.
    pub async fn start_key_refresh(
        &self,
        client: reqwest::Client,
        first_fetch_timeout: std::time::Duration,
    ) {
        for issuer in self
            .issuers
            .values()
            .filter(|i| i.config.jwks_url.is_some())
        {
            match tokio::time::timeout(first_fetch_timeout, issuer.fetch(&client)).await {
                Ok(Ok(count)) => {
                    tracing::info!(issuer = %issuer.config.issuer, keys = count, "JWKS fetched")
                }
                Ok(Err(e)) => tracing::error!("{e}; its tokens are refused until a fetch succeeds"),
                Err(_) => {
                    tracing::error!(issuer = %issuer.config.issuer, "JWKS fetch timed out; its tokens are refused until a fetch succeeds")
                }
            }
            let issuer = std::sync::Arc::clone(issuer);
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(issuer.config.jwks_refresh) => {}
                        () = issuer.refresh.notified() => {}
                    }
                    if let Err(e) = issuer.fetch(&client).await {
                        tracing::warn!("{e}; keeping the previous keys");
                    }
                    tokio::time::sleep(issuer.config.jwks_min_interval).await;
                }
            });
        }
    }

    /// The agent inventory in force.
    pub fn inventory(&self) -> std::sync::Arc<Inventory> {
        self.inventory.load_full()
    }

    /// Replaces the agent inventory (validated by the caller); the next request sees it.
    pub fn set_inventory(&self, inventory: std::sync::Arc<Inventory>) {
        self.inventory.store(inventory);
    }

    pub fn revocations(&self) -> &std::sync::Arc<Revocations> {
        &self.revocations
    }

    /// Verifies a token of a trusted issuer for another audience (the admin API's), without agent rules.
    pub fn verify_for_audience(&self, token: &str, audience: &str) -> Result<Claims, AuthError> {
        let issuer_name = jwt::peek_issuer(token)?;
        let issuer = self
            .issuers
            .get(&issuer_name)
            .ok_or(AuthError::UnknownIssuer)?;
        if issuer.config.dev {
            // Anyone can mint development tokens: they never administer anything.
            return Err(AuthError::UnknownIssuer);
        }
        let claims = issuer.verify(token, &[audience.to_string()])?;
        // An admin token carries the admin audience alone, so it can never double as a caller token.
        if audiences(&claims.aud) != [audience] {
            return Err(AuthError::Audience);
        }
        Ok(claims)
    }

    /// The bearer token from a request's `Authorization` value (as the transport received it) and its query
    /// string; tokens in the URL are refused.
    pub fn bearer<'a>(
        authorization: Option<&'a [u8]>,
        query: Option<&str>,
    ) -> Result<&'a str, AuthError> {
        match Self::credential(authorization, query)? {
            (Scheme::Bearer, token) => Ok(token),
            (Scheme::Dpop, _) => Err(AuthError::Malformed),
        }
    }

    /// The access token and how it is presented (`Bearer` or `DPoP`), from a request's `Authorization` value
    /// and its query string; tokens in the URL are refused.
    pub fn credential<'a>(
        authorization: Option<&'a [u8]>,
        query: Option<&str>,
    ) -> Result<(Scheme, &'a str), AuthError> {
        if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token="))) {
            return Err(AuthError::InQuery);
        }
        let bytes = authorization.ok_or(AuthError::Missing)?;
        // Visible ASCII only, as HTTP header text.
        if !bytes
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return Err(AuthError::Malformed);
        }
        let value = std::str::from_utf8(bytes).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let scheme = if scheme.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if scheme.eq_ignore_ascii_case("dpop") {
            Scheme::Dpop
        } else {
            return Err(AuthError::Malformed);
        };
        if token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        Ok((scheme, token.trim()))
    }

    /// Verifies a token and works out who is acting. `forwarded`: the request came through a proxy (it carries
    /// forwarding headers), where a development token is never accepted. `request`: what an HTTP transport knows
    /// to check a DPoP proof against (none over stdio, where a token bound to a key cannot be used).
    pub fn authenticate(
        &self,
        token: &str,
        forwarded: bool,
        request: Option<&ProofRequest<'_>>,
    ) -> Result<Caller, AuthError> {
        let claims = self.verified_claims(token)?;
        let claims = claims.as_ref();
        if let Some(admin) = &self.admin_audience
            && audiences(&claims.aud).contains(&admin.as_str())
        {
            return Err(AuthError::Audience);
        }
        let caller = self
            .bound(claims, token, request)
            .and_then(|()| self.caller(claims, forwarded));
        if let Err(error) = &caller
            && error.is_forbidden()
        {
            tracing::warn!(
                issuer = %claims.iss, subject = %claims.sub, token = claims.jti.as_deref().unwrap_or(""),
                reason = %error.reason_id(), "escalation attempt refused: {error}"
            );
        }
        caller
    }

    /// A token bound to a key (`cnf`) is usable only with proof of that key: `jkt` with a DPoP proof for this
    /// request; a binding toolgate cannot verify is refused, never taken as a plain bearer token. A DPoP-presented
    /// token must be bound.
    fn bound(
        &self,
        claims: &Claims,
        token: &str,
        request: Option<&ProofRequest<'_>>,
    ) -> Result<(), AuthError> {
        let jkt = match claims.other.get("cnf") {
            None => None,
            Some(Value::Object(methods)) => {
                if let Some(other) = methods.keys().find(|m| m.as_str() != "jkt") {
                    return Err(AuthError::BindingUnsupported(
                        other.chars().take(32).collect(),
                    ));
                }
                match methods.get("jkt") {
                    Some(Value::String(jkt)) => Some(jkt.as_str()),
                    Some(_) => return Err(AuthError::BindingUnsupported("jkt".into())),
                    None => return Err(AuthError::BindingUnsupported("(empty)".into())),
                }
            }
            Some(_) => return Err(AuthError::BindingUnsupported("(not an object)".into())),
        };
        match (jkt, request) {
            (Some(jkt), Some(request)) => {
                let now = jsonwebtoken::get_current_timestamp() as i64;
                self.proofs.verify(request, token, jkt, now)
            }
            (Some(_), None) => Err(AuthError::DpopMissing),
            (None, Some(request)) if request.scheme == Scheme::Dpop => Err(AuthError::DpopUnbound),
            (None, _) => Ok(()),
        }
    }

    /// The token's verified claims: from the cache when this exact token was verified before and has not expired,
    /// else verified now (and cached).
    fn verified_claims(&self, token: &str) -> Result<std::sync::Arc<Claims>, AuthError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let key: Option<[u8; 32]> = self.verified.as_ref().map(|_| {
            use sha2::Digest;
            sha2::Sha256::digest(token.as_bytes()).into()
        });
        if let (Some(cache), Some(key)) = (&self.verified, &key)
            && let Some(claims) = cache.get(key)
        {
            // Never past `exp`, and never once the very key it was verified with has left the issuer's key set
            // (a rotation that reuses the key id, or a key set without ids, ends it too).
            let key_present = self
                .issuers
                .get(&claims.iss)
                .is_some_and(|i| i.still_holds(claims.key_thumbprint.as_deref()));
            if claims.exp > now && key_present {
                return Ok(std::sync::Arc::clone(&claims));
            }
            drop(claims);
            cache.remove(key);
        }
        let issuer_name = jwt::peek_issuer(token)?;
        let issuer = self
            .issuers
            .get(&issuer_name)
            .ok_or(AuthError::UnknownIssuer)?;
        let claims = std::sync::Arc::new(issuer.verify(token, &issuer.config.audience)?);
        if let (Some(cache), Some(key)) = (&self.verified, key) {
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.retain(|_, c| c.exp > now);
                if cache.len() >= VERIFIED_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, std::sync::Arc::clone(&claims));
        }
        Ok(claims)
    }
}

/// The `aud` claim as a list.
fn audiences(aud: &Value) -> Vec<&str> {
    match aud {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
