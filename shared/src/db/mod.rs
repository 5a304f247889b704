//! PostgreSQL: the connection pool, the embedded schema migrations, and the queries on
//! `recordings`, `assets`, `notification_outbox` and `notification_deliveries` that every process needs.

pub mod assets;
pub mod deliveries;
mod migrate;
pub mod notifications;
pub mod prepared;
pub mod recordings;
pub mod usage;

pub use migrate::{applied_version, latest_version, migrate, MigrateError};

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::{DatabaseSchema, DatabaseSettings};

/// How long a task waits for a free connection, or for a new one, before it counts the database
/// as unavailable (and retries) rather than hanging.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool whose connections are checked cheaply (`Fast`, which keeps session settings such as
/// the `search_path`) when handed out; a broken connection surfaces as a query error, which the
/// caller retries. Connects lazily; each new connection uses `DATABASE_SCHEMA`.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        settings.config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let schema = settings.schema.clone();
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .post_create(Hook::async_fn(move |client, _| {
            let schema = schema.clone();
            Box::pin(async move {
                use_schema(client, &schema)
                    .await
                    .map_err(HookError::Backend)
            })
        }))
        .build()
}

/// One connection outside the pool (migrations, `doctor`), using `DATABASE_SCHEMA`; its driver
/// runs on a task of its own until the client is dropped.
pub async fn connect(
    settings: &DatabaseSettings,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = settings.config.connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    use_schema(&client, &settings.schema).await?;
    Ok((client, driver))
}

/// Points the session's unqualified names at `schema`, and only there: roomtape's tables never
/// resolve to a user's table of the same name in another schema (Supabase's `public.assets`).
/// A plain `SET` rather than the `options` start-up parameter, which poolers in session mode
/// (PgBouncer, Supavisor) refuse or ignore.
async fn use_schema(
    client: &tokio_postgres::Client,
    schema: &DatabaseSchema,
) -> Result<(), tokio_postgres::Error> {
    // The name is a validated identifier (`DatabaseSchema::new`), so quoting it is enough.
    client
        .batch_execute(&format!("SET search_path TO \"{schema}\""))
        .await
}

/// Whether the connection keeps its session between transactions, as a direct connection or a
/// pooler in session mode does: a setting made in one transaction is still there, on the same
/// server process, in the next ones. A pooler in transaction mode may hand each transaction to
/// another server process, which breaks session advisory locks and prepared statements.
pub async fn session_kept(client: &tokio_postgres::Client) -> Result<bool, tokio_postgres::Error> {
    // Any value this check alone would set: the time to the nanosecond.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string();
    client
        .batch_execute(&format!("SET roomtape.session_check = '{nonce}'"))
        .await?;
    let first_pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    for _ in 0..3 {
        let row = client
            .query_one(
                "SELECT current_setting('roomtape.session_check', true), pg_backend_pid()",
                &[],
            )
            .await?;
        let (setting, pid): (Option<String>, i32) = (row.get(0), row.get(1));
        if setting.as_deref() != Some(nonce.as_str()) || pid != first_pid {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `config` names Supabase's pooler on port 6543, its transaction mode: known without
/// asking, since a transaction pooler under little load can look like a session.
pub fn transaction_pooler(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    let supabase_pooler = config.get_hosts().iter().any(|host| {
        matches!(host, Host::Tcp(name) if name.to_ascii_lowercase().ends_with(".pooler.supabase.com"))
    });
    supabase_pooler && config.get_ports().contains(&6543)
}

/// Whether the database answers, for `/readyz`. The cause goes to the log; the answer only says
/// that the database is away (it is served to anyone, so it names no host, port or database).
pub async fn answers(pool: &Pool) -> Result<(), String> {
    let unreachable = |error: &(dyn std::error::Error + 'static)| {
        tracing::warn!(error = %crate::Chain(error), "readiness: the database does not answer");
        "database unreachable".to_owned()
    };
    let client = pool.get().await.map_err(|e| unreachable(&e))?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(())
}

/// A LiveKit nanosecond timestamp as a database timestamp; 0 (unset) is `None`.
pub fn from_nanos(nanos: i64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| DateTime::from_timestamp_nanos(nanos))
}

/// A LiveKit seconds timestamp as a database timestamp; 0 (unset) is `None`.
pub fn from_secs(secs: i64) -> Option<DateTime<Utc>> {
    (secs > 0)
        .then(|| DateTime::from_timestamp(secs, 0))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::transaction_pooler;

    #[test]
    fn only_supabases_pooler_on_port_6543_is_its_transaction_mode() {
        let pooler = |url: &str| transaction_pooler(&url.parse().expect("url"));
        assert!(pooler(
            "postgres://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
        ));
        assert!(!pooler(
            "postgres://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres"
        ));
        assert!(!pooler(
            "postgres://postgres:pw@db.abc.supabase.co:5432/postgres"
        ));
        assert!(!pooler("postgres://roomtape@127.0.0.1:6543/roomtape"));
    }
}
