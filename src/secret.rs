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
