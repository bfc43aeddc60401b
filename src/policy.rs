//! Policy decisions: a Rego bundle (`policies/` + tool manifests + agent inventory) compiled once per version with
//! `regorus`, evaluated in-process for every `tools/call` and every tool of a `tools/list`, and reloaded without
//! dropping the last good version.
//!
//! Argument facts ([`facts`]) are computed in Rust before policy runs, so that policies decide on parsed facts
//! (statement kinds, tables touched, normalised paths), never on regexes over raw strings.

mod bundle;
mod cache;
pub mod facts;
pub mod input;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::broadcast;

pub use bundle::{Bundle, TestOutcome};
pub use input::{Action, PolicyInput};

use crate::classification::Classification;
use crate::config::PolicyConfig;
use crate::reason::Reason;

/// The rule every decision comes from.
pub const DECISION_RULE: &str = "data.toolgate.authz.decision";

/// Why a bundle was not loaded; the text names the file (and line, for Rego).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A source cannot be read or is not what it should be (tool manifest, agent inventory, policy data).
    #[error("{0}")]
    Source(String),
    /// The Rego does not compile, or defines no decision rule.
    #[error("{0}")]
    Compile(String),
    /// The bundle's Rego tests failed (each named with its file and why).
    #[error("{} Rego test(s) failed: {}", .0.len(), .0.join("; "))]
    Tests(Vec<String>),
}

/// What the policy decided for one input. Deciding cannot fail: when the policy cannot decide, the decision is a
/// denial that carries the error (cedar's `Response` with its diagnostics), so no caller can forget to fail
/// closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allow: bool,
    /// A human must approve this call first.
    pub escalate: bool,
    pub reasons: Vec<String>,
    pub obligations: Obligations,
    /// Why the policy could not decide; a decision with an error allows nothing.
    #[serde(skip)]
    pub error: Option<PolicyError>,
}

impl Decision {
    /// The denial standing for a policy that could not decide.
    pub fn failed(error: PolicyError) -> Self {
        Self {
            allow: false,
            escalate: false,
            reasons: vec![error.to_string()],
            obligations: Obligations::default(),
            error: Some(error),
        }
    }
}

/// What the gateway must do with an allowed call's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Obligations {
    /// Highest class the caller may see; toolgate lowers it to the chain's maximum.
    pub clearance: Option<Classification>,
    /// Extra classes to mask (an unknown class name is a policy error, never dropped).
    pub redact: Vec<Classification>,
    /// Result columns to mask by name, with the class each is masked as (columns granted masked).
    pub mask_columns: Vec<(String, Classification)>,
}

/// Why no decision could be made: always a denial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy gave no decision (`{DECISION_RULE}` is undefined)")]
    Undefined,
    #[error("the policy's decision has the wrong shape: {0}")]
    Shape(String),
    #[error("the policy could not be evaluated: {0}")]
    Eval(String),
    #[error("the policy decision exceeded its time or instruction limit")]
    Limit,
}

impl PolicyError {
    /// Stable, documented reason id.
    pub fn reason_id(&self) -> Reason {
        match self {
            Self::Undefined => Reason::PolicyUndefined,
            Self::Shape(_) => Reason::PolicyWrongShape,
            Self::Eval(_) => Reason::PolicyError,
            Self::Limit => Reason::PolicyLimit,
        }
    }
}

/// Where a bundle comes from and how it is evaluated.
#[derive(Debug, Clone)]
pub struct Sources {
    pub dir: PathBuf,
    pub manifests: PathBuf,
    pub config: PolicyConfig,
    /// The agent inventory, loaded with the bundle (`data.toolgate.agents`) and reloaded with it.
    pub agents_file: PathBuf,
    /// Agents registered at run time through the admin API, added to the file's.
    pub registered_agents:
        Arc<std::sync::RwLock<std::collections::BTreeMap<String, crate::identity::AgentSpec>>>,
}

impl Sources {
    /// The bundle named by a policy config, with the agent inventory file.
    pub fn new(config: PolicyConfig, agents_file: PathBuf) -> Self {
        Self {
            dir: config.dir.clone(),
            manifests: config.manifests.clone(),
            config,
            agents_file,
            registered_agents: Arc::default(),
        }
    }
}

/// Health of the policy engine, shown in `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub version: String,
    pub evaluator: &'static str,
    pub loaded_at: u64,
    pub rego_tests: usize,
    /// Why the last reload was refused (the previous version stays in force).
    pub last_error: Option<String>,
    pub reloads: u64,
    pub reload_failures: u64,
}

/// The bundle in force, swapped atomically on reload: a request loads it once and is decided by that version.
/// Called with each new bundle just before it is put in force (to swap the agent inventory with it).
pub type OnSwap = Box<dyn Fn(&Bundle) + Send + Sync>;

pub struct PolicyEngine {
    sources: Sources,
    on_swap: OnSwap,
    current: ArcSwap<Bundle>,
    status: Mutex<PolicyStatus>,
    reloading: Mutex<()>,
    changes: broadcast::Sender<()>,
}

impl PolicyEngine {
    /// Loads, compiles and tests the bundle; a bundle that does not compile or whose tests fail is an error
    /// naming the file and line.
    pub fn load(sources: Sources, on_swap: OnSwap) -> Result<Arc<Self>, LoadError> {
        let bundle = Bundle::load(&sources)?;
        bundle.check_tests()?;
        on_swap(&bundle);
        let status = PolicyStatus {
            version: bundle.version.clone(),
            evaluator: bundle.evaluator_name(),
            loaded_at: unix_now(),
            rego_tests: bundle.test_count(),
            last_error: None,
            reloads: 0,
            reload_failures: 0,
        };
        tracing::info!(version = %bundle.version, evaluator = bundle.evaluator_name(), tests = bundle.test_count(), "policy bundle loaded");
        let (changes, _) = broadcast::channel(16);
        Ok(Arc::new(Self {
            sources,
            on_swap,
            current: ArcSwap::from_pointee(bundle),
            status: Mutex::new(status),
            reloading: Mutex::new(()),
            changes,
        }))
    }

    /// Agents registered at run time (shared with the loader).
    pub fn registered_agents(
        &self,
    ) -> &Arc<std::sync::RwLock<std::collections::BTreeMap<String, crate::identity::AgentSpec>>>
    {
        &self.sources.registered_agents
    }

    /// The bundle in force.
    pub fn current(&self) -> Arc<Bundle> {
        self.current.load_full()
    }

    /// Fires when a reload changed the bundle in force.
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changes.subscribe()
    }

    pub fn status(&self) -> PolicyStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Reloads from disk. A bundle that does not compile or fails its tests is refused and the last good one
    /// stays in force; the error is kept for `/healthz`. Returns the version in force.
    pub fn reload(&self, trigger: &str) -> Result<String, LoadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = Bundle::load(&self.sources).and_then(|b| b.check_tests().map(|()| b));
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.reloads += 1;
        match loaded {
            Ok(bundle) => {
                let version = bundle.version.clone();
                let changed = version != status.version;
                status.version = version.clone();
                status.evaluator = bundle.evaluator_name();
                status.loaded_at = unix_now();
                status.rego_tests = bundle.test_count();
                status.last_error = None;
                (self.on_swap)(&bundle);
                self.current.store(Arc::new(bundle));
                drop(status);
                if changed {
                    tracing::info!(%version, trigger, "policy bundle reloaded");
                    let _ = self.changes.send(());
                } else {
                    tracing::debug!(%version, trigger, "policy bundle unchanged");
                }
                Ok(version)
            }
            Err(error) => {
                status.reload_failures += 1;
                status.last_error = Some(error.to_string());
                tracing::error!(trigger, kept = %status.version, "policy reload refused, keeping the last good bundle: {error}");
                Err(error)
            }
        }
    }

    /// Reloads on file changes under the policy and manifest folders (debounced) and on SIGHUP.
    pub fn watch(self: &Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(4);
        if self.sources.config.watch {
            use notify::Watcher;
            let file_tx = tx.clone();
            let (dir, manifests, agents) = (
                self.sources.dir.clone(),
                self.sources.manifests.clone(),
                self.sources.agents_file.clone(),
            );
            // The inventory's folder is watched (so that a file replaced by rename is still seen), but only the
            // inventory file in it counts.
            let relevant = move |path: &std::path::Path| {
                path.starts_with(&dir) || path.starts_with(&manifests) || path == agents
            };
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    if let Ok(event) = event
                        && !event.kind.is_access()
                        && event.paths.iter().any(|p| relevant(p))
                    {
                        let _ = file_tx.try_send("file change");
                    }
                });
            match watcher {
                Ok(mut watcher) => {
                    for dir in [&self.sources.dir, &self.sources.manifests] {
                        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
                            tracing::warn!(dir = %dir.display(), "cannot watch for policy changes: {e}");
                        }
                    }
                    let agents = &self.sources.agents_file;
                    if !agents.starts_with(&self.sources.manifests)
                        && !agents.starts_with(&self.sources.dir)
                        && let Some(folder) = agents.parent()
                        && let Err(e) = watcher.watch(folder, notify::RecursiveMode::NonRecursive)
                    {
                        tracing::warn!(file = %agents.display(), "cannot watch the agent inventory: {e}");
                    }
                    // The watcher lives as long as the process.
                    std::mem::forget(watcher);
                }
                Err(e) => tracing::warn!("cannot watch for policy changes: {e}"),
            }
        }
        #[cfg(unix)]
        {
            let hup_tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let _ = hup_tx.send("SIGHUP").await;
                }
            });
        }
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(mut trigger) = rx.recv().await {
                // Editors write in several steps: wait for the burst to settle.
                loop {
                    match tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv())
                        .await
                    {
                        Ok(Some(next)) => trigger = next,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let engine = Arc::clone(&engine);
                let _ = tokio::task::spawn_blocking(move || engine.reload(trigger)).await;
            }
        });
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
