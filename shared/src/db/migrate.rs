//! Forward-only migrations from `shared/migrations`, embedded in the binary.

use crate::config::{DatabaseSchema, DatabaseSettings};

refinery::embed_migrations!("migrations");

/// Held while migrating, so two processes starting at once take turns instead of racing to
/// create the same tables. An arbitrary constant: "roomtape" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x726f_6f6d_7461_7065;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database at {address}")]
    Connect {
        address: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot create the schema named by DATABASE_SCHEMA")]
    Schema(#[source] tokio_postgres::Error),
    #[error("cannot take the migration lock")]
    Lock(#[source] tokio_postgres::Error),
    #[error("a migration failed")]
    Migration(#[source] refinery::Error),
}

/// The newest migration this build embeds.
pub fn latest_version() -> i64 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or_default()
}

/// The newest migration applied to the database behind `client` (0 when none is).
pub async fn applied_version(
    client: &tokio_postgres::Client,
) -> Result<i64, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT COALESCE(max(version), 0)::bigint FROM refinery_schema_history",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Applies every migration not yet applied, in `DATABASE_SCHEMA` (created if missing); returns
/// how many ran. Safe to run twice, and by two processes at once.
pub async fn migrate(settings: &DatabaseSettings) -> Result<usize, MigrateError> {
    let (mut client, driver) =
        super::connect(settings)
            .await
            .map_err(|source| MigrateError::Connect {
                address: settings.address(),
                source,
            })?;
    // Session-level lock on this connection: released when it closes, even on error.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(MigrateError::Lock)?;
    let report = create_schema(&client, &settings.schema).await;
    let report = match report {
        Ok(()) => migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(MigrateError::Migration),
        Err(error) => Err(error),
    };
    drop(client);
    let _ = driver.await;
    Ok(report?.applied_migrations().len())
}

/// `CREATE SCHEMA IF NOT EXISTS`, skipped when the schema exists so a role that may not create
/// schemas can still migrate into one made for it.
async fn create_schema(
    client: &tokio_postgres::Client,
    schema: &DatabaseSchema,
) -> Result<(), MigrateError> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema.as_str()],
        )
        .await
        .map_err(MigrateError::Schema)?
        .get(0);
    if exists {
        return Ok(());
    }
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await
        .map_err(MigrateError::Schema)
}
