//! The store in PostgreSQL, shared by replicas. Every change of what replicas keep in memory (revocations,
//! registered upstreams, agents, pins) bumps its counter in `changes` and notifies channel `toolgate` in the same
//! transaction, so that the others read it again at once (and on their poll, should a notification be lost).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Revocation, RevocationTarget, StoreError, migrate};
use crate::clock::unix_now;
use crate::config::PostgresConfig;

/// What went wrong: the server's own message when it sent one; else the client's, with its cause (connection
/// refused, a bad password …), which says what to fix where the summary alone does not.
pub fn cause(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => db.message().to_string(),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self(format!("postgres: {}", cause(&e)))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self(format!("postgres: {e}"))
    }
}

/// The channel every change is announced on.
pub const CHANNEL: &str = "toolgate";

/// What replicas keep in memory and read again when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shared {
    Revocations,
    Upstreams,
    Agents,
    Pins,
}

impl Shared {
    pub const ALL: [Self; 4] = [Self::Revocations, Self::Upstreams, Self::Agents, Self::Pins];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revocations => "revocations",
            Self::Upstreams => "upstreams",
            Self::Agents => "agents",
            Self::Pins => "pins",
        }
    }
}

/// Connection settings parsed from the config.
pub fn connection_config(config: &PostgresConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config = config
        .url
        .parse()
        .map_err(|e| StoreError(format!("storage.postgres.url is not a PostgreSQL URL: {e}")))?;
    pg.connect_timeout(config.connect_timeout);
    // A peer gone without a word is noticed in seconds, not when TCP gives up (hours); no statement or lock wait
    // holds a caller for long. Options the URL sets itself are kept.
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    if pg.get_options().is_none() {
        pg.options("-c statement_timeout=30000 -c lock_timeout=10000");
    }
    if pg.get_application_name().is_none() {
        pg.application_name(format!("toolgate {}", config.replica_name()));
    }
    Ok(pg)
}

/// Where `pg` connects, for messages (never its password): `host:port/database`.
pub fn describe(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", pg.get_dbname().unwrap_or(""))
}

/// TLS toward the server: used whenever the server offers it (`sslmode=prefer`, the URL's default), required with
/// `sslmode=require`, never with `sslmode=disable`; the server's certificate is always verified, against the
/// system's certificate authorities and those of `ca_file`, and must name the host of the URL.
pub fn tls(config: &PostgresConfig) -> Result<MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    // The system's store may be missing or partly unreadable: what it has is used.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &config.ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect())
            .map_err(|e| {
                StoreError(format!(
                    "storage.postgres.ca_file `{}`: {e}",
                    path.display()
                ))
            })?;
        if certificates.is_empty() {
            return Err(StoreError(format!(
                "storage.postgres.ca_file `{}` holds no certificate",
                path.display()
            )));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| {
                StoreError(format!(
                    "storage.postgres.ca_file `{}`: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(client))
}

/// A connection's driving half: what reads the server's messages (notifications among them).
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// A connection of its own: its client, and its driving half for the caller to spawn or poll.
pub async fn connection(
    config: &PostgresConfig,
) -> Result<(tokio_postgres::Client, Connection), StoreError> {
    let pg = connection_config(config)?;
    let at = describe(&pg);
    tokio::time::timeout(config.connect_timeout, pg.connect(tls(config)?))
        .await
        .map_err(|_| StoreError(format!("postgres at {at}: connecting timed out")))?
        .map_err(|e| StoreError(format!("cannot reach postgres at {at}: {}", cause(&e))))
}

/// A connection of its own (the migration's), its driver spawned on the runtime.
pub async fn connect(config: &PostgresConfig) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = connection(config).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
}

impl Postgres {
    /// Connects, migrates the schema (refusing one newer than this build knows) and opens the pool.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let mut client = connect(config).await?;
        migrate::postgres(&mut client).await?;
        let manager = Manager::from_config(
            connection_config(config)?,
            tls(config)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError(format!("postgres: {e}")))?;
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// A change counter's values, to compare with those last read.
    pub async fn changes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT kind, n FROM changes", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The key named `name` shared by every replica, made by the first one that asks.
    pub async fn shared_key(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError(e.to_string()))?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO shared_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &key],
            )
            .await?;
        Ok(client
            .query_one("SELECT key FROM shared_keys WHERE name = $1", &[&name])
            .await?
            .get(0))
    }

    pub async fn add_revocation(
        &self,
        mut revocation: Revocation,
    ) -> Result<Revocation, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Revocations commit in the order of their ids, so that a replica reading those after the last it saw
        // never skips one committed late.
        tx.execute("LOCK TABLE revocations IN EXCLUSIVE MODE", &[])
            .await?;
        let (kind, key1, key2) = revocation.target.columns();
        let row = tx
            .query_one(
                "INSERT INTO revocations (kind, key1, key2, issued_before, reason, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &kind,
                    &key1,
                    &key2,
                    &revocation.issued_before,
                    &revocation.reason,
                    &revocation.created_at,
                    &revocation.created_by,
                ],
            )
            .await?;
        revocation.id = row.get(0);
        changed(&tx, Shared::Revocations).await?;
        tx.commit().await?;
        Ok(revocation)
    }

    pub async fn revocations_after(&self, after: i64) -> Result<Vec<Revocation>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, kind, key1, key2, issued_before, reason, created_at, created_by FROM revocations
                 WHERE id > $1 ORDER BY id",
                &[&after],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    id: row.get(0),
                    target: RevocationTarget::from_columns(row.get(1), row.get(2), row.get(3))?,
                    issued_before: row.get(4),
                    reason: row.get(5),
                    created_at: row.get(6),
                    created_by: row.get(7),
                })
            })
            .collect()
    }

    /// `(key, body)` of every row `sql` selects.
    pub async fn bodies(&self, sql: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(sql, &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Runs `sql` with `params` and announces a change of `what`, in one transaction.
    async fn change(
        &self,
        what: Shared,
        statements: &[(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)])],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (sql, params) in statements {
            tx.execute(*sql, params).await?;
        }
        changed(&tx, what).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn put_pin(&self, tool: String, body: String) -> Result<(), StoreError> {
        self.change(
            Shared::Pins,
            &[(
                "INSERT INTO pins (tool, body) VALUES ($1, $2) ON CONFLICT (tool) DO UPDATE SET body = excluded.body",
                &[&tool, &body],
            )],
        )
        .await
    }

    pub async fn put_upstream(
        &self,
        name: String,
        body: String,
        by: String,
    ) -> Result<(), StoreError> {
        self.change(
            Shared::Upstreams,
            &[(
                "INSERT INTO registered_upstreams (name, body, created_by, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                &[&name, &body, &by, &unix_now()],
            )],
        )
        .await
    }

    pub async fn delete_upstream(&self, name: String) -> Result<(), StoreError> {
        self.change(
            Shared::Upstreams,
            &[
                ("DELETE FROM registered_upstreams WHERE name = $1", &[&name]),
                ("DELETE FROM disabled_upstreams WHERE name = $1", &[&name]),
            ],
        )
        .await
    }

    pub async fn disabled_upstreams(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT name FROM disabled_upstreams ORDER BY name", &[])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn set_upstream_disabled(
        &self,
        name: String,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let sql = if disabled {
            "INSERT INTO disabled_upstreams (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
        } else {
            "DELETE FROM disabled_upstreams WHERE name = $1"
        };
        self.change(Shared::Upstreams, &[(sql, &[&name])]).await
    }

    pub async fn put_agent(
        &self,
        id: String,
        body: Option<String>,
        by: String,
    ) -> Result<(), StoreError> {
        match body {
            Some(body) => {
                self.change(
                    Shared::Agents,
                    &[(
                        "INSERT INTO registered_agents (id, body, updated_by, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_by = excluded.updated_by,
                         updated_at = excluded.updated_at",
                        &[&id, &body, &by, &unix_now()],
                    )],
                )
                .await
            }
            None => {
                self.change(
                    Shared::Agents,
                    &[("DELETE FROM registered_agents WHERE id = $1", &[&id])],
                )
                .await
            }
        }
    }

    pub async fn end_session(&self, key: String, forget_before: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM ended_sessions WHERE ended_at < $1",
                &[&forget_before],
            )
            .await?;
        client
            .execute(
                "INSERT INTO ended_sessions (id, ended_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&key, &unix_now()],
            )
            .await?;
        Ok(())
    }

    pub async fn session_ended(&self, key: String) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one("SELECT count(*) FROM ended_sessions WHERE id = $1", &[&key])
            .await?
            .get(0);
        Ok(n > 0)
    }

    pub(super) async fn pooled(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.client().await
    }
}

/// Bumps `what`'s change counter and notifies the channel; both take effect when the transaction commits.
async fn changed(tx: &tokio_postgres::Transaction<'_>, what: Shared) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE changes SET n = n + 1 WHERE kind = $1",
        &[&what.as_str()],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &what.as_str()])
        .await?;
    Ok(())
}
mod approvals;
