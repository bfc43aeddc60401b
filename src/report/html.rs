//! The HTML form of a report: one file, readable offline, with inline SVG charts. Every name, reason and argument
//! comes from untrusted callers or upstreams and is escaped; the page runs no script and loads nothing
//! (`Content-Security-Policy: default-src 'none'`, inline styles only).

use std::fmt::Write;

use super::{AccessReport, time};

fn esc(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:72rem}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccd;padding-bottom:.3rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #dde;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f2f4f8}td.n{text-align:right}.muted{color:#667}svg.chart{max-width:760px;font-size:12px}";

pub(super) fn render(report: &AccessReport) -> String {
    let mut page = String::new();
    let period = match (report.since_ms, report.until_ms) {
        (None, None) => "all recorded time".to_string(),
        (since, until) => format!(
            "{} to {}",
            if since.is_some() {
                time(since)
            } else {
                "the first record".into()
            },
            if until.is_some() {
                time(until)
            } else {
                "now".into()
            }
        ),
    };
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>toolgate access report</title><style>{STYLE}</style></head><body>\
<h1>Tool access report</h1><p class=\"muted\">Period: {}. Generated {}. {} decision records{}.</p>",
        esc(&period),
        esc(&time(Some(report.generated_at_ms))),
        report.records,
        report
            .tool_filter
            .as_ref()
            .map(|t| format!(" for tool {}", esc(t)))
            .unwrap_or_default()
    );
    page.push_str("<p>Every call an AI agent made through toolgate is recorded with who asked (the person), which agent acted, the decision and why. <b>Allowed</b> calls reached the tool; <b>denied</b> ones were refused by policy; <b>escalated</b> ones waited for a human approver; <b>errors</b> are calls that failed.</p>");

    page.push_str("<h2>Calls per tool</h2>");
    let rows: Vec<(String, [u64; 4])> = report
        .tools
        .iter()
        .map(|t| (t.tool.clone(), [t.allowed, t.denied, t.escalated, t.errors]))
        .collect();
    page.push_str(&super::chart::bars("Calls per tool by outcome", &rows));
    page.push_str("<table><tr><th>Tool</th><th>Calls</th><th>Allowed</th><th>Denied</th><th>Escalated</th><th>Errors</th><th>People</th><th>Agents</th><th>Top refusal reasons</th><th>First access</th><th>Last access</th></tr>");
    for t in &report.tools {
        let reasons: Vec<String> = t
            .top_denial_reasons
            .iter()
            .map(|(r, n)| format!("{} ({n})", esc(r)))
            .collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.tool),
            t.calls,
            t.allowed,
            t.denied,
            t.escalated,
            t.errors,
            t.distinct_principals,
            t.distinct_agents,
            reasons.join("<br>"),
            esc(&time(t.first_access_ms)),
            esc(&time(t.last_access_ms))
        );
    }
    page.push_str("</table>");

    if report.tools.iter().any(|t| !t.column_reads.is_empty()) {
        page.push_str("<h2>Classified columns read by SQL</h2><table><tr><th>Tool</th><th>Column</th><th>Class</th><th>Allowed</th><th>Refused</th></tr>");
        for t in &report.tools {
            for (column, reads) in &t.column_reads {
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&t.tool),
                    esc(column),
                    esc(&reads.class),
                    reads.allowed,
                    reads.denied
                );
            }
        }
        page.push_str("</table>");
    }

    page.push_str("<h2>Agents (non-human identities)</h2>");
    let rows: Vec<(String, [u64; 4])> = report
        .agents
        .iter()
        .map(|a| (a.agent.clone(), [a.calls, 0, 0, 0]))
        .collect();
    page.push_str(&super::chart::bars("Calls per agent", &rows));
    page.push_str("<table><tr><th>Agent</th><th>Accountable owner</th><th>Calls</th><th>Tools used</th><th>Last activity</th><th>In scope but never used (consider removing)</th></tr>");
    for a in &report.agents {
        let _ = write!(
            page,
            "<tr><td>{}{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.agent),
            if a.registered {
                ""
            } else {
                " <span class=\"muted\">(not registered)</span>"
            },
            esc(a.owner.as_deref().unwrap_or("")),
            a.calls,
            esc(&a.tools_used.join(", ")),
            if a.active {
                esc(&time(a.last_activity_ms))
            } else {
                "<span class=\"muted\">no activity in the period</span>".into()
            },
            esc(&a.unused_tools_in_scope.join(", "))
        );
    }
    page.push_str("</table>");

    page.push_str("<h2>People: which tools, through which agents</h2><table><tr><th>Person</th><th>Tool</th><th>Through agents</th><th>Calls</th><th>Allowed</th><th>Denied</th></tr>");
    for p in &report.principals {
        for t in &p.tools {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&p.principal),
                esc(&t.tool),
                esc(&t.agents.join(" → ")),
                t.calls,
                t.allowed,
                t.denied
            );
        }
    }
    page.push_str("</table>");

    page.push_str("<h2>Refused credentials</h2><table><tr><th>Reason</th><th>Requests</th></tr>");
    for (reason, count) in &report.authentication_refusals {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{count}</td></tr>",
            esc(reason)
        );
    }
    page.push_str("</table></body></html>\n");
    page
}
