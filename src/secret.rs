//! Secret files: read one, or create it with a random secret readable by its owner only (mode 0600).

use std::path::Path;

/// The secret in `path`, trimmed; created first with 64 random hex digits if the file does not exist.
/// `created` tells which happened.
pub fn read_or_create(path: &Path) -> std::io::Result<(String, bool)> {
    if path.exists() {
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
