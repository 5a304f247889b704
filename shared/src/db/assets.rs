//! `assets`: one row per finished file, created when its recording becomes ready.

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::prepared;

use super::recordings::Applied;

/// One verified file of a ready recording.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAsset {
    pub egress_id: String,
    pub room_name: String,
    pub bucket: String,
    pub key: String,
    pub playback_url: Option<String>,
    pub size_bytes: i64,
    pub duration_seconds: Option<f64>,
    pub content_type: Option<String>,
}

/// Inserts the asset once; a repeat for the same file changes nothing.
pub async fn upsert(
    client: &impl GenericClient,
    recording: &Applied,
    asset: &NewAsset,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "INSERT INTO assets (egress_id, recording_id, stream_id, user_id, room_name,
                 storage_bucket, storage_key, playback_url, file_size_bytes, duration_seconds,
                 content_type)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (egress_id, storage_key) DO NOTHING",
        &[
            &asset.egress_id,
            &recording.recording.id,
            &recording.recording.stream_id,
            &recording.recording.user_id,
            &asset.room_name,
            &asset.bucket,
            &asset.key,
            &asset.playback_url,
            &asset.size_bytes,
            &asset.duration_seconds,
            &asset.content_type,
        ],
    )
    .await
    .map(drop)
}

/// A recording's file, as listed: the API and the CLI show this shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Asset {
    pub storage_bucket: String,
    pub storage_key: String,
    pub playback_url: Option<String>,
    pub file_size_bytes: i64,
    pub duration_seconds: Option<f64>,
    pub content_type: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The files of `egress_id`'s recording.
pub async fn of_recording(
    client: &impl GenericClient,
    egress_id: &str,
) -> Result<Vec<Asset>, Error> {
    let rows = prepared::query(
        client,
        "SELECT storage_bucket, storage_key, playback_url, file_size_bytes, duration_seconds,
                content_type, created_at
             FROM assets WHERE egress_id = $1 ORDER BY id",
        &[&egress_id],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Asset {
            storage_bucket: row.get(0),
            storage_key: row.get(1),
            playback_url: crate::redact::redact_opt(row.get(2)),
            file_size_bytes: row.get(3),
            duration_seconds: row.get(4),
            content_type: row.get(5),
            created_at: row.get(6),
        })
        .collect())
}
