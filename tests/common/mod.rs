//! Test harness: starts the real `toolgate` binary and real example upstreams on ephemeral ports, and connects
//! real rmcp clients to it.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    deprecated
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientInfo, Implementation,
    LoggingMessageNotificationParam, ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::ExponentialBackoff;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Map, Value};

/// Folder of the built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_toolgate"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a built example server.
pub fn example(name: &str) -> String {
    let path = bin_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "example `{name}` is not built: run `cargo build --examples`"
    );
    path.to_string_lossy().into_owned()
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub stderr_log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_and_read_url(command: Command, marker: &str, dir: &Path) -> (Proc, String) {
    let (proc, mut lines) = spawn_and_read_lines(command, &[marker], dir);
    (proc, lines.remove(0))
}

/// Spawns a process and waits for one stdout line starting with each marker (in any order); returns what follows
/// each marker, in marker order.
fn spawn_and_read_lines(mut command: Command, markers: &[&str], dir: &Path) -> (Proc, Vec<String>) {
    let stderr_log = dir.join(format!("stderr-{}.log", uuid::Uuid::new_v4().simple()));
    let stderr = std::fs::File::create(&stderr_log).unwrap();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
    });
    let proc = Proc { child, stderr_log };
    let mut found: Vec<Option<String>> = vec![None; markers.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while found.iter().any(Option::is_none) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(line) => {
                for (i, marker) in markers.iter().enumerate() {
                    if let Some(rest) = line.strip_prefix(marker) {
                        found[i] = Some(rest.trim().to_string());
                    }
                }
            }
            Err(_) => panic!(
                "process did not print {markers:?}; stderr:\n{}",
                std::fs::read_to_string(&proc.stderr_log).unwrap_or_default()
            ),
        }
    }
    (
        proc,
        found.into_iter().map(Option::unwrap_or_default).collect(),
    )
}

/// An example server over streamable HTTP on an ephemeral port.
pub struct HttpUpstream {
    pub proc: Proc,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl HttpUpstream {
    pub fn start(name: &str, args: &[&str]) -> Self {
        Self::start_on(name, "127.0.0.1:0", args)
    }

    /// Starts on a given address, for restarting an upstream where it was.
    pub fn start_on(name: &str, address: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(example(name));
        command.args(["--http", address]).args(args);
        let (proc, url) = spawn_and_read_url(command, "listening on ", dir.path());
        Self {
            proc,
            url,
            _dir: dir,
        }
    }
}

impl HttpUpstream {
    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string()
    }
}

/// A running gateway.
pub struct Gateway {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    /// `http://127.0.0.1:PORT/admin`
    pub admin_url: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts `toolgate serve` with `yaml` as its config; waits until `/readyz` says ready.
    pub fn start(yaml: &str) -> Self {
        let gateway = Self::start_unready(yaml);
        gateway.wait_ready();
        gateway
    }

    pub fn start_unready(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("toolgate.yaml");
        let yaml = if yaml.contains("\nauth:") || yaml.starts_with("auth:") {
            yaml.to_string()
        } else {
            std::fs::write(dir.path().join("agents.yaml"), TEST_AGENTS).unwrap();
            format!("{yaml}{}", test_auth("agents.yaml"))
        };
        let yaml = if yaml.contains("\npolicy:") {
            yaml
        } else {
            format!("{yaml}{}", open_policy())
        };
        let yaml = if yaml.contains("\nadmin:") {
            yaml
        } else {
            format!("{yaml}admin:\n  listen: 127.0.0.1:0\n")
        };
        std::fs::write(&config, yaml).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_toolgate"));
        command
            .args(["serve", "--dev", "--config"])
            .arg(&config)
            .env("TOOLGATE_LOG", "info,toolgate=debug");
        let (proc, mut urls) = spawn_and_read_lines(
            command,
            &["toolgate listening on ", "toolgate admin listening on "],
            dir.path(),
        );
        let admin_url = urls.pop().unwrap_or_default();
        let url = urls.pop().unwrap_or_default();
        Self {
            proc,
            url,
            admin_url,
            dir,
        }
    }

    /// The bootstrap admin credential the gateway created.
    pub fn admin_credential(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Restarts the gateway with the same config, folder and store.
    pub fn restart(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        let mut command = Command::new(env!("CARGO_BIN_EXE_toolgate"));
        command
            .args(["serve", "--dev", "--config"])
            .arg(self.dir.path().join("toolgate.yaml"))
            .env("TOOLGATE_LOG", "info,toolgate=debug");
        let (proc, mut urls) = spawn_and_read_lines(
            command,
            &["toolgate listening on ", "toolgate admin listening on "],
            self.dir.path(),
        );
        self.admin_url = urls.pop().unwrap_or_default();
        self.url = urls.pop().unwrap_or_default();
        self.proc = proc;
        self.wait_ready();
    }

    pub fn base(&self) -> String {
        self.url.trim_end_matches("/mcp").to_string()
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/readyz", self.base());
        loop {
            if let Ok(r) = reqwest::blocking_get(&url)
                && r == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`TERM`, `HUP`, …) to the gateway process.
    pub fn signal(&self, signal: &str) {
        let pid = self.proc.child.id().to_string();
        let sent = Command::new("kill")
            .args([format!("-{signal}").as_str(), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.proc.stderr_log).unwrap_or_default()
    }

    /// GET on the admin API (`path` after `/admin`) with the bootstrap credential, as JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        ::reqwest::Client::new()
            .get(format!("{}{path}", self.admin_url))
            .bearer_auth(self.admin_credential())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url, &tester_token()).await
    }
}

mod reqwest {
    /// Status of a GET, without an async runtime.
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(status)
    }
}

/// Collects what the gateway sends a client on its own: progress, log messages, list changes.
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub logs: Arc<Mutex<Vec<Value>>>,
    pub list_changed: Arc<AtomicUsize>,
    /// URIs of `notifications/resources/updated`, in arrival order.
    pub resource_updates: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientInfo {
        ClientInfo::new(
            ClientCapabilities::default(),
            Implementation::new("toolgate-tests", "0"),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params.data);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.resource_updates.lock().unwrap().push(params.uri);
    }
}

/// An rmcp client session with the gateway.
pub struct Client {
    pub service: RunningService<RoleClient, Recorder>,
    pub recorder: Recorder,
}

impl Client {
    pub async fn connect(url: &str, token: &str) -> Self {
        Self::try_connect(url, token)
            .await
            .expect("client connects")
    }

    /// A client, or why it could not connect.
    pub async fn try_connect(url: &str, token: &str) -> Result<Self, String> {
        let recorder = Recorder::default();
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
            .auth_header(token.to_string());
        // toolgate's event-stream answers are resumable; rmcp's client retries a broken one forever by default,
        // which against a gateway that was killed (and came back elsewhere) is a hang: give up after a few tries.
        let mut backoff = ExponentialBackoff::default();
        backoff.max_times = Some(3);
        backoff.base_duration = Duration::from_millis(200);
        backoff.max_delay = Some(Duration::from_secs(1));
        config.retry_config = Arc::new(backoff);
        let transport = StreamableHttpClientTransport::from_config(config);
        let service = recorder
            .clone()
            .serve(transport)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self { service, recorder })
    }

    pub async fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .service
            .peer()
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    pub async fn call(
        &self,
        name: &str,
        args: Value,
    ) -> Result<CallToolResult, rmcp::ServiceError> {
        let mut params = CallToolRequestParams::new(name.to_string());
        params.arguments = match args {
            Value::Object(map) => Some(map),
            Value::Null => None,
            other => Some(Map::from_iter([("value".to_string(), other)])),
        };
        self.service.peer().call_tool(params).await
    }
}

impl Client {
    /// Calls the quickstart's `sql__query` with one statement.
    pub async fn sql(&self, statement: &str) -> Result<CallToolResult, rmcp::ServiceError> {
        self.call("sql__query", serde_json::json!({ "sql": statement }))
            .await
    }

    /// Waits until the gateway has sent this client `notifications/tools/list_changed`.
    pub async fn wait_for_list_changed(&self) {
        eventually(10, || async {
            (self.recorder.list_changed.load(Ordering::SeqCst) > 0).then_some(())
        })
        .await
    }

    /// Waits until the testbed upstream behind `prefix` has counted one cancelled call; returns its counters.
    pub async fn wait_for_cancellation(&self, prefix: &str) -> Value {
        eventually(10, || async {
            let r = self
                .call(&format!("{prefix}__counters"), serde_json::json!({}))
                .await
                .ok()?;
            let c = r.structured_content?;
            (c["cancelled"] == 1).then_some(c)
        })
        .await
    }
}

/// The text of a result's first text block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// `toolgate admin ARGS` against this gateway's admin API, with its bootstrap credential.
pub fn admin_cli(gateway: &Gateway, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("admin")
        .args(["--admin-url", gateway.admin_url.trim_end_matches("/admin")])
        .arg("--credential-file")
        .arg(gateway.dir.path().join("admin.token"))
        .args(args)
        .output()
        .unwrap()
}

/// The quickstart's agent inventory file.
pub fn quickstart_agents() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tool-manifests/agents.yaml")
        .to_string_lossy()
        .into_owned()
}

/// A raw `initialize` with `token`.
pub async fn initialize(url: &str, token: &str) -> ::reqwest::Response {
    ::reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap()
}

/// The HTTP status of a raw `initialize` with `token`.
pub async fn initialize_status(url: &str, token: &str) -> u16 {
    initialize(url, token).await.status().as_u16()
}

/// A raw `initialize` request body.
pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

/// Opens a session over raw HTTP with `token`; returns its session id.
pub async fn raw_session(url: &str, token: &str) -> String {
    let response = initialize(url, token).await;
    assert_eq!(response.status(), 200);
    response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// Agents for tests that are not about identity: one agent-only caller with every tool in scope.
pub const TEST_AGENTS: &str = "agents:
  tester:
    owner: qa
    description: Test client acting alone with every tool in scope.
    scope: ['*']
    max_classification: restricted
    acts_alone:
      - issuer: toolgate-dev
        subject: tester
";

/// A `policy` section allowing every tool within the caller's scope, for tests that are not about policy.
pub fn open_policy() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        "policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
        root.join("tests/fixtures/policy-open").display(),
        root.join("tests/fixtures/manifests-empty").display()
    )
}

/// The quickstart's `policy` section: the real bundle and manifests.
pub fn quickstart_policy() -> String {
    policy_section("policies")
}

/// A `policy` section with the bundle in `dir` (relative to the repository) and the quickstart's manifests.
pub fn policy_section(dir: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        "policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
        root.join(dir).display(),
        root.join("tool-manifests").display()
    )
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// JWKS of `https://idp.example`, the non-development test issuer.
pub fn other_jwks() -> String {
    fixture("other.jwks.json").to_string_lossy().into_owned()
}

/// Signs claims with the non-development test key of `https://idp.example`.
pub fn sign_other(claims: &Map<String, Value>) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(fixture("other-signing-key.pem")).unwrap(),
    )
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("other-1".into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// [`test_auth`] with a second, non-development issuer, `https://idp.example` (its tokens signed with
/// [`sign_other`]).
pub fn test_auth_with_other_issuer(agents_file: &str) -> String {
    test_auth(agents_file).replace(
        "  agents_file:",
        &format!(
            "    - issuer: https://idp.example\n      audience: toolgate\n      jwks_file: \"{}\"\n  agents_file:",
            other_jwks()
        ),
    )
}

/// An admin-audience token of `subject` at `https://idp.example` (signed with [`sign_other`]), valid an hour.
pub fn other_admin_token(subject: &str) -> String {
    let mut claims = toolgate::identity::token::claims(
        &toolgate::identity::token::TokenRequest {
            subject: Some(subject.into()),
            roles: Vec::new(),
            agent: None,
            via: Vec::new(),
            scope: None,
            audience: "toolgate-admin".into(),
            ttl: std::time::Duration::from_secs(3600),
        },
        jsonwebtoken::get_current_timestamp() as i64,
    )
    .unwrap();
    claims.insert("iss".into(), serde_json::json!("https://idp.example"));
    claims.remove("act");
    sign_other(&claims)
}

/// The claims of Alice (role `hr`) acting through the `assistant` agent, from the development issuer, for tokens
/// shaped by hand.
pub fn alice_claims() -> Map<String, Value> {
    let request = toolgate::identity::token::TokenRequest {
        subject: Some("alice".into()),
        roles: vec!["hr".into()],
        agent: Some("assistant".into()),
        via: Vec::new(),
        scope: None,
        audience: "toolgate".into(),
        ttl: Duration::from_secs(600),
    };
    toolgate::identity::token::claims(&request, jsonwebtoken::get_current_timestamp() as i64)
        .unwrap()
}

/// A development token for a human with roles, acting through `agent` (and later actors `via`).
pub fn user_token(subject: &str, roles: &[&str], agent: &str, via: &[&str]) -> String {
    toolgate::identity::token::mint_dev(&toolgate::identity::token::TokenRequest {
        subject: Some(subject.to_string()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        agent: Some(agent.to_string()),
        via: via.iter().map(|v| v.to_string()).collect(),
        scope: None,
        audience: "toolgate".into(),
        ttl: Duration::from_secs(3600),
    })
    .unwrap()
}

/// The JWKS of the development issuer.
pub fn dev_jwks() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/quickstart/dev-keys/dev.jwks.json")
        .to_string_lossy()
        .into_owned()
}

/// An `auth` section trusting the development issuer, with the given inventory file.
pub fn test_auth(agents_file: &str) -> String {
    format!(
        "auth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n      roles_claim: roles\n      groups_claim: groups\n  agents_file: \"{agents_file}\"\n",
        dev_jwks()
    )
}

/// A development token.
pub fn dev_token(
    subject: Option<&str>,
    agent: Option<&str>,
    via: &[&str],
    scope: Option<&str>,
) -> String {
    toolgate::identity::token::mint_dev(&toolgate::identity::token::TokenRequest {
        subject: subject.map(str::to_string),
        roles: Vec::new(),
        agent: agent.map(str::to_string),
        via: via.iter().map(|v| v.to_string()).collect(),
        scope: scope.map(str::to_string),
        audience: "toolgate".into(),
        ttl: Duration::from_secs(3600),
    })
    .unwrap()
}

/// Token of the `tester` agent acting alone.
pub fn tester_token() -> String {
    dev_token(None, Some("tester"), &[], None)
}

/// YAML for a stdio upstream entry.
pub fn stdio_upstream(name: &str, example_name: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "  - name: {name}\n    stdio:\n      command: \"{}\"\n      args: [{}]\n",
        example(example_name),
        args.join(", ")
    )
}

/// YAML entries for the quickstart's three upstreams; the file store's sandbox holds one file.
pub fn quickstart_upstreams(file: &str, contents: &str) -> String {
    let sandbox = tempfile::tempdir().unwrap().keep();
    std::fs::write(sandbox.join(file), contents).unwrap();
    quickstart_upstreams_in(&sandbox)
}

/// YAML entries for the quickstart's three upstreams, the file store serving `sandbox`.
pub fn quickstart_upstreams_in(sandbox: &Path) -> String {
    format!(
        "{}{}{}",
        stdio_upstream("hr", "hr_directory", &[]),
        stdio_upstream("sql", "sql_query", &[]),
        stdio_upstream(
            "files",
            "file_store",
            &["--root", sandbox.to_str().unwrap()]
        ),
    )
}

/// Writes a config for `toolgate serve --stdio` into `dir` (the test agents, the open policy, an admin listener
/// on an ephemeral port) with `upstreams` and `extra` sections; returns its path.
pub fn stdio_mode_config(dir: &Path, upstreams: &str, extra: &str) -> PathBuf {
    let config = dir.join("toolgate.yaml");
    std::fs::write(dir.join("agents.yaml"), TEST_AGENTS).unwrap();
    std::fs::write(
        &config,
        format!(
            "upstreams:\n{upstreams}{}{}admin:\n  listen: 127.0.0.1:0\n{extra}",
            test_auth("agents.yaml"),
            open_policy(),
        ),
    )
    .unwrap();
    config
}

/// YAML for an HTTP upstream entry.
pub fn http_upstream(name: &str, url: &str) -> String {
    format!("  - name: {name}\n    http:\n      url: \"{url}\"\n")
}

/// An HTTP upstream spoken to in one protocol revision (`2025-11-25` or `2026-07-28`) whatever else it speaks.
pub fn http_upstream_pinned(name: &str, url: &str, protocol: &str) -> String {
    format!("  - name: {name}\n    http:\n      url: \"{url}\"\n      protocol: \"{protocol}\"\n")
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The quickstart's upstreams and agent inventory with the development issuer; `issuers` (YAML list entries at
/// the issuers' indentation) adds more.
pub fn quickstart_identity_gateway(issuers: &str) -> Gateway {
    quickstart_identity_gateway_with(issuers, "")
}

/// As [`quickstart_identity_gateway`], with `extra` config sections at the end.
pub fn quickstart_identity_gateway_with(issuers: &str, extra: &str) -> Gateway {
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests/agents.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}",
        quickstart_upstreams("notes.txt", "team notes"),
        test_auth(agents.to_str().unwrap()),
    );
    let yaml = yaml.replace("  agents_file:", &format!("{issuers}  agents_file:"));
    Gateway::start(&format!("{yaml}{extra}"))
}

/// The quickstart's (public) development signing key, for tokens shaped by hand.
pub fn dev_signing_key() -> jsonwebtoken::EncodingKey {
    jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/quickstart/dev-keys/dev-signing-key.pem"),
        )
        .unwrap(),
    )
    .unwrap()
}

/// Writes a minimal config (the test agents, the development issuer, an open policy, an ephemeral admin
/// listener) into `dir`; returns its path.
pub fn write_minimal_config(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("agents.yaml"), TEST_AGENTS).unwrap();
    let config = dir.join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{}{}admin:\n  listen: 127.0.0.1:0\n",
            test_auth("agents.yaml"),
            open_policy()
        ),
    )
    .unwrap();
    config
}

/// A token's `jti` claim (read, not verified).
pub fn jti(token: &str) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

/// Revokes a development token's `jti` in the running gateway, with the `toolgate revoke` command.
pub fn revoke(gateway: &Gateway, token: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("revoke")
        .args(["--admin-url", gateway.admin_url.trim_end_matches("/admin")])
        .args(["--jti", &jti(token), "--issuer", "toolgate-dev"])
        .env("TOOLGATE_ADMIN_TOKEN", gateway.admin_credential())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
