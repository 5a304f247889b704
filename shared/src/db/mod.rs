//! PostgreSQL: the connection pool and the embedded schema migrations.

mod migrate;

pub use migrate::{migrate, MigrateError};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

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
    Pool::builder(manager).max_size(settings.pool_size).build()
}
