//! SQL facts against ground truth. Statements are generated (and mutated) over the quickstart's schema; each one's
//! facts are compared with what executing it on a copy of a sample database really does:
//! - writes: a statement whose facts say read-only changes nothing, whole text run as an upstream would run it;
//! - reads: the statement's answer does not change when every column and table its facts do not name is
//!   perturbed (if it did, the statement read something the facts missed).
//!
//! Cases: `PROPTEST_CASES` (default 256 here; CI keeps the default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use rusqlite::Connection;
use toolgate::manifest::{ArgumentKind, Manifests};
use toolgate::sql::{Analysis, SqlDatabase};

const SCHEMA: &str = include_str!("../tool-manifests/sql.schema.sql");

const DATA: &str = "
INSERT INTO employees VALUES ('E1','Ada','ada@example.com','eng','111-11-1111'),
  ('E2','Bob','bob@example.com','eng','222-22-2222'), ('E3','Cy','cy@example.com','hr','333-33-3333');
INSERT INTO salaries VALUES ('E1',100,'USD'),('E2',200,'EUR'),('E3',300,'USD');
INSERT INTO projects (name, owner_id, status) VALUES ('Alpha','E1','active'),('Beta','E2','done'),('Ada','E3','active');
INSERT INTO customers (name, email, country) VALUES ('Acme','ada@example.com','US'),('Bob','b@x.example','DE'),
  ('Cy','cy@example.com','US');
";

const TABLES: &[(&str, &[&str])] = &[
    (
        "employees",
        &["id", "name", "email", "department", "national_id"],
    ),
    ("salaries", &["employee_id", "amount", "currency"]),
    ("projects", &["id", "name", "owner_id", "status"]),
    ("customers", &["id", "name", "email", "country"]),
];

fn company() -> Arc<SqlDatabase> {
    static DB: std::sync::OnceLock<Arc<SqlDatabase>> = std::sync::OnceLock::new();
    Arc::clone(DB.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
        let manifests = Manifests::load_dir(&dir).unwrap();
        match manifests.get("sql", "query").arguments.get("sql") {
            Some(ArgumentKind::Sql { compiled, .. }) => compiled.database(),
            other => panic!("{other:?}"),
        }
    }))
}

fn sample() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(DATA).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn
}

/// Everything in the database, schema included.
fn snapshot(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name || ':' || ifnull(sql, '') FROM sqlite_master ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    out.append(&mut tables);
    for (table, _) in TABLES {
        if let Ok(rows) = rows(conn, &format!("SELECT * FROM {table} ORDER BY rowid")) {
            out.extend(rows);
        }
    }
    out
}

/// The rows of the text's first statement, each as text.
fn rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    use rusqlite::fallible_iterator::FallibleIterator;
    let mut batch = rusqlite::Batch::new(conn, sql);
    let Some(mut statement) = batch.next()? else {
        return Ok(Vec::new());
    };
    let n = statement.column_count();
    let mut out = Vec::new();
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next()? {
        let values: Vec<rusqlite::types::Value> =
            (0..n).map(|i| row.get(i)).collect::<Result<_, _>>()?;
        out.push(format!("{values:?}"));
        if out.len() > 10_000 {
            break;
        }
    }
    Ok(out)
}

/// Changes every column the facts do not name, and empties every table they do not name.
fn perturb(conn: &Connection, facts: &Analysis) {
    for (table, columns) in TABLES {
        if !facts.tables_read.contains(*table) {
            conn.execute_batch(&format!("DELETE FROM {table}")).unwrap();
            continue;
        }
        for column in *columns {
            let named = facts
                .columns
                .iter()
                .any(|c| c.table == *table && c.column == *column);
            let rowid = *column == "id"
                && facts
                    .columns
                    .iter()
                    .any(|c| c.table == *table && c.column == "rowid");
            if !named && !rowid {
                conn.execute_batch(&format!(
                    "UPDATE {table} SET {column} = CASE typeof({column}) WHEN 'integer' THEN {column} + 7919 \
                     WHEN 'text' THEN {column} || '~' ELSE {column} END"
                ))
                .unwrap();
            }
        }
    }
}

/// The facts checked against execution; `Err` says how they disagree.
fn check(sql: &str) -> Result<(), String> {
    let db = company();
    let facts = db.analyse(sql);
    // Deterministic: the same text, the same facts.
    if db.analyse(sql) != facts {
        return Err("facts differ between two analyses".into());
    }
    if !facts.read_only {
        return Ok(());
    }
    // Writes: the whole text, run as an upstream runs it, changes nothing.
    let conn = sample();
    let before = snapshot(&conn);
    let _ = conn.execute_batch(sql);
    if snapshot(&conn) != before {
        return Err(format!(
            "read-only by its facts, but running it changed the database: {facts:?}"
        ));
    }
    // Reads: nothing the facts leave out can change the answer.
    let Ok(mut plain) = rows(&sample(), sql) else {
        return Ok(());
    };
    let perturbed = sample();
    perturb(&perturbed, &facts);
    let Ok(mut after) = rows(&perturbed, sql) else {
        return Err("the statement fails once unnamed data changes".into());
    };
    plain.sort();
    after.sort();
    if plain != after {
        return Err(format!(
            "the answer depends on data the facts do not name\nfacts: {facts:?}\nbefore: {plain:?}\nafter: {after:?}"
        ));
    }
    Ok(())
}

/// A statement built from a tape of choices.
struct Builder<'a> {
    tape: &'a [u8],
    at: usize,
}

impl Builder<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let c = self.tape.get(self.at).copied().unwrap_or(0) as usize;
        self.at += 1;
        c % n
    }

    fn one<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.pick(items.len())]
    }

    /// An identifier in one of the quoting styles SQLite accepts.
    fn ident(&mut self, name: &str) -> String {
        match self.pick(6) {
            0 => format!("\"{name}\""),
            1 => format!("[{name}]"),
            2 => format!("`{name}`"),
            3 => name.to_ascii_uppercase(),
            _ => name.to_string(),
        }
    }

    fn table(&mut self) -> (&'static str, &'static [&'static str]) {
        TABLES[self.pick(TABLES.len())]
    }

    fn column_expr(&mut self, alias: &str, columns: &[&str]) -> String {
        let column = self.one(columns);
        let c = format!("{alias}.{}", self.ident(column));
        match self.pick(9) {
            0 => format!("hex({c})"),
            1 => format!("{c} || 'x'"),
            2 => format!("substr({c}, 2)"),
            3 => format!("{c} AS al"),
            4 => "count(*)".into(),
            5 => format!("{alias}.*"),
            6 => "(SELECT max(amount) FROM salaries)".into(),
            7 => format!("json_object('k', {c})"),
            _ => c,
        }
    }

    fn select(&mut self, depth: usize) -> String {
        let (t1, cols1) = self.table();
        let mut from = format!("{} AS a", self.ident(t1));
        let mut columns: Vec<(&str, &[&str])> = vec![("a", cols1)];
        match self.pick(6) {
            0 => {
                let (t2, cols2) = self.table();
                let c1 = self.one(cols1);
                let c2 = self.one(cols2);
                from.push_str(&format!(" JOIN {} AS b ON a.{c1} = b.{c2}", self.ident(t2)));
                columns.push(("b", cols2));
            }
            1 => {
                let (t2, cols2) = self.table();
                let shared = self.one(&["id", "name", "email"]);
                from.push_str(&format!(" JOIN {} AS b USING ({shared})", self.ident(t2)));
                columns.push(("b", cols2));
            }
            2 => {
                let (t2, cols2) = self.table();
                from.push_str(&format!(" NATURAL JOIN {} AS b", self.ident(t2)));
                columns.push(("b", cols2));
            }
            3 => {
                let (t2, cols2) = self.table();
                from.push_str(&format!(", {} AS b", self.ident(t2)));
                columns.push(("b", cols2));
            }
            _ => {}
        }
        let n = 1 + self.pick(3);
        let items: Vec<String> = (0..n)
            .map(|_| {
                let (alias, cols) = columns[self.pick(columns.len())];
                self.column_expr(alias, cols)
            })
            .collect();
        let mut sql = format!("SELECT {} FROM {from}", items.join(", "));
        let (alias, cols) = columns[self.pick(columns.len())];
        let c = format!("{alias}.{}", self.one(cols));
        match self.pick(8) {
            0 => sql.push_str(&format!(" WHERE {c} = 'E1'")),
            1 => sql.push_str(&format!(" WHERE {c} LIKE 'a%'")),
            2 if depth < 2 => {
                let inner = self.select(depth + 1);
                sql.push_str(&format!(" WHERE {c} IN ({inner})"));
            }
            3 => sql.push_str(" WHERE al LIKE 'a%'"),
            4 if depth < 2 => {
                let inner = self.select(depth + 1);
                sql.push_str(&format!(" WHERE EXISTS ({inner})"));
            }
            5 => sql.push_str(" WHERE $a::b(c) IS NULL"),
            _ => {}
        }
        match self.pick(6) {
            0 => sql.push_str(" GROUP BY 1"),
            1 => sql.push_str(&format!(" ORDER BY {c}")),
            2 => sql.push_str(" ORDER BY 1"),
            3 => sql.push_str(" LIMIT 2"),
            _ => {}
        }
        sql
    }

    fn statement(&mut self) -> String {
        let (t, cols) = self.table();
        let c = self.one(cols);
        let mut sql = match self.pick(12) {
            0 => format!("INSERT INTO {} ({c}) VALUES ('x')", self.ident(t)),
            1 => format!("UPDATE {} SET {c} = {c}", self.ident(t)),
            2 => format!("DELETE FROM {} WHERE {c} = 'E1'", self.ident(t)),
            3 => {
                let inner = self.select(1);
                format!("WITH q AS ({inner}) SELECT * FROM q")
            }
            4 => {
                let inner = self.select(1);
                format!("WITH {t} AS (SELECT 1 AS {c}) {inner}")
            }
            5 => {
                let left = self.select(1);
                format!("{left} UNION SELECT {c} FROM {t}")
            }
            6 => format!("WITH d AS (SELECT 1) DELETE FROM {t}"),
            7 => format!("SELECT * FROM (SELECT {c} AS v FROM {t}) WHERE v > 'm'"),
            _ => self.select(0),
        };
        match self.pick(10) {
            0 => sql.push_str(&format!("; DELETE FROM {t}")),
            1 => sql = format!("/* c */ {sql} -- end"),
            2 => sql = sql.replace(' ', "\n\t"),
            3 => sql = sql.replace(' ', "/**/"),
            4 => sql.push_str(";;"),
            5 => sql.push_str(&format!(";\nUPDATE {t} SET {c} = NULL")),
            _ => {}
        }
        sql
    }
}

fn generated() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 48)
        .prop_map(|tape| Builder { tape: &tape, at: 0 }.statement())
}

/// A generated statement with bytes changed, dropped or inserted: mostly not SQL, sometimes other SQL.
fn mutated() -> impl Strategy<Value = String> {
    (
        generated(),
        proptest::collection::vec(
            (
                any::<usize>(),
                0u8..3,
                prop::sample::select(vec![
                    ' ', ';', '\'', '"', '(', ')', ',', '-', '/', '*', '[', ']', '`', '$', ':',
                    '@', '?', '1', 'x', '\n', '\0',
                ]),
            ),
            1..4,
        ),
    )
        .prop_map(|(sql, edits)| {
            let mut chars: Vec<char> = sql.chars().collect();
            for (at, op, c) in edits {
                if chars.is_empty() {
                    chars.push(c);
                    continue;
                }
                let i = at % chars.len();
                match op {
                    0 => chars[i] = c,
                    1 => {
                        chars.remove(i);
                    }
                    _ => chars.insert(i, c),
                }
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_statements_agree_with_execution(sql in generated()) {
        if let Err(why) = check(&sql) {
            prop_assert!(false, "{sql}\n{why}");
        }
    }

    #[test]
    fn mutated_statements_agree_with_execution(sql in mutated()) {
        if let Err(why) = check(&sql) {
            prop_assert!(false, "{sql:?}\n{why}");
        }
    }

    /// Fuzz: any text at all is analysed without a panic or a hang, and read-only facts hold up.
    #[test]
    fn any_text_is_analysed_safely(sql in "(?s).{0,200}") {
        if let Err(why) = check(&sql) {
            prop_assert!(false, "{sql:?}\n{why}");
        }
    }
}

#[test]
fn the_generator_covers_every_kind() {
    let mut kinds = BTreeSet::new();
    let mut read_only = 0;
    for seed in 0..600u32 {
        let tape: Vec<u8> = (0..48u32)
            .map(|i| (seed.wrapping_mul(2_654_435_761).rotate_left(i) ^ i) as u8)
            .collect();
        let sql = Builder { tape: &tape, at: 0 }.statement();
        let facts = company().analyse(&sql);
        kinds.extend(facts.kinds.iter().cloned());
        read_only += usize::from(facts.read_only);
        check(&sql).unwrap_or_else(|why| panic!("{sql}\n{why}"));
    }
    for kind in ["select", "insert", "update", "delete"] {
        assert!(kinds.contains(kind), "{kinds:?}");
    }
    assert!(read_only > 100, "{read_only}");
}
