//! The probe before `ready` (RECORDING_PROBE on): real media files (tests/fixtures/media, made
//! by its make-media.sh) in the test's bucket, `egress_ended` claiming their length. A cut or
//! wrong file is `failed` with `unplayable: why`; a good one is `ready` with what ffprobe says
//! of it in `metadata.probe`; an HLS segment not there keeps the recording from `ready`.

use std::time::Duration;

use roomtape_tests::apps::wait_ready;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::media::{
    self, file_ended, final_recording, hls_ended, publish_ended, record_file, HLS_PLAYLIST,
    HLS_SEGMENTS,
};
use roomtape_tests::{eventually, spawn_processor, TestApp, TestEnv};
use serde_json::{json, Value};

const FASTSTART: &[u8] = include_bytes!("../../../cli/assets/test-video.mp4");
const MOOV_LAST: &[u8] = include_bytes!("../../fixtures/media/moov-last.mp4");
const AUDIO_MP4: &[u8] = include_bytes!("../../fixtures/media/audio-only.mp4");
const WEBM: &[u8] = include_bytes!("../../fixtures/media/video.webm");
const OGG: &[u8] = include_bytes!("../../fixtures/media/audio.ogg");
const FFPROBE: &str = include_str!("../../fixtures/media/ffprobe.json");

async fn probing_processor(test: &TestEnv) -> TestApp {
    let processor = spawn_processor(&test.env_with(&[("RECORDING_PROBE", "on")])).await;
    wait_ready(&processor).await;
    processor
}

/// An egress writing `name` (its extension sets the container LiveKit was asked for).
fn egress(test: &TestEnv, egress_id: &str, name: &str) -> Egress {
    let mut egress = Egress::new(egress_id, "probe", &test.bucket.profile);
    egress.key = format!("recordings/probe/{egress_id}/{name}");
    egress
}

/// Uploads `bytes` as `name` of a fresh egress and ends it; the recording once final.
async fn recorded(
    test: &TestEnv,
    egress_id: &str,
    name: &str,
    bytes: &[u8],
    audio_only: bool,
) -> Value {
    let egress = egress(test, egress_id, name);
    let content_type = match name.rsplit('.').next() {
        Some("webm") => "video/webm",
        Some("ogg") => "audio/ogg",
        _ => "video/mp4",
    };
    record_file(test, &egress, bytes, content_type, audio_only).await
}

fn error_of(row: &Value) -> &str {
    row["error"].as_str().unwrap_or_default()
}

fn cut(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len() * 6 / 10]
}

#[tokio::test]
async fn files_cut_to_60_percent_are_unplayable_whatever_the_container() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;
    for (egress_id, name, bytes, where_) in [
        ("EG_cut_faststart", "a.mp4", FASTSTART, "mdat box"),
        ("EG_cut_moov_last", "a.mp4", MOOV_LAST, "mdat box"),
        ("EG_cut_webm", "a.webm", WEBM, "Segment element"),
    ] {
        let row = recorded(&test, egress_id, name, cut(bytes), false).await;
        assert_eq!(row["status"], "failed", "{egress_id}: {row}");
        let error = error_of(&row);
        assert!(error.starts_with("unplayable: "), "{egress_id}: {error}");
        assert!(error.contains(where_), "{egress_id}: {error}");
        assert!(error.contains("cut short"), "{egress_id}: {error}");
        assert!(
            error.contains(&format!("recordings/probe/{egress_id}/{name}")),
            "{error}"
        );
        assert!(
            test.database.assets(egress_id).await.is_empty(),
            "{egress_id}"
        );
    }
}

fn ffprobe(name: &str) -> Value {
    let all: Value = serde_json::from_str(FFPROBE).expect("ffprobe.json");
    all[name].clone()
}

fn stream<'a>(ffprobe: &'a Value, kind: &str) -> &'a Value {
    ffprobe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn a_good_file_is_ready_with_what_ffprobe_says_of_it() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;
    for (egress_id, name, fixture, bytes) in [
        ("EG_good_mp4", "a.mp4", "test-video.mp4", FASTSTART),
        ("EG_good_moov_last", "a.mp4", "moov-last.mp4", MOOV_LAST),
        ("EG_good_webm", "a.webm", "video.webm", WEBM),
    ] {
        let row = recorded(&test, egress_id, name, bytes, false).await;
        assert_eq!(row["status"], "ready", "{egress_id}: {row}");
        let probe = &row["metadata"]["probe"];
        let expected = ffprobe(fixture);
        let seconds = probe["duration_seconds"].as_f64().expect("duration");
        let ffprobe_seconds = expected["duration_seconds"]
            .as_f64()
            .expect("ffprobe duration");
        assert!(
            (seconds - ffprobe_seconds).abs() <= 0.1,
            "{egress_id}: {seconds} vs {ffprobe_seconds}"
        );
        let video = stream(&expected, "video");
        assert_eq!(probe["video"]["codec"], video["codec_name"], "{egress_id}");
        assert_eq!(probe["video"]["width"], video["width"], "{egress_id}");
        assert_eq!(probe["video"]["height"], video["height"], "{egress_id}");
        let audio = stream(&expected, "audio");
        assert_eq!(probe["audio"]["codec"], audio["codec_name"], "{egress_id}");
        assert_eq!(
            probe["audio"]["sample_rate"], audio["sample_rate"],
            "{egress_id}"
        );
        let bits = bytes.len() as f64 * 8.0 / seconds;
        assert_eq!(probe["bit_rate"], json!(bits.round() as u64), "{egress_id}");
        assert_eq!(
            test.database.assets(egress_id).await.len(),
            1,
            "{egress_id}"
        );
    }
}

#[tokio::test]
async fn a_file_padded_with_a_free_box_is_still_whole() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;
    let mut padded = FASTSTART.to_vec();
    padded.extend_from_slice(&4096u32.to_be_bytes());
    padded.extend_from_slice(b"free");
    padded.resize(padded.len() + 4088, 0);
    let row = recorded(&test, "EG_padded", "a.mp4", &padded, false).await;
    assert_eq!(row["status"], "ready", "{row}");
    assert_eq!(row["file_size_bytes"], padded.len());
}

#[tokio::test]
async fn the_tracks_asked_for_must_be_in_the_file() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;
    let row = recorded(&test, "EG_no_video", "a.mp4", AUDIO_MP4, false).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert!(
        error_of(&row).starts_with("unplayable: no video track"),
        "{}",
        error_of(&row)
    );
    // Audio-only as asked: the same file plays.
    let row = recorded(&test, "EG_audio_only_mp4", "a.mp4", AUDIO_MP4, true).await;
    assert_eq!(row["status"], "ready", "{row}");
    assert_eq!(row["metadata"]["probe"]["video"], Value::Null);
    let row = recorded(&test, "EG_audio_only_ogg", "a.ogg", OGG, true).await;
    assert_eq!(row["status"], "ready", "{row}");
    assert_eq!(row["metadata"]["probe"]["audio"]["codec"], "opus");
    let row = recorded(&test, "EG_cut_ogg", "a.ogg", cut(OGG), true).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert!(error_of(&row).contains("Ogg page"), "{}", error_of(&row));
}

#[tokio::test]
async fn a_file_shorter_than_livekit_said_is_unplayable() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;
    let egress = egress(&test, "EG_short", "a.mp4");
    test.bucket.put(&egress.key, FASTSTART, "video/mp4").await;
    // LiveKit's own fixture says 30 minutes.
    publish_ended(&test, &egress.ended("EV_short"), "EV_short").await;
    let row = final_recording(&test, "EG_short").await;
    assert_eq!(row["status"], "failed", "{row}");
    assert!(
        error_of(&row).contains("where LiveKit reported 1800.00 s"),
        "{}",
        error_of(&row)
    );
}

async fn upload_hls(test: &TestEnv, egress: &Egress, skip: Option<&str>) {
    media::upload_hls(&test.bucket, &egress.key, HLS_PLAYLIST, skip).await;
}

#[tokio::test]
async fn an_hls_recording_is_ready_only_with_every_segment() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;

    let whole = egress(&test, "EG_hls", "rec.m3u8");
    upload_hls(&test, &whole, None).await;
    publish_ended(&test, &hls_ended(&whole, "EV_hls"), "EV_hls").await;
    let row = final_recording(&test, "EG_hls").await;
    assert_eq!(row["status"], "ready", "{row}");
    let probe = &row["metadata"]["probe"];
    assert_eq!(probe["container"], "hls");
    assert_eq!(probe["segment_count"], 4);
    assert_eq!(probe["video"]["codec"], "h264");
    assert_eq!(probe["audio"]["codec"], "aac");
    let seconds = probe["duration_seconds"].as_f64().expect("duration");
    let ffprobe_seconds = ffprobe("hls/rec.m3u8")["duration_seconds"]
        .as_f64()
        .expect("ffprobe");
    assert!(
        (seconds - ffprobe_seconds).abs() <= 0.1,
        "{seconds} vs {ffprobe_seconds}"
    );

    // RETRY_DELAYS is 100ms,200ms in tests: a segment still missing after them fails it, as a
    // missing file does; it is never `ready`.
    let gappy = egress(&test, "EG_hls_gap", "rec.m3u8");
    upload_hls(&test, &gappy, Some("rec_00002.ts")).await;
    publish_ended(&test, &hls_ended(&gappy, "EV_hls_gap"), "EV_hls_gap").await;
    let row = final_recording(&test, "EG_hls_gap").await;
    assert_eq!(row["status"], "failed", "{row}");
    let error = error_of(&row);
    assert!(
        error.contains("EG_hls_gap/rec_00002.ts does not exist"),
        "{error}"
    );
    assert!(error.contains("gave up after 3 attempts"), "{error}");
}

#[tokio::test]
async fn a_missing_segment_uploaded_during_the_retries_completes_the_recording() {
    let test = TestEnv::new().await;
    let processor =
        spawn_processor(&test.env_with(&[("RECORDING_PROBE", "on"), ("RETRY_DELAYS", "1s,1s,1s")]))
            .await;
    wait_ready(&processor).await;
    let late = egress(&test, "EG_hls_late", "rec.m3u8");
    upload_hls(&test, &late, Some("rec_00003.ts")).await;
    publish_ended(&test, &hls_ended(&late, "EV_hls_late"), "EV_hls_late").await;
    let waiting = eventually(
        Duration::from_secs(10),
        "a note of the missing segment",
        || async {
            let row = test.database.recording("EG_hls_late").await?;
            error_of(&row)
                .contains("rec_00003.ts does not exist")
                .then_some(row)
        },
    )
    .await;
    assert_eq!(
        waiting["status"], "stopped",
        "not ready while a segment is missing"
    );
    let dir = late
        .key
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or_default();
    test.bucket
        .put(
            &format!("{dir}/rec_00003.ts"),
            HLS_SEGMENTS[3].1,
            "video/mp2t",
        )
        .await;
    let row = final_recording(&test, "EG_hls_late").await;
    assert_eq!(row["status"], "ready", "{row}");
}

#[tokio::test]
async fn an_empty_or_missing_file_fails_as_without_the_probe() {
    let test = TestEnv::new().await;
    let _processor = probing_processor(&test).await;
    let row = recorded(&test, "EG_empty", "a.mp4", b"", false).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert!(
        error_of(&row).contains("is empty (0 bytes)"),
        "{}",
        error_of(&row)
    );
    let missing = egress(&test, "EG_missing", "a.mp4");
    publish_ended(
        &test,
        &file_ended(&missing, "EV_missing", 1, false),
        "EV_missing",
    )
    .await;
    let row = final_recording(&test, "EG_missing").await;
    assert_eq!(row["status"], "failed", "{row}");
    let error = error_of(&row);
    assert!(error.contains("EG_missing/a.mp4 does not exist"), "{error}");
    assert!(error.contains("gave up after 3 attempts"), "{error}");
}

#[tokio::test]
async fn a_bucket_that_cannot_be_read_is_waited_for_never_unplayable() {
    let test = TestEnv::new().await;
    let s3 = &test.bucket.profile.endpoint;
    let target = format!(
        "{}:{}",
        s3.host_str().expect("host"),
        s3.port_or_known_default().expect("port")
    );
    let proxy = roomtape_tests::proxy::TcpProxy::start(target).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let env = test.env_with(&[
        ("RECORDING_PROBE", "on"),
        ("S3_ENDPOINT", &endpoint),
        ("RETRY_DELAYS", "1s,1s,1s,1s"),
    ]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    let egress = egress(&test, "EG_outage", "a.mp4");
    test.bucket.put(&egress.key, FASTSTART, "video/mp4").await;
    proxy.cut();
    publish_ended(
        &test,
        &file_ended(&egress, "EV_outage", FASTSTART.len(), false),
        "EV_outage",
    )
    .await;
    let waiting = eventually(Duration::from_secs(10), "a note of the outage", || async {
        let row = test.database.recording("EG_outage").await?;
        error_of(&row)
            .contains("waiting for the recording's files")
            .then_some(row)
    })
    .await;
    assert_eq!(waiting["status"], "stopped", "{waiting}");
    proxy.restore();
    let row = final_recording(&test, "EG_outage").await;
    assert_eq!(row["status"], "ready", "{row}");
    assert_eq!(row["metadata"]["probe"]["container"], "mp4");
}
