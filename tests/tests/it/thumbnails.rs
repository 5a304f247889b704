//! Thumbnails (`RECORDING_THUMBNAILS` on) on the real services, LiveKit faked: a video start
//! asks LiveKit for an image output and its second image becomes the thumbnail; an egress
//! started elsewhere gets a frame of its file (MP4, HLS) that ffprobe decodes; an audio-only
//! recording gets none; a frame that cannot be taken leaves the recording ready without one;
//! delete leaves no image. The bucket is private (no public base URL): the API signs the links.

use reqwest::{Method, StatusCode};
use roomtape_shared::events::proto::{
    encoded_file_output, image_output, ImageCodec, ImageFileSuffix, RoomCompositeEgressRequest,
};
use roomtape_shared::storage;
use roomtape_tests::api_client::{Api, WRITE};
use roomtape_tests::apps::wait_ready;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::media::{
    final_recording, hls_ended, publish_ended, record_file, upload_hls, HLS_PLAYLIST,
};
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{spawn_processor, TestApp, TestEnv};
use serde_json::{json, Value};

const VIDEO: &[u8] = include_bytes!("../../../cli/assets/test-video.mp4");
const AUDIO_MP4: &[u8] = include_bytes!("../../fixtures/media/audio-only.mp4");
const BLACK: &[u8] = include_bytes!("../../fixtures/media/images/black.jpeg");
const PATTERN_1S: &[u8] = include_bytes!("../../fixtures/media/images/pattern-1s.jpeg");
const PATTERN_3S: &[u8] = include_bytes!("../../fixtures/media/images/pattern-3s.jpeg");
const START: &str = "StartRoomCompositeEgress";
const ROOM: &str = "film-club";

/// Thumbnails on, the probe on, and a bucket without a public base URL.
const THUMBNAILS: [(&str, &str); 4] = [
    ("RECORDING_THUMBNAILS", "on"),
    ("THUMBNAIL_INTERVAL", "5s"),
    ("RECORDING_PROBE", "on"),
    ("S3_PUBLIC_BASE_URL", ""),
];

async fn processor(test: &TestEnv, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = THUMBNAILS.to_vec();
    settings.extend_from_slice(extra);
    let processor = spawn_processor(&test.env_with(&settings)).await;
    wait_ready(&processor).await;
    processor
}

async fn api(test: &TestEnv) -> Api {
    Api::start(test, &[("S3_PUBLIC_BASE_URL", "")]).await
}

/// The recording once it is ready.
async fn ready(test: &TestEnv, egress_id: &str) -> Value {
    let row = final_recording(test, egress_id).await;
    assert_eq!(row["status"], "ready", "{row}");
    row
}

/// Uploads `bytes` as the file of an egress started elsewhere, ends it, and waits until it is
/// ready.
async fn recorded_elsewhere(
    test: &TestEnv,
    egress_id: &str,
    bytes: &[u8],
    audio_only: bool,
) -> Value {
    let egress = Egress::new(egress_id, ROOM, &test.bucket.profile);
    let row = record_file(test, &egress, bytes, "video/mp4", audio_only).await;
    assert_eq!(row["status"], "ready", "{row}");
    row
}

/// The content type a HEAD of `key` answers.
async fn content_type(test: &TestEnv, key: &str) -> Option<String> {
    let head = test.bucket.head(key).await.expect("HEAD");
    head.content_type().map(str::to_owned)
}

/// What ffprobe makes of `jpeg`: its one stream's codec, width and height.
fn ffprobe(jpeg: &[u8]) -> (String, u64, u64) {
    let path = std::env::temp_dir().join(format!("roomtape-{}.jpeg", uuid::Uuid::new_v4()));
    std::fs::write(&path, jpeg).expect("write the JPEG");
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "json"])
        .arg(&path)
        .output()
        .expect("ffprobe: run deploy/local/services.sh, which installs ffmpeg");
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let probed: Value = serde_json::from_slice(&output.stdout).expect("ffprobe's JSON");
    let stream = &probed["streams"][0];
    (
        stream["codec_name"].as_str().unwrap_or_default().to_owned(),
        stream["width"].as_u64().unwrap_or_default(),
        stream["height"].as_u64().unwrap_or_default(),
    )
}

/// The `recording.ready` notification's `data`.
async fn ready_notification(test: &TestEnv, egress_id: &str) -> Value {
    let client = test.database.client().await;
    let row = client
        .query_one(
            "SELECT body FROM notification_outbox WHERE notification_id = $1",
            &[&format!("recording.ready:{egress_id}")],
        )
        .await
        .expect("recording.ready");
    row.get::<_, Value>(0)["data"].clone()
}

async fn delete(api: &Api, egress_id: &str) {
    let path = format!("/api/v1/recordings/{egress_id}");
    let response = api.send(Method::DELETE, &path, Some(WRITE)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_video_start_asks_for_images_and_its_second_image_becomes_the_thumbnail() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    // The fake's egress lasts milliseconds, the video 4 s: the probe would fail it.
    let settings = [
        ("LIVEKIT_URL", livekit.url.as_str()),
        ("RECORDING_PROBE", "off"),
    ];
    let _processor = processor(&test, &settings).await;
    let api = api(&test).await;
    let start = json!({"room_name": ROOM, "file_format": "mp4"});
    let reply = test
        .vhost
        .command("recording.start", &start, "cmd-thumbnails")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let egress_id = reply["egress_id"].as_str().expect("egress id").to_owned();

    // What LiveKit was asked: JPEGs every THUMBNAIL_INTERVAL, beside the file, same bucket.
    let calls = livekit.calls(START);
    let request = <RoomCompositeEgressRequest as prost::Message>::decode(calls[0].body.as_slice())
        .expect("protobuf");
    assert_eq!(request.image_outputs.len(), 1, "{request:?}");
    let images = &request.image_outputs[0];
    assert_eq!(images.capture_interval, 5);
    assert_eq!(images.image_codec, ImageCodec::IcJpeg as i32);
    assert_eq!(
        images.filename_suffix,
        ImageFileSuffix::ImageSuffixIndex as i32
    );
    assert!(images.disable_manifest);
    let prefix = &images.filename_prefix;
    assert!(
        prefix.starts_with("recordings/{room_name}/") && prefix.ends_with("-images"),
        "{prefix}"
    );
    let (Some(image_output::Output::S3(image_s3)), Some(encoded_file_output::Output::S3(file_s3))) =
        (&images.output, &request.file_outputs[0].output)
    else {
        panic!("S3 outputs expected: {request:?}");
    };
    assert_eq!(image_s3, file_s3, "the images go where the file goes");

    // LiveKit writes the file and three images (the first black), then ends the egress.
    let prefix = prefix.replace("{room_name}", ROOM);
    let key = format!("recordings/{ROOM}/{egress_id}.mp4");
    test.bucket.put(&key, VIDEO, "video/mp4").await;
    for (index, jpeg) in [BLACK, PATTERN_1S, PATTERN_3S].into_iter().enumerate() {
        let image = format!("{prefix}_{index:05}.jpeg");
        test.bucket.put(&image, jpeg, "image/jpeg").await;
    }
    let size = i64::try_from(VIDEO.len()).expect("size");
    livekit.complete_with_images(&egress_id, &key, size, 3);
    publish_ended(
        &test,
        &livekit.ended_event(&egress_id, "EV_thumbs"),
        "EV_thumbs",
    )
    .await;

    // The second image is the thumbnail, a JPEG the bucket says is one.
    let row = ready(&test, &egress_id).await;
    let chosen = format!("{prefix}_00001.jpeg");
    assert_eq!(row["thumbnail_key"], chosen.as_str(), "{row}");
    assert_eq!(
        content_type(&test, &chosen).await.as_deref(),
        Some("image/jpeg")
    );
    // The API signs its link (the bucket is private); it opens to that image.
    let (status, details) = api.get(&format!("/api/v1/recordings/{egress_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let link = details["thumbnail_url"].as_str().expect("a thumbnail link");
    assert!(link.contains("X-Amz-Signature="), "{link}");
    let image = reqwest::get(link).await.expect("GET the thumbnail");
    assert_eq!(image.status(), StatusCode::OK);
    let content_type = image.headers().get("content-type").cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("image/jpeg")
    );
    assert_eq!(image.bytes().await.expect("bytes").as_ref(), PATTERN_1S);
    // The seed-A-shaped list and the page list link it too; the notification has its URL.
    let (_, rooms) = api.get(&format!("/api/v1/rooms/{ROOM}/recordings/")).await;
    let listed = rooms[0]["thumbnail_url"].as_str().unwrap_or_default();
    assert!(listed.contains(&format!("/{chosen}?")), "{rooms}");
    let (_, page) = api.get(&format!("/api/v1/recordings?room={ROOM}")).await;
    let paged = page["items"][0]["thumbnail_url"]
        .as_str()
        .unwrap_or_default();
    assert!(paged.contains("X-Amz-Signature="), "{page}");
    let mut private = test.bucket.profile.clone();
    private.public_base_url = None;
    let public = storage::public_url(&private, &chosen).expect("a URL");
    let data = ready_notification(&test, &egress_id).await;
    assert_eq!(data["thumbnail_url"], public.as_str(), "{data}");

    // Delete leaves no image (nor the file).
    delete(&api, &egress_id).await;
    assert_eq!(
        test.bucket.keys_under(&format!("recordings/{ROOM}/")).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_egress_started_elsewhere_gets_a_frame_of_its_file_that_decodes() {
    let test = TestEnv::new().await;
    let _processor = processor(&test, &[]).await;
    let api = api(&test).await;

    // An MP4: a frame near 10 % of it, beside it.
    let row = recorded_elsewhere(&test, "EG_elsewhere", VIDEO, false).await;
    let thumbnail = format!("recordings/{ROOM}/EG_elsewhere.thumbnail.jpeg");
    assert_eq!(row["thumbnail_key"], thumbnail.as_str(), "{row}");
    assert_eq!(row["metadata"].get("thumbnail_error"), None, "{row}");
    let jpeg = test.bucket.get(&thumbnail).await.expect("the frame");
    assert_eq!(ffprobe(&jpeg), ("mjpeg".to_owned(), 320, 240));
    assert_eq!(
        content_type(&test, &thumbnail).await.as_deref(),
        Some("image/jpeg")
    );

    // HLS: a frame of the segment playing at that time, beside the playlist.
    let mut hls = Egress::new("EG_elsewhere_hls", ROOM, &test.bucket.profile);
    hls.key = format!("recordings/{ROOM}/EG_elsewhere_hls/rec.m3u8");
    let folder = format!("recordings/{ROOM}/EG_elsewhere_hls");
    upload_hls(&test.bucket, &hls.key, HLS_PLAYLIST, None).await;
    publish_ended(&test, &hls_ended(&hls, "EV_hls"), "EV_hls").await;
    let row = ready(&test, "EG_elsewhere_hls").await;
    let hls_thumbnail = format!("{folder}/rec.thumbnail.jpeg");
    assert_eq!(row["thumbnail_key"], hls_thumbnail.as_str(), "{row}");
    let jpeg = test.bucket.get(&hls_thumbnail).await.expect("the frame");
    assert_eq!(ffprobe(&jpeg), ("mjpeg".to_owned(), 320, 240));

    // Delete takes the frames with the recordings.
    delete(&api, "EG_elsewhere").await;
    delete(&api, "EG_elsewhere_hls").await;
    assert_eq!(
        test.bucket.keys_under(&format!("recordings/{ROOM}/")).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_audio_only_recording_gets_no_image_output_and_no_thumbnail() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &[("LIVEKIT_URL", &livekit.url)]).await;

    // LiveKit refuses images of an audio-only recording: none are asked for.
    let start = json!({"room_name": ROOM, "file_format": "ogg", "audio_only": true});
    let reply = test
        .vhost
        .command("recording.start", &start, "cmd-audio")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let request = <RoomCompositeEgressRequest as prost::Message>::decode(
        livekit.calls(START)[0].body.as_slice(),
    )
    .expect("protobuf");
    assert!(request.image_outputs.is_empty(), "{request:?}");

    // Started elsewhere: no frame is taken of a file without video.
    let row = recorded_elsewhere(&test, "EG_audio", AUDIO_MP4, true).await;
    assert_eq!(row["thumbnail_url"], Value::Null, "{row}");
    assert_eq!(row["thumbnail_key"], Value::Null, "{row}");
    assert_eq!(row["metadata"].get("thumbnail_error"), None, "{row}");
    let keys = test.bucket.keys_under("recordings/").await;
    assert_eq!(keys, [format!("recordings/{ROOM}/EG_audio.mp4")]);
}

#[tokio::test]
async fn a_frame_that_cannot_be_taken_leaves_the_recording_ready_without_one() {
    let test = TestEnv::new().await;

    // No ffmpeg where FFMPEG_PATH says.
    let missing = processor(&test, &[("FFMPEG_PATH", "/nonexistent/roomtape/ffmpeg")]).await;
    let row = recorded_elsewhere(&test, "EG_no_ffmpeg", VIDEO, false).await;
    assert_eq!(row["thumbnail_url"], Value::Null, "{row}");
    let error = row["metadata"]["thumbnail_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("ffmpeg not found at /nonexistent/roomtape/ffmpeg"),
        "{error}"
    );
    assert!(error.contains("FFMPEG_PATH"), "{error}");
    drop(missing);

    // A file ffmpeg cannot decode (the probe off, so it gets that far): its error is kept,
    // the presigned link it names redacted.
    let _processor = processor(&test, &[("RECORDING_PROBE", "off")]).await;
    let row = recorded_elsewhere(&test, "EG_not_video", b"not a video at all", false).await;
    assert_eq!(row["thumbnail_url"], Value::Null, "{row}");
    let error = row["metadata"]["thumbnail_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("ffmpeg failed"), "{error}");
    assert!(
        !error.contains("X-Amz-Signature=") || error.contains("X-Amz-Signature=[redacted]"),
        "{error}"
    );
    let keys = test.bucket.keys_under("recordings/").await;
    assert!(
        keys.iter().all(|k| !k.ends_with(".thumbnail.jpeg")),
        "{keys:?}"
    );
}
