//! Authentication of callers: trusted issuers, the agent inventory, delegation depth.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::default_true;

/// Authentication of callers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuers: Vec<IssuerConfig>,
    /// The agent inventory (YAML), relative to the config file.
    pub agents_file: PathBuf,
    /// Longest delegation chain accepted.
    #[serde(default = "default_chain_depth")]
    pub max_chain_depth: usize,
    /// Authorization servers named in the protected-resource metadata (RFC 9728).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Public base URL of the gateway (for example `https://tools.example.com`) when it is reached through a
    /// proxy or TLS terminator; by default it is `http://` plus the request's (allowlisted) Host.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Environment variable holding the caller's token in stdio mode.
    #[serde(default = "default_token_env")]
    pub stdio_token_env: String,
    /// Skip re-verifying the signature of a token seen before (keyed on a hash of the whole token, never past its
    /// `exp`). Revocation, lineage and scope are still checked on every request.
    #[serde(default = "default_true")]
    pub verified_token_cache: bool,
    /// How old a DPoP proof (RFC 9449) may be: its `iat` lies at most this far in the past (and 5 s ahead).
    #[serde(default = "default_dpop_proof_lifetime", with = "humantime_serde")]
    pub dpop_proof_lifetime: Duration,
    /// Most DPoP proof ids remembered (each for the proof lifetime) to refuse replays; when full of live ids, a
    /// new proof is refused rather than remembered in place of another.
    #[serde(default = "default_dpop_replay_max")]
    pub dpop_replay_max: usize,
}

fn default_dpop_proof_lifetime() -> Duration {
    Duration::from_secs(60)
}

fn default_dpop_replay_max() -> usize {
    100_000
}

/// One trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Accepted signing algorithms (public-key algorithms only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// JWKS file with the issuer's public keys, relative to the config file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL (http or https), fetched at start and every `jwks_refresh`, and early when a token names an
    /// unknown key id. Until the first fetch succeeds, the issuer's tokens are refused.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// Least time between two fetches of the JWKS URL, early ones for unknown key ids included: tokens naming
    /// made-up key ids cannot make toolgate load the issuer.
    #[serde(default = "default_jwks_min_interval", with = "humantime_serde")]
    pub jwks_min_interval: Duration,
    /// Allowed clock skew for `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Claim carrying a human's roles. Unset: this issuer asserts no roles, and a roles claim in its tokens is
    /// ignored (roles decide what a human may reach, so they come only from issuers trusted to assert them).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Claim carrying a human's groups; unset, as for roles: none are taken from this issuer.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// The quickstart's development issuer: accepted on a loopback listener only.
    #[serde(default)]
    pub dev: bool,
    /// Also accept access tokens typed plain `JWT` (or untyped), for issuers that do not set `typ: at+jwt`
    /// (RFC 9068). ID tokens and other typed JWTs are refused either way.
    #[serde(default)]
    pub accept_plain_jwt: bool,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn default_jwks_min_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(600)
}

fn default_chain_depth() -> usize {
    4
}

fn default_token_env() -> String {
    "TOOLGATE_TOKEN".into()
}

fn default_algorithms() -> Vec<jsonwebtoken::Algorithm> {
    vec![
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::ES256,
    ]
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

impl AuthConfig {
    /// `loopback`: both listeners are on loopback; `admin_audience`: the admin API's, which no caller token may
    /// carry.
    pub(super) fn validate(&self, loopback: bool, admin_audience: &str) -> Result<(), String> {
        if self
            .issuers
            .iter()
            .any(|i| i.audience.iter().any(|a| a == admin_audience))
        {
            return Err("an issuer's caller audience equals the admin audience: admin tokens must be distinct".into());
        }
        if self.issuers.is_empty() {
            return Err("self.issuers is empty: no caller could ever be authenticated".into());
        }
        if self.dpop_proof_lifetime.is_zero() || self.dpop_replay_max == 0 {
            return Err(
                "auth.dpop_proof_lifetime and auth.dpop_replay_max must be above zero".into(),
            );
        }
        if self.max_chain_depth == 0 {
            return Err("self.max_chain_depth must be at least 1".into());
        }
        for issuer in &self.issuers {
            if issuer.dev && !loopback {
                return Err(format!(
                    "issuer `{}` is a development issuer and is accepted on a loopback listener only",
                    issuer.issuer
                ));
            }
            if issuer.jwks_file.is_some() == issuer.jwks_url.is_some() {
                return Err(format!(
                    "issuer `{}`: give exactly one of jwks_file and jwks_url",
                    issuer.issuer
                ));
            }
            if let Some(url) = &issuer.jwks_url {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| format!("issuer `{}`: bad jwks_url: {e}", issuer.issuer))?;
                let loopback = match parsed.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                };
                // Keys fetched over plain HTTP could be swapped by anyone on the path.
                if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback)) {
                    return Err(format!(
                        "issuer `{}`: jwks_url must be https (plain http only on loopback)",
                        issuer.issuer
                    ));
                }
            }
            if issuer.leeway > Duration::from_secs(600) {
                return Err(format!(
                    "issuer `{}`: leeway above 10 minutes is not accepted",
                    issuer.issuer
                ));
            }
            if issuer.jwks_min_interval < Duration::from_millis(100) {
                return Err(format!(
                    "issuer `{}`: jwks_min_interval must be at least 100ms",
                    issuer.issuer
                ));
            }
            if issuer.jwks_refresh < Duration::from_millis(100) {
                return Err(format!(
                    "issuer `{}`: jwks_refresh is too short",
                    issuer.issuer
                ));
            }
            if issuer.audience.is_empty() {
                return Err(format!("issuer `{}` has no audience", issuer.issuer));
            }
            for alg in &issuer.algorithms {
                if matches!(
                    alg,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                ) {
                    return Err(format!(
                        "issuer `{}`: symmetric algorithm `{alg:?}` is not accepted; use public-key algorithms",
                        issuer.issuer
                    ));
                }
            }
        }
        Ok(())
    }
}
