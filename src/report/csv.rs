//! The access report as CSV: three tables (tools, agents, principals), each with a header row.

use super::{AccessReport, ReportError, time};

impl AccessReport {
    /// Three tables (tools, agents, principals), each with a header row, separated by an empty line.
    pub fn to_csv(&self) -> Result<String, ReportError> {
        let mut out = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        let mut row = |cells: Vec<String>| {
            out.write_record(cells.iter().map(|c| csv_cell(c)))
                .map_err(|e| ReportError::Csv(e.to_string()))
        };
        row(vec![
            "section".into(),
            "tool".into(),
            "upstream".into(),
            "calls".into(),
            "allowed".into(),
            "denied".into(),
            "escalated".into(),
            "errors".into(),
            "distinct_principals".into(),
            "distinct_agents".into(),
            "top_denial_reason".into(),
            "first_access".into(),
            "last_access".into(),
        ])?;
        for t in &self.tools {
            row(vec![
                "tool".into(),
                t.tool.clone(),
                t.upstream.clone().unwrap_or_default(),
                t.calls.to_string(),
                t.allowed.to_string(),
                t.denied.to_string(),
                t.escalated.to_string(),
                t.errors.to_string(),
                t.distinct_principals.to_string(),
                t.distinct_agents.to_string(),
                t.top_denial_reasons
                    .first()
                    .map(|r| r.0.clone())
                    .unwrap_or_default(),
                time(t.first_access_ms),
                time(t.last_access_ms),
            ])?;
        }
        row(vec![String::new()])?;
        row(vec![
            "section".into(),
            "tool".into(),
            "column".into(),
            "class".into(),
            "allowed".into(),
            "denied".into(),
        ])?;
        for t in &self.tools {
            for (column, reads) in &t.column_reads {
                row(vec![
                    "column".into(),
                    t.tool.clone(),
                    column.clone(),
                    reads.class.clone(),
                    reads.allowed.to_string(),
                    reads.denied.to_string(),
                ])?;
            }
        }
        row(vec![String::new()])?;
        row(vec![
            "section".into(),
            "agent".into(),
            "owner".into(),
            "calls".into(),
            "tools_used".into(),
            "last_activity".into(),
            "unused_tools_in_scope".into(),
            "active".into(),
        ])?;
        for a in &self.agents {
            row(vec![
                "agent".into(),
                a.agent.clone(),
                a.owner.clone().unwrap_or_default(),
                a.calls.to_string(),
                a.tools_used.join(" "),
                time(a.last_activity_ms),
                a.unused_tools_in_scope.join(" "),
                a.active.to_string(),
            ])?;
        }
        row(vec![String::new()])?;
        row(vec![
            "section".into(),
            "principal".into(),
            "tool".into(),
            "agents".into(),
            "calls".into(),
            "allowed".into(),
            "denied".into(),
        ])?;
        for p in &self.principals {
            for t in &p.tools {
                row(vec![
                    "principal".into(),
                    p.principal.clone(),
                    t.tool.clone(),
                    t.agents.join(" "),
                    t.calls.to_string(),
                    t.allowed.to_string(),
                    t.denied.to_string(),
                ])?;
            }
        }
        let bytes = out
            .into_inner()
            .map_err(|e| ReportError::Csv(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| ReportError::Csv(e.to_string()))
    }
}

/// A cell that a spreadsheet would run as a formula is made text.
pub(super) fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}
