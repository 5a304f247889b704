//! `recording_usage` (migration V22): one row per final recording, kept when the recording is
//! deleted, so usage outlives deletion. Triggers on `recordings` write it; this reads it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use crate::db::prepared;

/// One recording in the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub egress_id: String,
    pub room_name: String,
    pub kind: String,
    pub stream_id: Option<String>,
    pub user_id: Option<String>,
    /// The storage profile its files are in; `None` when it wrote none.
    pub storage_profile: Option<String>,
    /// When it ended (else became final): the time it counts at.
    pub recorded_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub bytes_written: i64,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Ledger rows that count in `[from, to)`: recorded before `to` and not deleted before `from`
/// (recorded in the range, or still stored during it); only `room`'s when given.
pub async fn records(
    client: &impl GenericClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    room: Option<&str>,
) -> Result<Vec<UsageRecord>, Error> {
    let rows = prepared::query(
        client,
        "SELECT egress_id, room_name, kind, stream_id, user_id, storage_profile, recorded_at,
                duration_seconds, bytes_written, deleted_at
             FROM recording_usage
             WHERE recorded_at < $2 AND (deleted_at IS NULL OR deleted_at >= $1)
               AND ($3::text IS NULL OR room_name = $3)
             ORDER BY recorded_at",
        &[&from, &to, &room],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| UsageRecord {
            egress_id: row.get(0),
            room_name: row.get(1),
            kind: row.get(2),
            stream_id: row.get(3),
            user_id: row.get(4),
            storage_profile: row.get(5),
            recorded_at: row.get(6),
            duration_seconds: row.get(7),
            bytes_written: row.get(8),
            deleted_at: row.get(9),
        })
        .collect())
}
