//! Load benchmark: the same MCP tool calls, first straight to an upstream, then through toolgate with the whole
//! pipeline on (JWT, delegation lineage, revocation, Rego decision, redaction, durable decision records).
//!
//! ```text
//! scripts/bench-load                 # builds in release mode, then runs the default series
//! scripts/bench-load --scale         # adds 10 → 10,000 tools and 1 → 1,000 sessions
//! ```
//!
//! It starts `examples/bench_upstream` over streamable HTTP and the real `toolgate` binary in front of it, each as
//! its own process, so CPU time and memory are read per process from `/proc`. Clients are rmcp client sessions in
//! this process. Client, upstream and gateway share the machine's cores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
#[command(
    about = "Latency, throughput, CPU and memory of tool calls: direct against through toolgate"
)]
struct Args {
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Calls per measurement.
    #[arg(long, default_value_t = 10_000)]
    calls: usize,
    /// Tools in the upstream's catalog and in the policy data.
    #[arg(long, default_value_t = 10)]
    tools: usize,
    /// Fixed request rates (calls/s, comma-separated) measured below saturation. Default: 25% and 50% of the
    /// saturated rate through toolgate.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Also run the scale series: 10 → 10,000 tools, then 1 → 1,000 sessions.
    #[arg(long)]
    scale: bool,
    /// Session counts of the sessions series.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    session_counts: Vec<usize>,
    /// Series to run, comma-separated: default (clients in sessions, protocol 2025-11-25), stateless (the same
    /// calls as stateless requests of protocol 2026-07-28), tools, sessions (`--scale` adds tools and sessions).
    #[arg(long, value_delimiter = ',', default_value = "default,stateless")]
    series: Vec<String>,
    /// The protocol revision toolgate speaks to the bench upstream (its `protocol` setting): auto (the default:
    /// what `server/discover` finds, 2026-07-28), 2025-11-25 or 2026-07-28.
    #[arg(long, default_value = "auto")]
    upstream_protocol: String,
    /// Durability of decision records: normal (the default) or full.
    #[arg(long, default_value = "normal")]
    durability: String,
    /// Keep toolgate's state and decision records in PostgreSQL (`storage.postgres`): a server URL
    /// (`postgres://user@host:port/db`, for instance from `scripts/pg-cluster start DIR`); each gateway started gets
    /// a database of its own there.
    #[arg(long)]
    postgres: Option<String>,
    /// Export toolgate's spans over OTLP to a collector this program runs (counting what arrives).
    #[arg(long)]
    traces: bool,
    /// The collector's URL, once started.
    #[arg(skip)]
    otlp: Option<String>,
    /// Folder of the built `toolgate` binary and `examples/bench_upstream` (default: next to this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Run as the baseline relay in front of this upstream URL (started by the benchmark itself).
    #[arg(long, hide = true)]
    relay_to: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.relay_to.clone() {
        Some(upstream) => runtime.block_on(relay(upstream)),
        None => runtime.block_on(run(args)),
    }
}

/// The baseline for what any HTTP gateway adds: a plain reverse proxy that forwards each request to the upstream
/// and streams the answer back, deciding and recording nothing.
async fn relay(upstream: String) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}/mcp", listener.local_addr()?);
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            forward(&client, &upstream, request)
                .await
                .unwrap_or_else(|e| {
                    axum::response::Response::builder()
                        .status(502)
                        .body(axum::body::Body::from(e.to_string()))
                        .unwrap_or_default()
                })
        }
    });
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: axum::extract::Request,
) -> anyhow::Result<axum::response::Response> {
    use http::header;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await?;
    let mut outgoing = client.request(parts.method, upstream).body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await?;
    let mut response = axum::response::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            response = response.header(name, value);
        }
    }
    Ok(response.body(axum::body::Body::from_stream(answer.bytes_stream()))?)
}

async fn run(mut args: Args) -> anyhow::Result<()> {
    let bins = Bins::locate(args.bin_dir.clone())?;
    println!("{}", machine());
    let exported = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if args.traces {
        args.otlp = Some(collector(std::sync::Arc::clone(&exported)).await?);
        println!(
            "spans exported over OTLP/HTTP (protobuf) to {}",
            args.otlp.as_deref().unwrap_or_default()
        );
    }
    println!(
        "sessions {}, calls per measurement {}, tools {}, record durability {}, store {}\n",
        args.sessions,
        args.calls,
        args.tools,
        args.durability,
        if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );

    let named = |name: &str| args.series.iter().any(|s| s == name);
    let series = |name: &str| args.scale || named(name);
    let mut rates = args.rates.clone();
    if named("default") || args.scale {
        rates = default_series(&bins, &args, false).await?;
    }
    if named("stateless") {
        default_series(&bins, &args, true).await?;
    }
    let rate = rates.first().copied().unwrap_or(1_000.0);
    if series("tools") {
        scale_tools(&bins, &args, rate).await?;
    }
    if series("sessions") {
        scale_sessions(&bins, &args, rate).await?;
    }
    if args.traces {
        println!(
            "OTLP export requests received: {}",
            exported.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    Ok(())
}

/// An OTLP/HTTP collector that takes every export and counts it; returns its base URL.
async fn collector(exported: Arc<std::sync::atomic::AtomicU64>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |_body: axum::body::Bytes| {
            exported.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async {
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Direct, relay and toolgate: saturated, then at fixed rates. Returns the rates used.
/// The default series: saturated, then at fixed rates below saturation; in sessions (protocol 2025-11-25), or as
/// stateless requests (`stateless`: protocol 2026-07-28, each client making its requests one after the other).
async fn default_series(bins: &Bins, args: &Args, stateless: bool) -> anyhow::Result<Vec<f64>> {
    let world = World::start(bins, args.tools, args).await?;
    world.check().await?;
    let direct = Target::direct(&world).stateless(stateless);
    let relay = Target::relay(&world).stateless(stateless);
    let gateway = Target::gateway(&world).stateless(stateless);
    let (clients, era) = if stateless {
        ("stateless clients", "protocol 2026-07-28")
    } else {
        ("sessions", "protocol 2025-11-25")
    };
    println!("# {era}\n");

    println!(
        "## Saturated: {} {clients} calling back to back\n",
        args.sessions
    );
    let saturated = compare(
        &world,
        [&direct, &relay, &gateway],
        args.sessions,
        args.calls,
        None,
    )
    .await?;

    let rates = if args.rates.is_empty() {
        vec![
            (saturated[2].rate * 0.25).round(),
            (saturated[2].rate * 0.5).round(),
        ]
    } else {
        args.rates.clone()
    };
    for rate in &rates {
        let calls = args
            .calls
            .min((rate * 8.0) as usize)
            .max(args.sessions * 20);
        println!(
            "## Fixed rate {rate} calls/s, {} {clients}, {calls} calls\n",
            args.sessions
        );
        compare(
            &world,
            [&direct, &relay, &gateway],
            args.sessions,
            calls,
            Some(*rate),
        )
        .await?;
    }
    println!(
        "toolgate peak resident memory: {:.1} MiB\n",
        mib(world.gateway.peak_rss())
    );
    world.verify_records()?;
    drop(world);
    Ok(rates)
}

/// Latency and memory as the catalog and policy data grow, at a fixed rate below saturation.
async fn scale_tools(bins: &Bins, args: &Args, rate: f64) -> anyhow::Result<()> {
    println!(
        "## Tools in catalog and policy data, {} sessions at {rate} calls/s\n",
        args.sessions
    );
    println!(
        "| tools | direct p50 µs | toolgate p50 µs | added p50 µs | direct p99 µs | toolgate p99 µs | toolgate CPU µs/call | tools/list direct ms | tools/list toolgate ms (first, again) | toolgate RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for tools in [10, 100, 1_000, 10_000] {
        let world = World::start(bins, tools, args).await?;
        let calls = args
            .calls
            .min((rate * 6.0) as usize)
            .max(args.sessions * 20);
        let direct = Target::direct(&world);
        let gateway = Target::gateway(&world);
        let list_direct = list_time(&direct).await?;
        let list_gateway = list_time(&gateway).await?;
        let d = measure(&world, &direct, args.sessions, calls, Some(rate)).await?;
        let g = measure(&world, &gateway, args.sessions, calls, Some(rate)).await?;
        println!(
            "| {tools} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1}, {:.1} | {:.1} |",
            d.p50,
            g.p50,
            g.p50 as i64 - d.p50 as i64,
            d.p99,
            g.p99,
            g.gateway_cpu_per_call,
            list_direct.1.as_secs_f64() * 1e3,
            list_gateway.0.as_secs_f64() * 1e3,
            list_gateway.1.as_secs_f64() * 1e3,
            mib(world.gateway.rss()),
        );
    }
    println!();
    Ok(())
}

/// Latency, throughput and memory as sessions grow, with 1,000 tools: saturated, and at a fixed rate.
async fn scale_sessions(bins: &Bins, args: &Args, rate: f64) -> anyhow::Result<()> {
    let tools = 1_000;
    println!("## Concurrent sessions, {tools} tools: saturated, and at {rate} calls/s\n");
    println!(
        "| sessions | direct calls/s | toolgate calls/s | direct p50 µs | toolgate p50 µs | direct p99 µs | toolgate p99 µs | toolgate CPU µs/call | at {rate}/s: toolgate p50 µs | p99 µs | toolgate RSS MiB: sessions open | after the fixed-rate run | peak |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &sessions in &args.session_counts {
        let world = World::start(bins, tools, args).await?;
        let calls = args.calls.max(sessions * 10);
        let direct = Target::direct(&world);
        let gateway = Target::gateway(&world);
        let paced = measure(
            &world,
            &gateway,
            sessions,
            args.calls.min((rate * 6.0) as usize),
            Some(rate),
        )
        .await?;
        let after_paced = world.gateway.rss();
        let d = measure(&world, &direct, sessions, calls, None).await?;
        let g = measure(&world, &gateway, sessions, calls, None).await?;
        println!(
            "| {sessions} | {:.0} | {:.0} | {} | {} | {} | {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} |",
            d.rate,
            g.rate,
            d.p50,
            g.p50,
            d.p99,
            g.p99,
            g.gateway_cpu_per_call,
            paced.p50,
            paced.p99,
            mib(paced.gateway_rss_with_sessions),
            mib(after_paced),
            mib(world.gateway.peak_rss()),
        );
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------------------------

/// Where the clients connect: the upstream itself, or toolgate with a token.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Direct,
    Relay,
    Gateway,
}

struct Target {
    kind: Kind,
    /// Clients of protocol 2026-07-28 (stateless requests) instead of sessions.
    stateless: bool,
    url: String,
    token: Option<String>,
    prefix: &'static str,
    tools: usize,
}

impl Target {
    fn direct(world: &World) -> Self {
        Self {
            kind: Kind::Direct,
            stateless: false,
            url: world.upstream_url.clone(),
            token: None,
            prefix: "",
            tools: world.tools,
        }
    }

    fn relay(world: &World) -> Self {
        Self {
            kind: Kind::Relay,
            stateless: false,
            url: world.relay_url.clone(),
            token: None,
            prefix: "",
            tools: world.tools,
        }
    }

    fn gateway(world: &World) -> Self {
        Self {
            kind: Kind::Gateway,
            stateless: false,
            url: world.gateway_url.clone(),
            token: Some(world.token.clone()),
            prefix: "bench__",
            tools: world.tools,
        }
    }

    async fn connect(
        &self,
        http: &reqwest::Client,
    ) -> anyhow::Result<RunningService<rmcp::RoleClient, ()>> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.clone());
        if let Some(token) = &self.token {
            config = config.auth_header(token.clone());
        }
        let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
        if self.stateless {
            let lifecycle = ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            };
            return Ok(().serve_with_lifecycle(transport, lifecycle).await?);
        }
        Ok(().serve(transport).await?)
    }

    fn stateless(mut self, stateless: bool) -> Self {
        self.stateless = stateless;
        self
    }

    fn params(&self, n: usize) -> CallToolRequestParams {
        let mut params =
            CallToolRequestParams::new(format!("{}lookup_{}", self.prefix, n % self.tools));
        params.arguments = json!({"id": n}).as_object().cloned();
        params
    }
}

struct Stats {
    calls: usize,
    errors: usize,
    rate: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
    gateway_cpu_per_call: f64,
    upstream_cpu_per_call: f64,
    client_cpu_per_call: f64,
    gateway_rss_with_sessions: u64,
}

impl Stats {
    fn header() -> String {
        "| path | calls | errors | calls/s | p50 µs | p90 µs | p99 µs | max µs | proxy CPU µs/call | upstream CPU µs/call | client CPU µs/call |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into()
    }

    fn row(&self, path: &str) -> String {
        format!(
            "| {path} | {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            self.calls,
            self.errors,
            self.rate,
            self.p50,
            self.p90,
            self.p99,
            self.max,
            self.gateway_cpu_per_call,
            self.upstream_cpu_per_call,
            self.client_cpu_per_call
        )
    }
}

fn added(name: &str, base: &Stats, with: &Stats) -> String {
    let ratio = |g: u64, d: u64| g as f64 / d.max(1) as f64;
    format!(
        "{name}: p50 {:+} µs ({:.2}×), p90 {:+} µs ({:.2}×), p99 {:+} µs ({:.2}×); calls/s {:.2}×",
        with.p50 as i64 - base.p50 as i64,
        ratio(with.p50, base.p50),
        with.p90 as i64 - base.p90 as i64,
        ratio(with.p90, base.p90),
        with.p99 as i64 - base.p99 as i64,
        ratio(with.p99, base.p99),
        with.rate / base.rate.max(1e-9),
    )
}

/// Measures the three paths one after the other and prints the table and what each layer adds.
async fn compare(
    world: &World,
    targets: [&Target; 3],
    sessions: usize,
    calls: usize,
    rate: Option<f64>,
) -> anyhow::Result<Vec<Stats>> {
    println!("{}", Stats::header());
    let mut all = Vec::new();
    for (target, name) in targets.into_iter().zip(["direct", "relay", "toolgate"]) {
        let stats = measure(world, target, sessions, calls, rate).await?;
        println!("{}", stats.row(name));
        all.push(stats);
    }
    println!();
    println!(
        "{}",
        added("added by toolgate over direct", &all[0], &all[2])
    );
    println!(
        "{}",
        added("added by toolgate over the relay", &all[1], &all[2])
    );
    println!(
        "{}\n",
        added("added by the relay over direct", &all[0], &all[1])
    );
    Ok(all)
}

/// Opens `sessions` sessions, warms them up, then makes `calls` calls: back to back (`rate` None) or started at
/// a fixed overall rate spread over the sessions. Latency is measured per call from the moment it is sent.
async fn measure(
    world: &World,
    target: &Target,
    sessions: usize,
    calls: usize,
    rate: Option<f64>,
) -> anyhow::Result<Stats> {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(sessions.max(8))
        .build()?;
    let mut clients = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        clients.push(Arc::new(target.connect(&http).await?));
    }
    let gateway_rss_with_sessions = world.gateway.rss();
    // Warm-up: every session makes a few calls (connections, caches, the upstream's own warm-up), 32 sessions
    // at a time, so that a fixed-rate run does not start with a burst as wide as its sessions.
    for chunk in clients.chunks(32) {
        let warm: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = c.clone();
                let params: Vec<_> = (0..3).map(|k| target.params(i + k)).collect();
                tokio::spawn(async move {
                    for p in params {
                        c.peer().call_tool(p).await?;
                    }
                    Ok::<_, rmcp::ServiceError>(())
                })
            })
            .collect();
        for w in warm {
            w.await??;
        }
    }

    let middle = || match target.kind {
        Kind::Direct => Duration::ZERO,
        Kind::Relay => world.relay.cpu(),
        Kind::Gateway => world.gateway.cpu(),
    };
    let cpu_before = (middle(), world.upstream.cpu(), self_cpu());
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.clone();
            let mine: Vec<usize> = (i..calls).step_by(sessions).collect();
            let params: Vec<_> = mine.iter().map(|n| target.params(*n)).collect();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(mine.len());
                let mut errors = 0usize;
                for (n, p) in mine.into_iter().zip(params) {
                    if let Some(rate) = rate {
                        let at = start + Duration::from_secs_f64(n as f64 / rate);
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let sent = Instant::now();
                    match c.peer().call_tool(p).await {
                        Ok(r) if r.is_error != Some(true) => {}
                        _ => errors += 1,
                    }
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    let cpu_after = (middle(), world.upstream.cpu(), self_cpu());
    for c in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let per_call =
        |a: Duration, b: Duration| (b.saturating_sub(a)).as_secs_f64() * 1e6 / calls as f64;
    Ok(Stats {
        calls,
        errors,
        rate: calls as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
        max: *latencies.last().unwrap_or(&0),
        gateway_cpu_per_call: per_call(cpu_before.0, cpu_after.0),
        upstream_cpu_per_call: per_call(cpu_before.1, cpu_after.1),
        client_cpu_per_call: per_call(cpu_before.2, cpu_after.2),
        gateway_rss_with_sessions,
    })
}

/// Time to list every tool in one fresh session: the first listing, then the same again.
async fn list_time(target: &Target) -> anyhow::Result<(Duration, Duration)> {
    let http = reqwest::Client::new();
    let client = target.connect(&http).await?;
    let mut times = Vec::new();
    for _ in 0..2 {
        let start = Instant::now();
        let tools = client.peer().list_all_tools().await?;
        times.push(start.elapsed());
        if tools.len() != target.tools {
            bail!("listed {} tools, expected {}", tools.len(), target.tools);
        }
    }
    let _ = client.cancel().await;
    Ok((times[0], times[1]))
}

// ---------------------------------------------------------------------------------------------------------------
// The world: upstream and gateway processes, policy bundle, token
// ---------------------------------------------------------------------------------------------------------------

struct Bins {
    toolgate: PathBuf,
    upstream: PathBuf,
}

impl Bins {
    fn locate(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(d) => d,
            None => std::env::current_exe()?
                .parent()
                .and_then(Path::parent)
                .context("no folder above this program")?
                .to_path_buf(),
        };
        let bins = Self {
            toolgate: dir.join("toolgate"),
            upstream: dir.join("examples").join("bench_upstream"),
        };
        for b in [&bins.toolgate, &bins.upstream] {
            if !b.exists() {
                bail!(
                    "{} is not built: run `cargo build --release --bins --examples`",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// A child process, killed on drop, whose CPU time and memory are read from `/proc`.
struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `command` and waits for the stdout line starting with `marker`; returns the rest of that line.
    fn start(mut command: Command, marker: &str, stderr: &Path) -> anyhow::Result<(Self, String)> {
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr)?);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut proc = Self { child };
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix(marker) {
                        std::thread::spawn(move || for _ in lines {});
                        return Ok((proc, rest.trim().to_string()));
                    }
                }
                _ => {
                    let _ = proc.child.kill();
                    bail!(
                        "{:?} exited before printing {marker:?}: {}",
                        command.get_program(),
                        std::fs::read_to_string(stderr).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// User plus system CPU time of the process so far (all its threads).
    fn cpu(&self) -> Duration {
        proc_cpu(&format!("/proc/{}/stat", self.child.id()))
    }

    fn rss(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:") * 1024
    }

    fn peak_rss(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:") * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_cpu(stat: &str) -> Duration {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime is the 14th field.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

fn self_cpu() -> Duration {
    proc_cpu("/proc/self/stat")
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cores} cores, {cpu}")
}

struct World {
    dir: tempfile::TempDir,
    tools: usize,
    upstream: Proc,
    upstream_url: String,
    gateway: Proc,
    gateway_url: String,
    relay: Proc,
    relay_url: String,
    token: String,
}

impl World {
    /// Starts the upstream with `tools` tools, writes a policy bundle and manifests for them, and starts toolgate.
    async fn start(bins: &Bins, tools: usize, args: &Args) -> anyhow::Result<Self> {
        let durability = &args.durability;
        let tracing = match &args.otlp {
            Some(url) => {
                format!("tracing:\n  otlp:\n    endpoint: \"{url}\"\n    batch_delay: 1s\n")
            }
            None => String::new(),
        };
        let dir = tempfile::tempdir()?;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new(&bins.upstream);
        command.args(["--http", "127.0.0.1:0", "--tools", &tools.to_string()]);
        let (upstream, upstream_url) =
            Proc::start(command, "listening on ", &dir.path().join("upstream.log"))?;

        // The quickstart's Rego policy, with policy data and manifests for the bench upstream's tools.
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(policies.join("toolgate"))?;
        for entry in std::fs::read_dir(root.join("policies/toolgate"))? {
            let entry = entry?;
            // The policy's own tests speak of the quickstart's data, not of this bundle's.
            if entry.file_name().to_string_lossy().ends_with("_test.rego") {
                continue;
            }
            std::fs::copy(
                entry.path(),
                policies.join("toolgate").join(entry.file_name()),
            )?;
        }
        std::fs::write(
            policies.join("access.yaml"),
            "toolgate:\n  access:\n    roles:\n      analyst:\n        tools: [\"bench__*\"]\n        clearance: internal\n    agents: {}\n    users: {}\n",
        )?;
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests)?;
        let mut yaml = String::from("upstream: bench\nowner: people-systems\ntools:\n");
        for i in 0..tools {
            let _ = write!(
                yaml,
                "  lookup_{i}:\n    classification: internal\n    risk: read\n    output:\n      fields:\n        \"$..salary\": confidential\n"
            );
        }
        std::fs::write(manifests.join("bench.yaml"), yaml)?;
        // The inventory lives with the manifests, as in the quickstart (its folder is watched for changes).
        std::fs::write(
            manifests.join("agents.yaml"),
            "agents:\n  assistant:\n    owner: it-platform\n    description: Assistant acting for employees.\n    scope: [\"bench__*\"]\n    max_classification: confidential\n    acts_for_humans: true\n    delegates_to: [researcher]\n  researcher:\n    owner: it-platform\n    description: Sub-agent that looks records up.\n    scope: [\"bench__*\"]\n    max_classification: internal\n",
        )?;
        let storage = match &args.postgres {
            Some(server) => {
                let database = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let (client, connection) =
                    tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("CREATE DATABASE {database}"))
                    .await?;
                let (base, _) = server
                    .rsplit_once('/')
                    .context("--postgres: a URL naming a database")?;
                format!(
                    "storage:\n  postgres:\n    url: \"{base}/{database}\"\n    replica: bench\n"
                )
            }
            None => String::new(),
        };
        let config = dir.path().join("toolgate.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0\nupstreams:\n  - name: bench\n    http:\n      url: \"{upstream_url}\"\n{}auth:\n  issuers:\n    - issuer: toolgate-dev\n      audience: toolgate\n      jwks_file: \"{}\"\n      dev: true\n      roles_claim: roles\n  agents_file: manifests/agents.yaml\npolicy:\n  dir: policies\n  manifests: manifests\naudit:\n  durability: {durability}\n{tracing}{storage}",
                // Written only when pinned: a build without the setting runs the same config.
                match args.upstream_protocol.as_str() {
                    "auto" => String::new(),
                    pinned => format!("      protocol: \"{pinned}\"\n"),
                },
                root.join("examples/quickstart/dev-keys/dev.jwks.json")
                    .display()
            ),
        )?;
        let mut command = Command::new(&bins.toolgate);
        command.arg("serve");
        // The development issuer needs development mode (for builds that know it).
        let help = Command::new(&bins.toolgate)
            .args(["serve", "--help"])
            .output()?;
        if String::from_utf8_lossy(&help.stdout).contains("--dev") {
            command.arg("--dev");
        }
        command.arg("--config").arg(&config).current_dir(dir.path());
        let (gateway, gateway_url) = Proc::start(
            command,
            "toolgate listening on ",
            &dir.path().join("toolgate.log"),
        )?;
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["--relay-to", &upstream_url]);
        let (relay, relay_url) =
            Proc::start(command, "listening on ", &dir.path().join("relay.log"))?;
        let token = toolgate::identity::token::mint_dev(&toolgate::identity::token::TokenRequest {
            subject: Some("dana".into()),
            roles: vec!["analyst".into()],
            agent: Some("assistant".into()),
            via: vec!["researcher".into()],
            scope: None,
            audience: "toolgate".into(),
            ttl: Duration::from_secs(3600),
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        let world = Self {
            dir,
            tools,
            upstream,
            upstream_url,
            gateway,
            gateway_url,
            relay,
            relay_url,
            token,
        };
        world.wait_ready().await?;
        Ok(world)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let ready = self.gateway_url.replace("/mcp", "/readyz");
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(&ready).await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("toolgate did not become ready: {}", self.log())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("toolgate.log")).unwrap_or_default()
    }

    /// One call each way: the gateway must answer with the salary masked, the upstream with it in clear.
    async fn check(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let call = |target: Target| {
            let http = http.clone();
            async move {
                let client = target.connect(&http).await?;
                let result: CallToolResult = client.peer().call_tool(target.params(1)).await?;
                let _ = client.cancel().await;
                anyhow::Ok(result.structured_content.unwrap_or(Value::Null))
            }
        };
        let direct = call(Target::direct(self)).await?;
        let gateway = call(Target::gateway(self)).await?;
        if direct["salary"] != json!(98000)
            || gateway["salary"] == json!(98000)
            || gateway["name"] != direct["name"]
        {
            bail!("unexpected answers: direct {direct}, through toolgate {gateway}");
        }
        println!(
            "check: through toolgate the salary reads {}, directly {}\n",
            gateway["salary"], direct["salary"]
        );
        Ok(())
    }

    /// Verifies the decision-record chain written during the run and prints the verifier's summary.
    fn verify_records(&self) -> anyhow::Result<()> {
        let exe = self.gateway.child.id();
        let toolgate = std::fs::read_link(format!("/proc/{exe}/exe"))?;
        // The gateway is still running: records after its last published head are verified link by link
        // (`--no-head`, for builds that know it).
        let help = Command::new(&toolgate)
            .args(["audit", "verify", "--help"])
            .output()?;
        let mut command = Command::new(&toolgate);
        command.args(["audit", "verify", "--config"]);
        command.arg(self.dir.path().join("toolgate.yaml"));
        if String::from_utf8_lossy(&help.stdout).contains("--no-head") {
            command.arg("--no-head");
        }
        let output = command.current_dir(self.dir.path()).output()?;
        println!(
            "decision records: {}",
            String::from_utf8_lossy(&output.stdout).trim()
        );
        if !output.status.success() {
            bail!(
                "audit verify failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}
