//! Secret files: read one, or create it with a random secret readable by its owner only (mode 0600). An
//! existing file is refused when its group or others may read or write it, or when another user owns it: a
//! secret anyone else can read is no secret, and one another user can replace is not the gateway's.

use std::path::Path;

/// The secret in `path`, trimmed; created first with 64 random hex digits if the file does not exist.
/// `created` tells which happened.
pub fn read_or_create(path: &Path) -> std::io::Result<(String, bool)> {
    if path.exists() {
        check_private(path)?;
        let text = std::fs::read_to_string(path)?;
        return Ok((text.trim().to_string(), false));
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(path, &secret)?;
    Ok((secret, true))
}

/// Refuses a secret file its group or others may read or write, or that another user than the gateway's owns.
#[cfg(unix)]
pub fn check_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "`{}` may be read or written by its group or others (mode {mode:04o}); make it the gateway's \
                 alone with `chmod 600`",
                path.display()
            ),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "`{}` is owned by uid {}, but the gateway runs as uid {me}: a secret must be the gateway's own file",
                path.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Makes the database at `path` (and its `-wal` and `-shm` files, when there) the gateway's alone, creating it
/// empty with mode 0600 if missing; SQLite gives the journal files it creates later the database's mode.
#[cfg(unix)]
pub fn private_database(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn private_database(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Writes a secret to a new file readable by its owner only.
#[cfg(unix)]
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{secret}\n"))
}

/// Seals and opens small payloads (session ids, say): AES-256-GCM, the purpose bound as associated data, so that
/// what was sealed for one purpose never opens as another. Tokens are URL-safe Base64 (visible ASCII).
pub struct Sealer {
    key: aws_lc_rs::aead::LessSafeKey,
}

impl Sealer {
    /// A sealer with a random key: what it seals opens in this process only.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self::new(&key))
    }

    /// A sealer with a 32-byte key (one shared by replicas, say).
    pub fn new(key: &[u8; 32]) -> Self {
        use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
        let key = UnboundKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// `payload` sealed for `purpose`; `None` when no nonce could be drawn.
    pub fn seal(&self, purpose: &str, payload: &[u8]) -> Option<String> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        use base64::Engine as _;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).ok()?;
        let mut sealed = payload.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut sealed,
            )
            .ok()?;
        let mut token = nonce.to_vec();
        token.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
    }

    /// What `token` holds, if this key sealed it for `purpose`.
    pub fn open(&self, purpose: &str, token: &str) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        use base64::Engine as _;
        let mut token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        if token.len() <= NONCE_LEN {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&token[..NONCE_LEN]);
        let payload = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut token[NONCE_LEN..],
            )
            .ok()?;
        Some(payload.to_vec())
    }
}

#[cfg(test)]
mod sealer_tests {
    use super::Sealer;

    #[test]
    fn a_sealed_payload_opens_only_with_its_key_and_purpose() {
        let key = [7u8; 32];
        let sealer = Sealer::new(&key);
        let token = sealer.seal("session", b"payload").expect("sealed");
        assert_eq!(
            sealer.open("session", &token).as_deref(),
            Some(&b"payload"[..])
        );
        assert_eq!(
            Sealer::new(&key).open("session", &token).as_deref(),
            Some(&b"payload"[..])
        );
        assert!(sealer.open("cursor", &token).is_none(), "another purpose");
        assert!(
            Sealer::new(&[8u8; 32]).open("session", &token).is_none(),
            "another key"
        );
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(sealer.open("session", &tampered).is_none(), "tampered");
        assert!(sealer.open("session", "not base64 !").is_none());
    }
}
