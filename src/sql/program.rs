//! Preparing a statement and reading SQLite's compiled program: the authorizer names what the statement asks
//! for; the program names every table and column the engine will open and read. SQLite's authorizer is not
//! consulted for some reads (the columns of `USING` and `NATURAL` joins), so the program completes it.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use rusqlite::Connection;
use rusqlite::fallible_iterator::FallibleIterator;

use super::database::{FactDb, SqlDatabase};
use super::record::{self, Action, Cut, Event};
use super::{Analysis, ColumnRead, ResultColumn, Write, qualified};

/// Most statements counted after the first.
const MAX_FOLLOWING: usize = 16;
/// Most program steps read.
pub(super) const MAX_OPS: usize = 100_000;

/// What a root page holds.
#[derive(Debug, Clone)]
pub enum Object {
    Table {
        name: String,
        columns: Vec<String>,
        /// The column that is the rowid (`INTEGER PRIMARY KEY`), if any.
        rowid_alias: Option<String>,
        /// Storage order is declaration order (a rowid table without generated columns); otherwise any
        /// column read counts as reading them all.
        plain_storage: bool,
    },
    Index {
        table: String,
        /// Every column the index holds (keys and the rowid).
        columns: Vec<String>,
    },
}

impl Object {
    fn table(&self) -> &str {
        match self {
            Self::Table { name, .. } => name,
            Self::Index { table, .. } => table,
        }
    }
}

/// Every table and index of a fact database, by `(database index, root page)`.
pub fn objects(conn: &Connection) -> rusqlite::Result<HashMap<(i64, i64), Object>> {
    let mut out = HashMap::new();
    let schema_columns: Vec<String> = ["type", "name", "tbl_name", "rootpage", "sql"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    for (db, master) in [(0, "sqlite_master"), (1, "sqlite_temp_master")] {
        out.insert(
            (db, 1),
            Object::Table {
                name: master.into(),
                columns: schema_columns.clone(),
                rowid_alias: None,
                plain_storage: true,
            },
        );
    }
    let mut tables = conn.prepare(
        "SELECT type, name, tbl_name, rootpage, sql FROM main.sqlite_schema WHERE rootpage > 0",
    )?;
    let rows: Vec<(String, String, String, i64, Option<String>)> = tables
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    for (kind, name, table, root, _) in rows {
        let object = if kind == "table" {
            let mut info =
                conn.prepare("SELECT name, pk, type, hidden FROM pragma_table_xinfo(?1)")?;
            let columns: Vec<(String, i64, String, i64)> = info
                .query_map([&name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            let pk: Vec<&(String, i64, String, i64)> = columns.iter().filter(|c| c.1 > 0).collect();
            let rowid_alias = match pk.as_slice() {
                [only] if only.2.eq_ignore_ascii_case("integer") => {
                    Some(only.0.to_ascii_lowercase())
                }
                _ => None,
            };
            let generated = columns.iter().any(|c| c.3 != 0);
            let is_without_rowid = conn
                .query_row(
                    "SELECT 1 FROM main.sqlite_schema WHERE name = ?1 AND sql LIKE '%WITHOUT%ROWID%'",
                    [&name],
                    |_| Ok(()),
                )
                .is_ok();
            Object::Table {
                name: name.to_ascii_lowercase(),
                columns: columns.iter().map(|c| c.0.to_ascii_lowercase()).collect(),
                rowid_alias,
                plain_storage: !generated && !is_without_rowid,
            }
        } else if kind == "index" {
            let mut info = conn.prepare("SELECT name FROM pragma_index_xinfo(?1)")?;
            let columns: Vec<Option<String>> = info
                .query_map([&name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Object::Index {
                table: table.to_ascii_lowercase(),
                columns: columns
                    .into_iter()
                    .map(|c| c.map_or_else(|| "rowid".to_string(), |c| c.to_ascii_lowercase()))
                    .collect(),
            }
        } else {
            continue;
        };
        out.insert((0, root), object);
    }
    Ok(out)
}

/// What the program opens and reads.
#[derive(Debug, Default)]
struct Program {
    reads: BTreeSet<(String, String)>,
    writes: BTreeSet<String>,
    /// Read cursors opened per table (main program only).
    cursors: HashMap<String, usize>,
    /// Sorting, grouping, distinct, automatic indexes, aggregates or virtual tables.
    derived: bool,
    /// Objects the program opens that toolgate cannot name.
    unresolved: usize,
    /// Tables read through an index, with the index's columns.
    indexed: BTreeSet<(String, String)>,
}

/// Prepares `sql` on `db` and builds the analysis from SQLite's own record and program.
pub fn analyse(db: &FactDb, sql: &str, deadline: Instant, schema: &SqlDatabase) -> Analysis {
    let mut analysis = Analysis::refused(schema.name(), String::new());
    analysis.error = None;
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
    apply_events(&mut analysis, &events, schema);
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

fn apply_events(analysis: &mut Analysis, events: &[Event], schema: &SqlDatabase) {
    for event in events {
        let db = event.database.as_deref();
        if let Some(accessor) = &event.accessor {
            // A view's or trigger's own code: which one it is shows in the names of what it touches.
            if matches!(event.action, Action::Read { .. } | Action::Select) {
                analysis.views.insert(accessor.to_ascii_lowercase());
            } else {
                analysis.triggers.insert(accessor.to_ascii_lowercase());
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

/// Steps `EXPLAIN <sql>`: SQLite lists the first statement's program without running it.
fn read_program(db: &FactDb, sql: &str, deadline: Instant) -> Result<Program, String> {
    record::start(deadline);
    let text = format!("EXPLAIN {sql}");
    let mut batch = rusqlite::Batch::new(&db.conn, &text);
    let mut statement = match batch.next() {
        Ok(Some(statement)) => statement,
        Ok(None) => return Err("no program".into()),
        Err(e) => return Err(e.to_string()),
    };
    // Parameters stay unbound: listing the program does not need them.
    let mut rows = statement.raw_query();
    let mut program = Program::default();
    // Cursors on named objects, and (as `None`) cursors on derived rows: sorters, ephemeral tables, automatic
    // indexes, pseudo-cursors, virtual tables.
    let mut cursors: HashMap<i64, Option<&Object>> = HashMap::new();
    let mut segment = 0usize;
    let mut steps = 0usize;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        steps += 1;
        if steps > MAX_OPS || Instant::now() > deadline {
            return Err("the program is too long to read".into());
        }
        let opcode: String = row.get(1).map_err(|e| e.to_string())?;
        let p1: i64 = row.get(2).map_err(|e| e.to_string())?;
        let p2: i64 = row.get(3).map_err(|e| e.to_string())?;
        let p3: i64 = row.get(4).map_err(|e| e.to_string())?;
        let p5: i64 = row.get(6).map_err(|e| e.to_string())?;
        match opcode.as_str() {
            // Every program (the statement's, each trigger's) starts here, with cursors of its own.
            "Init" => {
                cursors.clear();
                segment += 1;
            }
            "OpenRead" | "OpenWrite" | "ReopenIdx" => {
                // P2 names a register, not a root page: the object cannot be named.
                let object = if p5 & 0x10 != 0 {
                    None
                } else {
                    db.objects.get(&(p3, p2))
                };
                let Some(object) = object else {
                    program.unresolved += 1;
                    continue;
                };
                let table = object.table().to_string();
                let table = if p3 == 1 {
                    format!("temp.{table}")
                } else {
                    table
                };
                if opcode == "OpenWrite" {
                    program.writes.insert(table.clone());
                } else {
                    program.reads.insert((table.clone(), String::new()));
                    if segment == 1 {
                        *program.cursors.entry(table.clone()).or_default() += 1;
                    }
                }
                if let Object::Index { columns, .. } = object {
                    // Seeking an index compares its keys: every column it holds counts as read.
                    for column in columns {
                        program.reads.insert((table.clone(), column.clone()));
                        program.indexed.insert((table.clone(), column.clone()));
                    }
                }
                cursors.insert(p1, Some(object));
            }
            "Column" => {
                let Some(cursor) = cursors.get(&p1) else {
                    // A read through a cursor the program never opened: nothing can be said of it.
                    program.unresolved += 1;
                    continue;
                };
                if let Some(Object::Table {
                    name,
                    columns,
                    plain_storage,
                    ..
                }) = cursor
                {
                    let column = usize::try_from(p2).ok().and_then(|i| columns.get(i));
                    match column {
                        Some(column) if *plain_storage => {
                            program.reads.insert((name.clone(), column.clone()));
                        }
                        _ => all_columns(&mut program, name, columns),
                    }
                }
            }
            "Rowid" | "IdxRowid" | "DeferredSeek" | "SeekRowid" | "NotExists" => {
                if let Some(Some(Object::Table {
                    name, rowid_alias, ..
                })) = cursors.get(&p1)
                {
                    let column = rowid_alias.clone().unwrap_or_else(|| "rowid".into());
                    program.reads.insert((name.clone(), column));
                }
            }
            "RowData" | "RowCell" => {
                if let Some(Some(Object::Table { name, columns, .. })) = cursors.get(&p1) {
                    all_columns(&mut program, name, columns);
                }
            }
            "SorterOpen" | "OpenEphemeral" | "OpenAutoindex" | "OpenDup" | "OpenPseudo"
            | "VOpen" => {
                cursors.insert(p1, None);
                program.derived = true;
            }
            "AggStep" | "AggStep1" | "AggFinal" | "AggValue" | "AggInverse" | "VFilter"
            | "VColumn" => program.derived = true,
            _ => {}
        }
    }
    Ok(program)
}

fn all_columns(program: &mut Program, table: &str, columns: &[String]) {
    for column in columns {
        program.reads.insert((table.to_string(), column.clone()));
    }
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
