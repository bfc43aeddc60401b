//! Where shared state lives: the embedded SQLite file (one gateway), or PostgreSQL (several replicas).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Where the store lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite file, relative to the config file; used when `postgres` is absent.
    pub path: PathBuf,
    /// PostgreSQL shared by every replica: when present, every store lives there instead of the file.
    pub postgres: Option<PostgresConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("toolgate.db"),
            postgres: None,
        }
    }
}

/// A PostgreSQL server (15 or later) shared by the gateway's replicas.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user[:password]@host[:port]/database[?options]`; `${VAR}` is read from the environment when the
    /// config is loaded.
    pub url: String,
    /// Connections of the store's pool (the record writer and the change listener have one each besides).
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// This replica's name: it labels the decision-record chains the replica writes. Default: the host name.
    #[serde(default)]
    pub replica: Option<String>,
    /// How often shared changes are read even without a notification (the safety net of LISTEN/NOTIFY).
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll: Duration,
    /// Without confirmed revocation state for this long (the listening connection lost and not back), every
    /// credential is refused: a revocation made meanwhile could not be known.
    #[serde(default = "default_stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
    /// PEM file of the certificate authorities that may sign the server's certificate, besides the system's (TLS:
    /// see `sslmode` in the URL). Relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long connecting may take.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

/// The URL is a secret (it may hold a password): never shown whole.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("pool", &self.pool)
            .field("replica", &self.replica)
            .field("poll", &self.poll)
            .field("stale_after", &self.stale_after)
            .finish_non_exhaustive()
    }
}

fn default_pool() -> usize {
    8
}

fn default_poll() -> Duration {
    Duration::from_secs(1)
}

fn default_stale_after() -> Duration {
    Duration::from_secs(5)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

impl PostgresConfig {
    /// This replica's name.
    pub fn replica_name(&self) -> String {
        self.replica.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "toolgate".into())
        })
    }

    /// Checks what cannot be checked by parsing.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool == 0 || self.pool > 1000 {
            return Err("storage.postgres.pool must be between 1 and 1000".into());
        }
        if self.stale_after <= self.poll {
            return Err(
                "storage.postgres.stale_after must be longer than storage.postgres.poll".into(),
            );
        }
        if let Some(name) = &self.replica
            && (name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(
                "storage.postgres.replica: 1 to 64 letters, digits, `-`, `_` or `.`".into(),
            );
        }
        Ok(())
    }
}
