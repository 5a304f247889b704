//! What is written to `recordings`: every egress event's update is one upsert guarded by
//! `recording_status_rank` (migration V5): it applies only if it moves the status forward, or
//! refreshes the same status with a newer LiveKit `updatedAt`; `ready`, `failed` and `aborted`
//! are final. Row locks make concurrent writers take turns, so events may be applied in any
//! order, any number of times. Also a command's row, the reconciler's marks, and a delete.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::read::{Recording, RECORDING_COLUMNS};
use super::{Status, Subject};
use crate::db::prepared;

/// Where a finished recording's (first) file is.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub provider: String,
    pub bucket: Option<String>,
    pub key: String,
    /// `None` for a key no URL can name (`storage::public_url`).
    pub url: Option<String>,
    pub size_bytes: i64,
}

/// A recording's thumbnail: an image in its bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredThumbnail {
    pub key: String,
    /// `None` for a key no URL can name (`storage::public_url`).
    pub url: Option<String>,
}

/// What one egress event says about a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressUpdate {
    pub egress_id: String,
    pub room_name: String,
    pub room_sid: Option<String>,
    /// What the egress records, from its request (set when the row is created).
    pub subject: Subject,
    pub status: Status,
    /// LiveKit's `updatedAt` in nanoseconds: the tie-breaker between updates of one status.
    pub updated_ns: i64,
    pub layout: Option<String>,
    pub file_format: Option<String>,
    pub audio_only: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
    pub file: Option<StoredFile>,
    /// Set once, when a video recording becomes ready.
    pub thumbnail: Option<StoredThumbnail>,
    /// Extra facts merged into `metadata` (e.g. that LiveKit's backup storage was used).
    pub metadata: serde_json::Value,
    /// Nothing more is to be done for it though it is not `ready` (`is_processed`, which
    /// `ready` always sets): an egress that only streamed, whose `stopped` is as far as it goes.
    pub processed: bool,
}

/// Where a recording stands: its status, and whether nothing more is to be done for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: Status,
    pub processed: bool,
}

/// The row as it is after an update that applied, and where it stood before (`None`: the
/// update created it). The two say which transition it made (`notifications::transition`).
#[derive(Debug, Clone)]
pub struct Applied {
    pub recording: Recording,
    pub before: Option<Standing>,
    pub after: Standing,
}

/// Applies `update` if it moves the recording forward; `None` if it changed nothing. One
/// statement: where the row stood is read from the statement's snapshot, so a writer that
/// committed meanwhile (the upsert waits for its row lock) may make `before` older than the row
/// the update applied to. That only ever reports a transition again, and a notification's id is
/// fixed by its transition, so the repeat adds nothing (`notifications`): statuses only move
/// forward, so a stale `before` equal to `after` means the newer row was there too.
pub async fn apply(
    client: &impl GenericClient,
    update: &EgressUpdate,
) -> Result<Option<Applied>, Error> {
    let (file, thumbnail) = (update.file.as_ref(), update.thumbnail.as_ref());
    let row = prepared::query_opt(
        client,
        &APPLY,
        &[
            &update.egress_id,
            &update.room_name,
            &update.room_sid,
            &update.status.as_str(),
            &update.updated_ns,
            &update.layout,
            &update.file_format,
            &update.audio_only,
            &update.started_at,
            &update.ended_at,
            &update.duration_seconds,
            &update.error,
            &file.map(|f| f.provider.as_str()),
            &file.and_then(|f| f.bucket.as_deref()),
            &file.map(|f| f.key.as_str()),
            &file.and_then(|f| f.url.as_deref()),
            &file.map(|f| f.size_bytes),
            &update.metadata,
            &update.processed,
            &thumbnail.map(|t| t.key.as_str()),
            &thumbnail.and_then(|t| t.url.as_deref()),
            &update.subject.kind.as_str(),
            &update.subject.identity,
            &update.subject.audio_track_id,
            &update.subject.video_track_id,
            &update.subject.track_id,
        ],
    )
    .await?;
    Ok(row.map(|row| {
        let before = row
            .get::<_, Option<Status>>("before_status")
            .map(|status| Standing {
                status,
                processed: row.get("before_processed"),
            });
        let recording = Recording::from_row(&row);
        let after = Standing {
            status: recording.status,
            processed: recording.is_processed,
        };
        Applied {
            recording,
            before,
            after,
        }
    }))
}

/// [`apply`]'s statement: the upsert, the row after it and where it stood before.
static APPLY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH before AS (
             SELECT status, is_processed FROM recordings WHERE egress_id = $1
         ), applied AS (
             INSERT INTO recordings AS r (egress_id, room_name, room_sid, status, egress_updated_ns,
                 layout, file_format, audio_only, started_at, ended_at, duration_seconds, error,
                 storage_provider, storage_bucket, storage_key, file_url, file_size_bytes,
                 is_processed, metadata, thumbnail_key, thumbnail_url,
                 kind, identity, audio_track_id, video_track_id, track_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $4 = 'ready' OR $19, $18, $20, $21, $22, $23, $24, $25, $26)
             ON CONFLICT (egress_id) DO UPDATE SET
                 status = EXCLUDED.status,
                 egress_updated_ns = GREATEST(r.egress_updated_ns, EXCLUDED.egress_updated_ns),
                 room_sid = COALESCE(r.room_sid, EXCLUDED.room_sid),
                 layout = COALESCE(r.layout, EXCLUDED.layout),
                 file_format = COALESCE(r.file_format, EXCLUDED.file_format),
                 audio_only = r.audio_only OR EXCLUDED.audio_only,
                 started_at = COALESCE(r.started_at, EXCLUDED.started_at),
                 ended_at = COALESCE(EXCLUDED.ended_at, r.ended_at),
                 duration_seconds = COALESCE(EXCLUDED.duration_seconds, r.duration_seconds),
                 -- `ready` drops what was noted while its files were waited for.
                 error = CASE WHEN EXCLUDED.status = 'ready' THEN EXCLUDED.error
                              ELSE COALESCE(EXCLUDED.error, r.error) END,
                 storage_provider = COALESCE(EXCLUDED.storage_provider, r.storage_provider),
                 storage_bucket = COALESCE(EXCLUDED.storage_bucket, r.storage_bucket),
                 storage_key = COALESCE(EXCLUDED.storage_key, r.storage_key),
                 file_url = COALESCE(EXCLUDED.file_url, r.file_url),
                 file_size_bytes = COALESCE(EXCLUDED.file_size_bytes, r.file_size_bytes),
                 thumbnail_key = COALESCE(EXCLUDED.thumbnail_key, r.thumbnail_key),
                 thumbnail_url = COALESCE(EXCLUDED.thumbnail_url, r.thumbnail_url),
                 is_processed = EXCLUDED.is_processed,
                 metadata = r.metadata || EXCLUDED.metadata,
                 awaiting_replay = false,
                 updated_at = now()
             WHERE recording_status_rank(r.status) < 4
               AND (recording_status_rank(EXCLUDED.status) > recording_status_rank(r.status)
                    OR (EXCLUDED.status = r.status
                        AND EXCLUDED.egress_updated_ns > r.egress_updated_ns))
             RETURNING {RECORDING_COLUMNS}
         )
         SELECT applied.*, before.status AS before_status, before.is_processed AS before_processed
         FROM applied LEFT JOIN before ON true"
    )
});

/// What a start command knows about the recording it asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub egress_id: String,
    pub room_name: String,
    pub subject: Subject,
    /// A room composite's; `None` for the other kinds.
    pub layout: Option<String>,
    /// `None` for a track recording: LiveKit writes the track's own container.
    pub file_format: Option<String>,
    pub audio_only: bool,
    pub storage_provider: String,
    pub storage_bucket: String,
    pub stream_id: Option<String>,
    pub user_id: Option<String>,
    pub metadata: serde_json::Value,
}

/// Creates the `starting` row for a recording a command started, or adds the command's facts
/// to the row an early egress event already created (its status is left alone). Returns the
/// recording, for the reply.
pub async fn requested(client: &impl GenericClient, r: &Requested) -> Result<Recording, Error> {
    let sql = format!(
        "INSERT INTO recordings AS r (egress_id, room_name, status, layout, file_format,
                 audio_only, storage_provider, storage_bucket, stream_id, user_id, metadata,
                 kind, identity, audio_track_id, video_track_id, track_id)
             VALUES ($1, $2, 'starting', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                 $15)
             ON CONFLICT (egress_id) DO UPDATE SET
                 layout = EXCLUDED.layout,
                 file_format = COALESCE(EXCLUDED.file_format, r.file_format),
                 audio_only = EXCLUDED.audio_only,
                 storage_provider = COALESCE(r.storage_provider, EXCLUDED.storage_provider),
                 storage_bucket = COALESCE(r.storage_bucket, EXCLUDED.storage_bucket),
                 stream_id = EXCLUDED.stream_id, user_id = EXCLUDED.user_id,
                 metadata = EXCLUDED.metadata || r.metadata, updated_at = now()
             RETURNING {RECORDING_COLUMNS}"
    );
    let row = prepared::query_one(
        client,
        &sql,
        &[
            &r.egress_id,
            &r.room_name,
            &r.layout,
            &r.file_format,
            &r.audio_only,
            &r.storage_provider,
            &r.storage_bucket,
            &r.stream_id,
            &r.user_id,
            &r.metadata,
            &r.subject.kind.as_str(),
            &r.subject.identity,
            &r.subject.audio_track_id,
            &r.subject.video_track_id,
            &r.subject.track_id,
        ],
    )
    .await?;
    // The egress may have finished (and its assets and usage been written) before this row
    // write, when the command was retried or adopted: they follow the recording.
    prepared::execute(
        client,
        "UPDATE recording_usage u SET stream_id = r.stream_id, user_id = r.user_id
             FROM recordings r
             WHERE u.egress_id = $1 AND r.egress_id = $1
               AND (u.stream_id, u.user_id) IS DISTINCT FROM (r.stream_id, r.user_id)",
        &[&r.egress_id],
    )
    .await?;
    prepared::execute(
        client,
        "UPDATE assets a SET stream_id = r.stream_id, user_id = r.user_id
             FROM recordings r
             WHERE a.egress_id = $1 AND r.egress_id = $1
               AND (a.stream_id, a.user_id) IS DISTINCT FROM (r.stream_id, r.user_id)",
        &[&r.egress_id],
    )
    .await?;
    Ok(Recording::from_row(&row))
}

/// Egress ids of the room's recordings that are not over yet.
pub async fn unfinished_in_room(
    client: &impl GenericClient,
    room_name: &str,
) -> Result<Vec<String>, Error> {
    let rows = prepared::query(
        client,
        "SELECT egress_id FROM recordings
             WHERE room_name = $1 AND status IN ('starting', 'active')",
        &[&room_name],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Egress ids of the room's unfinished recordings of the same subject as `subject`, which a
/// new start of it would record twice: the room composite of the room, the participant of the
/// same identity, or a track or track composite sharing one of its tracks.
pub async fn unfinished_like(
    client: &impl GenericClient,
    room_name: &str,
    subject: &Subject,
) -> Result<Vec<String>, Error> {
    let rows = prepared::query(
        client,
        "SELECT egress_id FROM recordings
             WHERE room_name = $1 AND status IN ('starting', 'active')
               AND CASE
                   WHEN $2::text = 'participant' THEN kind = 'participant' AND identity = $3
                   WHEN $2::text IN ('track', 'track_composite')
                       THEN kind IN ('track', 'track_composite')
                            AND ARRAY[track_id, audio_track_id, video_track_id] && $4::text[]
                   ELSE kind = $2::text
               END",
        &[
            &room_name,
            &subject.kind.as_str(),
            &subject.identity,
            &subject.track_ids(),
        ],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Recordings that are not final (nor settled as `stopped`, nor waiting for an operator), have
/// not changed for `after` before `now_unix`, and were not asked about within that time either;
/// least recently asked first, at most `limit`. They are marked as asked at `now_unix`.
pub async fn take_stale(
    client: &impl GenericClient,
    now_unix: u64,
    after: std::time::Duration,
    limit: i64,
) -> Result<Vec<String>, Error> {
    let now = now_unix as f64;
    let after = after.as_secs_f64();
    let rows = prepared::query(
        client,
        "UPDATE recordings SET reconciled_at = to_timestamp($1)
             WHERE egress_id IN (
                 SELECT egress_id FROM recordings
                 WHERE recording_status_rank(status) < 4
                   AND NOT is_processed AND NOT awaiting_replay
                   AND updated_at < to_timestamp($1) - make_interval(secs => $2)
                   AND (reconciled_at IS NULL
                        OR reconciled_at < to_timestamp($1) - make_interval(secs => $2))
                 ORDER BY reconciled_at NULLS FIRST, updated_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING egress_id",
        &[&now, &after, &limit],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Fails a recording LiveKit no longer knows, unless its end was seen: a `stopped` recording
/// waits for its files, which forgetting the egress does not make absent. `true` if it failed it.
pub async fn fail_forgotten(
    client: &impl GenericClient,
    egress_id: &str,
    reason: &str,
) -> Result<bool, Error> {
    prepared::execute(
        client,
        "UPDATE recordings SET status = 'failed', error = $2, updated_at = now()
             WHERE egress_id = $1 AND recording_status_rank(status) < 3",
        &[&egress_id, &reason],
    )
    .await
    .map(|failed| failed > 0)
}

/// Deletes the recording's row (its assets go with it); its room's name, `None` if there was
/// none.
pub async fn delete(client: &impl GenericClient, egress_id: &str) -> Result<Option<String>, Error> {
    let deleted = prepared::query_opt(
        client,
        "DELETE FROM recordings WHERE egress_id = $1 RETURNING room_name",
        &[&egress_id],
    )
    .await?;
    Ok(deleted.map(|row| row.get(0)))
}

/// Notes on a recording that is not final why it waits: `error` names the cause, and
/// `awaiting_replay` keeps reconciliation away while its event waits in the retry or
/// dead-letter queue, or only an operator can help.
pub async fn note_waiting(
    client: &impl GenericClient,
    egress_id: &str,
    error: &str,
    awaiting_replay: bool,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "UPDATE recordings SET error = $2, awaiting_replay = $3, updated_at = now()
             WHERE egress_id = $1 AND recording_status_rank(status) < 4",
        &[&egress_id, &error, &awaiting_replay],
    )
    .await
    .map(drop)
}
