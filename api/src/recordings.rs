//! `/api/v1/recordings` and `/api/v1/rooms/{room}/recordings/`: the recording library over
//! HTTP (list, details, download link, signed HLS playlist, delete).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use roomtape_shared::db::notifications::DeletedBy;
pub use roomtape_shared::db::recordings::RecordingDetails;
use roomtape_shared::db::recordings::{Filter, Kind, Recording, Status};
use roomtape_shared::library::{Library, LibraryError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::grants::Action;
use crate::query;

/// How many recordings a room's list holds at most (it has no pages, as in Django).
const ROOM_LIST_LIMIT: i64 = 1000;
/// What an HLS playlist is served as.
const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

/// A recording in a room's list: the Django deployment's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomRecording {
    pub id: i64,
    /// The LiveKit egress id.
    pub recording_id: String,
    pub status: Status,
    /// What it records: `room_composite`, `participant` (of `identity`), `track_composite`,
    /// `track` or `web`.
    pub kind: Kind,
    /// The participant of a `participant` recording.
    pub identity: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    /// `M:SS` under an hour (`30:00`), `H:MM:SS` from an hour on (`1:02:03`).
    pub duration_formatted: Option<String>,
    pub file_size_bytes: Option<i64>,
    pub file_format: Option<String>,
    /// The file's public URL when its storage profile has a public base URL, else a presigned
    /// link that works for an hour; `null` until the recording is ready.
    pub download_url: Option<String>,
    /// A picture of the recording (a JPEG): its public URL, or a presigned link where the bucket
    /// has no public base URL; `null` for audio-only recordings and until it is ready.
    pub thumbnail_url: Option<String>,
}

/// One page of recordings, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    pub items: Vec<Recording>,
    /// Pass as `cursor` for the next page; `null` when this page was the last.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this room's recordings.
    pub room: Option<String>,
    /// Only recordings with this status.
    pub status: Option<String>,
    /// Only recordings linked to this stream of the app.
    pub stream_id: Option<String>,
    /// Only recordings linked to this user of the app.
    pub user_id: Option<String>,
    /// Only recordings of this kind: `room_composite`, `participant`, `track_composite`,
    /// `track` or `web`.
    pub kind: Option<String>,
    /// Only recordings of this participant (`participant` recordings).
    pub identity: Option<String>,
    /// Created at or after: an RFC 3339 time or an age such as `7d`.
    pub since: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// How long the link works, such as `15m` (default `1h`, at most `7d`).
    pub expires: Option<String>,
    /// `false`: answer 200 with the link as JSON instead of redirecting to it (for pages, whose
    /// `fetch` would follow the redirect and download the file).
    pub redirect: Option<bool>,
}

/// A download link, when not redirected to.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// A duration as the Django deployment's pages show it: `M:SS` under an hour, `H:MM:SS` from
/// an hour on.
fn formatted(seconds: f64) -> String {
    // Durations are far below u64::MAX seconds; negative ones read as zero.
    let total = seconds.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours == 0 {
        format!("{minutes}:{seconds:02}")
    } else {
        format!("{hours}:{minutes:02}:{seconds:02}")
    }
}

/// A link to a ready recording's file: the public URL where its storage profile has a public
/// base, else presigned ([`Library::shared_url`]); the URL LiveKit reported when no profile
/// reaches the file.
async fn link(library: &Library, recording: &Recording) -> Result<Option<String>, ApiError> {
    if !matches!(recording.status, Status::Ready) {
        return Ok(None);
    }
    match library.shared_url(recording, query::DEFAULT_EXPIRY).await {
        Ok(url) => Ok(Some(url.to_string())),
        Err(
            LibraryError::NoFile(_)
            | LibraryError::InBackupStorage(_)
            | LibraryError::UnknownBucket { .. }
            | LibraryError::AmbiguousBucket { .. }
            | LibraryError::NotFound(_),
        ) => Ok(recording.file_url.clone()),
        Err(error) => Err(error.into()),
    }
}

/// A room's recordings, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{room}/recordings/",
    tag = "recordings",
    params(("room" = String, Path, description = "LiveKit room name, percent-encoded")),
    responses(
        (status = 200, description = "The room's recordings, newest first", body = [RoomRecording]),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn room_recordings(
    caller: Caller,
    library: web::Data<Library>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(narrowed) = caller.narrow(Some(&room), None)? else {
        return Ok(HttpResponse::Ok().json(Vec::<RoomRecording>::new()));
    };
    let filter = Filter {
        room_name: narrowed.room,
        status: narrowed.status,
        limit: ROOM_LIST_LIMIT,
        ..Filter::default()
    };
    let mut items = Vec::new();
    for recording in library.list(&filter).await? {
        let download_url = link(&library, &recording).await?;
        items.push(RoomRecording {
            id: recording.id,
            duration_formatted: recording.duration_seconds.map(formatted),
            recording_id: recording.egress_id,
            status: recording.status,
            kind: recording.kind,
            identity: recording.identity,
            started_at: recording.started_at,
            ended_at: recording.ended_at,
            duration_seconds: recording.duration_seconds,
            file_size_bytes: recording.file_size_bytes,
            file_format: recording.file_format,
            download_url,
            thumbnail_url: recording.thumbnail_url,
        });
    }
    Ok(HttpResponse::Ok().json(items))
}

/// Recordings, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/recordings",
    tag = "recordings",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = Page),
        (status = 400, description = "A query value is invalid; the message names it", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn list(
    caller: Caller,
    library: web::Data<Library>,
    params: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let status = params.status.as_deref().map(query::status).transpose()?;
    let Some(narrowed) = caller.narrow(params.room.as_deref(), status)? else {
        return Ok(HttpResponse::Ok().json(Page {
            items: Vec::new(),
            next_cursor: None,
        }));
    };
    let filter = Filter {
        room_name: narrowed.room,
        status: narrowed.status,
        since: params
            .since
            .as_deref()
            .map(|s| query::since(s, Utc::now()))
            .transpose()?,
        before_id: params.cursor.as_deref().map(query::cursor).transpose()?,
        stream_id: params.stream_id,
        user_id: params.user_id,
        kind: params.kind.as_deref().map(query::kind).transpose()?,
        identity: params.identity,
        limit: query::limit(params.limit.as_deref())?,
    };
    let recordings = library.list(&filter).await?;
    let full = i64::try_from(recordings.len()).is_ok_and(|n| n == filter.limit);
    let next_cursor = recordings.last().filter(|_| full).map(|r| r.id);
    Ok(HttpResponse::Ok().json(Page {
        items: recordings,
        next_cursor,
    }))
}

/// A recording with its files.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{egress_id}",
    tag = "recordings",
    params(("egress_id" = String, Path, description = "LiveKit egress id")),
    responses(
        (status = 200, body = RecordingDetails),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn details(
    caller: Caller,
    library: web::Data<Library>,
    egress_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let details = library.details(&egress_id).await?;
    let recording = &details.recording;
    caller.check(Action::Read(&recording.room_name, recording.status))?;
    Ok(HttpResponse::Ok().json(RecordingDetails {
        recording: details.recording,
        assets: details.assets,
    }))
}

/// A redirect to a presigned GET URL of the recording's file.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{egress_id}/download",
    tag = "recordings",
    params(("egress_id" = String, Path, description = "LiveKit egress id"), DownloadQuery),
    responses(
        (status = 302, description = "Location: the presigned URL"),
        (status = 200, description = "With `redirect=false`: the presigned URL", body = DownloadLink),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 404, description = "No such recording, or it has no file", body = ErrorBody),
        (status = 409, description = "The file is where roomtape cannot reach", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn download(
    caller: Caller,
    library: web::Data<Library>,
    egress_id: web::Path<String>,
    params: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let expires = query::expires(params.expires.as_deref())?;
    let recording = library.find(&egress_id).await?;
    caller.check(Action::Read(&recording.room_name, recording.status))?;
    let url = library.download_url(&egress_id, expires).await?;
    if params.redirect == Some(false) {
        let expires_at = Utc::now() + expires;
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(DownloadLink {
                url: url.to_string(),
                expires_at,
            }));
    }
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlaylistQuery {
    /// How long each segment's link works, such as `3h` (default `1h`, at most `7d`): longer
    /// than the recording takes to watch.
    pub expires: Option<String>,
}

/// An HLS recording's playlist with every segment's URI a presigned GET link, so that a player
/// (hls.js, Safari) plays it from a private bucket.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{egress_id}/playlist.m3u8",
    tag = "recordings",
    params(("egress_id" = String, Path, description = "LiveKit egress id"), PlaylistQuery),
    responses(
        (status = 200, description = "The media playlist (`application/vnd.apple.mpegurl`), each segment signed", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 404, description = "`not_found`, `no_file`, or `not_hls`: the recording's file is not an HLS playlist", body = ErrorBody),
        (status = 409, description = "The file is where roomtape cannot reach", body = ErrorBody),
        (status = 422, description = "`invalid_playlist`: not a media playlist, or it names objects outside its folder", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn playlist(
    caller: Caller,
    library: web::Data<Library>,
    egress_id: web::Path<String>,
    params: web::Query<PlaylistQuery>,
) -> Result<HttpResponse, ApiError> {
    let expires = query::expires(params.expires.as_deref())?;
    let recording = library.find(&egress_id).await?;
    caller.check(Action::Read(&recording.room_name, recording.status))?;
    let text = library.signed_playlist(&egress_id, expires).await?;
    Ok(HttpResponse::Ok()
        .content_type(PLAYLIST_CONTENT_TYPE)
        // Its links expire, and they are credentials: neither cached nor stored.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}

/// Deletes the recording's objects, then its rows. Needs a write token, or a LiveKit token
/// with `roomAdmin` for the recording's room.
#[utoipa::path(
    delete,
    path = "/api/v1/recordings/{egress_id}",
    tag = "recordings",
    params(("egress_id" = String, Path, description = "LiveKit egress id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a read token, or a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`recording_active`: not final yet", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn delete(
    caller: Caller,
    library: web::Data<Library>,
    egress_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let recording = library.find(&egress_id).await?;
    caller.check(Action::Delete(&recording.room_name))?;
    let deleted = library.delete(&egress_id, false, DeletedBy::Api).await?;
    tracing::info!(
        egress_id = %egress_id,
        kind = ?caller.kind,
        identity = %caller.name(),
        objects = deleted.objects,
        bytes = deleted.bytes,
        "recording deleted"
    );
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::formatted;

    #[test]
    fn durations_read_as_clocks() {
        assert_eq!(formatted(0.0), "0:00");
        assert_eq!(formatted(61.6), "1:02");
        assert_eq!(formatted(1_800.0), "30:00");
        assert_eq!(formatted(3_599.4), "59:59");
        assert_eq!(formatted(3_600.0), "1:00:00");
        assert_eq!(formatted(3_723.0), "1:02:03");
        assert_eq!(formatted(36_000.0), "10:00:00");
        assert_eq!(formatted(-3.0), "0:00");
    }
}
