//! Egress events → `recordings` and `assets`: the whole lifecycle, in any order, any number of
//! times, with the file verified in the real bucket.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roomtape_processor::events::EventProcessor;
use roomtape_shared::clock::Clock;
use roomtape_tests::apps::{event_processor, wait_ready};
use roomtape_tests::fixtures::Egress;
use roomtape_tests::livekit::{post_webhook, sign_webhook};
use roomtape_tests::outbox::handle;
use roomtape_tests::{eventually, spawn_ingestor, spawn_processor, TestEnv};
use serde_json::Value;

const RECORDING_SNAPSHOT: &str =
    "SELECT to_jsonb(r) - 'id' - 'created_at' - 'updated_at' - 'metadata'
     FROM recordings r WHERE egress_id = $1";

async fn recording(test: &TestEnv, egress_id: &str) -> Option<Value> {
    let client = test.database.client().await;
    let row = client
        .query_opt(RECORDING_SNAPSHOT, &[&egress_id])
        .await
        .expect("query")?;
    Some(row.get(0))
}

async fn asset_count(test: &TestEnv, egress_id: &str) -> i64 {
    let client = test.database.client().await;
    client
        .query_one(
            "SELECT count(*) FROM assets WHERE egress_id = $1",
            &[&egress_id],
        )
        .await
        .expect("count")
        .get(0)
}

async fn step(processor: &EventProcessor, body: &str) {
    handle(processor, body)
        .await
        .unwrap_or_else(|e| panic!("{e}: {body}"));
}

#[tokio::test]
async fn a_lifecycle_posted_to_the_ingestor_ends_as_a_ready_recording_with_its_asset() {
    let test = TestEnv::new().await;
    let ingestor = spawn_ingestor(&test.env(), Clock::System);
    let processor = spawn_processor(&test.env()).await;
    wait_ready(&ingestor).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_life", "standup", &test.bucket.profile);
    let video = vec![7u8; 4096];
    test.bucket.put(&egress.key, &video, "video/mp4").await;

    for body in [
        egress.started("EV_1"),
        egress.updated("EV_2", "EGRESS_ACTIVE", 1_700_000_002_000_000_000),
        egress.ended("EV_3"),
    ] {
        let response =
            post_webhook(&ingestor, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
        assert_eq!(response.status(), 200);
    }

    let row = eventually(
        Duration::from_secs(20),
        "the recording to be ready",
        || async {
            recording(&test, "EG_life")
                .await
                .filter(|r| r["status"] == "ready")
        },
    )
    .await;
    assert_eq!(
        row["file_size_bytes"], 4096,
        "size from the HEAD, not the event's 999999"
    );
    assert_eq!(
        row["file_url"],
        format!("https://media.example.com/rec/{}", egress.key),
        "built from S3_PUBLIC_BASE_URL"
    );
    assert_eq!(row["storage_key"], egress.key.as_str());
    assert_eq!(row["storage_bucket"], test.bucket.profile.bucket.as_str());
    assert_eq!(row["storage_provider"], "s3");
    assert_eq!(row["duration_seconds"], 1800.0);
    assert_eq!(row["layout"], "speaker");
    assert_eq!(row["file_format"], "mp4");
    assert_eq!(row["is_processed"], true);
    assert_eq!(asset_count(&test, "EG_life").await, 1);
    let client = test.database.client().await;
    let asset = client
        .query_one("SELECT playback_url, file_size_bytes, content_type FROM assets WHERE egress_id = 'EG_life'", &[])
        .await
        .expect("asset");
    assert_eq!(
        asset.get::<_, String>(0),
        row["file_url"].as_str().expect("url")
    );
    assert_eq!(asset.get::<_, i64>(1), 4096);
    assert_eq!(
        asset.get::<_, Option<String>>(2).as_deref(),
        Some("video/mp4")
    );
}

/// The lifecycle's events: started, active, ending, ended, and LiveKit re-sending `egress_ended`
/// under a new event id.
fn lifecycle(egress: &Egress) -> Vec<String> {
    vec![
        egress.started("EV_a"),
        egress.updated("EV_b", "EGRESS_ACTIVE", 1_700_000_002_000_000_000),
        egress.updated("EV_c", "EGRESS_ENDING", 1_700_001_800_000_000_000),
        egress.ended("EV_d"),
        egress.ended("EV_e"),
    ]
    .into_iter()
    .map(|body| body.replace("EV_", &format!("EV_{}_", egress.egress_id)))
    .collect()
}

fn normalized(mut row: Value, egress_id: &str) -> Value {
    let text = row.to_string().replace(egress_id, "EG");
    row = serde_json::from_str(&text).expect("json");
    row
}

#[test]
fn every_order_with_duplicates_ends_in_the_same_rows() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let test = runtime.block_on(TestEnv::new());
    let processor = runtime.block_on(event_processor(&test.env()));
    let video = vec![1u8; 1234];

    let reference = Egress::new("EG_inorder", "standup", &test.bucket.profile);
    let expected = runtime.block_on(async {
        test.bucket.put(&reference.key, &video, "video/mp4").await;
        for body in lifecycle(&reference) {
            step(&processor, &body).await;
        }
        normalized(
            recording(&test, "EG_inorder").await.expect("row"),
            "EG_inorder",
        )
    });
    assert_eq!(expected["status"], "ready");

    let orders = (
        Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::collection::vec(0..5usize, 0..4),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&orders, |(order, duplicates)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let egress = Egress::new(&format!("EG_case{case}"), "standup", &test.bucket.profile);
            let events = lifecycle(&egress);
            let sequence: Vec<&String> = order
                .iter()
                .chain(&duplicates)
                .map(|&i| &events[i])
                .collect();
            let (row, assets) = runtime.block_on(async {
                test.bucket.put(&egress.key, &video, "video/mp4").await;
                for body in &sequence {
                    step(&processor, body).await;
                }
                (
                    recording(&test, &egress.egress_id).await,
                    asset_count(&test, &egress.egress_id).await,
                )
            });
            let row = normalized(row.expect("row"), &egress.egress_id);
            prop_assert_eq!(
                &row,
                &expected,
                "order {:?} then duplicates {:?}",
                order,
                duplicates
            );
            prop_assert_eq!(assets, 1);
            Ok(())
        })
        .expect("same rows in every order");
}

#[tokio::test]
async fn finished_egresses_that_cannot_be_played_are_failed_with_a_clear_error() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;

    let empty = Egress::new("EG_empty", "r", &test.bucket.profile);
    test.bucket.put(&empty.key, b"", "video/mp4").await;
    step(&processor, &empty.ended("EV_empty")).await;
    let row = recording(&test, "EG_empty").await.expect("row");
    assert_eq!(row["status"], "failed");
    assert!(
        row["error"]
            .as_str()
            .is_some_and(|e| e.contains("empty (0 bytes)")),
        "{row}"
    );

    let failed = Egress::new("EG_failed", "r", &test.bucket.profile);
    step(
        &processor,
        &failed.failed("EV_failed", "AccessDenied: Access Denied"),
    )
    .await;
    let row = recording(&test, "EG_failed").await.expect("row");
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error"], "AccessDenied: Access Denied");
    assert_eq!(
        asset_count(&test, "EG_failed").await + asset_count(&test, "EG_empty").await,
        0
    );
}

#[tokio::test]
async fn backup_storage_is_recorded_without_touching_our_bucket() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    // The object is not in our bucket: a HEAD would fail and retry.
    let egress = Egress::new("EG_backup", "r", &test.bucket.profile);
    step(&processor, &egress.ended_in_backup_storage("EV_backup")).await;
    let row = recording(&test, "EG_backup").await.expect("row");
    assert_eq!(row["status"], "ready");
    assert_eq!(row["storage_provider"], "livekit-backup");
    assert_eq!(row["file_size_bytes"], 999_999);
    assert_eq!(
        asset_count(&test, "EG_backup").await,
        0,
        "no public URL, so no asset"
    );
}

#[tokio::test]
async fn a_failed_auto_egress_without_id_and_unknown_enum_values_are_recorded() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let no_id = r#"{"event":"egress_ended","egressInfo":{"roomName":"r","status":"EGRESS_FAILED",
        "error":"auto egress failed"},"id":"EV_noid","createdAt":"1700000000"}"#;
    let unknown = r#"{"event":"egress_updated","egressInfo":{"egressId":"EG_new","roomName":"r",
        "status":"EGRESS_TELEPORTING","updatedAt":"5"},"id":"EV_unknown","createdAt":"1700000000"}"#;
    step(&processor, no_id).await;
    step(&processor, unknown).await;
    let client = test.database.client().await;
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE event_id IN ('EV_noid', 'EV_unknown')",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(recorded, 2);
    let row = recording(&test, "EG_new").await.expect("row created");
    assert_eq!(
        row["status"], "starting",
        "an unknown status cannot move a recording"
    );
}

#[tokio::test]
async fn assets_follow_the_start_commands_ids_when_the_egress_finished_first() {
    use roomtape_shared::db::recordings::{requested, Requested};
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    // The egress ends (its file checked, its asset written) before the start command's own row
    // write, as when the command was retried or adopted after a crash.
    let egress = Egress::new("EG_early", "standup", &test.bucket.profile);
    test.bucket.put(&egress.key, b"video", "video/mp4").await;
    step(&processor, &egress.ended("EV_early")).await;
    let client = test.database.client().await;
    let ids = "SELECT stream_id, user_id FROM assets WHERE egress_id = 'EG_early'";
    let before = client.query_one(ids, &[]).await.expect("asset");
    assert_eq!(before.get::<_, Option<String>>(0), None);

    let settings = roomtape_shared::config::DatabaseSettings::from_env(&test.env())
        .expect("database settings");
    let pool = roomtape_shared::db::pool(&settings).expect("pool");
    requested(
        &pool.get().await.expect("connection"),
        &Requested {
            egress_id: "EG_early".into(),
            room_name: "standup".into(),
            subject: Default::default(),
            layout: Some("speaker".into()),
            file_format: Some("mp4".into()),
            audio_only: false,
            storage_provider: test.bucket.profile.provider.clone(),
            storage_bucket: test.bucket.profile.bucket.clone(),
            stream_id: Some("stream-7".into()),
            user_id: Some("user-9".into()),
            metadata: serde_json::json!({}),
        },
    )
    .await
    .expect("row write");
    let after = client.query_one(ids, &[]).await.expect("asset");
    assert_eq!(
        (
            after.get::<_, Option<String>>(0),
            after.get::<_, Option<String>>(1)
        ),
        (Some("stream-7".into()), Some("user-9".into()))
    );
}
