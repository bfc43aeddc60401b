//! Decision records (searched newest first, one opened with its seal checked, the chains verified on demand) and
//! the access report with its exports.

use askama::Template;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Deserialize;

use super::forms::{self, given};
use super::session::Signed;
use super::{Frame, answered, done, plain, render, render_with};
use crate::admin::AdminState;
use crate::audit::{DecisionRecord, RecordFilter, Records, StoredRecord, principal_key};
use crate::report::chart::{self, Counts};
use crate::report::{AccessReport, ReportQuery};

/// Records per page.
const PAGE: u32 = 50;

/// Said when the reads of every record already running keep a request waiting too long.
pub(super) const BUSY: &str = "the console is busy reading decision records; try again shortly";

/// The search form, as sent and as shown again.
#[derive(Debug, Default, Deserialize)]
pub(in crate::admin) struct Search {
    since: Option<String>,
    until: Option<String>,
    tool: Option<String>,
    person: Option<String>,
    agent: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    before: Option<i64>,
}

/// One record in the list.
struct Row {
    position: i64,
    time: String,
    kind: String,
    tool: String,
    person: String,
    agent: String,
    decision: String,
    outcome: String,
    reasons: String,
}

impl Row {
    fn of(stored: &StoredRecord) -> Self {
        let r = &stored.record;
        Self {
            position: stored.position,
            time: forms::time(r.time_ms),
            kind: r.kind.clone(),
            tool: r.tool.clone().unwrap_or_default(),
            person: principal_key(r).unwrap_or_default(),
            agent: r.agent.clone().unwrap_or_default(),
            decision: r.decision.clone(),
            outcome: r.outcome.clone(),
            reasons: r.reasons.join("; "),
        }
    }
}

#[derive(Template)]
#[template(path = "decisions.html")]
struct Decisions {
    frame: Frame,
    form: Search,
    since: String,
    until: String,
    rows: Vec<Row>,
    /// The query string of the next (older) page, when there is one.
    older: Option<String>,
    error: Option<String>,
}

pub(in crate::admin) async fn search(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    Query(form): Query<Search>,
) -> Response {
    let frame = Frame::new(&state, &signed, "/console/decisions", "Decisions".into());
    let times = forms::parse_time(form.since.as_deref())
        .and_then(|s| Ok((s, forms::parse_time(form.until.as_deref())?)));
    let (since, until) = match times {
        Ok(times) => times,
        Err(error) => {
            let page = Decisions {
                frame,
                since: form.since.clone().unwrap_or_default(),
                until: form.until.clone().unwrap_or_default(),
                form,
                rows: Vec::new(),
                older: None,
                error: Some(error),
            };
            return render_with(StatusCode::BAD_REQUEST, &page);
        }
    };
    let filter = RecordFilter {
        tool: given(&form.tool),
        principal: given(&form.person),
        agent: given(&form.agent),
        decision: given(&form.decision),
        reason: given(&form.reason),
        since,
        until,
        order: Some(crate::audit::Order::Newest),
        before: form.before,
        limit: Some(PAGE + 1),
        ..RecordFilter::default()
    };
    if filter.reason_too_long() {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "the reason to look for is too long (at most {} characters)",
                RecordFilter::MAX_REASON
            ),
        );
    }
    let Some(_turn) = state.console.heavy.turn().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, BUSY);
    };
    let storage = state.gateway.config.storage.clone();
    let found = tokio::task::spawn_blocking(move || Records::open(&storage)?.query(&filter)).await;
    let (rows, older, error) = match found {
        Ok(Ok(records)) => {
            let more = records.len() > PAGE as usize;
            let rows: Vec<Row> = records.iter().take(PAGE as usize).map(Row::of).collect();
            let older = more
                .then(|| rows.last().map(|r| older_page(&form, r.position)))
                .flatten();
            (rows, older, None)
        }
        Ok(Err(e)) => {
            tracing::error!("console decisions: {e}");
            (
                Vec::new(),
                None,
                Some("The decision records cannot be read right now (see the gateway log).".into()),
            )
        }
        Err(e) => {
            tracing::error!("console decisions: {e}");
            (
                Vec::new(),
                None,
                Some("The search failed (see the gateway log).".into()),
            )
        }
    };
    render(&Decisions {
        frame,
        since: forms::field_time(since),
        until: forms::field_time(until),
        form,
        rows,
        older,
        error,
    })
}

/// The query string of the page after `position` with the same filters.
fn older_page(form: &Search, position: i64) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("since", &form.since),
        ("until", &form.until),
        ("tool", &form.tool),
        ("person", &form.person),
        ("agent", &form.agent),
        ("decision", &form.decision),
        ("reason", &form.reason),
    ] {
        if let Some(value) = given(value) {
            query.append_pair(name, &value);
        }
    }
    query.append_pair("before", &position.to_string());
    query.finish()
}

#[derive(Template)]
#[template(path = "decision.html")]
struct Detail {
    frame: Frame,
    position: i64,
    chain: String,
    seq: i64,
    record: DecisionRecord,
    time: String,
    person: String,
    facts: String,
    obligations: String,
    redactions: String,
    arguments: String,
    /// The viewer's clearance, which arguments and facts are shown at.
    clearance: String,
    /// Whether the record's seal holds, in words.
    seal: String,
    sealed: bool,
}

pub(in crate::admin) async fn detail(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    UrlPath(position): UrlPath<i64>,
) -> Response {
    let config = std::sync::Arc::clone(&state.gateway.config);
    let found = tokio::task::spawn_blocking(move || {
        let row = Records::open(&config.storage)?.row_at(position)?;
        let key = crate::audit::ChainKey::load(&config.audit.key_file)
            .map_err(|e| crate::store::StoreError::new(e.to_string()))?;
        Ok::<_, crate::store::StoreError>(row.map(|(chain, row, previous)| {
            let holds = crate::audit::verify::seal_holds(&key, &row, &previous);
            (chain, row, holds)
        }))
    })
    .await;
    let (chain, row, holds) = match found {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            return done(
                &state,
                &signed,
                "/console/decisions",
                format!("No record at {position}."),
            );
        }
        Ok(Err(e)) => {
            tracing::error!("console decision {position}: {e}");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the decision records cannot be read right now",
            );
        }
        Err(e) => {
            tracing::error!("console decision {position}: {e}");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the record could not be read",
            );
        }
    };
    let Ok(mut record) = serde_json::from_str::<DecisionRecord>(&row.body) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the record's content is not readable",
        );
    };
    let seal = if holds {
        format!(
            "Seal verified: record {} of its chain carries the MAC its content and the record before it give.",
            row.seq
        )
    } else {
        format!(
            "Seal does not verify: record {} was altered, or the record before it was (run `toolgate audit verify`).",
            row.seq
        )
    };
    // Arguments and facts as the viewer's clearance may see them, as held calls are shown.
    crate::admin::records::to_clearance(
        &state,
        signed.admin.clearance,
        [record.arguments.as_mut(), record.facts.as_mut()],
    );
    render(&Detail {
        clearance: format!("{:?}", signed.admin.clearance).to_lowercase(),
        frame: Frame::new(
            &state,
            &signed,
            "/console/decisions",
            "Decision record".into(),
        ),
        position,
        chain: chain.unwrap_or_else(|| "(this gateway's)".into()),
        seq: row.seq,
        time: forms::time(record.time_ms),
        person: principal_key(&record).unwrap_or_default(),
        facts: forms::pretty(record.facts.as_ref()),
        obligations: forms::pretty(record.obligations.as_ref()),
        redactions: forms::pretty(record.redactions.as_ref()),
        arguments: forms::pretty(record.arguments.as_ref()),
        record,
        seal,
        sealed: holds,
    })
}

/// Verifies every chain now (link by link; the tail after the last published head cannot be checked against
/// cut-off while the gateway writes it) and shows what was found.
pub(in crate::admin) async fn verify(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
) -> Response {
    // One verification at a time: each reads every chain.
    let Ok(_running) = state.console.verifying.try_lock() else {
        return answered(
            &state,
            &signed,
            "/console/decisions",
            "A verification of the chains is running already; try again when it is done.".into(),
            StatusCode::TOO_MANY_REQUESTS,
        );
    };
    let config = std::sync::Arc::clone(&state.gateway.config);
    let outcome = tokio::task::spawn_blocking(move || {
        let key =
            crate::audit::ChainKey::load(&config.audit.key_file).map_err(|e| e.to_string())?;
        let heads: Vec<_> = crate::audit::ChainHead::read(&config.audit.head_file)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        crate::audit::verify::verify(&config.storage, &key, &heads, false)
            .map_err(|e| e.to_string())
    })
    .await;
    let (message, status) = match outcome {
        Ok(Ok(reports)) => {
            let problems: Vec<String> = reports
                .iter()
                .filter_map(|c| {
                    let name = c.chain.as_deref().unwrap_or("this gateway's");
                    c.report
                        .problem
                        .as_ref()
                        .map(|p| format!("chain {name}: {p}"))
                })
                .collect();
            let records: usize = reports.iter().map(|c| c.report.records).sum();
            let message = if problems.is_empty() {
                format!(
                    "Chain verified: {records} records in {} chain(s), every link checked.",
                    reports.len()
                )
            } else {
                format!("Chain verification failed: {}", problems.join("; "))
            };
            (message, StatusCode::OK)
        }
        Ok(Err(e)) => {
            tracing::error!("console chain verification: {e}");
            (
                "The chains could not be verified right now (see the gateway log).".into(),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
        Err(e) => {
            tracing::error!("console chain verification: {e}");
            (
                "The chains could not be verified (see the gateway log).".into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    };
    answered(&state, &signed, "/console/decisions", message, status)
}

/// The report's filters, as sent and as shown again.
#[derive(Debug, Default, Deserialize)]
pub(in crate::admin) struct ReportForm {
    since: Option<String>,
    until: Option<String>,
    tool: Option<String>,
    format: Option<String>,
}

impl ReportForm {
    fn query(&self) -> Result<ReportQuery, String> {
        Ok(ReportQuery {
            since: forms::parse_time(self.since.as_deref())?,
            until: forms::parse_time(self.until.as_deref())?,
            tool: given(&self.tool),
        })
    }

    /// The export link of `format` for the same filters.
    fn export(&self, format: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("format", format);
        for (name, value) in [
            ("since", &self.since),
            ("until", &self.until),
            ("tool", &self.tool),
        ] {
            if let Some(value) = given(value) {
                query.append_pair(name, &value);
            }
        }
        format!("/console/reports/export?{}", query.finish())
    }
}

async fn build(state: &AdminState, query: ReportQuery) -> Result<AccessReport, String> {
    let Some(_turn) = state.console.heavy.turn().await else {
        return Err(BUSY.into());
    };
    let config = std::sync::Arc::clone(&state.gateway.config);
    match tokio::task::spawn_blocking(move || crate::report::for_config(&config, &query)).await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => {
            tracing::error!("console report: {e}");
            Err("The access report cannot be built right now (see the gateway log).".into())
        }
        Err(e) => {
            tracing::error!("console report: {e}");
            Err("The access report failed (see the gateway log).".into())
        }
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct Report {
    frame: Frame,
    since: String,
    until: String,
    tool: String,
    report: AccessReport,
    generated: String,
    chart: String,
    exports: Vec<(&'static str, String)>,
    error: Option<String>,
}

pub(in crate::admin) async fn report(
    State(state): State<AdminState>,
    axum::Extension(signed): axum::Extension<Signed>,
    Query(form): Query<ReportForm>,
) -> Response {
    let frame = Frame::new(&state, &signed, "/console/reports", "Access report".into());
    let built = match form.query() {
        Ok(query) => build(&state, query).await,
        Err(e) => Err(e),
    };
    let (report, error) = match built {
        Ok(report) => (report, None),
        Err(e) => (AccessReport::default(), Some(e)),
    };
    let bars: Vec<(String, Counts)> = report
        .tools
        .iter()
        .map(|t| (t.tool.clone(), [t.allowed, t.denied, t.escalated, t.errors]))
        .collect();
    render(&Report {
        frame,
        since: form.since.clone().unwrap_or_default(),
        until: form.until.clone().unwrap_or_default(),
        tool: form.tool.clone().unwrap_or_default(),
        chart: chart::bars("Calls per tool by outcome", &bars),
        exports: vec![
            ("CSV", form.export("csv")),
            ("JSON", form.export("json")),
            ("HTML", form.export("html")),
        ],
        generated: forms::time(report.generated_at_ms),
        report,
        error,
    })
}

/// The report as a file: CSV, JSON or the self-contained HTML report.
pub(in crate::admin) async fn export(
    State(state): State<AdminState>,
    Query(form): Query<ReportForm>,
) -> Response {
    let query = match form.query() {
        Ok(q) => q,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e),
    };
    let report = match build(&state, query).await {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let (body, kind, extension) = match form.format.as_deref().unwrap_or("csv") {
        "json" => (report.to_json(), "application/json", "json"),
        "html" => (report.to_html(), "text/html; charset=utf-8", "html"),
        "csv" => match report.to_csv() {
            Ok(csv) => (csv, "text/csv; charset=utf-8", "csv"),
            Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        other => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("no export format `{other}` (csv, json, html)"),
            );
        }
    };
    let disposition = format!("attachment; filename=\"toolgate-access-report.{extension}\"");
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}
