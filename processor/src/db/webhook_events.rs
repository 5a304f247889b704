//! `webhook_events`: one row per LiveKit event id processed, the dedupe record.

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use roomtape_shared::db::prepared;
use roomtape_shared::db::recordings::Status;

/// Whether the event was already processed, and the status of `egress_id`'s recording (if it
/// has a row): one round trip before a finished egress's files are checked.
pub async fn seen_and_status(
    client: &impl GenericClient,
    event_id: &str,
    egress_id: &str,
) -> Result<(bool, Option<Status>), Error> {
    let row = prepared::query_one(
        client,
        "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE event_id = $1),
                (SELECT status FROM recordings WHERE egress_id = $2)",
        &[&event_id, &egress_id],
    )
    .await?;
    Ok((row.get(0), row.get::<_, Option<Status>>(1)))
}

/// One event to record.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub event_id: &'a str,
    pub event: &'a str,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub payload: &'a serde_json::Value,
}

/// Records a batch in one statement; returns the ids it inserted. An id already recorded, or
/// twice in the batch, is inserted once: its other copies are duplicates.
pub async fn record_many(
    client: &impl GenericClient,
    events: &[Recorded<'_>],
) -> Result<std::collections::HashSet<String>, Error> {
    let ids: Vec<&str> = events.iter().map(|e| e.event_id).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event).collect();
    let created: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        events.iter().map(|e| e.created_at).collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|e| e.payload).collect();
    let rows = prepared::query(
        client,
        "INSERT INTO webhook_events (event_id, event, created_at, payload)
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[])
             -- In id order: two batches sharing ids wait on each other in one order only.
             ORDER BY 1
             ON CONFLICT (event_id) DO NOTHING
             RETURNING event_id",
        &[&ids, &names, &created, &payloads],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
