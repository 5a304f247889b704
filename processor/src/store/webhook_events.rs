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
    let status: Option<&str> = row.get(1);
    Ok((row.get(0), status.and_then(Status::parse)))
}

/// Records the event; `false` if another delivery recorded it first, in which case the caller
/// rolls back so the event's effects are applied exactly once.
pub async fn record(
    client: &impl GenericClient,
    event_id: &str,
    event: &str,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    payload: &serde_json::Value,
) -> Result<bool, Error> {
    let inserted = prepared::execute(
        client,
        "INSERT INTO webhook_events (event_id, event, created_at, payload)
             VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
        &[&event_id, &event, &created_at, payload],
    )
    .await?;
    Ok(inserted == 1)
}
