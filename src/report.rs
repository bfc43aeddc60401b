//! Access reports for compliance, built from decision records: per tool, per agent (the non-human identity
//! inventory) and per principal, as JSON, CSV or one self-contained HTML file.

pub mod chart;
mod csv;
mod html;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::audit::{DecisionRecord, RecordFilter, Records};
use crate::identity::Inventory;

/// The period and tool a report covers.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    pub tool: Option<String>,
}

/// One tool's accesses.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolReport {
    pub tool: String,
    pub upstream: Option<String>,
    pub calls: u64,
    pub allowed: u64,
    pub denied: u64,
    pub escalated: u64,
    /// Calls that failed: the gateway could not decide or record, or the upstream failed.
    pub errors: u64,
    pub distinct_principals: usize,
    pub distinct_agents: usize,
    /// Most frequent refusal reasons, most frequent first.
    pub top_denial_reasons: Vec<(String, u64)>,
    /// Values masked in results, by class.
    pub redactions_by_class: BTreeMap<String, u64>,
    /// Reads of classified columns (`confidential` and above) by SQL arguments, per `table.column`, from the
    /// facts each decision used.
    pub column_reads: BTreeMap<String, ColumnReads>,
    pub first_access_ms: Option<i64>,
    pub last_access_ms: Option<i64>,
}

/// How often calls asked to read one classified column, and what was decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnReads {
    pub class: String,
    pub allowed: u64,
    pub denied: u64,
}

/// One agent's activity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentReport {
    pub agent: String,
    pub owner: Option<String>,
    pub registered: bool,
    pub calls: u64,
    pub tools_used: Vec<String>,
    pub last_activity_ms: Option<i64>,
    /// Tools within its registered scope it never called in the period: least-privilege hints.
    pub unused_tools_in_scope: Vec<String>,
    pub active: bool,
}

/// Which tools a person reached, through which agents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrincipalReport {
    /// `issuer/subject`.
    pub principal: String,
    pub tools: Vec<PrincipalTool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrincipalTool {
    pub tool: String,
    pub agents: Vec<String>,
    pub calls: u64,
    pub allowed: u64,
    pub denied: u64,
}

/// The whole report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessReport {
    pub generated_at_ms: i64,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub tool_filter: Option<String>,
    pub records: u64,
    pub tools: Vec<ToolReport>,
    pub agents: Vec<AgentReport>,
    pub principals: Vec<PrincipalReport>,
    /// Refused credentials in the period, by reason (aggregated refusals count as many).
    pub authentication_refusals: BTreeMap<String, u64>,
}

/// The row of calls to tools that do not exist (or that the caller may not see): their names are not rows.
pub const UNKNOWN_TOOLS: &str = "(unknown tools)";
/// The row of requests on resources and prompts that were not known to the caller (hidden or missing).
pub const UNKNOWN_ITEMS: &str = "(unknown resources and prompts)";

/// The row a request on one protected item is counted in: a tool by its exposed name, a resource by its exposed
/// URI, a prompt as `prompt:<name>`, a completion as `completion:<prompt or template>`; `None` for other records.
fn row_of(kind: &str, name: &str) -> Option<String> {
    match kind {
        "tools/call" | "resources/read" | "resources/subscribe" => Some(name.to_string()),
        "prompts/get" => Some(format!("prompt:{name}")),
        "completion/complete" => Some(format!("completion:{name}")),
        _ => None,
    }
}

/// Why a report cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Inventory(#[from] crate::identity::InventoryError),
    #[error("cannot write CSV: {0}")]
    Csv(String),
}

/// Builds a report from the records in `store`. `inventory` names the agents (owners, scopes) and `known_tools`
/// is the tool universe for least-privilege hints.
pub fn build(
    store: &mut Records,
    query: &ReportQuery,
    inventory: Option<&Inventory>,
    known_tools: &[String],
) -> Result<AccessReport, ReportError> {
    let mut report = AccessReport {
        generated_at_ms: crate::clock::now_ms(),
        since_ms: query.since,
        until_ms: query.until,
        tool_filter: query.tool.clone(),
        ..AccessReport::default()
    };
    let mut tools: BTreeMap<String, ToolAccumulator> = BTreeMap::new();
    let mut agents: BTreeMap<String, (AgentReport, BTreeSet<String>)> = BTreeMap::new();
    // principal → tool → (agents, calls, allowed, denied)
    let mut principals: BTreeMap<String, BTreeMap<String, PrincipalAccumulator>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.query(&RecordFilter {
            since: query.since,
            until: query.until,
            after: Some(after),
            limit: Some(10_000),
            ..RecordFilter::default()
        })?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for stored in page {
            let record = stored.record;
            if record.kind == "authentication" {
                *report
                    .authentication_refusals
                    .entry(record.outcome.clone())
                    .or_insert(0) += record.count;
                report.records += 1;
                continue;
            }
            let Some(tool) = record
                .tool
                .as_deref()
                .and_then(|name| row_of(&record.kind, name))
            else {
                continue;
            };
            // A name no catalog had is the caller's word: all such requests share one row.
            let tool = match record.outcome.as_str() {
                "unknown_tool" => UNKNOWN_TOOLS.to_string(),
                "unknown_item" => UNKNOWN_ITEMS.to_string(),
                _ => tool,
            };
            if query.tool.as_ref().is_some_and(|t| *t != tool) {
                continue;
            }
            report.records += 1;
            add_call(&mut tools, &record, &tool);
            if let Some(agent) = &record.agent {
                let (entry, used) = agents.entry(agent.clone()).or_default();
                entry.calls += 1;
                entry.last_activity_ms = entry.last_activity_ms.max(Some(record.time_ms));
                used.insert(tool.clone());
            }
            if let Some(principal) = crate::audit::principal_key(&record) {
                let row = principals
                    .entry(principal)
                    .or_default()
                    .entry(tool.clone())
                    .or_default();
                row.0.extend(record.chain.iter().cloned());
                row.1 += 1;
                match record.decision.as_str() {
                    "allow" => row.2 += 1,
                    "deny" => row.3 += 1,
                    _ => {}
                }
            }
        }
    }
    report.tools = tools
        .into_values()
        .map(|(mut t, principals, agents, reasons)| {
            t.distinct_principals = principals.len();
            t.distinct_agents = agents.len();
            let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            reasons.truncate(5);
            t.top_denial_reasons = reasons;
            t
        })
        .collect();
    // Every registered agent appears, active or not.
    if let Some(inventory) = inventory {
        for agent in inventory.agents() {
            agents.entry(agent.id.clone()).or_default();
        }
    }
    report.agents = agents
        .into_iter()
        .map(|(id, (mut a, used))| {
            a.agent.clone_from(&id);
            let registered = inventory.and_then(|i| i.get(&id));
            a.registered = registered.is_some();
            a.owner = registered.map(|r| r.spec.owner.clone());
            a.unused_tools_in_scope = registered
                .map(|r| r.unused_tools(known_tools, &used))
                .unwrap_or_default();
            a.tools_used = used.into_iter().collect();
            a.active = a.calls > 0;
            a
        })
        .collect();
    report.principals = principals
        .into_iter()
        .map(|(principal, tools)| PrincipalReport {
            principal,
            tools: tools
                .into_iter()
                .map(|(tool, (agents, calls, allowed, denied))| PrincipalTool {
                    tool,
                    agents: agents.into_iter().collect(),
                    calls,
                    allowed,
                    denied,
                })
                .collect(),
        })
        .collect();
    Ok(report)
}

type PrincipalAccumulator = (BTreeSet<String>, u64, u64, u64);

/// A tool's report with its distinct principals and agents and its refusal reasons, while counting.
type ToolAccumulator = (
    ToolReport,
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeMap<String, u64>,
);

fn add_call(tools: &mut BTreeMap<String, ToolAccumulator>, record: &DecisionRecord, tool: &str) {
    let (entry, principals, agents, reasons) = tools.entry(tool.to_string()).or_default();
    entry.tool = tool.to_string();
    if entry.upstream.is_none() {
        entry.upstream.clone_from(&record.upstream);
    }
    entry.calls += 1;
    match record.decision.as_str() {
        "allow" => entry.allowed += 1,
        "deny" => entry.denied += 1,
        "escalate" => entry.escalated += 1,
        _ => {}
    }
    let upstream_failed = record
        .upstream_outcome
        .as_deref()
        .is_some_and(|o| o != "ok" && o != "tool_error");
    if record.decision == "error" || upstream_failed {
        entry.errors += 1;
    }
    if record.decision == "deny" {
        let reason = record
            .reasons
            .first()
            .cloned()
            .unwrap_or_else(|| record.outcome.clone());
        *reasons.entry(reason).or_insert(0) += 1;
    }
    if let Some(serde_json::Value::Object(by_class)) =
        record.redactions.as_ref().and_then(|r| r.get("by_class"))
    {
        for (class, count) in by_class {
            *entry.redactions_by_class.entry(class.clone()).or_insert(0) +=
                count.as_u64().unwrap_or(0);
        }
    }
    count_column_reads(entry, record);
    entry.first_access_ms = Some(
        entry
            .first_access_ms
            .map_or(record.time_ms, |t| t.min(record.time_ms)),
    );
    entry.last_access_ms = Some(
        entry
            .last_access_ms
            .map_or(record.time_ms, |t| t.max(record.time_ms)),
    );
    if let Some(p) = crate::audit::principal_key(record) {
        principals.insert(p);
    }
    if let Some(a) = &record.agent {
        agents.insert(a.clone());
    }
}

/// Counts the classified columns a call's SQL facts say it reads (each column once per call).
fn count_column_reads(entry: &mut ToolReport, record: &DecisionRecord) {
    let Some(serde_json::Value::Object(facts)) = &record.facts else {
        return;
    };
    let mut seen = BTreeSet::new();
    for fact in facts.values() {
        let Some(columns) = fact.get("columns").and_then(|c| c.as_array()) else {
            continue;
        };
        for read in columns {
            let text = |k: &str| read.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            let (table, column, class) = (text("table"), text("column"), text("class"));
            if column.is_empty() || !matches!(class, "confidential" | "restricted") {
                continue;
            }
            let key = format!("{table}.{column}");
            if !seen.insert(key.clone()) {
                continue;
            }
            let counts = entry.column_reads.entry(key).or_default();
            counts.class = class.to_string();
            if record.decision == "allow" {
                counts.allowed += 1;
            } else {
                counts.denied += 1;
            }
        }
    }
}

/// The report of the gateway configured by `config`, from its database, with its inventory and manifests. Blocks:
/// call it off the async runtime.
pub fn for_config(
    config: &crate::config::Config,
    query: &ReportQuery,
) -> Result<AccessReport, ReportError> {
    let mut store = Records::open(&config.storage)?;
    let inventory = match &config.auth {
        Some(auth) => Some(Inventory::load(&config.base.join(&auth.agents_file))?),
        None => None,
    };
    let known_tools: Vec<String> =
        match crate::manifest::Manifests::load_dir(&config.policy.manifests) {
            Ok(manifests) => manifests
                .tools()
                .map(|(u, t)| {
                    // The naming mode of the upstream, as the catalog applies it (upstreams registered at run
                    // time are not in the config file).
                    let configured = config.upstreams.iter().find(|c| c.name == u);
                    let prefix = configured
                        .and_then(|c| c.naming)
                        .unwrap_or(config.naming)
                        .prefixes(config.upstreams.len(), configured.is_none());
                    if prefix {
                        format!("{u}{}{t}", config.namespace_separator)
                    } else {
                        t.to_string()
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
    build(&mut store, query, inventory.as_ref(), &known_tools)
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(rfc3339).unwrap_or_default()
}

/// Unix milliseconds as RFC 3339 to the second (`2026-11-30T23:40:12Z`); none before 1970.
pub fn rfc3339(ms: i64) -> Option<String> {
    let ms = u64::try_from(ms).ok()?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    Some(humantime::format_rfc3339_seconds(at).to_string())
}

impl AccessReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One self-contained HTML file: inline styles and SVG charts, no scripts, no external resource.
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

#[cfg(test)]
mod tests;
