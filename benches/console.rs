//! What the web console's pages cost with 100,000 decision records (SQLite): the newest page of records, filtered
//! searches (an indexed tool, a person and decision, a rare reason that scans), one record with its seal checked,
//! the overview's hour of decisions per minute, the agents page's tools used, the access report for a day and
//! for all time, and verifying the whole chain.
//!
//! `cargo bench --bench console` (seeding takes a few seconds). With `TOOLGATE_BENCH_KEEP=DIR` the seeded
//! database and its key are left in DIR, to serve with a gateway (`storage.path: DIR/toolgate.db`,
//! `audit.key_file: DIR/audit.key`) and time the pages themselves.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use toolgate::audit::{Audit, ChainKey, DecisionRecord, Order, RecordFilter, Records};
use toolgate::config::{AuditConfig, StorageConfig};
use toolgate::report::ReportQuery;

const RECORDS: i64 = 100_000;
const DAY_MS: i64 = 86_400_000;

/// A week of varied records, oldest first, ending now.
fn record(i: i64, now: i64) -> DecisionRecord {
    let tools = [
        "sql__query",
        "hr__lookup",
        "files__read_file",
        "files__write_file",
        "sql__list_tables",
    ];
    let people = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let agents = ["assistant", "summarizer", "nightly-report"];
    let k = usize::try_from(i).unwrap_or(0);
    let mut record = DecisionRecord::new("tools/call");
    record.time_ms = now - 7 * DAY_MS + i * (7 * DAY_MS / RECORDS);
    record.mode = Some("principal_context".into());
    record.issuer = Some("toolgate-dev".into());
    record.subject = Some(people[k % people.len()].into());
    record.principal = record.subject.clone();
    record.agent = Some(agents[k % agents.len()].into());
    record.chain = vec![agents[k % agents.len()].into()];
    record.tool = Some(tools[k % tools.len()].into());
    record.upstream = record
        .tool
        .as_deref()
        .and_then(|t| t.split("__").next())
        .map(str::to_string);
    record.arguments = Some(serde_json::json!({"sha256": format!("{i:064x}")}));
    let (decision, outcome, reason) = match k % 20 {
        0..=13 => ("allow", "allowed", None),
        14..=17 => (
            "deny",
            "policy_denied",
            Some("tool not in the agent's scope"),
        ),
        18 => (
            "escalate",
            "approval_required",
            Some("writes need an approver"),
        ),
        _ => ("error", "upstream_timeout", None),
    };
    record.decision = decision.into();
    record.outcome = outcome.into();
    record.reasons = reason.map(|r| vec![r.to_string()]).unwrap_or_default();
    if i == RECORDS / 2 {
        record.reasons = vec!["a reason given once".into()];
    }
    record.policy_version = Some("sha256:e82e70d794bd3a91".into());
    record.upstream_outcome = Some("ok".into());
    record
}

fn pages(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os("TOOLGATE_BENCH_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("dir");
    let storage = StorageConfig {
        path: dir.join("toolgate.db"),
        postgres: None,
    };
    let config = AuditConfig {
        key_file: dir.join("audit.key"),
        head_file: dir.join("audit.head"),
        ..AuditConfig::default()
    };
    let key = ChainKey::load_or_create(&config.key_file).expect("key");
    runtime.block_on(async {
        toolgate::store::Store::open(&storage).await.expect("store");
        let audit: Arc<Audit> = Audit::start(&storage, config).expect("audit");
        let now = toolgate::clock::now_ms();
        for i in 0..RECORDS {
            audit.append_detached(record(i, now));
        }
        audit.close().await;
    });
    let mut records = Records::open(&storage).expect("records");
    let newest = |filter: RecordFilter| RecordFilter {
        order: Some(Order::Newest),
        limit: Some(51),
        ..filter
    };
    let mut group = c.benchmark_group("console");
    group.sample_size(20);
    let searches = [
        ("newest_page", newest(RecordFilter::default())),
        (
            "by_tool",
            newest(RecordFilter {
                tool: Some("files__write_file".into()),
                ..RecordFilter::default()
            }),
        ),
        (
            "by_person_and_decision",
            newest(RecordFilter {
                principal: Some("toolgate-dev/carol".into()),
                decision: Some("escalate".into()),
                ..RecordFilter::default()
            }),
        ),
        (
            "by_rare_reason",
            newest(RecordFilter {
                reason: Some("given once".into()),
                ..RecordFilter::default()
            }),
        ),
    ];
    for (name, filter) in searches {
        let found = records.query(&filter).expect("query");
        assert!(!found.is_empty(), "{name} finds records");
        group.bench_function(name, |b| b.iter(|| records.query(&filter).expect("query")));
    }
    group.bench_function("one_record_with_its_seal", |b| {
        b.iter(|| {
            let (_, row, previous) = records.row_at(RECORDS / 2).expect("row").expect("found");
            assert!(toolgate::audit::verify::seal_holds(&key, &row, &previous));
        })
    });
    let hour_ago = toolgate::clock::now_ms() - 3_600_000;
    group.bench_function("decisions_per_minute_last_hour", |b| {
        b.iter(|| records.per_minute(hour_ago).expect("per minute"))
    });
    group.bench_function("tools_used_per_agent", |b| {
        b.iter(|| records.agent_usage().expect("agent usage"))
    });
    group.bench_function("agent_activity", |b| {
        b.iter(|| records.agent_activity().expect("agent activity"))
    });
    let day = ReportQuery {
        since: Some(toolgate::clock::now_ms() - DAY_MS),
        ..ReportQuery::default()
    };
    group.bench_function("report_last_day", |b| {
        b.iter(|| toolgate::report::build(&mut records, &day, None, &[]).expect("report"))
    });
    group.bench_function("report_all_time", |b| {
        b.iter(|| {
            toolgate::report::build(&mut records, &ReportQuery::default(), None, &[])
                .expect("report")
        })
    });
    group.sample_size(10);
    group.bench_function("verify_whole_chain", |b| {
        b.iter(|| {
            let reports =
                toolgate::audit::verify::verify(&storage, &key, &[], false).expect("verify");
            assert!(reports.iter().all(|r| r.report.problem.is_none()));
        })
    });
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
