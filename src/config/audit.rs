//! Where the store lives and how decision records are kept.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How hard a committed decision record is to lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// SQLite WAL with `synchronous=NORMAL`: survives the gateway being killed, not an OS crash.
    Normal,
    /// `synchronous=FULL`: every batch is fsynced; survives an OS crash.
    Full,
}

/// What a decision record keeps of a call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentsRule {
    /// Redacted by the same rules as results, at `redaction.default_clearance`.
    Redacted,
    /// The SHA-256 of their canonical JSON (RFC 8785): provable, not readable.
    Hashed,
    /// The arguments as sent.
    Full,
}

/// Decision records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub durability: Durability,
    pub arguments: ArgumentsRule,
    /// HMAC key of the record chain, created if missing (mode 0600); keep it out of the database's backups.
    pub key_file: PathBuf,
    /// Where the chain head is published.
    pub head_file: PathBuf,
    /// How often the head is published and aggregated refusals are written.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Most records committed in one transaction.
    pub batch_max: usize,
    /// Records waiting for the writer before callers wait too.
    pub queue: usize,
    /// How long a write waits for a locked database before failing.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            arguments: ArgumentsRule::Redacted,
            key_file: PathBuf::from("audit.key"),
            head_file: PathBuf::from("audit.head"),
            flush_interval: Duration::from_secs(5),
            batch_max: 1024,
            queue: 65_536,
            busy_timeout: Duration::from_secs(2),
        }
    }
}

impl AuditConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.batch_max == 0 || self.queue == 0 || self.flush_interval.is_zero() {
            return Err(
                "audit.batch_max, audit.queue and audit.flush_interval must be positive".into(),
            );
        }
        Ok(())
    }
}
