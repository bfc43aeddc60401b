//! The SQL fact extractor toolgate used before its facts came from SQLite, kept only as the benchmark's
//! baseline (it re-implemented SQLite's grammar with sqlparser, and disagreed with SQLite). Originally: SQL facts
//! from a real parser (sqlparser, SQLite dialect): how many statements, which kinds (including
//! statements nested in CTEs such as `WITH … DELETE`), which tables are touched. Anything that does not parse is
//! a fact too — and policies refuse it.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{SetExpr, Statement, visit_relations, visit_statements};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

/// What a SQL argument does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlFacts {
    /// Whether the text parsed; when it did not, nothing else can be trusted and policies refuse.
    pub parsed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub statement_count: usize,
    /// Kinds of every statement, nested ones included: `select`, `insert`, `update`, `delete`, `merge`,
    /// `create`, `alter`, `drop`, `attach`, `detach`, `pragma`, `transaction`, `other`.
    pub kinds: BTreeSet<String>,
    /// Tables (and views) named anywhere, lowercased, without quotes.
    pub tables: BTreeSet<String>,
    /// Exactly one statement, and every statement in it only reads.
    pub read_only: bool,
}

fn kind(statement: &Statement) -> &'static str {
    match statement {
        Statement::Query(query) => match query.body.as_ref() {
            SetExpr::Insert(_) => "insert",
            SetExpr::Update(_) => "update",
            SetExpr::Delete(_) => "delete",
            SetExpr::Merge(_) => "merge",
            _ => "select",
        },
        Statement::Insert(_) => "insert",
        Statement::Update { .. } => "update",
        Statement::Delete(_) => "delete",
        Statement::Merge { .. } => "merge",
        Statement::CreateTable(_)
        | Statement::CreateView { .. }
        | Statement::CreateIndex(_)
        | Statement::CreateVirtualTable { .. }
        | Statement::CreateTrigger { .. } => "create",
        Statement::AlterTable { .. }
        | Statement::AlterIndex { .. }
        | Statement::AlterView { .. } => "alter",
        Statement::Drop { .. } | Statement::DropTrigger { .. } => "drop",
        Statement::AttachDatabase { .. } => "attach",
        Statement::DetachDuckDBDatabase { .. } => "detach",
        Statement::Pragma { .. } => "pragma",
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => "transaction",
        _ => "other",
    }
}

/// `schema.table`, lowercased and unquoted.
fn table_name(name: &sqlparser::ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|part| {
            part.to_string()
                .trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
                .to_ascii_lowercase()
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Analyses one SQL argument.
pub fn analyse(sql: &str) -> SqlFacts {
    let statements = match Parser::parse_sql(&SQLiteDialect {}, sql) {
        Ok(statements) => statements,
        Err(e) => {
            return SqlFacts {
                parsed: false,
                error: Some(e.to_string()),
                statement_count: 0,
                kinds: BTreeSet::new(),
                tables: BTreeSet::new(),
                read_only: false,
            };
        }
    };
    let mut kinds = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let _ = visit_statements(&statements, |statement| {
        kinds.insert(kind(statement).to_string());
        // Object names outside queries (DROP) are not relations to the visitor; name them too.
        if let Statement::Drop { names, .. } = statement {
            tables.extend(names.iter().map(table_name));
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = visit_relations(&statements, |relation| {
        tables.insert(table_name(relation));
        ControlFlow::<()>::Continue(())
    });

    let read_only =
        statements.len() == 1 && !kinds.is_empty() && kinds.iter().all(|k| k == "select");
    SqlFacts {
        parsed: true,
        error: None,
        statement_count: statements.len(),
        kinds,
        tables,
        read_only,
    }
}
