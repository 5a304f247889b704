//! The API's own query: rooms and their viewer counts (the processor writes them).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use roomtape_shared::db::prepared;
use serde::Serialize;
use tokio_postgres::Error;
use utoipa::ToSchema;

/// A LiveKit room as the processor last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Room {
    pub room_name: String,
    pub room_sid: Option<String>,
    /// `active` or `finished`.
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub participant_count: i32,
    pub max_participants: i32,
}

/// Rooms, those with status `status` when given; most recently started first.
pub async fn rooms(client: &impl GenericClient, status: Option<&str>) -> Result<Vec<Room>, Error> {
    let rows = prepared::query(
        client,
        "SELECT room_name, room_sid, status, started_at, finished_at, participant_count,
                max_participants
           FROM rooms
          WHERE ($1::text IS NULL OR status = $1)
          ORDER BY started_at DESC NULLS LAST, room_name",
        &[&status],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Room {
            room_name: row.get("room_name"),
            room_sid: row.get("room_sid"),
            status: row.get("status"),
            started_at: row.get("started_at"),
            finished_at: row.get("finished_at"),
            participant_count: row.get("participant_count"),
            max_participants: row.get("max_participants"),
        })
        .collect())
}
