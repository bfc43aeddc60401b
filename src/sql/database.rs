//! A declared schema compiled into fact databases: in-memory SQLite connections holding the upstream's tables,
//! views and triggers (never its data), with limits and the recording authorizer installed. Connections are
//! built on demand and pooled, so a statement pays only for its own prepare.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::objects::Object;
use super::{Analysis, MAX_SQL_BYTES, record};
use crate::classification::Classification;

/// How long preparing one statement (and reading its program) may take before it is refused.
const PREPARE_BUDGET: Duration = Duration::from_millis(100);

/// Fact databases kept for reuse per schema.
const POOL: usize = 8;

/// A database as a manifest declares it: its schema (DDL) and the classes of its columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaDeclaration {
    /// Only `sqlite` for now.
    #[serde(default = "sqlite")]
    pub dialect: String,
    /// The DDL, inline.
    #[serde(default)]
    pub schema: Option<String>,
    /// The DDL in a file beside the manifest.
    #[serde(default)]
    pub schema_file: Option<String>,
    /// Class of every column not listed in `columns` (default `restricted`: an unlisted column is the most
    /// sensitive until someone says otherwise).
    #[serde(default = "restricted")]
    pub default_class: Classification,
    /// `table.column` (or `table.*`) → class.
    #[serde(default)]
    pub columns: BTreeMap<String, Classification>,
}

fn sqlite() -> String {
    "sqlite".into()
}

fn restricted() -> Classification {
    Classification::Restricted
}

/// A compiled schema and its pool of fact databases.
#[derive(Debug)]
pub struct SqlDatabase {
    name: Option<String>,
    ddl: String,
    default_class: Classification,
    /// Lowercased `table.column` / `table.*`.
    columns: BTreeMap<String, Classification>,
    pool: Mutex<Vec<FactDb>>,
}

/// One connection and what its root pages hold.
pub(super) struct FactDb {
    pub(super) conn: Connection,
    pub(super) objects: HashMap<(i64, i64), Object>,
    /// Names (lowercased) of the declared schema's views and triggers.
    pub(super) views: std::collections::HashSet<String>,
    pub(super) triggers: std::collections::HashSet<String>,
}

impl std::fmt::Debug for FactDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactDb")
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl PartialEq for SqlDatabase {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.ddl == other.ddl
            && self.default_class == other.default_class
            && self.columns == other.columns
    }
}

impl Eq for SqlDatabase {}

/// A declared schema that cannot serve facts (the text names the database and why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(String);

impl SqlDatabase {
    /// Compiles a declaration whose DDL is `ddl`: the DDL must run on an empty database (it is checked here, so
    /// a schema that does not compile refuses to load).
    pub fn compile(
        name: &str,
        declaration: &SchemaDeclaration,
        ddl: String,
    ) -> Result<Self, SchemaError> {
        Self::compile_text(name, declaration, ddl).map_err(SchemaError)
    }

    fn compile_text(
        name: &str,
        declaration: &SchemaDeclaration,
        ddl: String,
    ) -> Result<Self, String> {
        if declaration.dialect != "sqlite" {
            return Err(format!(
                "database `{name}`: dialect `{}` is not supported (only `sqlite`)",
                declaration.dialect
            ));
        }
        let database = Self {
            name: Some(name.to_string()),
            ddl,
            default_class: declaration.default_class,
            columns: declaration
                .columns
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), *v))
                .collect(),
            pool: Mutex::new(Vec::new()),
        };
        let db = database
            .build()
            .map_err(|e| format!("database `{name}`: the schema does not compile: {e}"))?;
        for key in database.columns.keys() {
            let Some((table, column)) = key.split_once('.') else {
                return Err(format!(
                    "database `{name}`: column class key `{key}` is not `table.column`"
                ));
            };
            let known = db.objects.values().any(|o| match o {
                Object::Table { name, columns, .. } => {
                    name == table && (column == "*" || columns.iter().any(|c| c == column))
                }
                Object::Index { .. } => false,
            });
            if !known {
                return Err(format!(
                    "database `{name}`: `{key}` names no column of the declared schema"
                ));
            }
        }
        database.give_back(db);
        Ok(database)
    }

    /// No declared schema: statements are prepared on an empty database, so any table they name is unknown.
    pub fn schemaless() -> Self {
        Self {
            name: None,
            ddl: String::new(),
            default_class: Classification::Restricted,
            columns: BTreeMap::new(),
            pool: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The class of `table.column` (an empty column: the table's own class).
    pub fn class_of(&self, table: &str, column: &str) -> Classification {
        if !column.is_empty()
            && let Some(class) = self.columns.get(&format!("{table}.{column}"))
        {
            return *class;
        }
        self.columns
            .get(&format!("{table}.*"))
            .copied()
            .unwrap_or(self.default_class)
    }

    /// What SQLite says `sql` does. Never fails: whatever cannot be analysed is a fact that policies refuse.
    pub fn analyse(&self, sql: &str) -> Analysis {
        let schema = self.name.as_deref();
        if sql.len() > MAX_SQL_BYTES {
            return Analysis::refused(
                schema,
                format!(
                    "the statement is {} bytes long; toolgate analyses at most {MAX_SQL_BYTES}",
                    sql.len()
                ),
            );
        }
        if sql.contains('\0') {
            return Analysis::refused(schema, "the statement contains a NUL byte".into());
        }
        let db = match self.take() {
            Ok(db) => db,
            Err(e) => return Analysis::refused(schema, format!("no fact database: {e}")),
        };
        let deadline = Instant::now() + PREPARE_BUDGET;
        // A panic inside the SQLite binding must not take the request with it: it is a refusal.
        let analysis = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::analyse::analyse(&db, sql, deadline, self)
        }));
        let _ = record::finish();
        match analysis {
            Ok(analysis) => {
                self.give_back(db);
                analysis
            }
            Err(_) => Analysis::refused(schema, "SQLite could not analyse the statement".into()),
        }
    }

    fn take(&self) -> Result<FactDb, String> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(db) => Ok(db),
            None => self.build(),
        }
    }

    fn give_back(&self, db: FactDb) {
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL
        {
            pool.push(db);
        }
    }

    /// A fresh fact database: in memory, no extension loading, tight limits, the schema, then the recorder.
    fn build(&self) -> Result<FactDb, String> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_MEMORY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(":memory:", flags).map_err(|e| e.to_string())?;
        for (limit, value) in [
            (Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES as i32),
            (Limit::SQLITE_LIMIT_EXPR_DEPTH, 200),
            (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 64),
            (Limit::SQLITE_LIMIT_FUNCTION_ARG, 100),
            (Limit::SQLITE_LIMIT_ATTACHED, 0),
            (Limit::SQLITE_LIMIT_LENGTH, 1_000_000),
            (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
            // A program longer than toolgate reads is refused while SQLite builds it, not after.
            (Limit::SQLITE_LIMIT_VDBE_OP, super::program::MAX_OPS as i32),
        ] {
            conn.set_limit(limit, value).map_err(|e| e.to_string())?;
        }
        conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA temp_store = MEMORY;")
            .map_err(|e| e.to_string())?;
        // The declared schema: definitions only (tables, views, triggers, indexes).
        conn.authorizer(Some(ddl_only)).map_err(|e| e.to_string())?;
        conn.execute_batch(&self.ddl).map_err(|e| e.to_string())?;
        conn.authorizer(None::<fn(rusqlite::hooks::AuthContext<'_>) -> _>)
            .map_err(|e| e.to_string())?;
        let objects = super::objects::objects(&conn).map_err(|e| e.to_string())?;
        let names = |kind: &str| -> Result<std::collections::HashSet<String>, String> {
            let mut statement = conn
                .prepare("SELECT lower(name) FROM main.sqlite_schema WHERE type = ?1")
                .map_err(|e| e.to_string())?;
            let rows = statement
                .query_map([kind], |row| row.get::<_, String>(0))
                .map_err(|e| e.to_string())?;
            rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
        };
        let (views, triggers) = (names("view")?, names("trigger")?);
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(|e| e.to_string())?;
        conn.authorizer(Some(record::authorize))
            .map_err(|e| e.to_string())?;
        Ok(FactDb {
            conn,
            objects,
            views,
            triggers,
        })
    }
}

/// While the declared DDL runs: schema definitions and what SQLite does to record them, nothing else.
fn ddl_only(context: rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization {
    use rusqlite::hooks::{AuthAction as A, Authorization};
    match context.action {
        A::Attach { .. }
        | A::Detach { .. }
        | A::Pragma { .. }
        | A::Transaction { .. }
        | A::Savepoint { .. } => Authorization::Deny,
        A::Function { function_name } if function_name.eq_ignore_ascii_case("load_extension") => {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}
