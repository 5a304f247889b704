//! `webhook_events`: one row per LiveKit event id processed, the dedupe record.

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::prepared;

/// Whether the event was already processed (a cheap check before doing any work).
pub async fn seen(client: &impl GenericClient, event_id: &str) -> Result<bool, Error> {
    let row = prepared::query_opt(
        client,
        "SELECT 1 FROM webhook_events WHERE event_id = $1",
        &[&event_id],
    )
    .await?;
    Ok(row.is_some())
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
