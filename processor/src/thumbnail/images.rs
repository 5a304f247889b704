//! LiveKit's image output, LiveKit's documented way to thumbnails: what a video recording's
//! start asks for, and where the images of a finished egress are.
//!
//! The images' prefix is the file's path with `-images` after its stem, `{time}` and `{utc}`
//! filled in by roomtape (LiveKit fills them in once per output, so its own could differ from the
//! file's by a second) and `{room_name}`/`{room_id}` left to LiveKit: once the egress ends, the
//! request it reports names the prefix exactly, whether or not LiveKit reports it in
//! `imageResults` too.

use chrono::{DateTime, Utc};
use roomtape_shared::events::proto::{
    egress_info, encoded_file_output, image_output, EgressInfo, ImageCodec, ImageFileSuffix,
    ImageOutput, RoomCompositeEgressRequest,
};

/// What follows the file's stem in its images' prefix.
const IMAGES_SUFFIX: &str = "-images";

/// An image sequence a finished egress wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSequence {
    /// Every image's key is this, `_`, its index (`_00000`, `_00001`, …) and `.jpeg`.
    pub prefix: String,
    /// How many LiveKit says it wrote.
    pub count: i64,
}

/// The image output of a video recording's `request`, writing beside its (first) file and to
/// the same bucket, one JPEG every `interval_secs`; `None` for an audio-only recording (LiveKit
/// refuses images without video) or one with no file to write beside.
pub fn image_output(
    request: &RoomCompositeEgressRequest,
    interval_secs: u32,
    now_ms: u64,
) -> Option<ImageOutput> {
    if request.audio_only {
        return None;
    }
    let file = request.file_outputs.first()?;
    let Some(encoded_file_output::Output::S3(s3)) = &file.output else {
        return None;
    };
    Some(ImageOutput {
        capture_interval: interval_secs,
        filename_prefix: images_prefix(&file.filepath, now_ms),
        filename_suffix: ImageFileSuffix::ImageSuffixIndex as i32,
        image_codec: ImageCodec::IcJpeg as i32,
        // Its manifest would be named after the egress, not the prefix: nothing would delete it.
        disable_manifest: true,
        output: Some(image_output::Output::S3(s3.clone())),
        // Width and height: the recording's own (LiveKit's default), so no picture is stretched.
        ..ImageOutput::default()
    })
}

/// `recordings/{room_name}/{time}.mp4` → `recordings/{room_name}/2026-05-01T120000-images`.
fn images_prefix(filepath: &str, now_ms: u64) -> String {
    let (dir, name) = filepath.rsplit_once('/').unwrap_or(("", filepath));
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let now = i64::try_from(now_ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_default();
    // LiveKit's own formats for these two.
    let stem = stem
        .replace("{time}", &now.format("%Y-%m-%dT%H%M%S").to_string())
        .replace("{utc}", &now.format("%Y%m%d%H%M%S%3f").to_string());
    match dir {
        "" => format!("{stem}{IMAGES_SUFFIX}"),
        dir => format!("{dir}/{stem}{IMAGES_SUFFIX}"),
    }
}

/// The image sequences `info` reports, each where its request put it: the prefix the request
/// named, with the room's name and sid filled in as LiveKit fills them, else the one LiveKit
/// reports. A sequence whose prefix cannot be told is left out.
pub fn sequences(info: &EgressInfo) -> Vec<ImageSequence> {
    let requested = requested_outputs(info.request.as_ref());
    info.image_results
        .iter()
        .enumerate()
        .filter_map(|(at, images)| {
            let asked = requested
                .get(at)
                .and_then(|output| resolved(&output.filename_prefix, info));
            let reported = Some(images.filename_prefix.trim_start_matches('/').to_owned())
                .filter(|prefix| !prefix.is_empty());
            let prefix = asked.or(reported).filter(|prefix| !prefix.ends_with('/'))?;
            Some(ImageSequence {
                prefix,
                count: images.image_count,
            })
        })
        .collect()
}

/// The image outputs of whichever request kind the egress has.
fn requested_outputs(request: Option<&egress_info::Request>) -> &[ImageOutput] {
    match request {
        Some(egress_info::Request::RoomComposite(r)) => &r.image_outputs,
        Some(egress_info::Request::Web(r)) => &r.image_outputs,
        Some(egress_info::Request::Participant(r)) => &r.image_outputs,
        Some(egress_info::Request::TrackComposite(r)) => &r.image_outputs,
        _ => &[],
    }
}

/// `prefix` with LiveKit's room templates filled in; `None` while another template remains (its
/// value is LiveKit's alone) or when there is no prefix.
fn resolved(prefix: &str, info: &EgressInfo) -> Option<String> {
    let prefix = prefix
        .trim_start_matches('/')
        .replace("{room_name}", &info.room_name)
        .replace("{room_id}", &info.room_id);
    (!prefix.is_empty() && !prefix.contains('{')).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomtape_shared::events::proto::{EncodedFileOutput, ImagesInfo, S3Upload};

    /// 2026-05-01T12:00:00.250Z
    const NOW_MS: u64 = 1_777_636_800_250;

    fn request(audio_only: bool) -> RoomCompositeEgressRequest {
        RoomCompositeEgressRequest {
            room_name: "standup".into(),
            audio_only,
            file_outputs: vec![EncodedFileOutput {
                filepath: "recordings/{room_name}/{time}.mp4".into(),
                output: Some(encoded_file_output::Output::S3(S3Upload {
                    bucket: "meet".into(),
                    ..S3Upload::default()
                })),
                ..EncodedFileOutput::default()
            }],
            ..RoomCompositeEgressRequest::default()
        }
    }

    #[test]
    fn a_video_recording_asks_for_jpegs_beside_its_file_in_the_same_bucket() {
        let output = image_output(&request(false), 30, NOW_MS).expect("an image output");
        assert_eq!(output.capture_interval, 30);
        assert_eq!(
            output.filename_prefix,
            "recordings/{room_name}/2026-05-01T120000-images"
        );
        assert_eq!(output.image_codec, ImageCodec::IcJpeg as i32);
        assert!(output.disable_manifest);
        let Some(image_output::Output::S3(s3)) = output.output else {
            panic!("no S3 upload");
        };
        assert_eq!(s3.bucket, "meet");
        assert_eq!(image_output(&request(true), 30, NOW_MS), None, "audio only");
    }

    #[test]
    fn prefixes_keep_the_files_folder_and_fill_in_times() {
        assert_eq!(images_prefix("a.mp4", NOW_MS), "a-images");
        assert_eq!(
            images_prefix("r/{room_name}/{utc}.webm", NOW_MS),
            "r/{room_name}/20260501120000250-images"
        );
        assert_eq!(images_prefix("r/x/fixed", NOW_MS), "r/x/fixed-images");
    }

    #[test]
    fn a_finished_egress_names_its_images_where_it_was_asked_to_write_them() {
        let mut asked = request(false);
        asked.image_outputs = image_output(&asked, 30, NOW_MS).into_iter().collect();
        let info = EgressInfo {
            room_name: "standup".into(),
            room_id: "RM_1".into(),
            request: Some(egress_info::Request::RoomComposite(asked)),
            image_results: vec![ImagesInfo {
                image_count: 3,
                ..ImagesInfo::default()
            }],
            ..EgressInfo::default()
        };
        assert_eq!(
            sequences(&info),
            vec![ImageSequence {
                prefix: "recordings/standup/2026-05-01T120000-images".into(),
                count: 3,
            }]
        );
    }

    #[test]
    fn a_prefix_with_livekits_own_templates_is_taken_from_its_report() {
        let mut asked = request(false);
        asked.image_outputs = vec![ImageOutput {
            filename_prefix: "img/{time}".into(),
            ..ImageOutput::default()
        }];
        let mut info = EgressInfo {
            request: Some(egress_info::Request::RoomComposite(asked)),
            image_results: vec![ImagesInfo {
                filename_prefix: "/img/2026-05-01T120000".into(),
                image_count: 2,
                ..ImagesInfo::default()
            }],
            ..EgressInfo::default()
        };
        assert_eq!(sequences(&info)[0].prefix, "img/2026-05-01T120000");
        info.image_results[0].filename_prefix.clear();
        assert_eq!(sequences(&info), Vec::new(), "nowhere to be found");
    }
}
