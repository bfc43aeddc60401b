//! SQL facts against hostile statements: every statement kind, every quoting style SQLite accepts, schema
//! qualification, CTEs shadowing tables, subqueries, table-valued functions, pragmas, attach, comments and odd
//! whitespace, several statements, every bind-parameter form. Expected facts are written out per statement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use toolgate::manifest::{ArgumentKind, Manifests};
use toolgate::sql::{Analysis, SqlDatabase};

fn company() -> Arc<SqlDatabase> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tool-manifests");
    let manifests = Manifests::load_dir(&dir).unwrap();
    match manifests.get("sql", "query").arguments.get("sql") {
        Some(ArgumentKind::Sql { compiled, .. }) => compiled.database(),
        other => panic!("{other:?}"),
    }
}

/// What a statement must be found to do.
struct Expect {
    sql: &'static str,
    /// Prepared, one statement, nothing but reads.
    read_only: bool,
    /// Kinds, exactly (empty: not checked).
    kinds: &'static [&'static str],
    /// Tables read or written, exactly.
    tables: &'static [&'static str],
    /// Columns (`table.column`) that must be among those read.
    reads: &'static [&'static str],
}

const fn e(
    sql: &'static str,
    read_only: bool,
    kinds: &'static [&'static str],
    tables: &'static [&'static str],
    reads: &'static [&'static str],
) -> Expect {
    Expect {
        sql,
        read_only,
        kinds,
        tables,
        reads,
    }
}

const SELECT: &[&str] = &["select"];

/// Statements that do not prepare (or are refused before preparing): nothing about them is trusted.
const UNPREPARABLE: &[&str] = &[
    "SELEC * FRM x",
    "",
    "   -- only a comment",
    "SELECT * FROM no_such_table",
    "SELECT no_such_column FROM customers",
    "SELECT * FROM other.customers",
    "PRAGMA writable_schema = 1",
    "PRAGMA table_info(customers)",
    "pragma main.journal_mode=off",
    "SELECT 1\0; DELETE FROM customers",
    "SELECT * FROM salaries INDEXED BY no_such_index",
];

fn table() -> Vec<Expect> {
    vec![
        // Plain reads and every quoting style SQLite accepts for identifiers.
        e(
            "SELECT name FROM projects",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT \"name\" FROM \"projects\"",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT [name] FROM [projects]",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT `name` FROM `projects`",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "select NAME from PROJECTS",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT p.\"name\" FROM main.\"projects\" AS p",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT name FROM [main].[salaries] JOIN employees ON id = employee_id",
            true,
            SELECT,
            &["employees", "salaries"],
            &["employees.name", "employees.id", "salaries.employee_id"],
        ),
        // `*` reads every column.
        e(
            "SELECT * FROM customers",
            true,
            SELECT,
            &["customers"],
            &[
                "customers.email",
                "customers.name",
                "customers.country",
                "customers.id",
            ],
        ),
        e(
            "SELECT customers.* FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        // Any expression over a column reads it: functions, casts, operators, shaping.
        e(
            "SELECT hex(email) FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT replace(email, '@', ' at ') FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT substr(email, 1, 3), substr(email, 4) FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT json_object('b', email) FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT CAST(email AS BLOB) FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT name || email FROM customers",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT count(*) FROM customers WHERE email LIKE 'a%'",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT name FROM customers ORDER BY email",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT country, count(*) FROM customers GROUP BY email",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT name FROM customers WHERE CASE WHEN unicode(email) > 100 THEN 1 END",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        // Aliases reused in WHERE are still the column.
        e(
            "SELECT email AS e FROM customers WHERE e LIKE 'b%'",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        // Joins, including the forms whose columns SQLite's authorizer does not report.
        e(
            "SELECT c.name FROM customers c JOIN employees e USING (email)",
            true,
            SELECT,
            &["customers", "employees"],
            &["customers.email", "employees.email"],
        ),
        e(
            "SELECT c.name FROM customers c NATURAL JOIN employees e",
            true,
            SELECT,
            &["customers", "employees"],
            &["employees.email", "employees.name"],
        ),
        e(
            "SELECT c.name FROM customers c, customers d WHERE c.email = d.email",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "SELECT p.name FROM projects p LEFT JOIN employees e ON e.id = p.owner_id",
            true,
            SELECT,
            &["employees", "projects"],
            &["employees.id"],
        ),
        // Subqueries and CTEs, including CTEs that shadow table names.
        e(
            "SELECT name FROM projects WHERE owner_id IN (SELECT employee_id FROM salaries WHERE amount > 150000)",
            true,
            SELECT,
            &["projects", "salaries"],
            &["salaries.amount"],
        ),
        e(
            "SELECT (SELECT max(amount) FROM salaries) AS top FROM projects",
            true,
            SELECT,
            &["projects", "salaries"],
            &["salaries.amount"],
        ),
        e(
            "SELECT e FROM (SELECT email AS e FROM customers) WHERE e > 'm'",
            true,
            SELECT,
            &["customers"],
            &["customers.email"],
        ),
        e(
            "WITH projects AS (SELECT amount AS name FROM salaries) SELECT name FROM projects",
            true,
            SELECT,
            &["salaries"],
            &["salaries.amount"],
        ),
        e(
            "WITH x AS (SELECT * FROM salaries) SELECT 1 FROM projects WHERE EXISTS (SELECT 1 FROM x)",
            true,
            SELECT,
            &["projects", "salaries"],
            &[],
        ),
        e(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r",
            true,
            SELECT,
            &[],
            &[],
        ),
        e(
            "SELECT name FROM projects UNION SELECT email FROM customers",
            true,
            SELECT,
            &["customers", "projects"],
            &["customers.email"],
        ),
        e(
            "SELECT name FROM projects WHERE EXISTS (SELECT 1 FROM salaries)",
            true,
            SELECT,
            &["projects", "salaries"],
            &[],
        ),
        e(
            "SELECT count(*) FROM salaries",
            true,
            SELECT,
            &["salaries"],
            &[],
        ),
        e(
            "SELECT rowid FROM salaries",
            true,
            SELECT,
            &["salaries"],
            &[],
        ),
        // Table-valued functions and the schema table are tables too.
        e(
            "SELECT * FROM json_each('[1,2]')",
            true,
            SELECT,
            &["json_each"],
            &[],
        ),
        // `pragma_*` table-valued functions run their pragma: `pragma_optimize` writes statistics.
        e(
            "SELECT name FROM pragma_table_info('customers')",
            false,
            &["pragma", "select"],
            &["pragma_table_info"],
            &[],
        ),
        e(
            "SELECT * FROM pragma_optimize",
            false,
            &["pragma", "select"],
            &["pragma_optimize"],
            &[],
        ),
        e(
            "SELECT optimize FROM main.pragma_optimize(0x10002)",
            false,
            &["pragma", "select"],
            &[],
            &[],
        ),
        e(
            "SELECT sql FROM sqlite_master",
            true,
            SELECT,
            &["sqlite_master"],
            &["sqlite_master.sql"],
        ),
        e(
            "SELECT name FROM sqlite_schema",
            true,
            SELECT,
            &["sqlite_master"],
            &[],
        ),
        e(
            "SELECT value FROM projects, json_each(projects.name)",
            true,
            SELECT,
            &["json_each", "projects"],
            &["projects.name"],
        ),
        // Comments, whitespace and unicode.
        e(
            "/* lead */ SELECT name -- trail\n FROM projects",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT\tname\u{000C}FROM\r\nprojects",
            true,
            SELECT,
            &["projects"],
            &["projects.name"],
        ),
        e(
            "SELECT name FROM projects;  -- nothing after",
            true,
            SELECT,
            &["projects"],
            &[],
        ),
        e(
            "SELECT name FROM projects;;;",
            true,
            SELECT,
            &["projects"],
            &[],
        ),
        // SQLite ends an unterminated block comment at the end of the text.
        e(
            "SELECT name FROM customers WHERE id = 1 /* unterminated",
            true,
            SELECT,
            &["customers"],
            &["customers.id"],
        ),
        e(
            "SELECT 'ünïcödé', name FROM projects",
            true,
            SELECT,
            &["projects"],
            &[],
        ),
        // Every bind-parameter form SQLite accepts (unbound: NULL), including suffixed `$` names.
        e(
            "SELECT name FROM customers WHERE id = ?",
            true,
            SELECT,
            &["customers"],
            &["customers.id"],
        ),
        e(
            "SELECT name FROM customers WHERE id = ?7",
            true,
            SELECT,
            &["customers"],
            &["customers.id"],
        ),
        e(
            "SELECT name FROM customers WHERE id = :id",
            true,
            SELECT,
            &["customers"],
            &[],
        ),
        e(
            "SELECT name FROM customers WHERE id = @id",
            true,
            SELECT,
            &["customers"],
            &[],
        ),
        e(
            "SELECT name FROM customers WHERE id = $id",
            true,
            SELECT,
            &["customers"],
            &[],
        ),
        e(
            "SELECT name FROM customers WHERE id = $a::b(c)",
            true,
            SELECT,
            &["customers"],
            &[],
        ),
        e(
            "SELECT name FROM customers WHERE id = $x(1) UNION SELECT amount FROM salaries",
            true,
            SELECT,
            &["customers", "salaries"],
            &["salaries.amount"],
        ),
        // Writes, schema changes and other statements.
        e(
            "INSERT INTO projects (name, status) VALUES ('x', 'y')",
            false,
            &["insert"],
            &["projects"],
            &[],
        ),
        e(
            "INSERT INTO customers SELECT * FROM customers",
            false,
            &["insert", "select"],
            &["customers"],
            &["customers.email"],
        ),
        e(
            "REPLACE INTO projects(name, status) VALUES ('x', 'y')",
            false,
            &["insert"],
            &["projects"],
            &[],
        ),
        e(
            "UPDATE salaries SET amount = 1",
            false,
            &["update"],
            &["salaries"],
            &[],
        ),
        e(
            "UPDATE customers SET name = 'x' WHERE email = 'a'",
            false,
            &["update"],
            &["customers"],
            &["customers.email"],
        ),
        e(
            "DELETE FROM customers",
            false,
            &["delete"],
            &["customers"],
            &[],
        ),
        e(
            "WITH d AS (SELECT id FROM customers) DELETE FROM customers WHERE id IN (SELECT id FROM d)",
            false,
            &["delete", "select"],
            &["customers"],
            &[],
        ),
        e(
            "INSERT INTO projects(name, status) VALUES ('x','y') RETURNING id",
            false,
            &["insert"],
            &["projects"],
            &[],
        ),
        e(
            "CREATE TABLE t (a)",
            false,
            &["create", "insert", "update"],
            &[],
            &[],
        ),
        e(
            "CREATE TEMP VIEW v AS SELECT amount FROM salaries",
            false,
            &[],
            &[],
            &[],
        ),
        e("DROP TABLE customers", false, &[], &[], &[]),
        e("ALTER TABLE customers ADD COLUMN x", false, &[], &[], &[]),
        e(
            "ATTACH DATABASE '/tmp/x.db' AS x",
            false,
            &["attach"],
            &[],
            &[],
        ),
        e(
            "ATTACH 'file:/etc/passwd?mode=ro' AS p",
            false,
            &["attach"],
            &[],
            &[],
        ),
        e("DETACH DATABASE x", false, &[], &[], &[]),
        e("BEGIN", false, &["transaction"], &[], &[]),
        e("SAVEPOINT s", false, &["savepoint"], &[], &[]),
        e("VACUUM", false, &[], &[], &[]),
        e("VACUUM INTO '/tmp/copy.db'", false, &[], &[], &[]),
        e("ANALYZE", false, &[], &[], &[]),
        e("REINDEX", false, &[], &[], &[]),
        e(
            "EXPLAIN SELECT amount FROM salaries",
            false,
            &[],
            &[],
            &["salaries.amount"],
        ),
        e("SELECT load_extension('/tmp/x.so')", true, SELECT, &[], &[]),
        // Several statements: never read-only, whatever the first one is.
        e(
            "SELECT 1; DELETE FROM customers",
            false,
            &["delete", "select"],
            &["customers"],
            &[],
        ),
        e(
            "SELECT name FROM projects; SELECT amount FROM salaries",
            false,
            SELECT,
            &["projects"],
            &[],
        ),
        e(
            "SELECT 1 -- x\n; DROP TABLE customers",
            false,
            &[],
            &["customers"],
            &[],
        ),
        e(
            "SELECT 1; garbage that does not prepare",
            false,
            SELECT,
            &[],
            &[],
        ),
    ]
}

fn set(items: impl IntoIterator<Item = impl ToString>) -> BTreeSet<String> {
    items.into_iter().map(|s| s.to_string()).collect()
}

fn reads(analysis: &Analysis) -> BTreeSet<String> {
    analysis
        .columns
        .iter()
        .filter(|c| !c.column.is_empty())
        .map(|c| format!("{}.{}", c.table, c.column))
        .collect()
}

#[test]
fn hostile_statements_have_the_facts_sqlite_gives() {
    let db = company();
    let cases = table();
    assert!(cases.len() + UNPREPARABLE.len() >= 50);
    let mut failures = Vec::new();
    for case in &cases {
        let a = db.analyse(case.sql);
        let mut wrong = Vec::new();
        if a.read_only != case.read_only {
            wrong.push(format!("read_only {}", a.read_only));
        }
        if !case.kinds.is_empty() && a.kinds != set(case.kinds) {
            wrong.push(format!("kinds {:?}", a.kinds));
        }
        if case.read_only && a.tables != set(case.tables) {
            wrong.push(format!("tables {:?}", a.tables));
        }
        if !case.read_only && !case.tables.is_empty() && !set(case.tables).is_subset(&a.tables) {
            wrong.push(format!("tables {:?}", a.tables));
        }
        let missing: Vec<_> = set(case.reads).difference(&reads(&a)).cloned().collect();
        if !missing.is_empty() {
            wrong.push(format!("reads miss {missing:?} (has {:?})", reads(&a)));
        }
        if !wrong.is_empty() {
            failures.push(format!("{:?}: {} [{a:?}]", case.sql, wrong.join(", ")));
        }
    }
    for sql in UNPREPARABLE {
        let a = db.analyse(sql);
        if a.prepared || a.read_only || a.error.is_none() {
            failures.push(format!("{sql:?} should not prepare: {a:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn several_statements_are_counted() {
    let db = company();
    let a = db.analyse("SELECT 1; DELETE FROM customers; SELECT 2");
    assert_eq!(a.statement_count, 3);
    assert!(a.trailing_text && !a.read_only);
    // What follows the first statement is analysed too.
    assert!(a.kinds.contains("delete"), "{a:?}");
    let a = db.analyse("SELECT 1; -- c\n ; /* c */");
    assert_eq!((a.statement_count, a.trailing_text), (1, false));
}

#[test]
fn column_classes_come_from_the_manifest() {
    let db = company();
    let a = db.analyse("SELECT name, email FROM customers");
    let class = |t: &str, c: &str| {
        a.columns
            .iter()
            .find(|r| r.table == t && r.column == c)
            .map(|r| serde_json::to_value(r.class).unwrap())
    };
    assert_eq!(class("customers", "email"), Some("confidential".into()));
    assert_eq!(class("customers", "name"), Some("internal".into()));
    assert_eq!(serde_json::to_value(a.max_class).unwrap(), "confidential");
    let a = db.analyse("SELECT national_id FROM employees");
    assert_eq!(serde_json::to_value(a.max_class).unwrap(), "restricted");
}

#[test]
fn only_plain_projections_can_be_masked() {
    let db = company();
    let plain = |sql: &str| {
        db.analyse(sql)
            .projected_plainly
            .contains("customers.email")
    };
    for sql in [
        "SELECT name, email FROM customers",
        "SELECT name, email FROM customers ORDER BY id",
        "SELECT email FROM customers WHERE country = 'US'",
        "SELECT customers.email FROM customers",
        "SELECT email, email FROM customers",
        "SELECT * FROM customers",
    ] {
        assert!(plain(sql), "{sql}: {:?}", db.analyse(sql));
    }
    for sql in [
        "SELECT hex(email) FROM customers",
        "SELECT email AS e FROM customers WHERE e LIKE 'a%'",
        "SELECT email AS e FROM customers",
        "SELECT email FROM customers WHERE email LIKE 'a%'",
        "SELECT email FROM customers ORDER BY 1",
        "SELECT email FROM customers ORDER BY email",
        "SELECT DISTINCT email FROM customers",
        "SELECT email, count(*) FROM customers GROUP BY 1",
        "SELECT e FROM (SELECT email AS e FROM customers) WHERE e > 'm'",
        "SELECT email FROM (SELECT email FROM customers)",
        "WITH c AS (SELECT email FROM customers) SELECT email FROM c",
        "SELECT email FROM customers UNION SELECT name FROM projects",
        "SELECT c.email FROM customers c JOIN employees e USING (email)",
        "SELECT c.email FROM customers c NATURAL JOIN employees",
        "SELECT c.email FROM customers c, customers d WHERE c.id = d.id",
        "SELECT email, row_number() OVER (ORDER BY email) FROM customers",
        "SELECT email FROM customers LIMIT (SELECT count(*) FROM projects)",
        "SELECT name FROM customers",
    ] {
        assert!(!plain(sql), "{sql}: {:?}", db.analyse(sql));
    }
}

#[test]
fn schemaless_prepare_resolves_no_table() {
    let db = toolgate::sql::schemaless();
    let a = db.analyse("SELECT 1 + 1");
    assert!(a.prepared && a.read_only, "{a:?}");
    let a = db.analyse("SELECT * FROM customers");
    assert!(!a.prepared && !a.read_only);
    assert!(a.error.unwrap().contains("no such table"));
}

#[test]
fn pathological_statements_are_refused_not_hung_on() {
    let db = company();
    let deep = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(!db.analyse(&deep).prepared);
    let long = format!("SELECT '{}'", "x".repeat(70_000));
    assert!(!db.analyse(&long).prepared);
    let wide = format!(
        "SELECT 1 FROM {}",
        (0..70)
            .map(|i| format!("projects p{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(!db.analyse(&wide).read_only);
    let compound = vec!["SELECT 1"; 100].join(" UNION ");
    assert!(!db.analyse(&compound).prepared);
    // Shallow but huge: balanced OR trees under the depth limit make SQLite plan and code a vast program; it is
    // refused while being built (the program-size limit), not after.
    fn balanced(mut terms: Vec<String>) -> String {
        while terms.len() > 1 {
            terms = terms
                .chunks(2)
                .map(|pair| format!("({})", pair.join(" OR ")))
                .collect();
        }
        terms.pop().unwrap_or_default()
    }
    let tree = |left: &str, others: [&str; 3]| {
        balanced(
            (0..1_800)
                .map(|i| format!("{left}.id={}.id", others[i % 3]))
                .collect(),
        )
    };
    let huge = format!(
        "SELECT 1 FROM customers a,customers b,customers c,customers d WHERE {} AND {}",
        tree("a", ["b", "c", "d"]),
        tree("b", ["a", "c", "d"])
    );
    assert!(huge.len() < toolgate::sql::MAX_SQL_BYTES, "{}", huge.len());
    let analysis = db.analyse(&huge);
    assert!(
        !analysis.prepared && !analysis.read_only,
        "{:?}",
        analysis.error
    );
}

#[test]
fn views_and_triggers_are_seen_through() {
    let declaration = toolgate::sql::SchemaDeclaration {
        dialect: "sqlite".into(),
        schema: None,
        schema_file: None,
        default_class: toolgate::identity::Classification::Internal,
        columns: [(
            "secrets.value".to_string(),
            toolgate::identity::Classification::Restricted,
        )]
        .into(),
    };
    let ddl = "CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT);
               CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
               CREATE TABLE log (what TEXT);
               CREATE VIEW innocent AS SELECT id, upper(value) AS shout FROM secrets;
               CREATE TRIGGER spill AFTER INSERT ON notes BEGIN INSERT INTO log SELECT value FROM secrets; END;";
    let db = SqlDatabase::compile("t", &declaration, ddl.into()).unwrap();
    // Reading through a view reads what the view reads.
    let a = db.analyse("SELECT shout FROM innocent");
    assert!(a.read_only, "{a:?}");
    assert!(reads(&a).contains("secrets.value"), "{a:?}");
    assert_eq!(a.views, set(["innocent"]));
    assert_eq!(serde_json::to_value(a.max_class).unwrap(), "restricted");
    // A write fires the trigger: its reads and writes are the statement's.
    let a = db.analyse("INSERT INTO notes (body) VALUES ('x')");
    assert!(!a.read_only);
    assert_eq!(a.triggers, set(["spill"]));
    assert!(
        a.tables_written.contains("log") && reads(&a).contains("secrets.value"),
        "{a:?}"
    );
    // A CTE is neither.
    let a = db.analyse("WITH c AS (SELECT body FROM notes) SELECT body FROM c");
    assert!(a.views.is_empty() && a.triggers.is_empty(), "{a:?}");
}
