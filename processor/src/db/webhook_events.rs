//! `webhook_events`: one row per LiveKit event id processed, the dedupe record.

use bytes::BufMut;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::{accepts, to_sql_checked, IsNull, ToSql, Type};
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
    pub payload: JsonText<'a>,
}

/// A JSON document as its text (already checked to be JSON), sent as `json`/`jsonb` as it is:
/// PostgreSQL parses it once, and it is not parsed and serialized again on the way.
#[derive(Debug, Clone, Copy)]
pub struct JsonText<'a>(pub &'a [u8]);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1); // jsonb's binary format: a version byte, then the text
        }
        out.put_slice(self.0);
        Ok(IsNull::No)
    }

    accepts!(JSON, JSONB);
    to_sql_checked!();
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
    let payloads: Vec<JsonText<'_>> = events.iter().map(|e| e.payload).collect();
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
