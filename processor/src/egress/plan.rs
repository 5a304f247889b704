//! What an egress event means for its recording: the status it moves to, the files to verify
//! and where they were written.

use roomtape_shared::events::proto::{
    egress_info, EgressInfo, EgressStatus, FileInfo, ImagesInfo, SegmentsInfo, StreamInfo,
};
use serde_json::{json, Value};

use roomtape_shared::db::recordings::{EgressUpdate, Kind, Status, Subject};
use roomtape_shared::db::{from_nanos, recordings};
use roomtape_shared::redact::redact;

use crate::thumbnail::images::{self, ImageSequence};

/// The content type of an HLS playlist, whatever the bucket says.
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

/// A file LiveKit says it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedFile {
    /// The object key (`filename`); `location` is an S3 API URL, not a public one.
    pub key: String,
    pub location: String,
    /// For a playlist, the size of all its segments.
    pub size_bytes: i64,
    pub duration_seconds: Option<f64>,
    /// An HLS playlist (its segments are not HEADed one by one).
    pub playlist: bool,
}

/// What a finished egress left behind, as far as the recording goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Results {
    /// Files or HLS playlists ([`EgressPlan::files`]): HEADed before `ready`.
    Files,
    /// Image sequences only: `ready` on LiveKit's word, without a HEAD of every image.
    Images,
    /// Streams only: nothing was stored, so `stopped` is as far as it goes.
    Streams,
    /// No result at all: the egress failed to produce anything.
    Nothing,
}

/// An egress event, read.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressPlan {
    pub update: EgressUpdate,
    /// COMPLETE or LIMIT_REACHED: the files are to be verified before `ready`.
    pub finished: bool,
    /// Files first, then HLS playlists.
    pub files: Vec<ReportedFile>,
    pub results: Results,
    /// The S3 bucket and endpoint the egress request named, if it named one.
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    /// The files are in LiveKit's backup bucket, not ours.
    pub backup_storage_used: bool,
    pub tracks: WantedTracks,
    /// Image sequences it wrote (LiveKit's image output), where they are.
    pub images: Vec<ImageSequence>,
}

/// The tracks the egress request asked its files to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WantedTracks {
    pub video: bool,
    pub audio: bool,
}

/// A room composite or web egress records video unless it is audio-only (then audio); a track
/// composite, video when it names a video track, else audio when it names an audio track. A
/// participant or track egress may be either: some track is all that is asked.
fn wanted_tracks(request: Option<&egress_info::Request>) -> WantedTracks {
    let mixed = |audio_only: bool| WantedTracks {
        video: !audio_only,
        audio: audio_only,
    };
    match request {
        Some(egress_info::Request::RoomComposite(r)) => mixed(r.audio_only),
        Some(egress_info::Request::Web(r)) => mixed(r.audio_only),
        Some(egress_info::Request::TrackComposite(r)) => WantedTracks {
            video: !r.video_track_id.is_empty(),
            audio: r.video_track_id.is_empty() && !r.audio_track_id.is_empty(),
        },
        _ => WantedTracks::default(),
    }
}

/// What the egress records, from the request LiveKit reports it started with.
fn subject_of(request: Option<&egress_info::Request>) -> Subject {
    let id = |text: &str| Some(text.to_owned()).filter(|t| !t.is_empty());
    match request {
        Some(egress_info::Request::Participant(r)) => Subject {
            kind: Kind::Participant,
            identity: id(&r.identity),
            ..Subject::default()
        },
        Some(egress_info::Request::TrackComposite(r)) => Subject {
            kind: Kind::TrackComposite,
            audio_track_id: id(&r.audio_track_id),
            video_track_id: id(&r.video_track_id),
            ..Subject::default()
        },
        Some(egress_info::Request::Track(r)) => Subject {
            kind: Kind::Track,
            track_id: id(&r.track_id),
            ..Subject::default()
        },
        Some(egress_info::Request::Web(_)) => Subject {
            kind: Kind::Web,
            ..Subject::default()
        },
        // The unified `StartEgress` and replays: their source is in a nested request this
        // build does not read; counted as room composites.
        _ => Subject::default(),
    }
}

/// LiveKit's status → ours, and whether the egress finished with files to verify.
fn status_of(info: &EgressInfo) -> (Status, bool) {
    match EgressStatus::try_from(info.status) {
        Ok(EgressStatus::EgressStarting) => (Status::Starting, false),
        Ok(EgressStatus::EgressActive) => (Status::Active, false),
        Ok(EgressStatus::EgressEnding) => (Status::Stopping, false),
        Ok(EgressStatus::EgressComplete | EgressStatus::EgressLimitReached) => {
            (Status::Stopped, true)
        }
        Ok(EgressStatus::EgressFailed) => (Status::Failed, false),
        Ok(EgressStatus::EgressAborted) => (Status::Aborted, false),
        // A status this build does not know yet can only be ignored: starting never moves back.
        Err(_) => (Status::Starting, false),
    }
}

pub fn plan(info: &EgressInfo, room_sid: Option<&str>, raw_info: Option<&Value>) -> EgressPlan {
    let (status, finished) = status_of(info);
    let mut files = reported_files(info);
    let segments = segments_of(info);
    files.extend(segments.iter().filter_map(|s| playlist(s)));
    let images = &info.image_results;
    let sequences = images::sequences(info);
    let streams = streams_of(info);
    let results = match (files.is_empty(), images.is_empty(), streams.is_empty()) {
        (false, _, _) => Results::Files,
        (true, false, _) => Results::Images,
        (true, true, false) => Results::Streams,
        (true, true, true) => Results::Nothing,
    };
    let (bucket, endpoint) = raw_info.and_then(s3_destination).unzip();
    let (layout, audio_only) = match &info.request {
        Some(egress_info::Request::RoomComposite(request)) => (
            Some(request.layout.clone()).filter(|l| !l.is_empty()),
            request.audio_only,
        ),
        _ => (None, false),
    };
    let duration_seconds = files
        .first()
        .and_then(|f| f.duration_seconds)
        .or_else(|| seconds_between(info.started_at, info.ended_at));
    // LiveKit's message quotes the URLs the egress used, join tokens and all.
    let error = Some(redact(&info.error).into_owned()).filter(|e| !e.is_empty());
    let mut metadata = results_metadata(&segments, images, &streams);
    if let (true, Some(map)) = (finished, metadata.as_object_mut()) {
        if let Some(objects) = reported_objects(&files, &segments, &sequences) {
            map.insert(recordings::OBJECTS.into(), objects);
        }
    }
    EgressPlan {
        update: EgressUpdate {
            egress_id: info.egress_id.clone(),
            room_name: info.room_name.clone(),
            subject: subject_of(info.request.as_ref()),
            room_sid: Some(info.room_id.clone())
                .filter(|s| !s.is_empty())
                .or_else(|| room_sid.map(str::to_owned)),
            status,
            updated_ns: info.updated_at,
            layout,
            file_format: files.first().and_then(|f| extension(&f.key)),
            audio_only,
            started_at: from_nanos(info.started_at),
            ended_at: from_nanos(info.ended_at),
            duration_seconds,
            error,
            file: None,
            thumbnail: None,
            metadata,
            processed: false,
        },
        finished,
        files,
        results,
        bucket: bucket.flatten(),
        endpoint: endpoint.flatten(),
        backup_storage_used: info.backup_storage_used,
        tracks: wanted_tracks(info.request.as_ref()),
        images: sequences,
    }
}

/// `fileResults`, or the legacy `file` when there are none.
fn reported_files(info: &EgressInfo) -> Vec<ReportedFile> {
    #[allow(deprecated)]
    let legacy = match &info.result {
        Some(egress_info::Result::File(file)) => Some(file),
        _ => None,
    };
    let files: Vec<&FileInfo> = if info.file_results.is_empty() {
        legacy.into_iter().collect()
    } else {
        info.file_results.iter().collect()
    };
    files
        .into_iter()
        .filter(|f| !f.filename.is_empty())
        .map(|f| ReportedFile {
            key: f.filename.trim_start_matches('/').to_owned(),
            location: f.location.clone(),
            size_bytes: f.size,
            duration_seconds: (f.duration > 0)
                .then(|| f.duration as f64 / 1e9)
                .or_else(|| seconds_between(f.started_at, f.ended_at)),
            playlist: false,
        })
        .collect()
}

/// `segmentResults`, or the legacy `segments` when there are none.
fn segments_of(info: &EgressInfo) -> Vec<&SegmentsInfo> {
    #[allow(deprecated)]
    match (&info.result, info.segment_results.is_empty()) {
        (Some(egress_info::Result::Segments(legacy)), true) => vec![legacy],
        _ => info.segment_results.iter().collect(),
    }
}

/// `streamResults`, or the legacy `stream` list when there are none.
fn streams_of(info: &EgressInfo) -> Vec<&StreamInfo> {
    #[allow(deprecated)]
    match (&info.result, info.stream_results.is_empty()) {
        (Some(egress_info::Result::Stream(legacy)), true) => legacy.info.iter().collect(),
        _ => info.stream_results.iter().collect(),
    }
}

/// An HLS output's playlist, as the file that stands for the recording.
fn playlist(segments: &SegmentsInfo) -> Option<ReportedFile> {
    let key = segments.playlist_name.trim_start_matches('/');
    (!key.is_empty()).then(|| ReportedFile {
        key: key.to_owned(),
        location: segments.playlist_location.clone(),
        size_bytes: segments.size,
        duration_seconds: (segments.duration > 0)
            .then(|| segments.duration as f64 / 1e9)
            .or_else(|| seconds_between(segments.started_at, segments.ended_at)),
        playlist: true,
    })
}

/// What the recording's `metadata` keeps of outputs that are not plain files: segment counts
/// and sizes, image prefixes and counts, and streams (their URLs without path or query, which
/// carry stream keys).
fn results_metadata(
    segments: &[&SegmentsInfo],
    images: &[ImagesInfo],
    streams: &[&StreamInfo],
) -> Value {
    let mut metadata = serde_json::Map::new();
    if !segments.is_empty() {
        let summary: Vec<Value> = segments
            .iter()
            .map(|s| {
                json!({"playlist": s.playlist_name, "live_playlist": s.live_playlist_name,
                       "segment_count": s.segment_count, "size_bytes": s.size})
            })
            .collect();
        metadata.insert("segments".into(), summary.into());
    }
    if !images.is_empty() {
        let summary: Vec<Value> = images
            .iter()
            .map(|i| json!({"filename_prefix": i.filename_prefix, "image_count": i.image_count}))
            .collect();
        metadata.insert("images".into(), summary.into());
    }
    if !streams.is_empty() {
        let summary: Vec<Value> = streams
            .iter()
            .map(|s| {
                json!({"destination": stream_destination(&s.url), "status": s.status().as_str_name(),
                       "duration_seconds": (s.duration > 0).then(|| s.duration as f64 / 1e9),
                       "error": Some(redact(&s.error)).filter(|e| !e.is_empty())})
            })
            .collect();
        metadata.insert("streams".into(), summary.into());
    }
    Value::Object(metadata)
}

/// What the egress reported writing: `keys` (files, playlists, live playlists) and `prefixes`
/// it owns (an HLS playlist's stem, which its segments and manifest share; an image sequence's
/// prefix, where its request put it). `None` when it wrote nothing.
fn reported_objects(
    files: &[ReportedFile],
    segments: &[&SegmentsInfo],
    images: &[ImageSequence],
) -> Option<Value> {
    let trimmed =
        |key: &str| Some(key.trim_start_matches('/').to_owned()).filter(|k| !k.is_empty());
    let mut keys: Vec<String> = files.iter().map(|f| f.key.clone()).collect();
    keys.extend(
        segments
            .iter()
            .filter_map(|s| trimmed(&s.live_playlist_name)),
    );
    let stems = files.iter().filter(|f| f.playlist).filter_map(|f| {
        let (stem, _) = f.key.rsplit_once('.')?;
        // A stem of a whole folder ("dir/.m3u8") owns nothing.
        Some(stem.to_owned()).filter(|s| !s.is_empty() && !s.ends_with('/'))
    });
    let mut prefixes: Vec<String> = stems.collect();
    prefixes.extend(images.iter().map(|i| i.prefix.clone()));
    keys.dedup();
    prefixes.dedup();
    (!keys.is_empty() || !prefixes.is_empty()).then(|| json!({"keys": keys, "prefixes": prefixes}))
}

/// `rtmp://host/app/KEY` → `rtmp://host`: enough to tell streams apart, without their keys.
fn stream_destination(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            // Credentials in the authority are as secret as the path.
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
        None => String::new(),
    }
}

/// Seconds from `start` to `end` (nanoseconds); never negative, `None` when either is unset.
fn seconds_between(start_ns: i64, end_ns: i64) -> Option<f64> {
    (start_ns > 0 && end_ns > 0).then(|| (end_ns.saturating_sub(start_ns)).max(0) as f64 / 1e9)
}

fn extension(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?;
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

/// The first `s3` output in the egress request, wherever the request type keeps it.
fn s3_destination(value: &Value) -> Option<(Option<String>, Option<String>)> {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(s3)) = map.get("s3") {
                let text = |k: &str| s3.get(k).and_then(Value::as_str).map(str::to_owned);
                return Some((text("bucket"), text("endpoint")));
            }
            map.iter()
                .filter(|(k, _)| k.as_str() != "fileResults")
                .find_map(|(_, v)| s3_destination(v))
        }
        Value::Array(items) => items.iter().find_map(s3_destination),
        _ => None,
    }
}

/// The recording after its files failed verification for good.
pub fn failed(plan: &EgressPlan, reason: String) -> EgressUpdate {
    EgressUpdate {
        status: recordings::Status::Failed,
        error: Some(reason),
        ..plan.update.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomtape_shared::events::parse::parse;

    const ENDED: &str = r#"{"event":"egress_ended","room":{"sid":"RM_1","name":"standup"},
      "egressInfo":{"egressId":"EG_1","roomId":"RM_1","roomName":"standup","status":"EGRESS_COMPLETE",
      "startedAt":"1700000001000000000","endedAt":"1700001801000000000","updatedAt":"1700001803000000000",
      "roomComposite":{"roomName":"standup","layout":"grid","fileOutputs":[{"fileType":"MP4",
      "filepath":"recordings/{room_name}/{time}","s3":{"bucket":"meet","endpoint":"https://x.r2.cloudflarestorage.com"}}]},
      "fileResults":[{"filename":"recordings/standup/a.mp4","startedAt":"1700000001000000000",
      "endedAt":"1700001801000000000","duration":"1800000000000","size":"283115520",
      "location":"https://x.r2.cloudflarestorage.com/meet/recordings/standup/a.mp4"}]},
      "id":"EV_1","createdAt":"1700001803"}"#;

    fn plan_of(body: &str) -> EgressPlan {
        let parsed = parse(body.as_bytes()).expect("parse");
        plan(
            parsed.event.egress_info.as_ref().expect("info"),
            None,
            parsed.raw.get("egressInfo"),
        )
    }

    #[test]
    fn a_complete_egress_is_finished_with_its_files_and_destination() {
        let plan = plan_of(ENDED);
        assert!(plan.finished);
        assert_eq!(plan.update.status, Status::Stopped);
        assert_eq!(plan.update.layout.as_deref(), Some("grid"));
        assert_eq!(plan.update.file_format.as_deref(), Some("mp4"));
        assert_eq!(plan.update.duration_seconds, Some(1800.0));
        assert_eq!(plan.bucket.as_deref(), Some("meet"));
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].key, "recordings/standup/a.mp4");
        assert_eq!(
            plan.tracks,
            WantedTracks {
                video: true,
                audio: false
            }
        );
        let audio_only = ENDED.replace(
            r#""layout":"grid","#,
            r#""layout":"grid","audioOnly":true,"#,
        );
        assert_eq!(
            plan_of(&audio_only).tracks,
            WantedTracks {
                video: false,
                audio: true
            }
        );
    }

    #[test]
    fn what_an_egress_records_comes_from_its_request() {
        assert_eq!(plan_of(ENDED).update.subject, Subject::default());
        let participant = ENDED.replace(
            r#""roomComposite":{"roomName":"standup","layout":"grid","#,
            r#""participant":{"roomName":"standup","identity":"alice","screenShare":true,"#,
        );
        let plan = plan_of(&participant);
        assert_eq!(
            plan.update.subject,
            Subject {
                kind: Kind::Participant,
                identity: Some("alice".into()),
                ..Subject::default()
            }
        );
        assert_eq!(plan.update.layout, None);
        let composite = ENDED.replace(
            r#""roomComposite":{"roomName":"standup","layout":"grid","#,
            r#""trackComposite":{"roomName":"standup","audioTrackId":"TR_a","#,
        );
        let subject = plan_of(&composite).update.subject;
        assert_eq!(
            (subject.kind, subject.audio_track_id, subject.video_track_id),
            (Kind::TrackComposite, Some("TR_a".into()), None)
        );
    }

    #[test]
    fn an_absent_status_means_starting_and_durations_are_never_negative() {
        let started = r#"{"event":"egress_started","egressInfo":{"egressId":"EG_2","roomName":"r",
            "startedAt":"20","endedAt":"10"}}"#;
        let plan = plan_of(started);
        assert_eq!(plan.update.status, Status::Starting);
        assert!(!plan.finished);
        assert_eq!(plan.update.duration_seconds, Some(0.0));
    }

    #[test]
    fn the_legacy_file_is_used_when_file_results_is_empty() {
        let legacy = r#"{"event":"egress_ended","egressInfo":{"egressId":"EG_3","roomName":"r",
            "status":"EGRESS_LIMIT_REACHED","file":{"filename":"old/x.webm","size":"10"}}}"#;
        let plan = plan_of(legacy);
        assert!(plan.finished);
        assert_eq!(plan.files[0].key, "old/x.webm");
        assert_eq!(plan.update.file_format.as_deref(), Some("webm"));
        assert_eq!(plan.bucket, None);
    }
}
