//! What a finished egress comes to when its bucket is down or not configured, and when its
//! outputs are not plain files (HLS segments, streams, images, nothing at all). Only causes that
//! stay true are final; everything else leaves the recording `stopped` with why, and completes
//! once the cause is gone.

use std::time::Duration;

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::config::StorageProfile;
use roomtape_shared::db::recordings;
use roomtape_shared::events::proto::{EgressInfo, EgressStatus};
use roomtape_shared::queue::topology::{DEAD_QUEUE, EVENTS_EXCHANGE};
use roomtape_tests::apps::{reconciler_at, wait_ready};
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::proxy::TcpProxy;
use roomtape_tests::s3::TestBucket;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{eventually, spawn_processor, TestEnv};
use serde_json::{json, Value};

async fn publish_ended(test: &TestEnv, body: &str, id: &str) {
    test.vhost
        .publish(EVENTS_EXCHANGE, "egress.ended", body.as_bytes(), id)
        .await;
}

async fn dead_letters(test: &TestEnv, expected: u32) {
    eventually(
        Duration::from_secs(30),
        &format!("{expected} message(s) in roomtape.dead"),
        || async { (test.vhost.ready_count(DEAD_QUEUE).await == expected).then_some(()) },
    )
    .await;
}

/// The recording once its status is `status`.
async fn recording_in(test: &TestEnv, egress_id: &str, status: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{egress_id} to be {status}"),
        || async {
            let row = test.database.recording(egress_id).await?;
            (row["status"] == status).then_some(row)
        },
    )
    .await
}

/// `roomtape dlq replay`, as an operator runs it.
async fn replay_dead_letters(test: &TestEnv) -> String {
    let mut out = Vec::new();
    let cli = Cli::parse_from(["roomtape", "dlq", "replay"]);
    let code = execute(cli, &test.env(), &mut out, false).await;
    let out = String::from_utf8(out).expect("utf-8");
    assert_eq!(code, 0, "dlq replay: {out}");
    out
}

/// A proxy in front of the test's S3 server, and the endpoint that reaches the server through
/// it (a processor given it sees a bucket outage when the proxy is cut).
async fn s3_proxy(test: &TestEnv) -> (TcpProxy, String) {
    let s3 = &test.bucket.profile.endpoint;
    let target = format!(
        "{}:{}",
        s3.host_str().expect("host"),
        s3.port_or_known_default().expect("port")
    );
    let proxy = TcpProxy::start(target).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    (proxy, endpoint)
}

fn text(row: &Value, field: &str) -> String {
    row[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_bucket_outage_never_fails_a_recording_and_a_replay_completes_it() {
    let test = TestEnv::new().await;
    let (proxy, endpoint) = s3_proxy(&test).await;
    // RETRY_DELAYS is 100ms,200ms in tests: three attempts.
    let processor = spawn_processor(&test.env_with(&[("S3_ENDPOINT", &endpoint)])).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_outage", "r", &test.bucket.profile);
    test.bucket.put(&egress.key, b"recorded", "video/mp4").await;

    proxy.cut();
    publish_ended(&test, &egress.ended("EV_outage"), "EV_outage").await;
    dead_letters(&test, 1).await;
    let row = recording_in(&test, "EG_outage", "stopped").await;
    let error = text(&row, "error");
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert!(
        error.contains("dlq replay"),
        "says how it completes: {error}"
    );
    assert_eq!(row["is_processed"], false);
    assert_eq!(
        row["awaiting_replay"], true,
        "its event waits in roomtape.dead: reconciliation adds no copy"
    );
    assert_eq!(
        test.database
            .count("SELECT count(*) FROM webhook_events")
            .await,
        0,
        "not recorded as processed: the replay applies"
    );

    proxy.restore();
    let out = replay_dead_letters(&test).await;
    assert!(out.contains("replayed 1 to roomtape.events"), "{out}");
    let row = recording_in(&test, "EG_outage", "ready").await;
    assert_eq!(row["error"], Value::Null, "the wait's note is gone");
    assert_eq!(row["file_size_bytes"], 8);
    assert_eq!(test.database.assets("EG_outage").await.len(), 1);
    dead_letters(&test, 0).await;
}

#[tokio::test]
async fn a_bucket_outage_longer_than_reconcile_after_leaves_one_copy_per_event() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let (proxy, endpoint) = s3_proxy(&test).await;
    let env = test.env_with(&[
        ("S3_ENDPOINT", &endpoint),
        ("LIVEKIT_URL", livekit.url.as_str()),
    ]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_long_outage", "r", &test.bucket.profile);
    test.bucket.put(&egress.key, b"recorded", "video/mp4").await;
    livekit.insert(EgressInfo {
        egress_id: "EG_long_outage".into(),
        room_name: "r".into(),
        status: EgressStatus::EgressComplete as i32,
        ..EgressInfo::default()
    });

    proxy.cut();
    publish_ended(&test, &egress.ended("EV_long"), "EV_long").await;
    dead_letters(&test, 1).await;
    let row = recording_in(&test, "EG_long_outage", "stopped").await;
    let error = text(&row, "error");
    assert!(
        error.contains("gave up after 3 attempts"),
        "waits for the bucket, not for configuration: {error}"
    );
    // Rounds long after RECONCILE_AFTER, while the outage lasts: no copy joins the first.
    let now = roomtape_tests::livekit::now_unix();
    for round in 1..=3 {
        let later = now + round * 3_600;
        let reconciler = reconciler_at(&env, later, Duration::from_secs(60)).await;
        assert_eq!(reconciler.round().await.expect("round"), 0, "round {round}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 1, "one copy");
    assert!(livekit.calls("ListEgress").is_empty(), "not even asked");

    proxy.restore();
    replay_dead_letters(&test).await;
    recording_in(&test, "EG_long_outage", "ready").await;
}

#[tokio::test]
async fn a_bucket_that_does_not_exist_is_a_configuration_fault_not_a_missing_file() {
    let test = TestEnv::new().await;
    let missing = StorageProfile {
        bucket: format!("{}-missing", test.bucket.profile.bucket),
        ..test.bucket.profile.clone()
    };
    let env = test.env_with(&[("S3_BUCKET", &missing.bucket)]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_nobucket", "r", &missing);

    publish_ended(&test, &egress.ended("EV_nobucket"), "EV_nobucket").await;
    dead_letters(&test, 1).await;
    let row = recording_in(&test, "EG_nobucket", "stopped").await;
    let error = text(&row, "error");
    assert!(
        error.contains(&format!("bucket {:?} does not exist", missing.bucket)),
        "names the bucket: {error}"
    );
    assert!(
        error.contains("correct the profile's bucket name"),
        "and the fix: {error}"
    );
    assert!(error.contains("dlq replay"), "{error}");
    assert_eq!(row["awaiting_replay"], true, "only the operator can help");

    // The bucket is created (the file uploaded) and the event replayed: it completes.
    let created = TestBucket::create(missing).await;
    created.put(&egress.key, b"found", "video/mp4").await;
    replay_dead_letters(&test).await;
    let row = recording_in(&test, "EG_nobucket", "ready").await;
    assert_eq!(row["file_size_bytes"], 5);
}

#[tokio::test]
async fn an_unconfigured_bucket_is_dead_lettered_once_and_completed_by_a_replay_once_configured() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let other = TestBucket::create(StorageProfile {
        bucket: format!("{}-other", test.bucket.profile.bucket),
        ..test.bucket.profile.clone()
    })
    .await;
    let egress = Egress::new("EG_elsewhere", "r", &other.profile);
    other.put(&egress.key, b"elsewhere", "video/mp4").await;
    let env = test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;

    publish_ended(&test, &egress.ended("EV_elsewhere"), "EV_elsewhere").await;
    dead_letters(&test, 1).await;
    let row = recording_in(&test, "EG_elsewhere", "stopped").await;
    let error = text(&row, "error");
    assert!(
        error.contains(&other.profile.bucket),
        "names the bucket: {error}"
    );
    assert!(error.contains("dlq replay"), "{error}");
    assert_eq!(row["awaiting_replay"], true);

    // LiveKit still knows the egress, so reconciliation could republish its end: it must not,
    // or the dead-letter queue would grow by one every round.
    livekit.insert(EgressInfo {
        egress_id: "EG_elsewhere".into(),
        room_name: "r".into(),
        status: EgressStatus::EgressComplete as i32,
        ..EgressInfo::default()
    });
    let far_later = 4_000_000_000;
    let reconciler = reconciler_at(&env, far_later, Duration::from_secs(60)).await;
    assert_eq!(reconciler.round().await.expect("round"), 0);
    assert!(livekit.calls("ListEgress").is_empty(), "not even asked");
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 1, "still once");

    // The operator configures the bucket and replays.
    processor.stop().await.expect("stop");
    let configured = test.env_with_profile("other", &other.profile, &[]);
    let processor = spawn_processor(&configured).await;
    wait_ready(&processor).await;
    replay_dead_letters(&test).await;
    let row = recording_in(&test, "EG_elsewhere", "ready").await;
    assert_eq!(row["awaiting_replay"], false);
    assert_eq!(row["storage_bucket"], other.profile.bucket.as_str());
    assert_eq!(test.database.assets("EG_elsewhere").await.len(), 1);
    dead_letters(&test, 0).await;
    // Waiting in the dead-letter queue told nothing; the replay told ready, once.
    let told = test
        .database
        .count(
            "SELECT count(*) FROM notification_outbox WHERE notification_id LIKE '%:EG_elsewhere'",
        )
        .await;
    let ready = test
        .database
        .count("SELECT count(*) FROM notification_outbox WHERE notification_id = 'recording.ready:EG_elsewhere'")
        .await;
    assert_eq!((told, ready), (1, 1));
}

#[tokio::test]
async fn segments_streams_images_and_nothing_each_end_where_they_should() {
    let test = TestEnv::new().await;
    let processor = spawn_processor(&test.env()).await;
    wait_ready(&processor).await;
    let profile = &test.bucket.profile;

    let hls = Egress::new("EG_hls", "r", profile);
    let playlist = "recordings/r/EG_hls/index.m3u8";
    test.bucket
        .put(playlist, b"#EXTM3U\n", "application/octet-stream")
        .await;
    let segments = json!({"segmentResults": [{"playlistName": playlist,
        "livePlaylistName": "recordings/r/EG_hls/live.m3u8", "duration": "60000000000",
        "size": "7340032", "segmentCount": "10", "playlistLocation": "https://x/index.m3u8"}]});
    publish_ended(&test, &hls.ended_with("EV_hls", segments), "EV_hls").await;

    let stream = Egress::new("EG_stream", "r", profile);
    let streams = json!({"streamResults": [{"url": "rtmps://user:pw@live.example.com:443/app/sk_SECRET?t=1",
        "status": "FINISHED", "duration": "60000000000"}]});
    publish_ended(&test, &stream.ended_with("EV_stream", streams), "EV_stream").await;

    // No image is uploaded: images are taken on LiveKit's word, not HEADed one by one.
    let images = Egress::new("EG_images", "r", profile);
    let image_results = json!({"imageResults": [{"filenamePrefix": "recordings/r/EG_images/img",
        "imageCount": "120"}]});
    publish_ended(
        &test,
        &images.ended_with("EV_images", image_results),
        "EV_images",
    )
    .await;

    let nothing = Egress::new("EG_nothing", "r", profile);
    publish_ended(
        &test,
        &nothing.ended_with("EV_nothing", json!({})),
        "EV_nothing",
    )
    .await;

    let row = recording_in(&test, "EG_hls", "ready").await;
    assert_eq!(row["storage_key"], playlist, "the playlist is the file");
    assert_eq!(
        row["file_size_bytes"], 7_340_032,
        "all segments, not the playlist"
    );
    assert_eq!(row["metadata"]["segments"][0]["segment_count"], 10);
    assert_eq!(row["metadata"]["segments"][0]["size_bytes"], 7_340_032);
    let assets = test.database.assets("EG_hls").await;
    assert_eq!(assets.len(), 1, "one asset, the playlist");
    assert_eq!(assets[0]["content_type"], "application/vnd.apple.mpegurl");
    assert_eq!(assets[0]["storage_key"], playlist);

    let row = recording_in(&test, "EG_stream", "stopped").await;
    assert_eq!(
        row["is_processed"], true,
        "stopped is as far as a stream goes"
    );
    assert_eq!(row["error"], Value::Null);
    let stored = &row["metadata"]["streams"][0];
    assert_eq!(stored["destination"], "rtmps://live.example.com:443");
    assert_eq!(stored["status"], "FINISHED");
    assert!(
        !row.to_string().contains("SECRET") && !row.to_string().contains("pw@"),
        "stream keys and credentials are not stored: {row}"
    );
    assert!(test.database.assets("EG_stream").await.is_empty());

    let row = recording_in(&test, "EG_images", "ready").await;
    assert_eq!(
        row["metadata"]["images"][0],
        json!({"filename_prefix": "recordings/r/EG_images/img", "image_count": 120})
    );
    assert!(test.database.assets("EG_images").await.is_empty());

    let row = recording_in(&test, "EG_nothing", "failed").await;
    assert!(text(&row, "error").contains("without any result"), "{row}");

    // Reconciliation has nothing to ask LiveKit about: the stream is settled.
    let pool = roomtape_shared::db::pool(&test.database.settings).expect("pool");
    let stale = recordings::take_stale(
        &pool.get().await.expect("connection"),
        4_000_000_000,
        Duration::from_secs(1),
        100,
    )
    .await
    .expect("take_stale");
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);
}
