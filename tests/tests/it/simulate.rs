//! `roomtape simulate` against the real ingestor and processor: the recording ends `ready` with
//! a link that serves the embedded video; a stopped processor, a wrong secret and a missing
//! bucket each stop it with the reason.

use std::time::{Duration, Instant};

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::{DatabaseSettings, Env};
use roomtape_tests::apps::wait_ready;
use roomtape_tests::{eventually, spawn_ingestor, spawn_processor, TestEnv};
use serde_json::Value;

/// The video the tool embeds.
const VIDEO: &[u8] = include_bytes!("../../../cli/assets/test-video.mp4");

async fn simulate(env: &Env, args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let mut argv = vec!["roomtape", "simulate"];
    argv.extend_from_slice(args);
    let code = execute(Cli::parse_from(argv), env, &mut out, false).await;
    (code, String::from_utf8(out).expect("utf-8"))
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.expect("GET the link")
}

async fn object_count(test: &TestEnv) -> usize {
    let listing = test
        .bucket
        .client
        .list_objects_v2()
        .bucket(&test.bucket.profile.bucket)
        .send()
        .await
        .expect("list the bucket");
    listing.contents().len()
}

#[tokio::test]
async fn simulate_plays_a_recording_until_it_is_ready_and_its_link_serves_the_video() {
    let test = TestEnv::new().await;
    let ingestor = spawn_ingestor(&test.env(), Clock::System);
    let processor = spawn_processor(&test.env()).await;
    wait_ready(&ingestor).await;
    wait_ready(&processor).await;
    let env = test.env_with(&[("ROOMTAPE_INGESTOR_URL", &ingestor.address)]);

    let (code, out) = simulate(&env, &["--json", "--timeout", "20s"]).await;
    assert_eq!(code, 0, "{out}");
    let doc: Value = serde_json::from_str(&out).expect("--json prints one document");
    assert_eq!(doc["status"], "ready", "{doc}");
    let room = doc["room"].as_str().expect("room");
    let egress_id = doc["egress_id"].as_str().expect("egress id");
    assert!(room.starts_with("simulate-"), "{room}");
    assert!(egress_id.starts_with("EG_"), "{egress_id}");
    assert_eq!(doc["key"], format!("recordings/{room}/{egress_id}.mp4"));
    assert_eq!(doc["bucket"], test.bucket.profile.bucket.as_str());
    assert_eq!(doc["size_bytes"], VIDEO.len());
    assert_eq!(doc["duration_seconds"], 4.0);
    assert_eq!(
        doc["public_url"],
        format!("https://media.example.com/rec/recordings/{room}/{egress_id}.mp4")
    );
    assert_eq!(doc["recording"]["error"], Value::Null);

    let response = get(doc["url"].as_str().expect("url")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let body = response.bytes().await.expect("body");
    assert!(body[..] == *VIDEO, "the link serves the embedded MP4");

    // The room's story is applied too (room_finished may land just after the recording is
    // ready): opened, one viewer came and went, closed. The events are dated, so the order the
    // processor's workers apply them in does not matter.
    let client = test.database.client().await;
    let client = &client;
    let room_row = eventually(
        Duration::from_secs(10),
        "the room to be finished",
        || async move {
            let row = client
                .query_opt(
                    "SELECT status, participant_count FROM rooms WHERE room_name = $1",
                    &[&room],
                )
                .await
                .expect("rooms")?;
            (row.get::<_, String>(0) == "finished").then_some(row)
        },
    )
    .await;
    assert_eq!(room_row.get::<_, i32>(1), 0);

    // Text, in a room of our choosing: the row, and a working link.
    let (code, out) = simulate(&env, &["--room", "town hall", "--timeout", "20s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("✓ recording ready"), "{out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|line| line.trim_start().strip_prefix(name))
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} line in {out}"))
    };
    assert_eq!(field("room "), "town hall");
    assert_eq!(field("status "), "ready");
    assert_eq!(field("size "), format!("{} bytes", VIDEO.len()));
    assert_eq!(field("duration "), "4.0 s");
    assert!(
        field("key ").starts_with("recordings/town hall/EG_"),
        "{out}"
    );
    assert!(
        field("public url ").starts_with("https://media.example.com/rec/recordings/town%20hall/")
    );
    let response = get(&field("url ")).await;
    assert_eq!(response.status(), 200, "{out}");
    assert!(response.bytes().await.expect("body")[..] == *VIDEO);
}

#[tokio::test]
async fn without_a_processor_simulate_gives_up_at_the_timeout_and_says_where_it_stuck() {
    let test = TestEnv::new().await;
    // A deployment whose processor is down: it migrated the database once; the ingestor runs
    // (and declares the queues).
    roomtape_shared::db::migrate(&DatabaseSettings::from_env(&test.env()).expect("settings"))
        .await
        .expect("migrate");
    let ingestor = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&ingestor).await;
    let env = test.env_with(&[("ROOMTAPE_INGESTOR_URL", &ingestor.address)]);

    let started = Instant::now();
    let (code, out) = simulate(&env, &["--timeout", "2s"]).await;
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(
        out.contains("is not ready: no recording row after 2."),
        "{out}"
    );
    assert!(out.contains("is roomtape-processor running?"), "{out}");
    assert!(
        out.contains("messages waiting in roomtape.events: 7; dead letters in roomtape.dead: 0"),
        "{out}"
    );

    let (code, out) = simulate(&env, &["--timeout", "300ms", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let doc: Value = serde_json::from_str(&out).expect("--json prints one document");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["status"], Value::Null, "no row: no status");
    assert_eq!(doc["events_waiting"], 14);
    assert_eq!(doc["dead_letters"], 0);
    assert!(doc["reason"]
        .as_str()
        .expect("reason")
        .starts_with("no recording row"));
}

#[tokio::test]
async fn a_wrong_secret_or_a_missing_bucket_stops_simulate_with_the_reason() {
    let test = TestEnv::new().await;
    let ingestor = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&ingestor).await;

    let wrong = test.env_with(&[
        ("ROOMTAPE_INGESTOR_URL", &ingestor.address),
        ("LIVEKIT_API_SECRET", "not-the-ingestors-secret"),
    ]);
    let (code, out) = simulate(&wrong, &["--timeout", "5s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("answered 401 Unauthorized to room_started"),
        "{out}"
    );
    assert!(
        out.contains("LIVEKIT_API_SECRET"),
        "says what to check: {out}"
    );
    assert_eq!(object_count(&test).await, 0, "the upload was removed again");

    let missing = format!("roomtape-test-missing-{}", uuid::Uuid::new_v4().simple());
    let no_bucket = test.env_with(&[
        ("ROOMTAPE_INGESTOR_URL", &ingestor.address),
        ("S3_BUCKET", &missing),
    ]);
    let (code, out) = simulate(&no_bucket, &["--timeout", "5s"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("the bucket {missing} of storage profile default")),
        "{out}"
    );
    assert!(out.contains("does not exist"), "{out}");

    let unreachable = test.env_with(&[("ROOMTAPE_INGESTOR_URL", "http://127.0.0.1:9")]);
    let (code, out) = simulate(&unreachable, &["--timeout", "5s"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("cannot reach the ingestor at http://127.0.0.1:9/webhooks/livekit"),
        "{out}"
    );
}
