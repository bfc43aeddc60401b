//! Versioned schemas. Each store knows the migrations up to its version and applies those missing at start
//! (or on `toolgate migrate`); a database whose schema is newer than what this build knows is refused.

use rusqlite::Connection;

use super::StoreError;

/// The SQLite schema's migrations, oldest first; the file's `user_version` counts those applied.
const SQLITE: &[&str] = &["CREATE TABLE IF NOT EXISTS revocations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT,
        issued_before INTEGER,
        reason TEXT,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS approvals (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        chain TEXT NOT NULL,
        tool TEXT NOT NULL,
        pin TEXT,
        arguments_hash TEXT NOT NULL,
        reasons TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        decided_by TEXT,
        decided_at INTEGER,
        used_at INTEGER,
        details TEXT
    );
    CREATE TABLE IF NOT EXISTS registered_upstreams (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS disabled_upstreams (name TEXT PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS registered_agents (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS pins (tool TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS ended_sessions (id TEXT PRIMARY KEY, ended_at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS approvals_match ON approvals (issuer, subject, tool, arguments_hash, status);"];

/// Applies the SQLite migrations missing from the file; refuses a file of a newer schema.
pub fn sqlite(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = i64::try_from(SQLITE.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(newer(version, known));
    }
    for (index, migration) in SQLITE
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        conn.execute_batch(migration)?;
        if index == 0 {
            // Files made before approvals kept what the approver is shown.
            let has_details: bool = conn.query_row(
                "SELECT count(*) FROM pragma_table_info('approvals') WHERE name = 'details'",
                [],
                |row| row.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has_details {
                conn.execute_batch("ALTER TABLE approvals ADD COLUMN details TEXT")?;
            }
        }
        conn.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
    }
    Ok(())
}

/// The PostgreSQL schema's migrations, oldest first; `toolgate_schema` lists those applied.
const POSTGRES: &[&str] = &["CREATE TABLE revocations (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT,
        issued_before BIGINT,
        reason TEXT,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        chain TEXT NOT NULL,
        tool TEXT NOT NULL,
        pin TEXT,
        arguments_hash TEXT NOT NULL,
        reasons TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        decided_by TEXT,
        decided_at BIGINT,
        used_at BIGINT,
        details TEXT
    );
    CREATE INDEX approvals_match ON approvals (issuer, subject, tool, arguments_hash, status);
    CREATE TABLE registered_upstreams (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE disabled_upstreams (name TEXT PRIMARY KEY);
    CREATE TABLE registered_agents (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE pins (tool TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE ended_sessions (id TEXT PRIMARY KEY, ended_at BIGINT NOT NULL);
    CREATE TABLE changes (kind TEXT PRIMARY KEY, n BIGINT NOT NULL);
    INSERT INTO changes (kind, n) VALUES ('revocations', 0), ('upstreams', 0), ('agents', 0), ('pins', 0);
    CREATE TABLE shared_keys (name TEXT PRIMARY KEY, key BYTEA NOT NULL);
    CREATE TABLE chains (chain TEXT PRIMARY KEY, replica TEXT NOT NULL, started_ms BIGINT NOT NULL);
    CREATE TABLE decisions (
        position BIGINT GENERATED ALWAYS AS IDENTITY,
        tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
        chain TEXT NOT NULL,
        seq BIGINT NOT NULL,
        id TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        kind TEXT NOT NULL,
        tool TEXT,
        principal TEXT,
        agent TEXT,
        decision TEXT NOT NULL,
        outcome TEXT NOT NULL,
        body TEXT NOT NULL,
        mac TEXT NOT NULL,
        PRIMARY KEY (chain, seq)
    );
    CREATE UNIQUE INDEX decisions_position ON decisions (position);
    CREATE INDEX decisions_order ON decisions (tx, position);
    CREATE INDEX decisions_time ON decisions (time_ms);
    CREATE INDEX decisions_tool ON decisions (tool, time_ms);
    CREATE INDEX decisions_agent ON decisions (agent, time_ms);"];

/// Any lock id of toolgate's own: replicas starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x746f_6f6c_6761_7465;

/// Applies the PostgreSQL migrations missing from the database, in one transaction; refuses a database of a
/// newer schema. Returns the schema's version.
pub async fn postgres(client: &mut tokio_postgres::Client) -> Result<i64, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS toolgate_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let version: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM toolgate_schema", &[])
        .await?
        .get(0);
    let known = i64::try_from(POSTGRES.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(newer(version, known));
    }
    for (index, migration) in POSTGRES
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.batch_execute(migration).await?;
        let applied = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO toolgate_schema (version, applied_at) VALUES ($1, $2)",
            &[&applied, &crate::clock::unix_now()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(known)
}

fn newer(version: i64, known: i64) -> StoreError {
    StoreError(format!(
        "the database's schema is version {version}, newer than this toolgate knows ({known}): run a toolgate \
         that knows it, or another database"
    ))
}
