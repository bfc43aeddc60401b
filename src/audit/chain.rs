//! The chain's key and its published head: what makes decision records tamper-evident.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why the chain's key or head cannot be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChainError {
    #[error("cannot read {what} `{path}`: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("the audit key `{0}` is not hex")]
    NotHex(String),
    #[error("the audit key `{0}` is shorter than 16 bytes")]
    Short(String),
    #[error("chain head `{path}` is not valid: {reason}")]
    Head { path: String, reason: String },
}

/// The HMAC key of the chain, kept in its own file (never in the database).
#[derive(Clone)]
pub struct ChainKey(Arc<[u8]>);

impl ChainKey {
    /// Reads the key file, creating it with a random key (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, ChainError> {
        let (text, created) =
            crate::secret::read_or_create(path).map_err(|e| ChainError::Read {
                what: "or create the audit key",
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        if created {
            tracing::info!(path = %path.display(), "created the decision-record chain key");
        }
        Self::parse(&text, path)
    }

    /// Reads an existing key file.
    pub fn load(path: &Path) -> Result<Self, ChainError> {
        let text = std::fs::read_to_string(path).map_err(|e| ChainError::Read {
            what: "the audit key",
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// The key in a key file's text (`path` names it in errors).
    fn parse(text: &str, path: &Path) -> Result<Self, ChainError> {
        let key =
            hex::decode(text.trim()).map_err(|_| ChainError::NotHex(path.display().to_string()))?;
        if key.len() < 16 {
            return Err(ChainError::Short(path.display().to_string()));
        }
        Ok(Self(Arc::from(key)))
    }

    /// A key for another purpose derived from this one (HMAC-SHA256 of the label and `material`): what replicas
    /// seal for clients is keyed by a secret outside the database, which the database alone cannot forge.
    pub fn derive(&self, label: &str, material: &[u8]) -> [u8; 32] {
        use hmac::{KeyInit, Mac};
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(b"toolgate derived key\n");
        mac.update(label.as_bytes());
        mac.update(b"\n");
        mac.update(material);
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 over the previous record's MAC, this record's sequence number and its JSON as stored.
    pub fn seal(&self, previous: &str, seq: i64, body: &str) -> String {
        use hmac::{KeyInit, Mac};
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(previous.as_bytes());
        mac.update(b"\n");
        mac.update(seq.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// What the first record of `chain` is sealed after: nothing for the embedded store's one chain; the chain's name
/// for a replica's, so that no record moves to another chain unseen.
pub fn genesis(chain: Option<&str>) -> String {
    chain.map(|c| format!("chain {c}")).unwrap_or_default()
}

/// The last record of the chain, as published.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub id: String,
    pub mac: String,
    pub time_ms: i64,
    /// The chain it ends (a replica's, with PostgreSQL); none for the embedded store's one chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

impl ChainHead {
    pub fn read(path: &Path) -> Result<Option<Self>, ChainError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ChainError::Head {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ChainError::Read {
                what: "chain head",
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes the head atomically (a temporary file renamed over the old one).
    pub(super) fn publish(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(tmp, path)
    }
}
