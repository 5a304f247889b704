//! `WEBHOOK_EVENTS_RETENTION` (CONTRACTS §6): processed event ids, command records, stop
//! requests, finished notification deliveries and relayed notifications older than it are deleted, a small batch per statement so no delete holds many row
//! locks or a long transaction. A recording whose events were pruned says so in its
//! `metadata` (`events_pruned_at`), so its details do not show an empty history as if nothing
//! had happened.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use roomtape_shared::clock::Clock;
use roomtape_shared::db::prepared;
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;
use tokio_postgres::types::ToSql;

/// Rows deleted per statement.
const BATCH: i64 = 500;
/// How often the processor prunes.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub commands: u64,
    pub stop_requests: u64,
    pub notifications: u64,
    pub deliveries: u64,
}

/// Prunes every [`EVERY`] until shutdown.
#[derive(Debug, Clone)]
pub struct Pruner {
    pub pool: Pool,
    pub retention: Duration,
    pub clock: Clock,
}

impl Pruner {
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            // Each batch commits on its own: stopping between two leaves nothing half-done.
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.prune() => result,
            };
            match result {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!(?pruned, "pruned records past WEBHOOK_EVENTS_RETENTION")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %Chain(&error), "pruning failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Deletes, a batch at a time, everything older than the retention at the clock's now.
    pub async fn prune(&self) -> Result<Pruned, PruneError> {
        let now = self.clock.now_unix() as f64;
        let cutoff = now - self.retention.as_secs_f64();
        let client = self.pool.get().await?;
        Ok(Pruned {
            events: batches(&client, PRUNE_EVENTS, &[&cutoff, &BATCH, &now]).await?,
            commands: batches(
                &client,
                &prune_older("recording_commands", "message_id", "created_at"),
                &[&cutoff, &BATCH],
            )
            .await?,
            stop_requests: batches(
                &client,
                &prune_older("room_stop_requests", "room_name", "requested_at"),
                &[&cutoff, &BATCH],
            )
            .await?,
            // Pending deliveries (`finished_at` NULL) are never older than the cutoff. Before the
            // notifications: one is kept while a delivery of it remains.
            deliveries: batches(
                &client,
                &prune_older("notification_deliveries", "id", "finished_at"),
                &[&cutoff, &BATCH],
            )
            .await?,
            notifications: batches(&client, PRUNE_OUTBOX, &[&cutoff, &BATCH]).await?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Runs `sql` (`$1` the cutoff in Unix seconds, `$2` the batch size) until a batch comes back
/// short; returns how many rows it deleted.
async fn batches(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let mut total = 0;
    loop {
        let row = prepared::query_one(client, sql, params).await?;
        let deleted: i64 = row.get(0);
        total += deleted.unsigned_abs();
        if deleted < BATCH {
            return Ok(total);
        }
    }
}

/// Processed event ids; their recordings note when (`$3`, now) their history was pruned.
const PRUNE_EVENTS: &str = "WITH gone AS (
        DELETE FROM webhook_events WHERE event_id IN (
            SELECT event_id FROM webhook_events WHERE processed_at < to_timestamp($1)
            ORDER BY processed_at LIMIT $2)
        RETURNING payload -> 'egressInfo' ->> 'egressId' AS egress_id),
    noted AS (
        UPDATE recordings SET metadata = metadata
                || jsonb_build_object('events_pruned_at', to_timestamp($3))
            WHERE egress_id IN (SELECT egress_id FROM gone WHERE egress_id IS NOT NULL))
    SELECT count(*) FROM gone";

/// Relayed notifications no delivery refers to any more. Unrelayed rows (`relayed_at` NULL) are
/// never older than the cutoff.
const PRUNE_OUTBOX: &str = "WITH gone AS (
        DELETE FROM notification_outbox WHERE id IN (
            SELECT id FROM notification_outbox o WHERE relayed_at < to_timestamp($1)
                AND NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.outbox_id = o.id)
            ORDER BY relayed_at LIMIT $2)
        RETURNING 1)
    SELECT count(*) FROM gone";

/// Rows of `table` (keyed by `key`) whose `at` is before the cutoff: command records, stop
/// requests. Names of our own tables, never input.
fn prune_older(table: &str, key: &str, at: &str) -> String {
    format!(
        "WITH gone AS (
            DELETE FROM {table} WHERE {key} IN (
                SELECT {key} FROM {table} WHERE {at} < to_timestamp($1) ORDER BY {at} LIMIT $2)
            RETURNING 1)
        SELECT count(*) FROM gone"
    )
}
