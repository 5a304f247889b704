//! The recording as operators, the API and the CLI read it: one type, [`Recording`], that the
//! API and `roomtape recordings --json` both serialize, and the queries that return it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::{redacted_json, Kind, Status, Subject};
use crate::db::assets::{self, Asset};
use crate::db::prepared;
use crate::redact::redact_opt;

/// A recording as operators, the API and the CLI see it, and (next) notifications will carry it:
/// what came from LiveKit (`error`, `file_url`, `metadata`) redacted. Its OpenAPI schema is
/// derived here, once.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Recording {
    pub id: i64,
    /// The LiveKit egress id.
    pub egress_id: String,
    pub room_name: String,
    /// The LiveKit room's sid, once an event named it.
    pub room_sid: Option<String>,
    /// What it records (CONTRACTS §4): `room_composite`, `participant`, `track_composite`,
    /// `track`, or `web` for a web egress started elsewhere.
    pub kind: Kind,
    /// The participant a `participant` recording records.
    pub identity: Option<String>,
    /// A `track_composite`'s audio track.
    pub audio_track_id: Option<String>,
    /// A `track_composite`'s video track.
    pub video_track_id: Option<String>,
    /// The track a `track` recording writes as it is.
    pub track_id: Option<String>,
    pub status: Status,
    /// A room composite's layout; `null` for the other kinds.
    pub layout: Option<String>,
    pub file_format: Option<String>,
    pub audio_only: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub file_size_bytes: Option<i64>,
    /// Where the file was verified (`s3`, ...; `livekit-backup` when LiveKit wrote it to its
    /// own backup storage); `null` until it is known.
    pub storage_provider: Option<String>,
    pub storage_bucket: Option<String>,
    /// The object key of the (first) file in `storage_bucket`.
    pub storage_key: Option<String>,
    /// The file's public URL, which plays only where the bucket allows public reads; a
    /// download link works without that.
    pub file_url: Option<String>,
    /// Nothing more is to be done for it: `ready`, or over without a file to wait for.
    pub is_processed: bool,
    pub error: Option<String>,
    pub stream_id: Option<String>,
    pub user_id: Option<String>,
    /// A picture of a video recording: an image LiveKit's image output wrote a few seconds in,
    /// or a frame taken near 10 % of a file roomtape did not start; `null` for audio-only
    /// recordings and until the recording is ready. Its public URL, or where the bucket has no
    /// public base URL, a presigned link (the API's answers; notifications carry the public URL,
    /// as `file_url`).
    pub thumbnail_url: Option<String>,
    /// The thumbnail's object key, which links are presigned for and delete removes.
    #[serde(skip)]
    #[schema(ignore)]
    pub thumbnail_key: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What [`Recording::from_row`] reads: every column of `recordings` but the processor's own
/// bookkeeping (`egress_updated_ns`, `reconciled_at`, `awaiting_replay`).
pub(super) const RECORDING_COLUMNS: &str = "id, egress_id, room_name, room_sid, status, layout,
    file_format, audio_only, started_at, ended_at, duration_seconds, file_size_bytes,
    storage_provider, storage_bucket, storage_key, file_url, is_processed, error, stream_id,
    user_id, thumbnail_url, thumbnail_key, metadata, created_at, updated_at, kind, identity,
    audio_track_id, video_track_id, track_id";

impl Recording {
    pub(super) fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            egress_id: row.get("egress_id"),
            room_name: row.get("room_name"),
            room_sid: row.get("room_sid"),
            kind: row.get("kind"),
            identity: row.get("identity"),
            audio_track_id: row.get("audio_track_id"),
            video_track_id: row.get("video_track_id"),
            track_id: row.get("track_id"),
            status: row.get("status"),
            layout: row.get("layout"),
            file_format: row.get("file_format"),
            audio_only: row.get("audio_only"),
            started_at: row.get("started_at"),
            ended_at: row.get("ended_at"),
            duration_seconds: row.get("duration_seconds"),
            file_size_bytes: row.get("file_size_bytes"),
            storage_provider: row.get("storage_provider"),
            storage_bucket: row.get("storage_bucket"),
            storage_key: row.get("storage_key"),
            file_url: redact_opt(row.get("file_url")),
            is_processed: row.get("is_processed"),
            error: redact_opt(row.get("error")),
            stream_id: row.get("stream_id"),
            user_id: row.get("user_id"),
            thumbnail_url: redact_opt(row.get("thumbnail_url")),
            thumbnail_key: row.get("thumbnail_key"),
            metadata: redacted_json(row.get("metadata")),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }

    /// What it records, as one value.
    pub fn subject(&self) -> Subject {
        Subject {
            kind: self.kind,
            identity: self.identity.clone(),
            audio_track_id: self.audio_track_id.clone(),
            video_track_id: self.video_track_id.clone(),
            track_id: self.track_id.clone(),
        }
    }

    /// `ready`, `failed` or `aborted`: nothing will change it any more.
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// A recording with its files: what `GET /api/v1/recordings/{egress_id}` answers and what
/// every `recording.*` notification carries as its `data` (CONTRACTS §8).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RecordingDetails {
    #[serde(flatten)]
    pub recording: Recording,
    pub assets: Vec<Asset>,
}

/// The recording of `egress_id` with its files, if there is one.
pub async fn details(
    client: &impl GenericClient,
    egress_id: &str,
) -> Result<Option<RecordingDetails>, Error> {
    let Some(recording) = find(client, egress_id).await? else {
        return Ok(None);
    };
    Ok(Some(RecordingDetails {
        assets: assets::of_recording(client, egress_id).await?,
        recording,
    }))
}

/// Which recordings to list; newest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub room_name: Option<String>,
    pub status: Option<Status>,
    /// The app's stream and user the recording is linked to.
    pub stream_id: Option<String>,
    pub user_id: Option<String>,
    pub kind: Option<Kind>,
    /// The participant a `participant` recording records.
    pub identity: Option<String>,
    /// Created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only recordings older than the one with this id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One page of recordings matching `filter`, newest first.
pub async fn list(client: &impl GenericClient, filter: &Filter) -> Result<Vec<Recording>, Error> {
    let sql = format!(
        "SELECT {RECORDING_COLUMNS} FROM recordings
             WHERE ($1::text IS NULL OR room_name = $1)
               AND ($2::text IS NULL OR status = $2)
               AND ($3::timestamptz IS NULL OR created_at >= $3)
               AND ($4::bigint IS NULL OR id < $4)
               AND ($5::text IS NULL OR stream_id = $5)
               AND ($6::text IS NULL OR user_id = $6)
               AND ($8::text IS NULL OR kind = $8)
               AND ($9::text IS NULL OR identity = $9)
             ORDER BY id DESC LIMIT $7"
    );
    let rows = prepared::query(
        client,
        &sql,
        &[
            &filter.room_name,
            &filter.status.map(Status::as_str),
            &filter.since,
            &filter.before_id,
            &filter.stream_id,
            &filter.user_id,
            &filter.limit,
            &filter.kind.map(Kind::as_str),
            &filter.identity,
        ],
    )
    .await?;
    Ok(rows.iter().map(Recording::from_row).collect())
}

/// The recording of `egress_id`, if there is one.
pub async fn find(
    client: &impl GenericClient,
    egress_id: &str,
) -> Result<Option<Recording>, Error> {
    let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE egress_id = $1");
    let row = prepared::query_opt(client, &sql, &[&egress_id]).await?;
    Ok(row.as_ref().map(Recording::from_row))
}

/// Final recordings (`ready`, `failed`, `aborted`) that ended (or, without an end, were
/// created) before `cutoff`; oldest first.
pub async fn final_before(
    client: &impl GenericClient,
    cutoff: DateTime<Utc>,
) -> Result<Vec<Recording>, Error> {
    let sql = format!(
        "SELECT {RECORDING_COLUMNS} FROM recordings
             WHERE status IN ('ready', 'failed', 'aborted')
               AND COALESCE(ended_at, created_at) < $1
             ORDER BY COALESCE(ended_at, created_at)"
    );
    let rows = prepared::query(client, &sql, &[&cutoff]).await?;
    Ok(rows.iter().map(Recording::from_row).collect())
}

/// An event applied to a recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppliedEvent {
    pub event_id: String,
    pub event: String,
    pub created_at: Option<DateTime<Utc>>,
    pub processed_at: DateTime<Utc>,
    /// LiveKit's egress status in that event.
    pub egress_status: Option<String>,
}

/// The events applied to `egress_id`'s recording, in the order they were processed.
pub async fn events(
    client: &impl GenericClient,
    egress_id: &str,
) -> Result<Vec<AppliedEvent>, Error> {
    let rows = prepared::query(
        client,
        "SELECT event_id, event, created_at, processed_at,
                COALESCE(payload -> 'egressInfo' ->> 'status', 'EGRESS_STARTING')
             FROM webhook_events
             WHERE payload -> 'egressInfo' ->> 'egressId' = $1
             ORDER BY processed_at",
        &[&egress_id],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| AppliedEvent {
            event_id: row.get(0),
            event: row.get(1),
            created_at: row.get(2),
            processed_at: row.get(3),
            egress_status: row.get(4),
        })
        .collect())
}
