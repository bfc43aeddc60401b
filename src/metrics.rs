//! Prometheus metrics, served at `/metrics` in the text exposition format. Label sets are bounded: tools and
//! upstreams come from the catalog (a name nobody exposes is counted under an empty `tool`), outcomes and reasons
//! are toolgate's own reason ids, and no label names a principal, an agent or a session.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::audit::DecisionRecord;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `tools/call` or `tools/list`.
    kind: String,
    tool: String,
    upstream: String,
    /// `allow`, `deny`, `escalate` or `error`.
    decision: String,
    /// The reason id (`allowed`, `policy_denied`, `unknown_tool`, `upstream_timeout`, …).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    /// `authenticate`, `authorize`, `upstream`, `redact` or `record`.
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BundleLabels {
    version: String,
    evaluator: String,
}

/// What the gateway reports to Prometheus.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    steps: Family<StepLabels, Histogram>,
    auth_refusals: Family<ReasonLabels, Counter>,
    revoked_presented: Counter,
    escalation_attempts: Counter,
    upstream_up: Family<UpstreamLabels, Gauge>,
    upstream_reconnects: Family<UpstreamLabels, Counter>,
    upstream_tools: Family<UpstreamLabels, Gauge>,
    bundle: Family<BundleLabels, Gauge>,
    reload_failures: Counter,
    quarantined: Gauge,
    sessions: Gauge,
}

/// What is read from the gateway's state when scraped.
pub struct Snapshot<'a> {
    /// `(upstream, ready, reconnects, tools)`.
    pub upstreams: Vec<(&'a str, bool, u64, usize)>,
    pub bundle_version: &'a str,
    pub evaluator: &'a str,
    pub reload_failures: u64,
    pub quarantined: usize,
    pub sessions: usize,
}

/// Registers `metric` under `name` and hands it back.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

fn step_histogram() -> Histogram {
    // 10 µs to about 2.6 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("toolgate");
        let r = &mut registry;
        Self {
            decisions: registered(
                r,
                "decisions",
                "Decisions made, by request kind, tool, upstream, decision and reason id",
                Family::default(),
            ),
            steps: registered(
                r,
                "step_duration_seconds",
                "Time spent in each pipeline step",
                Family::new_with_constructor(step_histogram as fn() -> Histogram),
            ),
            auth_refusals: registered(
                r,
                "auth_refusals",
                "Requests refused at authentication, by reason id",
                Family::default(),
            ),
            revoked_presented: registered(
                r,
                "revoked_credentials_presented",
                "Revoked credentials presented",
                Counter::default(),
            ),
            escalation_attempts: registered(
                r,
                "escalation_attempts",
                "Credentials that verified but asked for more than they may (delegation lineage, binding, scope)",
                Counter::default(),
            ),
            upstream_up: registered(
                r,
                "upstream_up",
                "1 when the upstream session is ready",
                Family::default(),
            ),
            upstream_reconnects: registered(
                r,
                "upstream_reconnects",
                "Reconnections to the upstream",
                Family::default(),
            ),
            upstream_tools: registered(
                r,
                "upstream_tools",
                "Tools the upstream exposes",
                Family::default(),
            ),
            bundle: registered(
                r,
                "policy_bundle_info",
                "The policy bundle in force (value 1)",
                Family::default(),
            ),
            reload_failures: registered(
                r,
                "policy_reload_failures",
                "Policy reloads refused (the previous bundle stayed in force)",
                Counter::default(),
            ),
            quarantined: registered(
                r,
                "quarantined_tools",
                "Tools whose definition awaits an admin's approval",
                Gauge::default(),
            ),
            sessions: registered(r, "open_sessions", "Open MCP sessions", Gauge::default()),
            registry,
        }
    }

    /// Counts a decision from its record, with the time each step took.
    pub fn decided(&self, record: &DecisionRecord) {
        // A tool name is a label only when it resolved to an exposed tool (a caller can send any name).
        let tool = match &record.upstream {
            Some(_) => record.tool.clone().unwrap_or_default(),
            None => String::new(),
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                kind: record.kind.clone(),
                tool,
                upstream: record.upstream.clone().unwrap_or_default(),
                decision: record.decision.clone(),
                outcome: record.outcome.clone(),
            })
            .inc();
        let latency = &record.latency;
        for (step, us) in [
            ("authorize", latency.authorize_us),
            ("upstream", latency.upstream_us),
            ("redact", latency.redact_us),
        ] {
            if let Some(us) = us {
                self.step(step, Duration::from_micros(us));
            }
        }
    }

    pub fn step(&self, step: &str, took: Duration) {
        self.steps
            .get_or_create(&StepLabels {
                step: step.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a refusal at authentication.
    pub fn refused(&self, reason: &str, revoked: bool, escalation: bool) {
        self.auth_refusals
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
        if revoked {
            self.revoked_presented.inc();
        }
        if escalation {
            self.escalation_attempts.inc();
        }
    }

    /// The text exposition, with the gauges read from `now`.
    pub fn render(&self, now: &Snapshot<'_>) -> String {
        self.upstream_up.clear();
        self.upstream_tools.clear();
        for (name, ready, reconnects, tools) in &now.upstreams {
            let labels = UpstreamLabels {
                upstream: name.to_string(),
            };
            self.upstream_up
                .get_or_create(&labels)
                .set(i64::from(*ready));
            self.upstream_tools
                .get_or_create(&labels)
                .set(i64::try_from(*tools).unwrap_or(i64::MAX));
            let counter = self.upstream_reconnects.get_or_create(&labels);
            counter.inc_by(reconnects.saturating_sub(counter.get()));
        }
        self.bundle.clear();
        self.bundle
            .get_or_create(&BundleLabels {
                version: now.bundle_version.to_string(),
                evaluator: now.evaluator.to_string(),
            })
            .set(1);
        self.reload_failures.inc_by(
            now.reload_failures
                .saturating_sub(self.reload_failures.get()),
        );
        self.quarantined
            .set(i64::try_from(now.quarantined).unwrap_or(i64::MAX));
        self.sessions
            .set(i64::try_from(now.sessions).unwrap_or(i64::MAX));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
