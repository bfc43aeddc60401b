//! SQLite's compiled program, read (`EXPLAIN`, which lists the program without running it) for every table and
//! index the engine will open and every column it will read. SQLite's authorizer is not consulted for some reads
//! (the columns of `USING` and `NATURAL` joins); the program completes its record.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use rusqlite::fallible_iterator::FallibleIterator;

use super::database::FactDb;
use super::objects::Object;
use super::record;

/// Most program steps read; SQLite refuses to build a longer program for a fact database.
pub(super) const MAX_OPS: usize = 100_000;

/// What the program opens and reads.
#[derive(Debug, Default)]
pub(super) struct Program {
    pub(super) reads: BTreeSet<(String, String)>,
    pub(super) writes: BTreeSet<String>,
    /// Read cursors opened per table (main program only).
    pub(super) cursors: HashMap<String, usize>,
    /// Sorting, grouping, distinct, automatic indexes, aggregates or virtual tables.
    pub(super) derived: bool,
    /// Objects the program opens that toolgate cannot name.
    pub(super) unresolved: usize,
    /// Tables read through an index, with the index's columns.
    pub(super) indexed: BTreeSet<(String, String)>,
}

/// Steps `EXPLAIN <sql>`: SQLite lists the first statement's program without running it.
pub(super) fn read_program(db: &FactDb, sql: &str, deadline: Instant) -> Result<Program, String> {
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
