//! The example file store resolves paths on its real filesystem: links (and `..`) are followed, and whatever
//! resolves outside its root is refused for reading, listing and writing. toolgate's path facts are lexical and
//! cannot see links, so these tests talk to the upstream directly, as an MCP stdio server with an rmcp client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

const SECRET: &str = "outside secret: do not serve";
const INSIDE: &str = "inside content";
const DEEP: &str = "deep content";

/// A temporary folder holding the store's `root/` and, beside it, `outside/` with a secret; links planted in the
/// root lead both ways. The store runs on `root/`.
struct World {
    dir: tempfile::TempDir,
    client: RunningService<RoleClient, ()>,
}

impl World {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        std::fs::write(root.join("inside.txt"), INSIDE).unwrap();
        std::fs::write(root.join("sub/deep.txt"), DEEP).unwrap();
        let links: &[(&str, &str)] = &[
            // Inside the root, to a file inside.
            ("link_in", "inside.txt"),
            // To a file and to a folder outside, relative and absolute.
            ("link_out", "../outside/secret.txt"),
            ("dir_out", "../outside"),
            // Chains: link → link → link → outside, and link → link → inside.
            ("chain_out", "chain_out_2"),
            ("chain_out_2", "sub/hop"),
            ("sub/hop", "../../outside/secret.txt"),
            ("chain_in", "chain_in_2"),
            ("chain_in_2", "sub/deep.txt"),
            // Dangling, pointing outside: to a file and to a folder that do not exist.
            ("dangling", "../outside/missing.txt"),
            ("dangling_dir", "../outside/missing_dir"),
        ];
        for (link, target) in links {
            symlink(target, root.join(link)).unwrap();
        }
        symlink(outside.join("secret.txt"), root.join("abs_out")).unwrap();
        let mut command = tokio::process::Command::new(common::example("file_store"));
        command.arg("--root").arg(&root);
        let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
        Self { dir, client }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// Calls `tool`; returns whether it failed and everything it answered (text and structured content, or the
    /// JSON-RPC error), after checking that the answer holds neither the secret nor a host path.
    async fn call(&self, tool: &str, args: Value) -> (bool, String) {
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = args.as_object().cloned();
        let (failed, answer) = match self.client.peer().call_tool(params).await {
            Ok(result) => (result.is_error == Some(true), answer(&result)),
            Err(e) => (true, e.to_string()),
        };
        assert!(!answer.contains(SECRET), "{tool} {args}: {answer}");
        // The path as sent may be quoted back; nothing else may name the host's folders.
        let sent = args["path"].as_str().unwrap_or_default();
        let scrubbed = if sent.is_empty() {
            answer.clone()
        } else {
            answer.replace(sent, "")
        };
        for host in [
            self.dir.path().to_path_buf(),
            self.dir.path().canonicalize().unwrap(),
        ] {
            assert!(
                !scrubbed.contains(host.to_str().unwrap()),
                "{tool} {args} names a host path: {answer}"
            );
        }
        (failed, answer)
    }

    async fn read(&self, path: &str) -> (bool, String) {
        self.call("read_file", json!({ "path": path })).await
    }

    async fn list(&self, path: &str) -> (bool, String) {
        self.call("list_files", json!({ "path": path })).await
    }

    async fn write(&self, path: &str, content: &str) -> (bool, String) {
        self.call("write_file", json!({ "path": path, "content": content }))
            .await
    }

    async fn assert_read(&self, path: &str, expected: &str) {
        let (failed, answer) = self.read(path).await;
        assert!(!failed, "read {path}: {answer}");
        assert_eq!(answer, expected, "read {path}");
    }

    /// `answer` is a refusal; `because` (if given) is in it.
    fn assert_refused(what: &str, (failed, answer): (bool, String), because: Option<&str>) {
        assert!(failed, "{what} was served: {answer}");
        if let Some(because) = because {
            assert!(answer.contains(because), "{what}: {answer}");
        }
    }

    /// Nothing outside the root was created or changed: `outside/` holds the secret, as it was, and nothing else;
    /// the temporary folder holds only `root/` and `outside/`.
    fn assert_outside_untouched(&self) {
        assert_eq!(names(&self.outside()), ["secret.txt"]);
        assert_eq!(
            std::fs::read_to_string(self.outside().join("secret.txt")).unwrap(),
            SECRET
        );
        assert_eq!(names(self.dir.path()), ["outside", "root"]);
    }
}

fn answer(result: &CallToolResult) -> String {
    let mut out: Vec<String> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if let Some(structured) = &result.structured_content {
        out.push(structured.to_string());
    }
    out.join("\n")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const OUTSIDE: Option<&str> = Some("resolves outside the store");

#[tokio::test]
async fn links_that_stay_inside_are_followed() {
    let world = World::start().await;
    world.assert_read("link_in", INSIDE).await;
    world.assert_read("chain_in", DEEP).await;
    world.assert_read("sub/../link_in", INSIDE).await;
    // A listing names links without following them.
    let (failed, listing) = world.list("").await;
    assert!(!failed, "{listing}");
    let listing: Value = serde_json::from_str(listing.lines().last().unwrap()).unwrap();
    let link = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dir_out")
        .unwrap();
    assert_eq!(link["kind"], "link");
    assert_eq!(link["size"], 0);
    world.assert_outside_untouched();
}

#[tokio::test]
async fn links_that_lead_outside_are_refused_for_reading_and_listing() {
    let world = World::start().await;
    for path in [
        "link_out",
        "abs_out",
        "dir_out/secret.txt",
        "chain_out",
        "chain_out_2",
        "sub/hop",
    ] {
        World::assert_refused(&format!("read {path}"), world.read(path).await, OUTSIDE);
        World::assert_refused(&format!("list {path}"), world.list(path).await, OUTSIDE);
    }
    for path in ["dir_out", "dir_out/", "dir_out/."] {
        World::assert_refused(&format!("list {path}"), world.list(path).await, OUTSIDE);
        World::assert_refused(&format!("read {path}"), world.read(path).await, OUTSIDE);
    }
    world.assert_outside_untouched();
}

#[tokio::test]
async fn writes_never_go_through_links_that_lead_outside() {
    let world = World::start().await;
    // The final component a link: refused, whatever it points to.
    for path in ["link_out", "abs_out", "chain_out", "sub/hop", "link_in"] {
        World::assert_refused(
            &format!("write {path}"),
            world.write(path, "overwritten").await,
            Some("symbolic link"),
        );
    }
    assert_eq!(
        std::fs::read_to_string(world.root().join("inside.txt")).unwrap(),
        INSIDE
    );
    // A folder on the way that leads outside: refused, nothing created there.
    for path in [
        "dir_out/secret.txt",
        "dir_out/new.txt",
        "dir_out/new/deeper.txt",
    ] {
        World::assert_refused(
            &format!("write {path}"),
            world.write(path, "planted").await,
            OUTSIDE,
        );
    }
    world.assert_outside_untouched();
}

#[tokio::test]
async fn dangling_links_are_refused_and_create_nothing_outside() {
    let world = World::start().await;
    World::assert_refused("read dangling", world.read("dangling").await, None);
    World::assert_refused("list dangling_dir", world.list("dangling_dir").await, None);
    World::assert_refused(
        "write dangling",
        world.write("dangling", "planted").await,
        Some("symbolic link"),
    );
    World::assert_refused(
        "write dangling_dir/new.txt",
        world.write("dangling_dir/new.txt", "planted").await,
        None,
    );
    World::assert_refused(
        "write dangling_dir/a/b.txt",
        world.write("dangling_dir/a/b.txt", "planted").await,
        None,
    );
    assert!(!world.outside().join("missing.txt").exists());
    assert!(!world.outside().join("missing_dir").exists());
    world.assert_outside_untouched();
}

#[tokio::test]
async fn dot_dot_and_absolute_paths() {
    let world = World::start().await;
    // `..` that stays inside is resolved on the real filesystem.
    world.assert_read("sub/../inside.txt", INSIDE).await;
    world.assert_read("./sub/./deep.txt", DEEP).await;
    // Lexically inside, but `dir_out/..` really is the folder above the root.
    World::assert_refused(
        "read dir_out/../outside/secret.txt",
        world.read("dir_out/../outside/secret.txt").await,
        OUTSIDE,
    );
    World::assert_refused("list dir_out/..", world.list("dir_out/..").await, OUTSIDE);
    // Climbing above the root, whether or not the target exists, gives the same answer.
    for path in [
        "../outside/secret.txt",
        "../outside/none.txt",
        "sub/../../x",
    ] {
        World::assert_refused(&format!("read {path}"), world.read(path).await, OUTSIDE);
        World::assert_refused(&format!("list {path}"), world.list(path).await, OUTSIDE);
        World::assert_refused(
            &format!("write {path}"),
            world.write(path, "planted").await,
            OUTSIDE,
        );
    }
    // Absolute paths are refused, even one naming a file inside the root.
    let inside = world.root().join("inside.txt");
    let secret = world.outside().join("secret.txt");
    for path in [inside.to_str().unwrap(), secret.to_str().unwrap(), "/"] {
        World::assert_refused(
            &format!("read {path}"),
            world.read(path).await,
            Some("absolute"),
        );
        World::assert_refused(
            &format!("list {path}"),
            world.list(path).await,
            Some("absolute"),
        );
    }
    let planted = world.outside().join("planted.txt");
    World::assert_refused(
        "write absolute",
        world.write(planted.to_str().unwrap(), "planted").await,
        Some("absolute"),
    );
    World::assert_refused(
        "write dir_out/../outside/planted.txt",
        world
            .write("dir_out/../outside/planted.txt", "planted")
            .await,
        OUTSIDE,
    );
    world.assert_outside_untouched();
}

#[tokio::test]
async fn writes_inside_the_root_still_work() {
    let world = World::start().await;
    // Folders are created as needed; `..` inside is resolved; an existing file is replaced.
    for (path, content) in [
        ("notes/plan.txt", "plan"),
        ("notes/deeper/more.txt", "more"),
        ("sub/../top.txt", "top"),
        ("inside.txt", "replaced"),
        ("sub/deep.txt", "d"),
    ] {
        let (failed, answer) = world.write(path, content).await;
        assert!(!failed, "write {path}: {answer}");
        world.assert_read(path, content).await;
    }
    assert_eq!(
        std::fs::read_to_string(world.root().join("top.txt")).unwrap(),
        "top"
    );
    // Through a link to a folder inside.
    symlink("sub", world.root().join("sub_link")).unwrap();
    let (failed, answer) = world.write("sub_link/via_link.txt", "via").await;
    assert!(!failed, "{answer}");
    assert_eq!(
        std::fs::read_to_string(world.root().join("sub/via_link.txt")).unwrap(),
        "via"
    );
    world.assert_outside_untouched();
}
