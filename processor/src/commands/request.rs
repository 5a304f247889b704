//! The `RoomCompositeEgressRequest` a start command becomes.

use std::collections::HashMap;

use roomtape_shared::events::proto::{
    egress_info, encoded_file_output, room_composite_egress_request, EgressInfo, EncodedFileOutput,
    EncodedFileType, RoomCompositeEgressRequest, S3Upload,
};
use secrecy::ExposeSecret;

use roomtape_shared::commands::Start;

/// S3 object metadata naming the command that started the egress: it lets a redelivered
/// command find the egress an earlier, interrupted delivery started.
pub const COMMAND_ID_METADATA: &str = "roomtape-command-id";

pub fn room_composite(start: &Start, command_id: &str) -> RoomCompositeEgressRequest {
    let profile = &start.profile;
    let file_type = match start.file_format.as_str() {
        "mp4" => EncodedFileType::Mp4,
        "ogg" => EncodedFileType::Ogg,
        // LiveKit has no WebM file type: it picks the container from the codecs and the path.
        _ => EncodedFileType::DefaultFiletype,
    };
    let s3 = S3Upload {
        access_key: profile.access_key_id.clone(),
        secret: profile.secret_access_key.expose_secret().to_owned(),
        region: profile.region.clone(),
        endpoint: profile.endpoint.as_str().trim_end_matches('/').to_owned(),
        bucket: profile.bucket.clone(),
        force_path_style: profile.force_path_style,
        metadata: HashMap::from([(COMMAND_ID_METADATA.to_owned(), command_id.to_owned())]),
        ..S3Upload::default()
    };
    RoomCompositeEgressRequest {
        room_name: start.room_name.clone(),
        layout: start.layout.clone(),
        audio_only: start.audio_only,
        video_only: start.video_only,
        file_outputs: vec![EncodedFileOutput {
            file_type: file_type as i32,
            filepath: start.filepath.clone(),
            output: Some(encoded_file_output::Output::S3(s3)),
            ..EncodedFileOutput::default()
        }],
        options: start
            .preset
            .map(|preset| room_composite_egress_request::Options::Preset(preset.into())),
        ..RoomCompositeEgressRequest::default()
    }
}

/// Whether `info` is the egress the command `command_id` started.
pub fn started_by(info: &EgressInfo, command_id: &str) -> bool {
    let Some(egress_info::Request::RoomComposite(request)) = &info.request else {
        return false;
    };
    request
        .file_outputs
        .iter()
        .any(|output| match &output.output {
            Some(encoded_file_output::Output::S3(s3)) => {
                s3.metadata.get(COMMAND_ID_METADATA).map(String::as_str) == Some(command_id)
            }
            _ => false,
        })
}
