//! SQL access end to end, through the quickstart: the real gateway in front of the real SQL upstream (which runs
//! any statement it is sent, writes included), driven by rmcp clients as bob (`engineering`, clearance `internal`,
//! `customers.email` granted masked), alice (`hr`) and the `nightly-report` agent. Each family of evasions is
//! generated, not one string: every way of shaping a column, every way to write, every bind-parameter form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn quickstart() -> Gateway {
    let sandbox = tempfile::tempdir().unwrap().keep();
    std::fs::write(sandbox.join("README.txt"), "hello\n").unwrap();
    Gateway::start(&format!(
        "listen: 127.0.0.1:0\nupstreams:\n{}{}{}audit:\n  flush_interval: 200ms\n",
        quickstart_upstreams_in(&sandbox),
        test_auth(&quickstart_agents()),
        quickstart_policy()
    ))
}

fn refused(result: &rmcp::model::CallToolResult) -> Option<String> {
    let said = text(result);
    (result.is_error == Some(true) && said.starts_with("toolgate refused this call"))
        .then_some(said)
}

fn answer(result: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(result));
    result.structured_content.clone().unwrap()
}

const EMAILS: &[&str] = &[
    "buyer@acme.example",
    "ap@globex.example",
    "it@initech.example",
];

/// Every way bob could shape `customers.email` into something a detector does not recognise.
fn shaped_email_reads() -> Vec<String> {
    let shapes = [
        "hex(email)",
        "replace(email, '@', ' at ')",
        "substr(email, 1, 4) || '|' || substr(email, 5)",
        "upper(email)",
        "json_object('data', email)",
        "CAST(email AS BLOB)",
        "email || ''",
        "printf('%s', email)",
        "trim(email)",
        "unicode(email)",
        "length(email)",
        "instr(email, '@')",
        "group_concat(email)",
        "max(email)",
        "email AS contact",
        "(SELECT email)",
    ];
    let mut out = Vec::new();
    for shape in shapes {
        out.push(format!("SELECT name, {shape} FROM customers"));
    }
    // And as a condition, an order, a grouping, a join or inside a subquery, CTE or compound.
    for rest in [
        "SELECT name FROM customers WHERE email LIKE 'b%'",
        "SELECT name FROM customers WHERE substr(email, 1, 1) = 'b'",
        "SELECT name FROM customers ORDER BY email",
        "SELECT email FROM customers ORDER BY 1",
        "SELECT DISTINCT email FROM customers",
        "SELECT email, count(*) FROM customers GROUP BY 1",
        "SELECT e FROM (SELECT email AS e FROM customers)",
        "WITH c AS (SELECT email FROM customers) SELECT email FROM c",
        "SELECT name FROM projects UNION SELECT email FROM customers",
        "SELECT p.name FROM projects p JOIN customers c ON c.email > p.name",
        "SELECT email AS e FROM customers WHERE e LIKE 'b%'",
        "SELECT c.email FROM customers c, customers d WHERE c.id = d.id",
    ] {
        out.push(rest.to_string());
    }
    out
}

#[tokio::test]
async fn bob_never_reads_a_customer_email_in_clear() {
    let gateway = quickstart();
    let bob = Client::connect(
        &gateway.url,
        &user_token("bob", &["engineering"], "assistant", &[]),
    )
    .await;
    // Plainly selected: answered, the email column masked by name.
    let result = bob
        .sql("SELECT name, email FROM customers ORDER BY id")
        .await
        .unwrap();
    // In every plane: structured content, and the JSON copy in text content.
    let all = serde_json::to_string(&result).unwrap();
    for email in EMAILS {
        assert!(!all.contains(email), "{all}");
    }
    assert!(text(&result).contains("[REDACTED:confidential]"), "{all}");
    let plain = answer(&result);
    assert_eq!(plain["columns"], json!(["name", "email"]));
    assert_eq!(
        plain["rows"][0],
        json!(["Acme Corp", "[REDACTED:confidential]"])
    );
    // Every shaped read is refused, naming the column and how to rewrite the query.
    for sql in shaped_email_reads() {
        let result = bob.sql(&sql).await.unwrap();
        let all = serde_json::to_string(&result).unwrap();
        for email in EMAILS {
            assert!(!all.contains(email), "{sql}: {all}");
            assert!(!all.contains(&hex::encode(email)), "{sql}: {all}");
            assert!(!all.contains(&hex::encode_upper(email)), "{sql}: {all}");
        }
        let said = refused(&result).unwrap_or_else(|| panic!("{sql} was answered: {all}"));
        assert!(said.contains("`customers.email`"), "{sql}: {said}");
        assert!(said.contains("only masked"), "{sql}: {said}");
    }
    // Other columns of customers stay readable, in any shape.
    let upper = answer(
        &bob.sql("SELECT upper(name), hex(country) FROM customers WHERE id = 1")
            .await
            .unwrap(),
    );
    assert_eq!(upper["rows"][0][0], "ACME CORP");
}

#[tokio::test]
async fn no_sql_text_reaches_a_table_or_a_write_policy_refuses() {
    let gateway = quickstart();
    let bob = Client::connect(
        &gateway.url,
        &user_token("bob", &["engineering"], "assistant", &[]),
    )
    .await;
    let nightly = Client::connect(
        &gateway.url,
        &dev_token(None, Some("nightly-report"), &[], None),
    )
    .await;
    // Reading tables bob may not read, by every route: quoting styles, schema names, joins whose columns
    // SQLite's authorizer never reports, subqueries, CTEs shadowing readable names, views of the schema table,
    // and every bind-parameter form in front of it.
    let mut reads = Vec::new();
    for salaries in [
        "salaries",
        "\"salaries\"",
        "[salaries]",
        "`salaries`",
        "main.salaries",
        "SALARIES",
    ] {
        reads.push(format!("SELECT amount FROM {salaries}"));
        reads.push(format!(
            "SELECT name FROM projects WHERE EXISTS (SELECT 1 FROM {salaries})"
        ));
        reads.push(format!(
            "WITH projects AS (SELECT amount AS name FROM {salaries}) SELECT name FROM projects"
        ));
    }
    for param in ["?", "?7", ":p", "@p", "$p", "$a::b(c)", "$x(1)"] {
        reads.push(format!(
            "SELECT name FROM projects WHERE id = {param} UNION SELECT amount FROM salaries"
        ));
    }
    reads.push("SELECT p.name FROM projects p NATURAL JOIN employees".into());
    reads.push("SELECT c.name FROM customers c JOIN employees e USING (email)".into());
    reads.push("SELECT sql FROM sqlite_master".into());
    reads.push("SELECT * FROM pragma_table_info('salaries')".into());
    for sql in &reads {
        let result = bob.sql(sql).await.unwrap();
        let said =
            refused(&result).unwrap_or_else(|| panic!("{sql} was answered: {}", text(&result)));
        assert!(said.contains("reads table"), "{sql}: {said}");
        assert!(!said.contains("185000"), "{sql}");
    }
    // Writing, by every statement kind and by hiding it behind a SELECT.
    let writes = [
        "UPDATE projects SET status = 'hacked'",
        "INSERT INTO projects (name, status) VALUES ('x', 'hacked')",
        "REPLACE INTO projects (id, name, status) VALUES (1, 'x', 'hacked')",
        "DELETE FROM projects",
        "WITH d AS (SELECT 1) DELETE FROM projects",
        "SELECT 1; UPDATE projects SET status = 'hacked'",
        "SELECT 1 -- c\n; DELETE FROM projects",
        "SELECT 1;/**/DELETE FROM projects",
        "INSERT INTO projects (name, status) SELECT name, 'hacked' FROM projects RETURNING id",
        "DROP TABLE projects",
        "ALTER TABLE projects RENAME TO p2",
        "CREATE TABLE projects2 AS SELECT * FROM projects",
        "ATTACH DATABASE ':memory:' AS x",
        "PRAGMA writable_schema = 1",
        "VACUUM",
        "BEGIN",
    ];
    for caller in [&bob, &nightly] {
        for sql in writes {
            let result = caller.sql(sql).await.unwrap();
            assert!(
                refused(&result).is_some(),
                "{sql} was answered: {}",
                text(&result)
            );
        }
    }
    // A read-only statement that would never end is the upstream's to bound: the example stops it.
    let endless = bob
        .sql("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r")
        .await
        .unwrap();
    assert_eq!(endless.is_error, Some(true));
    assert!(
        text(&endless).contains("more than 10000 rows"),
        "{}",
        text(&endless)
    );
    // None of it reached the upstream.
    let projects = answer(
        &bob.sql("SELECT count(*), sum(status = 'hacked') FROM projects")
            .await
            .unwrap(),
    );
    assert_eq!(projects["rows"], json!([[4, 0]]));
    // nightly-report (confidential) reads its tables, customer emails in clear, nothing of employees.
    let salaries = answer(
        &nightly
            .sql("SELECT sum(amount) FROM salaries")
            .await
            .unwrap(),
    );
    assert_eq!(salaries["rows"][0][0], 949_000);
    let emails = answer(
        &nightly
            .sql("SELECT email FROM customers ORDER BY id")
            .await
            .unwrap(),
    );
    assert_eq!(emails["rows"][0][0], "buyer@acme.example");
    assert!(
        refused(
            &nightly
                .sql("SELECT national_id FROM employees")
                .await
                .unwrap()
        )
        .is_some()
    );
}

#[tokio::test]
async fn records_show_the_facts_and_reports_count_column_reads() {
    let gateway = quickstart();
    let bob = Client::connect(
        &gateway.url,
        &user_token("bob", &["engineering"], "assistant", &[]),
    )
    .await;
    let alice = Client::connect(
        &gateway.url,
        &user_token("alice", &["hr"], "assistant", &[]),
    )
    .await;
    answer(&bob.sql("SELECT name, email FROM customers").await.unwrap());
    assert!(refused(&bob.sql("SELECT hex(email) FROM customers").await.unwrap()).is_some());
    answer(
        &alice
            .sql("SELECT e.name, s.amount FROM employees e JOIN salaries s ON s.employee_id = e.id")
            .await
            .unwrap(),
    );
    let records = gateway
        .admin_json("/records?limit=100&tool=sql__query")
        .await;
    let records = records["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 3, "{records:?}");
    let by = |subject: &str, decision: &str| {
        records
            .iter()
            .find(|r| r["subject"] == subject && r["decision"] == decision)
            .cloned()
            .unwrap()
    };
    let masked = by("bob", "allow");
    let facts = &masked["facts"]["sql"];
    assert_eq!(facts["kinds"], json!(["select"]));
    assert_eq!(facts["read_only"], true);
    assert_eq!(facts["tables"], json!(["customers"]));
    assert!(
        facts["columns"]
            .as_array()
            .unwrap()
            .contains(&json!({"table": "customers", "column": "email", "class": "confidential"}))
    );
    assert_eq!(masked["obligations"]["mask_columns"], json!(["email"]));
    let refused_record = by("bob", "deny");
    assert!(
        refused_record["facts"]["sql"]["functions"]
            .as_array()
            .unwrap()
            .contains(&json!("hex"))
    );
    let joined = by("alice", "allow");
    assert_eq!(
        joined["facts"]["sql"]["tables"],
        json!(["employees", "salaries"])
    );
    // The report counts reads of classified columns per tool.
    let report = gateway.admin_json("/reports?tool=sql__query").await;
    let columns = &report["tools"][0]["column_reads"];
    assert_eq!(
        columns["customers.email"],
        json!({"class": "confidential", "allowed": 1, "denied": 1})
    );
    assert_eq!(
        columns["salaries.amount"],
        json!({"class": "confidential", "allowed": 1, "denied": 0})
    );
}

#[test]
fn a_declared_schema_that_does_not_compile_is_refused_by_check_and_policy_test() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["agents.yaml", "files.yaml", "hr.yaml", "sql.yaml"] {
        std::fs::copy(root.join("tool-manifests").join(file), manifests.join(file)).unwrap();
    }
    // The quickstart's schema with a column the manifest classifies left out, then broken outright.
    let schema = std::fs::read_to_string(root.join("tool-manifests/sql.schema.sql")).unwrap();
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{}policy:\n  dir: \"{}\"\n  manifests: \"{}\"\n",
            test_auth(&quickstart_agents()),
            root.join("policies").display(),
            manifests.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    std::fs::write(manifests.join("sql.schema.sql"), &schema).unwrap();
    assert!(run(&["check"]).0, "{}", run(&["check"]).1);
    assert!(run(&["policy", "test"]).0);
    let cases = [
        (
            schema.replace(", national_id TEXT NOT NULL", ""),
            "`employees.national_id` names no column",
        ),
        (
            format!("{schema}\nCREATE TABLE broken (a,"),
            "the schema does not compile",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(manifests.join("sql.schema.sql"), text).unwrap();
        for args in [&["check"][..], &["policy", "test"][..]] {
            let (ok, stderr) = run(args);
            assert!(!ok, "{args:?} accepted it");
            assert!(
                stderr.contains(expected) && stderr.contains("sql.yaml"),
                "{args:?}: {stderr}"
            );
        }
    }
}
