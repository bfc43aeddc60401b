//! Example upstream: read, list and write files under one root directory (`--root DIR`, or `FILE_STORE_ROOT`,
//! default `./sandbox`). It takes any path within its root and resolves each one against the real filesystem,
//! symbolic links included, refusing whatever ends up outside the root.
//!
//! toolgate's path facts are lexical: the gateway cannot see this filesystem, so a link inside the root that
//! leads elsewhere is this server's to refuse. Reads and listings canonicalize the target and require it to be
//! inside the canonical root; a write resolves its folders one by one the same way (creating the missing ones)
//! and never writes through a link as the final component. Errors name the path as the caller sent it, never
//! where it resolved to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct PathArgs {
    /// Path relative to the store's root.
    path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ListArgs {
    /// Folder relative to the store's root; empty for the root.
    #[serde(default)]
    path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct WriteArgs {
    /// Path relative to the store's root.
    path: String,
    /// Text to write (replaces the file).
    content: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Entry {
    name: String,
    /// `file`, `dir` or `link` (links are listed, not followed).
    kind: String,
    size: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Listing {
    entries: Vec<Entry>,
}

// Residual races (TOCTOU): std has no `openat`/`O_BENEATH`, so every check here is made on a path and the use
// re-walks that path. Someone else who can write inside the root could swap a checked folder for a link between
// the check and the use. What is done against it: an existing file is opened without truncation and must be the
// inode that was checked; a new file is created with `create_new` (O_EXCL, which never follows a link); and on
// Linux the opened file's real path (`/proc/self/fd`) must still be inside the root before anything is read or
// written. What remains: a swapped folder can make `create_new` leave an empty file outside, and a listing can
// name the entries of a swapped folder. Hard links are not detected: a hard link is the same file wherever it is.
// The callers of this server (agents through toolgate) cannot create links; only the host can.

#[derive(Clone)]
struct FileStore {
    /// Canonical (symlink-free, absolute) root.
    root: Arc<PathBuf>,
}

fn outside(path: &str) -> String {
    format!("path `{path}` resolves outside the store")
}

fn failed(action: &str, path: &str, e: std::io::Error) -> String {
    // An io::Error's text from std names no path, so the host's layout stays hidden.
    format!("cannot {action} `{path}`: {e}")
}

impl FileStore {
    /// Refuses absolute paths and `..` that climb above the root before the path is resolved (so that probing
    /// outside the root cannot tell files that exist there from files that do not).
    fn check_lexically(path: &str) -> Result<(), String> {
        let mut depth = 0usize;
        for part in Path::new(path).components() {
            match part {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir => {
                    depth = depth.checked_sub(1).ok_or_else(|| outside(path))?
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "path `{path}` is absolute: paths are relative to the store's root"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The real location of an existing `path`, links followed; it must be inside the root.
    fn resolve_existing(&self, action: &str, path: &str) -> Result<PathBuf, String> {
        Self::check_lexically(path)?;
        let real =
            std::fs::canonicalize(self.root.join(path)).map_err(|e| failed(action, path, e))?;
        if !real.starts_with(self.root.as_ref()) {
            return Err(outside(path));
        }
        Ok(real)
    }

    /// The real folder a new or replaced file `path` goes in, created as needed, and the file's name in it. Each
    /// folder is resolved before the next is looked at, so a link or `..` anywhere on the way is caught at the
    /// step where it leads out, before anything is created beyond it.
    fn resolve_parent(&self, path: &str) -> Result<(PathBuf, std::ffi::OsString), String> {
        Self::check_lexically(path)?;
        let mut parts: Vec<Component> = Path::new(path).components().collect();
        let name = match parts.pop() {
            Some(Component::Normal(name)) => name.to_os_string(),
            _ => return Err(format!("path `{path}` does not name a file")),
        };
        let mut dir = self.root.as_ref().clone();
        for part in parts {
            match part {
                Component::CurDir => {}
                // `dir` is canonical, so its lexical parent is its real parent.
                Component::ParentDir => {
                    dir.pop();
                }
                Component::Normal(part) => {
                    let next = dir.join(part);
                    match std::fs::symlink_metadata(&next) {
                        Ok(_) => {
                            dir = std::fs::canonicalize(&next)
                                .map_err(|e| failed("write", path, e))?;
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            std::fs::create_dir(&next).map_err(|e| failed("write", path, e))?;
                            dir = next;
                        }
                        Err(e) => return Err(failed("write", path, e)),
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(outside(path)),
            }
            if !dir.starts_with(self.root.as_ref()) {
                return Err(outside(path));
            }
        }
        if !dir.is_dir() {
            return Err(format!("cannot write `{path}`: a parent is not a folder"));
        }
        Ok((dir, name))
    }

    /// On Linux, where the opened file really is must still be inside the root (see the note on races above).
    fn confirm_inside(&self, file: &File, path: &str) -> Result<(), String> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // Without /proc there is nothing more to learn; the path checks stand.
            if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
                && !real.starts_with(self.root.as_ref())
            {
                return Err(outside(path));
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (file, path);
        Ok(())
    }

    fn read(&self, path: &str) -> Result<String, String> {
        let real = self.resolve_existing("read", path)?;
        if !real.is_file() {
            return Err(format!("cannot read `{path}`: it is not a file"));
        }
        let mut file = File::open(&real).map_err(|e| failed("read", path, e))?;
        self.confirm_inside(&file, path)?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| failed("read", path, e))?;
        Ok(text)
    }

    fn list(&self, path: &str) -> Result<Listing, String> {
        let real = self.resolve_existing("list", path)?;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&real).map_err(|e| failed("list", path, e))? {
            let entry = entry.map_err(|e| failed("list", path, e))?;
            // Not followed: a link's target may be outside, and its size is the length of the target's path.
            let meta = entry.metadata().map_err(|e| failed("list", path, e))?;
            let (kind, size) = if meta.file_type().is_symlink() {
                ("link", 0)
            } else if meta.is_dir() {
                ("dir", meta.len())
            } else {
                ("file", meta.len())
            };
            entries.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind: kind.into(),
                size,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing { entries })
    }

    fn write(&self, path: &str, content: &str) -> Result<String, String> {
        let (dir, name) = self.resolve_parent(path)?;
        let target = dir.join(name);
        let mut file = match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "path `{path}` is a symbolic link: the store does not write through links"
                ));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(format!("cannot write `{path}`: it is not a file"));
            }
            Ok(meta) => {
                // Opened without truncation, and emptied only once it is known to be the file checked above.
                let file = OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .map_err(|e| failed("write", path, e))?;
                let opened = file.metadata().map_err(|e| failed("write", path, e))?;
                if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
                    return Err(format!(
                        "path `{path}` changed while being written; try again"
                    ));
                }
                self.confirm_inside(&file, path)?;
                file.set_len(0).map_err(|e| failed("write", path, e))?;
                file
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // O_CREAT|O_EXCL: fails on any link planted here meanwhile, dangling or not.
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| failed("write", path, e))?;
                self.confirm_inside(&file, path)?;
                file
            }
            Err(e) => return Err(failed("write", path, e)),
        };
        file.write_all(content.as_bytes())
            .map_err(|e| failed("write", path, e))?;
        Ok(format!("wrote {} bytes to {path}", content.len()))
    }
}

/// Runs blocking filesystem work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())?
}

#[tool_router(server_handler)]
impl FileStore {
    #[tool(description = "Read a text file from the store.")]
    async fn read_file(&self, Parameters(args): Parameters<PathArgs>) -> Result<String, String> {
        let store = self.clone();
        blocking(move || store.read(&args.path)).await
    }

    #[tool(description = "List the files in a folder of the store.")]
    async fn list_files(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<Json<Listing>, String> {
        let store = self.clone();
        blocking(move || store.list(&args.path)).await.map(Json)
    }

    #[tool(description = "Write a text file in the store, creating folders as needed.")]
    async fn write_file(&self, Parameters(args): Parameters<WriteArgs>) -> Result<String, String> {
        let store = self.clone();
        blocking(move || store.write(&args.path, &args.content)).await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = common::arg("--root")
        .or_else(|| std::env::var("FILE_STORE_ROOT").ok())
        .unwrap_or_else(|| "sandbox".into());
    std::fs::create_dir_all(&root)?;
    // Canonical once: every resolved path is compared with this one.
    let root = Arc::new(std::fs::canonicalize(&root)?);
    common::serve(move || FileStore { root: root.clone() }).await
}
