//! Example upstream: read, list and write files under one root directory (`--root DIR`, or `FILE_STORE_ROOT`,
//! default `./sandbox`). It keeps to its root but takes any path within it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
    kind: String,
    size: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Listing {
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct FileStore {
    root: Arc<PathBuf>,
}

impl FileStore {
    /// Joins `path` to the root, refusing anything that would leave it.
    fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let mut out = self.root.as_ref().clone();
        for part in Path::new(path).components() {
            match part {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                _ => return Err(format!("path `{path}` leaves the store")),
            }
        }
        Ok(out)
    }
}

#[tool_router(server_handler)]
impl FileStore {
    #[tool(description = "Read a text file from the store.")]
    async fn read_file(&self, Parameters(args): Parameters<PathArgs>) -> Result<String, String> {
        let path = self.resolve(&args.path)?;
        tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| format!("cannot read `{}`: {e}", args.path))
    }

    #[tool(description = "List the files in a folder of the store.")]
    async fn list_files(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<Json<Listing>, String> {
        let path = self.resolve(&args.path)?;
        let mut dir = tokio::fs::read_dir(&path)
            .await
            .map_err(|e| format!("cannot list `{}`: {e}", args.path))?;
        let mut entries = Vec::new();
        while let Ok(Some(entry)) = dir.next_entry().await {
            let meta = entry.metadata().await.map_err(|e| e.to_string())?;
            entries.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind: if meta.is_dir() {
                    "dir".into()
                } else {
                    "file".into()
                },
                size: meta.len(),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Json(Listing { entries }))
    }

    #[tool(description = "Write a text file in the store, creating folders as needed.")]
    async fn write_file(&self, Parameters(args): Parameters<WriteArgs>) -> Result<String, String> {
        let path = self.resolve(&args.path)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| e.to_string())?;
        }
        tokio::fs::write(&path, args.content.as_bytes())
            .await
            .map_err(|e| format!("cannot write `{}`: {e}", args.path))?;
        Ok(format!(
            "wrote {} bytes to {}",
            args.content.len(),
            args.path
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = common::arg("--root")
        .or_else(|| std::env::var("FILE_STORE_ROOT").ok())
        .unwrap_or_else(|| "sandbox".into());
    std::fs::create_dir_all(&root)?;
    let root = Arc::new(std::fs::canonicalize(&root)?);
    common::serve(move || FileStore { root: root.clone() }).await
}
