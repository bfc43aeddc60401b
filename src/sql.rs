//! What a SQL statement would do, as SQLite itself says: the statement is prepared — never stepped — on an
//! in-memory database that holds the upstream's declared schema, with an authorizer callback recording every
//! action, and SQLite's compiled program is read for the tables and columns it opens. No grammar is
//! re-implemented here: a tokenizer that disagrees with the engine is a bypass.
//!
//! Another engine can follow with the same [`Analysis`] (for PostgreSQL, its own parser); the policy contract
//! (`input.facts`) does not change.

mod analyse;
mod database;
mod objects;
mod program;
mod record;

use std::collections::BTreeSet;

use serde::Serialize;

pub use database::{SchemaDeclaration, SqlDatabase};

use crate::classification::Classification;

/// Longest statement toolgate prepares (bytes); longer text is refused unanalysed.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// One column (or, with an empty `column`, a table as a whole) that the statement reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ColumnRead {
    pub table: String,
    pub column: String,
    pub class: Classification,
}

/// A write the statement would make.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Write {
    pub table: String,
    /// `insert`, `update` or `delete`.
    pub action: &'static str,
    /// For updates: the column set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// A column of the statement's result and, when SQLite can name it, the table column it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultColumn {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// What SQLite says one SQL argument does. Every field comes from SQLite's authorizer record, its compiled
/// program or its statement API; when SQLite cannot prepare the text, `prepared` is false and nothing else may
/// be trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub dialect: &'static str,
    /// The declared schema the statement was prepared against (`None`: a schema-less prepare).
    pub schema: Option<String>,
    /// SQLite prepared the first statement and toolgate read its program.
    pub prepared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Statements SQLite finds in the text (the first one and any that follow it).
    pub statement_count: usize,
    /// Text other than whitespace and comments follows the first statement.
    pub trailing_text: bool,
    /// Kinds of every action: `select`, `insert`, `update`, `delete`, `create`, `drop`, `alter`, `pragma`,
    /// `attach`, `detach`, `transaction`, `savepoint`, `analyze`, `reindex`, `explain`, `unknown`.
    pub kinds: BTreeSet<String>,
    /// One statement that SQLite says leaves the database untouched and whose every action is a read.
    pub read_only: bool,
    /// Every table read or written (schema-qualified unless in `main`), lowercased.
    pub tables: BTreeSet<String>,
    pub tables_read: BTreeSet<String>,
    pub tables_written: BTreeSet<String>,
    /// Every column read, anywhere in the statement (result, WHERE, joins, ORDER BY, functions, subqueries,
    /// CTEs, views, triggers), with its class from the manifest.
    pub columns: BTreeSet<ColumnRead>,
    pub writes: BTreeSet<Write>,
    pub functions: BTreeSet<String>,
    pub pragmas: Vec<String>,
    pub attached: Vec<String>,
    pub views: BTreeSet<String>,
    pub triggers: BTreeSet<String>,
    /// Actions outside the fact model: policies refuse a statement that has any.
    pub unknown: Vec<String>,
    /// The result's columns, named as SQLite names them.
    pub result: Vec<ResultColumn>,
    /// Columns (`table.column`) whose every read is a plain result column of one simple SELECT: the only
    /// columns whose values can be masked by name in the answer. Any other read cannot be tracked.
    pub projected_plainly: BTreeSet<String>,
    /// The highest class among the columns read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_class: Option<Classification>,
}

impl Analysis {
    /// Nothing known yet about a statement for `schema`.
    fn new(schema: Option<&str>) -> Self {
        Self {
            dialect: "sqlite",
            schema: schema.map(str::to_string),
            ..Self::default()
        }
    }

    fn refused(schema: Option<&str>, error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::new(schema)
        }
    }
}

/// The schema-less database: statements prepared on it can name no table.
pub fn schemaless() -> std::sync::Arc<SqlDatabase> {
    static SCHEMALESS: std::sync::LazyLock<std::sync::Arc<SqlDatabase>> =
        std::sync::LazyLock::new(|| std::sync::Arc::new(SqlDatabase::schemaless()));
    std::sync::Arc::clone(&SCHEMALESS)
}

/// The `SELECT` name of a table: `main` tables bare, others schema-qualified; lowercased.
fn qualified(database: Option<&str>, table: &str) -> String {
    match database {
        None | Some("main") => table.to_ascii_lowercase(),
        Some(db) => format!("{}.{}", db.to_ascii_lowercase(), table.to_ascii_lowercase()),
    }
}
