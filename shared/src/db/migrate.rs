//! Forward-only migrations from `shared/migrations`, embedded in the binary.

use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

refinery::embed_migrations!("migrations");

/// Held while migrating, so two processes starting at once take turns instead of racing to
/// create the same tables. An arbitrary constant: "roomtape" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x726f_6f6d_7461_7065;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database")]
    Connect(#[source] tokio_postgres::Error),
    #[error("cannot take the migration lock")]
    Lock(#[source] tokio_postgres::Error),
    #[error("a migration failed")]
    Migration(#[source] refinery::Error),
}

/// Applies every migration not yet applied; returns how many ran. Safe to run twice, and by two
/// processes at once.
pub async fn migrate(settings: &DatabaseSettings) -> Result<usize, MigrateError> {
    let (mut client, connection) = settings
        .config
        .connect(NoTls)
        .await
        .map_err(MigrateError::Connect)?;
    let driver = tokio::spawn(connection);
    // Session-level lock on this connection: released when it closes, even on error.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(MigrateError::Lock)?;
    let report = migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(MigrateError::Migration);
    drop(client);
    let _ = driver.await;
    Ok(report?.applied_migrations().len())
}
