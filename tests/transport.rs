//! The streamable-HTTP session layer over raw HTTP, stdio mode, start-up validation and upstream connection reuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

fn testbed_gateway(extra: &str) -> Gateway {
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\n{extra}upstreams:\n{}",
        stdio_upstream("testbed", "testbed", &[])
    ))
}

/// POSTs `body` with exactly these extra headers (beyond the client's token).
async fn post_with(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut request = client.post(url).body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// An HTTP client that sends the tester's token on every request.
fn authed_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", tester_token()).parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = client
        .post(url)
        .bearer_auth(tester_token())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(s) = session {
        request = request.header("mcp-session-id", s);
    }
    request.send().await.unwrap()
}

async fn initialize(client: &reqwest::Client, url: &str) -> String {
    let response = post(client, url, None, INITIALIZE).await;
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18");
    session
}

async fn error_code(response: reqwest::Response) -> (u16, i64) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_i64().unwrap_or(0))
}

#[tokio::test]
async fn malformed_json_rpc_gets_the_right_codes() {
    let gateway = testbed_gateway("limits:\n  max_request_bytes: 4096\n");
    let http = authed_client();
    let url = &gateway.url;
    let session = initialize(&http, url).await;
    let s = Some(session.as_str());
    assert_eq!(
        error_code(post(&http, url, s, "{not json").await).await,
        (400, -32700)
    );
    assert_eq!(
        error_code(post(&http, url, s, "[]").await).await,
        (400, -32600)
    );
    assert_eq!(
        error_code(post(&http, url, s, r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).await).await,
        (400, -32600)
    );
    let unknown = post(
        &http,
        url,
        s,
        r#"{"jsonrpc":"2.0","id":7,"method":"nope/nothing"}"#,
    )
    .await;
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32601);
    assert_eq!(body["id"], 7);
    let bad_params = post(
        &http,
        url,
        s,
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"arguments":{}}}"#,
    )
    .await;
    let body: Value = bad_params.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32602, "{body}");
    // Oversized bodies are refused before parsing, whether or not they declare their length.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(10_000)
    );
    assert_eq!(error_code(post(&http, url, s, &big).await).await.0, 413);
    let chunks = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.clone().into_bytes())]);
    let streamed = http
        .post(url)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    // Still serving.
    let ping = post(
        &http,
        url,
        s,
        r#"{"jsonrpc":"2.0","id":10,"method":"ping"}"#,
    )
    .await;
    assert_eq!(ping.status(), 200);
}

#[tokio::test]
async fn sessions_headers_and_dns_rebinding_guard() {
    let gateway = testbed_gateway("");
    let http = authed_client();
    let url = &gateway.url;
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    assert_eq!(
        post(&http, url, None, ping).await.status(),
        400,
        "missing session"
    );
    assert_eq!(
        post(&http, url, Some("nope"), ping).await.status(),
        404,
        "unknown session"
    );
    let session = initialize(&http, url).await;
    assert_eq!(post(&http, url, Some(&session), ping).await.status(), 200);
    // Unsupported protocol version header.
    let bad_version = post_with(
        &http,
        url,
        &[
            ("content-type", "application/json"),
            ("mcp-session-id", session.as_str()),
            ("mcp-protocol-version", "1999-01-01"),
        ],
        ping,
    )
    .await;
    assert_eq!(bad_version.status(), 400);
    // Wrong content type.
    let text = post_with(&http, url, &[("mcp-session-id", session.as_str())], ping).await;
    assert_eq!(text.status(), 415);
    // DNS rebinding: a foreign Host or Origin is refused.
    let foreign_host = post_with(
        &http,
        url,
        &[
            ("host", "evil.example"),
            ("content-type", "application/json"),
        ],
        ping,
    )
    .await;
    assert_eq!(foreign_host.status(), 403);
    let foreign_origin = post_with(
        &http,
        url,
        &[
            ("origin", "https://evil.example"),
            ("content-type", "application/json"),
            ("mcp-session-id", session.as_str()),
        ],
        ping,
    )
    .await;
    assert_eq!(foreign_origin.status(), 403);
    let local_origin = post_with(
        &http,
        url,
        &[
            ("origin", "http://localhost:3000"),
            ("content-type", "application/json"),
            ("mcp-session-id", session.as_str()),
        ],
        ping,
    )
    .await;
    assert_eq!(local_origin.status(), 200);
    // Notifications are accepted with 202.
    let initialized = post(
        &http,
        url,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(initialized.status(), 202);
    // DELETE ends the session.
    let deleted = http
        .delete(url)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(post(&http, url, Some(&session), ping).await.status(), 404);
    // Health and readiness.
    let base = gateway.base();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    // Details (upstream names, states, errors) only on the admin listener.
    assert!(ready.get("upstreams").is_none(), "{ready}");
    let details = gateway.admin_json("/readyz").await;
    assert_eq!(details["upstreams"][0]["state"], "ready");
}

#[tokio::test]
async fn get_stream_carries_tool_list_changes() {
    let gateway = testbed_gateway("");
    let http = authed_client();
    let url = &gateway.url;
    let session = initialize(&http, url).await;
    let mut stream = http
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let second = http
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409, "one GET stream per session");
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"testbed__set_duplicate","arguments":{"on":true}}}"#;
    assert_eq!(post(&http, url, Some(&session), call).await.status(), 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("list_changed in time")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
}

#[tokio::test]
async fn stdio_mode_serves_the_same_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let config = stdio_mode_config(
        dir.path(),
        &format!(
            "{}{}",
            stdio_upstream("testbed", "testbed", &[]),
            stdio_upstream("hr", "hr_directory", &[]),
        ),
        "",
    );
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    command
        .args(["serve", "--dev", "--stdio", "--config"])
        .arg(&config)
        .env("TOOLGATE_TOKEN", tester_token());
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let tools = eventually(20, || async {
        let tools = client.peer().list_all_tools().await.ok()?;
        // Both upstreams connect independently: wait until each has listed its tools.
        let both = tools.iter().any(|t| t.name == "hr__lookup_employee")
            && tools.iter().any(|t| t.name == "testbed__echo");
        both.then_some(tools)
    })
    .await;
    assert!(tools.iter().any(|t| t.name == "hr__lookup_employee"));
    let mut params = rmcp::model::CallToolRequestParams::new("testbed__echo");
    params.arguments = json!({"text": "over stdio"}).as_object().cloned();
    let result = client.peer().call_tool(params).await.unwrap();
    assert_eq!(text(&result), "over stdio");
    let err = client
        .peer()
        .call_tool(rmcp::model::CallToolRequestParams::new("nope"))
        .await
        .unwrap_err();
    match err {
        rmcp::ServiceError::McpError(e) => assert_eq!(e.message, "Unknown tool: nope"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bad_configs_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "upstreams:\n  - name: a__b\n    stdio: {command: x}\n",
            "upstream name `a__b` is invalid",
        ),
        (
            "upstreams:\n  - name: a\n    stdio: {command: x}\n  - name: a\n    stdio: {command: y}\n",
            "used twice",
        ),
        ("listen: 0.0.0.0:0\n", "not loopback"),
        ("namespace_separator: \"-\"\n", "namespace_separator"),
        ("upstreams: [\n", "not valid"),
        ("listen: 127.0.0.1:0\n", "no `auth` section"),
    ];
    for (yaml, expected) in cases {
        let config = dir.path().join("bad.yaml");
        std::fs::write(&config, yaml).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(["serve", "--dev", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{yaml} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{yaml}: {stderr}");
    }
}

#[tokio::test]
async fn badly_named_upstream_tools_are_refused_and_reported() {
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - name: testbed\n    stdio:\n      command: \"{}\"\n      env: {{TESTBED_BAD_NAME: \"1\", TESTBED_DUPLICATE: \"1\"}}\n",
        example("testbed")
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    let names = client.tool_names().await;
    assert!(names.contains(&"testbed__big".to_string()));
    assert!(names.iter().all(|n| !n.contains(' ')), "{names:?}");
    let ready: Value = gateway.admin_json("/readyz").await;
    let refused = ready["upstreams"][0]["refused_tools"]
        .as_array()
        .unwrap()
        .clone();
    let refused: Vec<&str> = refused
        .iter()
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    // A name that breaks the rules, and a name the upstream lists twice from the start (both copies).
    assert!(refused.contains(&"bad name!"), "{ready}");
    assert_eq!(
        refused.iter().filter(|t| **t == "echo").count(),
        2,
        "{ready}"
    );
    assert!(!names.contains(&"testbed__echo".to_string()));
    assert!(gateway.logs().contains("tool refused"));
}

/// A TCP proxy that counts the connections it accepts.
async fn counting_proxy(target: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = inbound.set_nodelay(true);
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (address, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_connections_are_reused() {
    let web = HttpUpstream::start("testbed", &[]);
    let target: std::net::SocketAddr = web
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    let (proxy, connections) = counting_proxy(target).await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        http_upstream("web", &format!("http://{proxy}/mcp"))
    );
    let gateway = Gateway::start(&yaml);
    let client = gateway.client().await;
    let before = connections.load(Ordering::SeqCst);
    for i in 0..1000 {
        let result = client
            .call("web__echo", json!({"text": format!("call {i}")}))
            .await
            .unwrap();
        assert_eq!(text(&result), format!("call {i}"));
    }
    let opened = connections.load(Ordering::SeqCst) - before;
    assert!(
        opened <= 4,
        "1000 calls opened {opened} upstream connections"
    );
}

#[test]
fn stdio_mode_checks_the_token_on_every_request() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = stdio_mode_config(dir.path(), &stdio_upstream("testbed", "testbed", &[]), "");
    let init = INITIALIZE;
    for (token, reason) in [
        (None, "token_missing"),
        (Some("garbage".to_string()), "token_malformed"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
        command
            .args(["serve", "--dev", "--stdio", "--config"])
            .arg(&config)
            .env_remove("TOOLGATE_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(t) = &token {
            command.env("TOOLGATE_TOKEN", t);
        }
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A line that is not UTF-8 is a parse error, not the end of the session.
        stdin.write_all(b"\xff\xfe\n").unwrap();
        writeln!(stdin, "{init}").unwrap();
        stdin.flush().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(first["error"]["code"], -32700);
        let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(second["id"], 1);
        assert_eq!(second["error"]["code"], -32001);
        assert_eq!(second["error"]["data"]["reason"], reason);
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test]
async fn sigterm_stops_the_gateway_even_with_an_open_get_stream() {
    let mut gateway = testbed_gateway("");
    let http = authed_client();
    let session = initialize(&http, &gateway.url).await;
    let stream = http
        .get(&gateway.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let pid = gateway.proc.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(exit) = gateway.proc.child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(stream);
}

#[tokio::test]
async fn an_upstream_that_never_initializes_leaves_no_processes_behind() {
    let marker = format!("{}", 900_000 + std::process::id() % 99_999);
    let yaml = format!(
        "listen: 127.0.0.1:0\ntimeouts:\n  connect: 300ms\n  reconnect_initial: 100ms\n  reconnect_max: 200ms\nupstreams:\n  - name: mute\n    required: false\n    stdio: {{command: sleep, args: [\"{marker}\"]}}\n"
    );
    let gateway = Gateway::start(&yaml);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let count = |marker: &str| {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &format!("^sleep {marker}$")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    // About ten attempts were made; at most the current one may still be alive.
    assert!(
        gateway.logs().matches("initialize timed out").count() >= 3,
        "{}",
        gateway.logs()
    );
    assert!(
        count(&marker) <= 1,
        "{} `sleep {marker}` processes left",
        count(&marker)
    );
    drop(gateway);
}

#[tokio::test]
async fn probes_tell_outsiders_nothing_and_metrics_need_a_credential() {
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}",
        stdio_upstream("secretive-upstream", "testbed", &[])
    ));
    let http = reqwest::Client::new();
    let base = gateway.base();
    // What anyone reaching the MCP listener learns: alive, ready; no upstream, policy, error or count.
    for path in ["/healthz", "/readyz", "/metrics", "/admin/metrics"] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        match path {
            "/healthz" => assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#)),
            "/readyz" => assert_eq!(
                (status, body.as_str()),
                (200, r#"{"draining":false,"ready":true}"#)
            ),
            _ => assert_eq!(status, 404, "{path}: {body}"),
        }
        assert!(!body.contains("secretive"), "{path}: {body}");
    }
    // On the admin listener: metrics with the admin credential or the scrape credential, nothing without.
    let scrape = std::fs::read_to_string(gateway.dir.path().join("scrape.token"))
        .unwrap()
        .trim()
        .to_string();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(gateway.dir.path().join("scrape.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let metrics = format!("{}/metrics", gateway.admin_url);
    for (credential, want) in [
        (Some(gateway.admin_credential()), 200),
        (Some(scrape.clone()), 200),
        (None, 401),
        (Some("not-the-scrape-token".to_string()), 401),
    ] {
        let mut request = http.get(&metrics);
        if let Some(credential) = &credential {
            request = request.bearer_auth(credential);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), want, "{credential:?}");
        if want == 200 {
            let text = response.text().await.unwrap();
            assert!(text.contains("toolgate_upstream_up"), "{text}");
        }
    }
    // The scrape credential reads metrics and nothing else.
    for path in ["/readyz", "/upstreams", "/records", "/policy", "/agents"] {
        let response = http
            .get(format!("{}{path}", gateway.admin_url))
            .bearer_auth(&scrape)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["reason"], "scrape_credential", "{path}");
    }
    let response = http
        .post(format!("{}/policy/reload", gateway.admin_url))
        .bearer_auth(&scrape)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The admin sees the details.
    let details = gateway.admin_json("/readyz").await;
    assert_eq!(details["upstreams"][0]["name"], "secretive-upstream");
    assert!(details["policy"]["version"].is_string());
}

/// Sends `first` and then `second` on one connection, pipelined; returns what came back (until the server closed
/// the connection or went quiet).
fn pipelined(address: &str, first: &[u8], second: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    stream.write_all(first).unwrap();
    let _ = stream.write_all(second);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if text.matches("HTTP/1.1 ").count() >= 2 && text.ends_with("\r\n\r\n{\"status\":\"ok\"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_refusal_before_the_body_never_breaks_the_next_request_on_the_connection() {
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nlimits:\n  max_request_bytes: 4096\nupstreams:\n{}",
        stdio_upstream("testbed", "testbed", &[])
    ));
    let address = gateway.base().trim_start_matches("http://").to_string();
    let token = tester_token();
    let next = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    // Refused before the body is read: no token, a bad token, a body over the limit; bodies of many sizes.
    let mut cases = Vec::new();
    for size in [0usize, 1, 100, 4000, 5000, 70_000, 300_000] {
        cases.push((size, None, "401"));
        cases.push((size, Some("Bearer not-a-token".to_string()), "401"));
        if size > 4096 {
            cases.push((size, Some(format!("Bearer {token}")), "413"));
        }
    }
    for (size, authorization, expect) in cases {
        let body = "x".repeat(size);
        let mut first = format!(
            "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {size}\r\n"
        );
        if let Some(authorization) = &authorization {
            first.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        first.push_str("\r\n");
        first.push_str(&body);
        let answer = pipelined(&address, first.as_bytes(), next.as_bytes());
        let case = format!("{size} bytes, {expect}");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expect}")),
            "{case}: {}",
            &answer[..answer.len().min(300)]
        );
        // Either the next request was answered on the same connection, or the refusal said the connection
        // closes: never a reply to the leftover body bytes.
        let answered_next =
            answer.matches("HTTP/1.1 200").count() == 1 && answer.contains("{\"status\":\"ok\"}");
        let closed = answer.to_ascii_lowercase().contains("connection: close");
        assert!(answered_next || closed, "{case}: {answer}");
        assert!(
            !answer.contains("HTTP/1.1 400"),
            "{case}: the body was read as a request: {answer}"
        );
    }
}
