//! SQL facts for a typical SELECT: SQLite's own prepare with the recording authorizer and the program read
//! (what toolgate does), against the sqlparser-based extractor it replaced, in the same run.
//!
//! `cargo bench --bench sql_facts`
#![allow(clippy::expect_used, clippy::panic)]

#[path = "support/sql_old.rs"]
mod old;

use criterion::{Criterion, criterion_group, criterion_main};
use toolgate::manifest::{ArgumentKind, Manifests};

const TYPICAL: &str = "SELECT p.name, p.status, e.name AS owner FROM projects p \
                       JOIN employees e ON e.id = p.owner_id WHERE p.status = 'active' ORDER BY p.name";

fn facts(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
    let manifests = Manifests::load_dir(&dir).expect("manifests");
    let Some(ArgumentKind::Sql { compiled, .. }) =
        manifests.get("sql", "query").arguments.get("sql")
    else {
        panic!("the quickstart's sql manifest declares no sql argument");
    };
    let database = compiled.database();
    assert!(database.analyse(TYPICAL).read_only);
    assert!(old::analyse(TYPICAL).read_only);
    let mut group = c.benchmark_group("sql_facts");
    group.bench_function("sqlite_prepare_authorizer_program", |b| {
        b.iter(|| database.analyse(std::hint::black_box(TYPICAL)))
    });
    group.bench_function("sqlparser_old", |b| {
        b.iter(|| old::analyse(std::hint::black_box(TYPICAL)))
    });
    group.finish();
}

criterion_group!(benches, facts);
criterion_main!(benches);
