//! The admin API's section, and the registry of upstreams added at run time.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::classification::Classification;

/// The admin API: a separate listener, authenticated from the start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Loopback by default; a non-loopback address also needs `allow_non_loopback`.
    pub listen: SocketAddr,
    /// Audience of admin tokens; user and agent tokens (another audience) are never admin tokens.
    pub audience: String,
    /// Admin subjects: `(issuer, subject)` pairs whose admin tokens are accepted.
    pub subjects: Vec<AdminSubject>,
    /// File holding the bootstrap admin credential; created with a random secret (mode 0600) if missing.
    pub bootstrap_token_file: PathBuf,
    /// File holding the metrics scrape credential: it reads `/admin/metrics` and nothing else. Created with a
    /// random secret (mode 0600) if missing.
    pub scrape_token_file: PathBuf,
    /// Highest class an approver sees in the arguments of a held call (above it, values are redacted) when the
    /// admin's own entry sets none; the bootstrap credential always sees at this class.
    pub approver_clearance: Classification,
    /// How long a console sign-in lasts (never beyond the admin token's own expiry).
    #[serde(with = "humantime_serde")]
    pub console_session_ttl: std::time::Duration,
    /// Mark the console's cookie `Secure` even when the request did not say it came over HTTPS
    /// (`X-Forwarded-Proto: https` from a TLS-terminating proxy always does).
    pub console_secure_cookie: bool,
}

/// One admin identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSubject {
    pub issuer: String,
    pub subject: String,
    /// This admin's clearance as an approver (default `admin.approver_clearance`).
    #[serde(default)]
    pub clearance: Option<Classification>,
    /// `admin` (the default) changes and reads everything; `reviewer` reads decision records and access reports
    /// and changes nothing.
    #[serde(default)]
    pub role: AdminRole,
}

/// What an admin identity may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    #[default]
    Admin,
    /// Reads decision records and access reports; changes nothing.
    Reviewer,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8701)),
            audience: "toolgate-admin".into(),
            subjects: Vec::new(),
            bootstrap_token_file: PathBuf::from("admin.token"),
            scrape_token_file: PathBuf::from("scrape.token"),
            approver_clearance: Classification::Internal,
            console_session_ttl: std::time::Duration::from_secs(15 * 60),
            console_secure_cookie: false,
        }
    }
}

/// Upstreams registered at run time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Networks (CIDR) or addresses registered HTTP upstreams may be reached on besides public addresses —
    /// loopback, private, link-local; cloud metadata addresses only when listed exactly.
    pub allowed_networks: Vec<String>,
}
