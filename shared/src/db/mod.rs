//! PostgreSQL: the connection pool, the embedded schema migrations, and the queries on
//! `recordings`, `assets`, `notification_outbox` and `notification_deliveries` that every process needs.

pub mod assets;
pub mod deliveries;
mod migrate;
pub mod notifications;
pub mod prepared;
pub mod recordings;

pub use migrate::{applied_version, latest_version, migrate, MigrateError};

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

/// How long a task waits for a free connection, or for a new one, before it counts the database
/// as unavailable (and retries) rather than hanging.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool whose connections are checked cheaply (`Fast`) when handed out; a broken connection
/// surfaces as a query error, which the caller retries. Connects lazily.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, deadpool_postgres::BuildError> {
    let manager = Manager::from_config(
        settings.config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .build()
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
