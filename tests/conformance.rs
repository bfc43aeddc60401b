//! The official MCP conformance suite (server mode, `scripts/conformance`: 0.1.16 `--suite all`, 0.2.0-alpha.12
//! `--requirements 2025-11-25` and `--requirements 2026-07-28`) against the reference upstream
//! (`examples/everything.rs`), directly and through toolgate with authentication on and naming mode `never`:
//! through toolgate, every scenario must end as it ends directly (the scenarios the suite does not score for a
//! revision included), and directly every scored scenario passes. Through toolgate, the 2026-07-28 run speaks that
//! revision on both sides: the reference upstream speaks both, and toolgate finds that out with `server/discover`.
//!
//! The suite cannot send request headers, so this test puts a small loopback proxy of its own in front of toolgate
//! that adds the bearer token to every request. It was chosen over a listener with a fixed identity inside toolgate:
//! that would be a way in without a credential, one configuration mistake away from production; the proxy lives in
//! the test only and toolgate is measured exactly as it runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use common::*;
use futures::TryStreamExt;

/// Forwards everything to `target` with `authorization` added; answers (event streams included) stream back.
async fn header_proxy(target: String, authorization: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = reqwest::Client::builder().build().unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((client, target, authorization));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/mcp")
}

async fn forward(
    State((client, target, authorization)): State<(reqwest::Client, String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let mut upstream = client.request(parts.method, &target).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream
        .header("authorization", &authorization)
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response = response.header(name, value);
        }
    }
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    response.body(Body::from_stream(stream)).unwrap()
}

/// The runs of `scripts/conformance` (all of them unless `CONFORMANCE_RUNS` names some).
fn runs() -> Vec<String> {
    match std::env::var("CONFORMANCE_RUNS") {
        Ok(runs) if !runs.trim().is_empty() => runs.split_whitespace().map(String::from).collect(),
        _ => ["0.1.16", "0.2.0-alpha.12", "0.2.0-alpha.12-2026-07-28"]
            .map(String::from)
            .to_vec(),
    }
}

/// Runs `scripts/conformance` against `url`; the result of every scenario (`pass`, `fail`, with ` (not scored)`
/// when the suite does not score it), per run.
fn conformance(url: &str, out: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/conformance");
    let run = std::process::Command::new(script)
        .arg(url)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "scripts/conformance failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let mut results = BTreeMap::new();
    for version in runs() {
        let tsv = std::fs::read_to_string(out.join(format!("{version}.tsv"))).unwrap();
        let scenarios: BTreeMap<String, String> = tsv
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(s, r)| match r.split_once('\t') {
                Some((r, _)) => (s.to_string(), format!("{r} (not scored)")),
                None => (s.to_string(), r.to_string()),
            })
            .collect();
        assert!(!scenarios.is_empty(), "no scenario ran for {version}");
        results.insert(version.to_string(), scenarios);
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_ends_through_toolgate_as_it_ends_directly() {
    let upstream = HttpUpstream::start("everything", &[]);
    let gateway = Gateway::start(&format!(
        "listen: 127.0.0.1:0\nnaming: never\nupstreams:\n{}",
        http_upstream("everything", &upstream.url)
    ));
    let proxy = header_proxy(gateway.url.clone(), format!("Bearer {}", tester_token())).await;
    let out = tempfile::tempdir().unwrap();
    let (direct_out, through_out) = (out.path().join("direct"), out.path().join("toolgate"));
    let direct = {
        let url = upstream.url.clone();
        tokio::task::spawn_blocking(move || conformance(&url, &direct_out))
            .await
            .unwrap()
    };
    let through = tokio::task::spawn_blocking(move || conformance(&proxy, &through_out))
        .await
        .unwrap();
    let mut table = String::new();
    let mut differ = Vec::new();
    for (version, scenarios) in &direct {
        for (scenario, result) in scenarios {
            let via = through[version]
                .get(scenario)
                .map_or("missing", String::as_str);
            table.push_str(&format!("{version}\t{scenario}\t{result}\t{via}\n"));
            if via != result {
                differ.push(format!(
                    "{version} {scenario}: direct {result}, through toolgate {via}"
                ));
            }
        }
    }
    println!("version\tscenario\tdirect\tthrough toolgate\n{table}");
    assert!(
        differ.is_empty(),
        "{} scenario(s) end differently through toolgate:\n{}\n(results in {})",
        differ.len(),
        differ.join("\n"),
        out.keep().display()
    );
    // The reference upstream passes every scored scenario directly: the comparison is over the whole suite.
    for scenarios in direct.values() {
        assert!(
            scenarios
                .values()
                .all(|r| r == "pass" || r.ends_with("(not scored)")),
            "{table}"
        );
    }
}
