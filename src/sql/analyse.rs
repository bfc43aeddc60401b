//! Preparing a statement and assembling its facts from SQLite's own accounts: the authorizer's record of every
//! action the statement asks for, the statement API (read-only, result columns and their origins) and the
//! compiled program's table and column accesses.

use std::collections::BTreeSet;
use std::time::Instant;

use rusqlite::fallible_iterator::FallibleIterator;

use super::database::{FactDb, SqlDatabase};
use super::program::{Program, read_program};
use super::record::{self, Action, Cut, Event};
use super::{Analysis, ColumnRead, ResultColumn, Write, qualified};

/// Most statements counted after the first.
const MAX_FOLLOWING: usize = 16;

/// Prepares `sql` on `db` and builds the analysis from SQLite's own record and program.
pub fn analyse(db: &FactDb, sql: &str, deadline: Instant, schema: &SqlDatabase) -> Analysis {
    let mut analysis = Analysis::new(schema.name());
    record::start(deadline);
    let mut batch = rusqlite::Batch::new(&db.conn, sql);
    let mut result = Vec::new();
    let (mut readonly, mut explain) = (false, false);
    match batch.next() {
        Ok(Some(statement)) => {
            analysis.prepared = true;
            analysis.statement_count = 1;
            readonly = statement.readonly();
            explain = statement.is_explain() != 0;
            result = statement
                .columns_with_metadata()
                .map(|c| ResultColumn {
                    name: c.name().to_string(),
                    table: c.table_name().map(|t| qualified(c.database_name(), t)),
                    column: c.origin_name().map(str::to_ascii_lowercase),
                })
                .collect();
        }
        Ok(None) => analysis.error = Some("there is no statement in the text".into()),
        Err(e) => analysis.error = Some(e.to_string()),
    }
    if analysis.prepared {
        record::following();
        loop {
            if analysis.statement_count > MAX_FOLLOWING {
                break;
            }
            match batch.next() {
                Ok(Some(_)) => {
                    analysis.statement_count += 1;
                    analysis.trailing_text = true;
                }
                Ok(None) => break,
                Err(_) => {
                    // Text SQLite cannot prepare follows: an upstream running the whole text would run the first
                    // statement, then fail.
                    analysis.statement_count += 1;
                    analysis.trailing_text = true;
                    break;
                }
            }
        }
    }
    let (events, cut) = record::finish();
    if let Some(cut) = cut {
        analysis.prepared = false;
        analysis.error = Some(match cut {
            Cut::Deadline => "preparing the statement took too long".into(),
            Cut::TooManyActions => "the statement asks SQLite for too many actions".into(),
        });
    }
    apply_events(&mut analysis, &events, schema, db);
    if explain {
        analysis.kinds.insert("explain".into());
    }
    let program = if analysis.prepared && !explain {
        match read_program(db, sql, deadline) {
            Ok(program) => Some(program),
            Err(e) => {
                analysis.prepared = false;
                analysis.error = Some(format!("cannot read the statement's program: {e}"));
                None
            }
        }
    } else {
        None
    };
    if let Some(program) = &program {
        for (table, column) in &program.reads {
            add_read(&mut analysis, schema, table, column);
        }
        for table in &program.writes {
            analysis.tables_written.insert(table.clone());
        }
        if program.unresolved > 0 {
            analysis
                .unknown
                .push("the program opens objects outside the declared schema".into());
        }
    }
    // SQLite's `pragma_*` table-valued functions run their pragma when stepped (`pragma_optimize` analyses and
    // writes statistics): reading one is a pragma, whatever `sqlite3_stmt_readonly` says.
    let pragma_tables: Vec<String> = analysis
        .tables_read
        .iter()
        .filter(|t| {
            t.rsplit('.')
                .next()
                .is_some_and(|t| t.starts_with("pragma_"))
        })
        .cloned()
        .collect();
    for table in pragma_tables {
        analysis.kinds.insert("pragma".into());
        analysis.pragmas.push(table);
    }
    // A write SQLite reports but no action explains (VACUUM, for one) is outside the model.
    if analysis.prepared
        && !readonly
        && analysis.writes.is_empty()
        && analysis.tables_written.is_empty()
    {
        analysis
            .unknown
            .push("the statement writes, but SQLite names no table".into());
        analysis.kinds.insert("unknown".into());
    }
    analysis.tables = analysis
        .tables_read
        .union(&analysis.tables_written)
        .cloned()
        .collect();
    analysis.read_only = analysis.prepared
        && readonly
        && analysis.statement_count == 1
        && !analysis.trailing_text
        && analysis.kinds.iter().all(|k| k == "select")
        && analysis.writes.is_empty()
        && analysis.tables_written.is_empty()
        && analysis.unknown.is_empty();
    analysis.max_class = analysis.columns.iter().map(|c| c.class).max();
    if let Some(program) = &program {
        analysis.projected_plainly = plain_projections(&analysis, &events, &result, program);
    }
    analysis.result = result;
    analysis
}

fn add_read(analysis: &mut Analysis, schema: &SqlDatabase, table: &str, column: &str) {
    analysis.tables_read.insert(table.to_string());
    analysis.columns.insert(ColumnRead {
        table: table.to_string(),
        column: column.to_string(),
        class: schema.class_of(table, column),
    });
}

fn apply_events(analysis: &mut Analysis, events: &[Event], schema: &SqlDatabase, fact_db: &FactDb) {
    for event in events {
        let db = event.database.as_deref();
        // Code a view or trigger of the schema runs (a CTE's name shows here too, and is neither).
        if let Some(accessor) = event.accessor.as_deref().map(str::to_ascii_lowercase) {
            if fact_db.views.contains(&accessor) {
                analysis.views.insert(accessor);
            } else if fact_db.triggers.contains(&accessor) {
                analysis.triggers.insert(accessor);
            }
        }
        let kind = match &event.action {
            Action::Select | Action::Recursive => "select",
            Action::Read { table, column } => {
                let table = qualified(db, table);
                add_read(analysis, schema, &table, &column.to_ascii_lowercase());
                continue;
            }
            Action::Insert { table } => {
                write(analysis, db, table, "insert", None);
                "insert"
            }
            Action::Update { table, column } => {
                write(analysis, db, table, "update", Some(column));
                "update"
            }
            Action::Delete { table } => {
                write(analysis, db, table, "delete", None);
                "delete"
            }
            Action::Create { .. } => "create",
            Action::Drop { .. } => "drop",
            Action::Alter { .. } => "alter",
            Action::Pragma { name, value } => {
                analysis.pragmas.push(match value {
                    Some(v) => format!("{name}={v}"),
                    None => name.clone(),
                });
                if analysis.error.is_none() || !analysis.prepared {
                    analysis.error = Some(
                        "pragmas are never prepared by toolgate (some act while being prepared)"
                            .into(),
                    );
                }
                "pragma"
            }
            Action::Transaction => "transaction",
            Action::Savepoint => "savepoint",
            Action::Attach { file } => {
                analysis.attached.push(file.clone());
                "attach"
            }
            Action::Detach { .. } => "detach",
            Action::Reindex => "reindex",
            Action::Analyze => "analyze",
            Action::Function { name } => {
                analysis.functions.insert(name.clone());
                continue;
            }
            Action::Unknown { code } => {
                analysis
                    .unknown
                    .push(format!("SQLite action {code} is outside the fact model"));
                "unknown"
            }
        };
        analysis.kinds.insert(kind.to_string());
    }
}

fn write(
    analysis: &mut Analysis,
    db: Option<&str>,
    table: &str,
    action: &'static str,
    column: Option<&str>,
) {
    let table = qualified(db, table);
    analysis.tables_written.insert(table.clone());
    analysis.writes.insert(Write {
        table,
        action,
        column: column.map(str::to_ascii_lowercase),
    });
}

/// Columns whose every read is a plain result column of one simple SELECT over real tables: one SELECT (no
/// subquery, CTE, view, compound or trigger), no sorting, grouping, DISTINCT, aggregate, automatic index or
/// virtual table in the program, the column's table opened by one cursor and through no index holding the
/// column, every program read also named by the authorizer, as many reads as result columns that are this
/// column, each under the column's own name (an alias could be reused in WHERE, GROUP BY or HAVING without
/// SQLite asking the authorizer again).
fn plain_projections(
    analysis: &Analysis,
    events: &[Event],
    result: &[ResultColumn],
    program: &Program,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let selects = events
        .iter()
        .filter(|e| matches!(e.action, Action::Select | Action::Recursive))
        .count();
    let simple = analysis.read_only
        && selects == 1
        && events.iter().all(|e| e.accessor.is_none())
        && !program.derived
        && program.unresolved == 0;
    if !simple {
        return out;
    }
    let authorized: BTreeSet<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.action {
            Action::Read { table, column } => Some((
                qualified(e.database.as_deref(), table),
                column.to_ascii_lowercase(),
            )),
            _ => None,
        })
        .collect();
    // A read SQLite's authorizer did not see (the columns of a `USING` or `NATURAL` join) could compare any column.
    let all_seen = program
        .reads
        .iter()
        .filter(|(_, c)| !c.is_empty() && c != "rowid")
        .all(|r| authorized.contains(r));
    if !all_seen {
        return out;
    }
    for read in &analysis.columns {
        if read.column.is_empty() {
            continue;
        }
        let key = (read.table.clone(), read.column.clone());
        let reads = events
            .iter()
            .filter(|e| match &e.action {
                Action::Read { table, column } => {
                    qualified(e.database.as_deref(), table) == read.table
                        && column.eq_ignore_ascii_case(&read.column)
                }
                _ => false,
            })
            .count();
        let projected: Vec<&ResultColumn> = result
            .iter()
            .filter(|r| {
                r.table.as_deref() == Some(read.table.as_str())
                    && r.column.as_deref() == Some(read.column.as_str())
            })
            .collect();
        let plain = !projected.is_empty()
            && reads == projected.len()
            && projected
                .iter()
                .all(|r| r.name.eq_ignore_ascii_case(&read.column))
            && program.cursors.get(&read.table).copied() == Some(1)
            && !program.indexed.contains(&key);
        if plain {
            out.insert(format!("{}.{}", read.table, read.column));
        }
    }
    out
}
