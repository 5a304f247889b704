//! The Egress API request a start command becomes: one per kind of recording (CONTRACTS §4),
//! each uploading to the start's storage profile with the command's tag in the object metadata.

use std::collections::HashMap;

use roomtape_shared::db::recordings::Kind;
use roomtape_shared::events::proto::{
    direct_file_output, egress_info, encoded_file_output, participant_egress_request,
    room_composite_egress_request, track_composite_egress_request, track_egress_request,
    DirectFileOutput, EgressInfo, EncodedFileOutput, EncodedFileType, ParticipantEgressRequest,
    RoomCompositeEgressRequest, S3Upload, TrackCompositeEgressRequest, TrackEgressRequest,
};
use roomtape_shared::livekit::StartRequest;
use secrecy::ExposeSecret;

use roomtape_shared::commands::Start;

/// S3 object metadata naming the command that started the egress: it lets a redelivered
/// command find the egress an earlier, interrupted delivery started.
pub const COMMAND_ID_METADATA: &str = "roomtape-command-id";

/// The request that starts `start`'s kind of egress.
pub fn egress_request(start: &Start, command_id: &str) -> StartRequest {
    let subject = &start.subject;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    match subject.kind {
        Kind::Participant => StartRequest::Participant(ParticipantEgressRequest {
            room_name: start.room_name.clone(),
            identity: text(&subject.identity),
            screen_share: start.screen_share,
            file_outputs: vec![file_output(start, command_id)],
            options: start
                .preset
                .map(|preset| participant_egress_request::Options::Preset(preset.into())),
            ..ParticipantEgressRequest::default()
        }),
        Kind::TrackComposite => StartRequest::TrackComposite(TrackCompositeEgressRequest {
            room_name: start.room_name.clone(),
            audio_track_id: text(&subject.audio_track_id),
            video_track_id: text(&subject.video_track_id),
            file_outputs: vec![file_output(start, command_id)],
            options: start
                .preset
                .map(|preset| track_composite_egress_request::Options::Preset(preset.into())),
            ..TrackCompositeEgressRequest::default()
        }),
        Kind::Track => StartRequest::Track(TrackEgressRequest {
            room_name: start.room_name.clone(),
            track_id: text(&subject.track_id),
            output: Some(track_egress_request::Output::File(DirectFileOutput {
                filepath: start.filepath.clone(),
                output: Some(direct_file_output::Output::S3(s3_upload(start, command_id))),
                ..DirectFileOutput::default()
            })),
            ..TrackEgressRequest::default()
        }),
        // A start never asks for a web egress (`commands::parse` refuses the kind).
        Kind::RoomComposite | Kind::Web => {
            StartRequest::RoomComposite(room_composite(start, command_id))
        }
    }
}

fn room_composite(start: &Start, command_id: &str) -> RoomCompositeEgressRequest {
    RoomCompositeEgressRequest {
        room_name: start.room_name.clone(),
        layout: start.layout.clone().unwrap_or_default(),
        audio_only: start.audio_only,
        video_only: start.video_only,
        file_outputs: vec![file_output(start, command_id)],
        options: start
            .preset
            .map(|preset| room_composite_egress_request::Options::Preset(preset.into())),
        ..RoomCompositeEgressRequest::default()
    }
}

/// The encoded file every kind but `track` writes.
fn file_output(start: &Start, command_id: &str) -> EncodedFileOutput {
    let file_type = match start.file_format.as_deref() {
        Some("mp4") => EncodedFileType::Mp4,
        Some("ogg") => EncodedFileType::Ogg,
        // LiveKit has no WebM file type: it picks the container from the codecs and the path.
        _ => EncodedFileType::DefaultFiletype,
    };
    EncodedFileOutput {
        file_type: file_type as i32,
        filepath: start.filepath.clone(),
        output: Some(encoded_file_output::Output::S3(s3_upload(
            start, command_id,
        ))),
        ..EncodedFileOutput::default()
    }
}

fn s3_upload(start: &Start, command_id: &str) -> S3Upload {
    let profile = &start.profile;
    S3Upload {
        access_key: profile.access_key_id.clone(),
        secret: profile.secret_access_key.expose_secret().to_owned(),
        region: profile.region.clone(),
        endpoint: profile.endpoint.as_str().trim_end_matches('/').to_owned(),
        bucket: profile.bucket.clone(),
        force_path_style: profile.force_path_style,
        metadata: HashMap::from([(COMMAND_ID_METADATA.to_owned(), command_id.to_owned())]),
        ..S3Upload::default()
    }
}

/// Whether `info` is the egress the command `command_id` started, whatever its kind.
pub fn started_by(info: &EgressInfo, command_id: &str) -> bool {
    let uploads: Vec<&S3Upload> = match &info.request {
        Some(egress_info::Request::RoomComposite(r)) => encoded_uploads(&r.file_outputs),
        Some(egress_info::Request::Participant(r)) => encoded_uploads(&r.file_outputs),
        Some(egress_info::Request::TrackComposite(r)) => encoded_uploads(&r.file_outputs),
        Some(egress_info::Request::Track(TrackEgressRequest {
            output: Some(track_egress_request::Output::File(file)),
            ..
        })) => match &file.output {
            Some(direct_file_output::Output::S3(s3)) => vec![s3],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    uploads
        .iter()
        .any(|s3| s3.metadata.get(COMMAND_ID_METADATA).map(String::as_str) == Some(command_id))
}

fn encoded_uploads(outputs: &[EncodedFileOutput]) -> Vec<&S3Upload> {
    outputs
        .iter()
        .filter_map(|output| match &output.output {
            Some(encoded_file_output::Output::S3(s3)) => Some(s3),
            _ => None,
        })
        .collect()
}
