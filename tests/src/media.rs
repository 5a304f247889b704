//! The HLS recording of tests/fixtures/media (made by its make-media.sh: 4 segments of 1 s,
//! H.264 + AAC in MPEG-TS), and how tests put it where an egress would, report a finished file
//! or playlist as LiveKit does, and wait for the recording to settle.

use std::time::Duration;

use roomtape_shared::queue::topology::EVENTS_EXCHANGE;
use serde_json::{json, Value};

use crate::fixtures::Egress;
use crate::s3::TestBucket;
use crate::{eventually, TestEnv};

pub const HLS_PLAYLIST: &[u8] = include_bytes!("../fixtures/media/hls/rec.m3u8");
pub const HLS_SEGMENTS: [(&str, &[u8]); 4] = [
    (
        "rec_00000.ts",
        include_bytes!("../fixtures/media/hls/rec_00000.ts"),
    ),
    (
        "rec_00001.ts",
        include_bytes!("../fixtures/media/hls/rec_00001.ts"),
    ),
    (
        "rec_00002.ts",
        include_bytes!("../fixtures/media/hls/rec_00002.ts"),
    ),
    (
        "rec_00003.ts",
        include_bytes!("../fixtures/media/hls/rec_00003.ts"),
    ),
];
/// How long LiveKit says every media fixture is: 4 s, in nanoseconds.
pub const FOUR_SECONDS_NS: &str = "4000000000";

/// Publishes `body`, an `egress_ended`, to the events exchange as the ingestor would.
pub async fn publish_ended(test: &TestEnv, body: &str, id: &str) {
    test.vhost
        .publish(EVENTS_EXCHANGE, "egress.ended", body.as_bytes(), id)
        .await;
}

/// The recording of `egress_id` once it is final (`ready` or `failed`).
pub async fn final_recording(test: &TestEnv, egress_id: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{egress_id} final"),
        || async {
            let row = test.database.recording(egress_id).await?;
            (row["status"] == "ready" || row["status"] == "failed").then_some(row)
        },
    )
    .await
}

/// Uploads `bytes` as `egress`'s file, publishes its `egress_ended` ([`file_ended`]) and waits
/// for the recording to be final.
pub async fn record_file(
    test: &TestEnv,
    egress: &Egress,
    bytes: &[u8],
    content_type: &str,
    audio_only: bool,
) -> Value {
    test.bucket.put(&egress.key, bytes, content_type).await;
    let id = format!("EV_{}", egress.egress_id);
    let ended = file_ended(egress, &id, bytes.len(), audio_only);
    publish_ended(test, &ended, &id).await;
    final_recording(test, &egress.egress_id).await
}

/// `egress_ended` of an egress whose file (`egress.key`) is `size` bytes and 4 s long, as LiveKit
/// reports it; `audio_only` as the request asked.
pub fn file_ended(egress: &Egress, id: &str, size: usize, audio_only: bool) -> String {
    let mut body: Value = serde_json::from_str(&egress.ended(id)).expect("json");
    let info = &mut body["egressInfo"];
    info["fileResults"][0]["duration"] = json!(FOUR_SECONDS_NS);
    info["fileResults"][0]["size"] = json!(size.to_string());
    info["roomComposite"]["audioOnly"] = json!(audio_only);
    body.to_string()
}

/// Uploads `playlist` as `playlist_key` and the segments beside it, but `skip`.
pub async fn upload_hls(
    bucket: &TestBucket,
    playlist_key: &str,
    playlist: &[u8],
    skip: Option<&str>,
) {
    bucket
        .put(playlist_key, playlist, "application/vnd.apple.mpegurl")
        .await;
    let dir = playlist_key
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or_default();
    for (name, bytes) in HLS_SEGMENTS.iter().filter(|(name, _)| Some(*name) != skip) {
        bucket
            .put(&format!("{dir}/{name}"), bytes, "video/mp2t")
            .await;
    }
}

/// `egress_ended` of an HLS egress whose playlist is `egress.key`: 4 segments, 4 s.
pub fn hls_ended(egress: &Egress, id: &str) -> String {
    let size: usize = HLS_SEGMENTS.iter().map(|(_, b)| b.len()).sum();
    egress.ended_with(
        id,
        json!({"segmentResults": [{"playlistName": egress.key, "duration": FOUR_SECONDS_NS,
                                   "size": size.to_string(), "segmentCount": "4"}]}),
    )
}
