//! What the fact database holds, by root page: tables (their columns in storage order, the rowid alias) and
//! indexes (the columns they hold), read once when a fact database is built.

use std::collections::HashMap;

use rusqlite::Connection;

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
    pub(super) fn table(&self) -> &str {
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
            let is_without_rowid: bool = conn.query_row(
                "SELECT ifnull(max(wr), 1) FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                [&name],
                |r| r.get(0),
            )?;
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
