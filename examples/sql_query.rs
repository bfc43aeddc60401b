//! Example upstream: SQL over an embedded SQLite sample database (employees, salaries, projects, customers),
//! created in memory at start. Deliberately permissive: it runs whatever SQL it is given, writes included.
//! Its schema is declared to toolgate in `tool-manifests/sql.schema.sql`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{schemars, tool, tool_router};
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The tables, from the very file that declares them to toolgate, so the two cannot drift apart.
const SCHEMA: &str = include_str!("../tool-manifests/sql.schema.sql");

const DATA: &str = "
INSERT INTO employees VALUES
  ('E1001','Ada Lovelace','ada.lovelace@example.com','engineering','123-45-6789'),
  ('E1002','Grace Hopper','grace.hopper@example.com','engineering','234-56-7890'),
  ('E1003','Katherine Johnson','katherine.johnson@example.com','finance','345-67-8901'),
  ('E1004','Alan Turing','alan.turing@example.com','research','456-78-9012'),
  ('E1005','Mary Jackson','mary.jackson@example.com','hr','567-89-0123'),
  ('E1006','Dorothy Vaughan','dorothy.vaughan@example.com','hr','678-90-1234');
INSERT INTO salaries VALUES ('E1001',185000,'USD'),('E1002',178000,'USD'),('E1003',142000,'USD'),
  ('E1004',190000,'USD'),('E1005',121000,'USD'),('E1006',133000,'USD');
INSERT INTO projects (name, owner_id, status) VALUES ('Analytical Engine','E1001','active'),
  ('COBOL','E1002','done'),('Trajectory','E1003','active'),('Enigma','E1004','active');
INSERT INTO customers (name, email, country) VALUES ('Acme Corp','buyer@acme.example','US'),
  ('Globex','ap@globex.example','DE'),('Initech','it@initech.example','US');
";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct QueryArgs {
    /// The SQL to run.
    sql: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct QueryResult {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    /// Rows changed, for statements that do not return rows.
    changes: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Tables {
    tables: Vec<String>,
}

#[derive(Clone)]
struct SqlQuery {
    db: Arc<Mutex<rusqlite::Connection>>,
    /// When the running statement must stop (Unix ms): a query never runs away with the server.
    deadline: Arc<AtomicU64>,
    /// Interrupts the running statement from another thread (a cancelled call).
    interrupt: Arc<rusqlite::InterruptHandle>,
    /// How long one statement may run.
    query_time: Duration,
}

/// How long one statement may run by default (`SQL_QUERY_TIME_MS` sets it), and how many rows an answer holds at
/// most.
const QUERY_TIME: Duration = Duration::from_secs(2);
const MAX_ROWS: usize = 10_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(format!("<{} bytes>", b.len())),
    }
}

#[tool_router(server_handler)]
impl SqlQuery {
    #[tool(description = "Run a SQL query against the company database and return its rows.")]
    async fn query(
        &self,
        Parameters(args): Parameters<QueryArgs>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Json<QueryResult>, String> {
        // The statement runs on a blocking thread; a cancelled call (the client's, or the gateway's call timeout)
        // interrupts it, so that it never holds the connection after its caller has gone.
        let this = self.clone();
        let mut running = tokio::task::spawn_blocking(move || this.run(&args.sql));
        tokio::select! {
            done = &mut running => done.map_err(|_| "query failed".to_string())?,
            () = cancel.cancelled() => {
                self.interrupt.interrupt();
                let _ = running.await;
                eprintln!("sql_query: statement interrupted (call cancelled)");
                Err("cancelled".to_string())
            }
        }
    }

    #[tool(description = "List the tables of the company database.")]
    async fn list_tables(&self) -> Result<Json<Tables>, String> {
        let db = self
            .db
            .lock()
            .map_err(|_| "database unavailable".to_string())?;
        let mut statement = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(|e| e.to_string())?;
        let tables = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .collect();
        Ok(Json(Tables { tables }))
    }
}

impl SqlQuery {
    /// Runs one statement, bounded by the statement time and the row limit.
    fn run(&self, sql: &str) -> Result<Json<QueryResult>, String> {
        let db = self
            .db
            .lock()
            .map_err(|_| "database unavailable".to_string())?;
        self.deadline.store(
            now_ms() + self.query_time.as_millis() as u64,
            Ordering::Relaxed,
        );
        let mut statement = db.prepare(sql).map_err(|e| format!("sql error: {e}"))?;
        let columns: Vec<String> = statement.column_names().map(|c| c.to_string()).collect();
        if columns.is_empty() {
            drop(statement);
            db.execute_batch(sql)
                .map_err(|e| format!("sql error: {e}"))?;
            return Ok(Json(QueryResult {
                columns,
                rows: Vec::new(),
                changes: db.changes(),
            }));
        }
        let mut rows = Vec::new();
        let mut cursor = statement.query([]).map_err(|e| format!("sql error: {e}"))?;
        while let Some(row) = cursor.next().map_err(|e| format!("sql error: {e}"))? {
            if rows.len() == MAX_ROWS {
                return Err(format!(
                    "the answer has more than {MAX_ROWS} rows; narrow the query"
                ));
            }
            rows.push(
                (0..columns.len())
                    .map(|i| row.get_ref(i).map(to_json).unwrap_or(Value::Null))
                    .collect(),
            );
        }
        Ok(Json(QueryResult {
            columns,
            rows,
            changes: 0,
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut db = rusqlite::Connection::open_in_memory()?;
    db.execute_batch(SCHEMA)?;
    db.execute_batch(DATA)?;
    let deadline = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::clone(&deadline);
    // SQLite asks every 10,000 steps whether to go on: a statement past its time is interrupted.
    db.progress_handler(
        10_000,
        Some(move || now_ms() > stop.load(Ordering::Relaxed)),
    )?;
    let interrupt = Arc::new(db.get_interrupt_handle());
    let query_time = std::env::var("SQL_QUERY_TIME_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(QUERY_TIME, Duration::from_millis);
    let db = Arc::new(Mutex::new(db));
    common::serve(move || SqlQuery {
        db: db.clone(),
        deadline: deadline.clone(),
        interrupt: interrupt.clone(),
        query_time,
    })
    .await
}
