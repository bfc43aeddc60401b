//! A real PostgreSQL for the replica tests: the cluster `TOOLGATE_TEST_POSTGRES` names (the test script starts
//! one), else a throwaway one this test process starts with `scripts/pg-cluster` and stops when done. Each test
//! gets a database of its own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A PostgreSQL server; a cluster this process started is stopped on drop.
pub struct Server {
    pub url: String,
    started: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.started {
            let _ = std::process::Command::new(script())
                .args(["stop", dir.path().join("pg").to_str().unwrap()])
                .output();
        }
    }
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster")
}

impl Server {
    pub fn get() -> Self {
        if let Ok(url) = std::env::var("TOOLGATE_TEST_POSTGRES")
            && !url.is_empty()
        {
            return Self { url, started: None };
        }
        Self::start_own()
    }

    /// A throwaway cluster of this test's own, whatever `TOOLGATE_TEST_POSTGRES` says.
    pub fn start_own() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(script())
            .args(["start", dir.path().join("pg").to_str().unwrap()])
            .output()
            .expect("scripts/pg-cluster");
        assert!(
            out.status.success(),
            "cannot start a PostgreSQL cluster (install the Debian package `postgresql`, or set \
             TOOLGATE_TEST_POSTGRES): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Self {
            url,
            started: Some(dir),
        }
    }

    /// The data folder of a cluster this process started.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.started.as_ref().unwrap().path().join("pg")
    }

    /// Runs each statement as the cluster's superuser, one at a time (off the async runtime).
    pub fn execute(&self, statements: &[&str]) {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
                for sql in statements {
                    client.batch_execute(sql).unwrap();
                }
            });
        });
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        // The blocking client runs a runtime of its own: off the test's.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
            });
        });
        let (base, _) = self.url.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    }
}

/// Runs `sql` (one or more statements) in the database at `url`, off the async runtime.
pub async fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    tokio::task::spawn_blocking(move || connect(&url).batch_execute(&sql).unwrap())
        .await
        .unwrap();
}

/// A blocking client of a database (call off the async runtime, or with `spawn_blocking`).
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// A TCP relay in front of PostgreSQL that can cut every connection through it and refuse new ones, as a lost
/// network would.
pub struct Relay {
    pub port: u16,
    cut: Arc<AtomicBool>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let target = target.to_string();
        {
            let (cut, tasks) = (Arc::clone(&cut), Arc::clone(&tasks));
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    tasks.lock().unwrap().push(task);
                }
            });
        }
        Self { port, cut, tasks }
    }

    /// `url` with its host and port replaced by the relay's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').unwrap();
        let (_, path) = rest.split_once('/').unwrap();
        format!("{scheme_user}@127.0.0.1:{}/{path}", self.port)
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
pub fn address(url: &str) -> String {
    let (_, rest) = url.split_once('@').unwrap();
    rest.split_once('/').unwrap().0.to_string()
}
