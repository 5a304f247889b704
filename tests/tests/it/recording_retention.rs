//! Costs under control: retention rules that delete finished recordings past their age by
//! themselves (on a clock the test moves, two processors sweeping at once), the dry run that
//! lists the same set, and usage figures that match sums worked out by hand, a deleted
//! recording included, through the API and the CLI.

use std::time::{Duration, SystemTime};

use clap::Parser;
use reqwest::Method;
use reqwest::StatusCode;
use roomtape_cli::{execute, Cli};
use roomtape_processor::events::EventProcessor;
use roomtape_processor::metrics::ProcessorMetrics;
use roomtape_processor::recording_retention::RecordingSweeper;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::{DatabaseSettings, Env, RetentionRules, StorageProfiles};
use roomtape_shared::library::Library;
use roomtape_shared::storage::ObjectStore;
use roomtape_tests::api_client::{answer, Api};
use roomtape_tests::apps::event_processor;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::livekit::{now_unix, sign_claims};
use roomtape_tests::outbox::handle;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::TestEnv;

use crate::recordings::json;
use serde_json::{json, Value};

const RULES: &str = "class-*=90d, *=30d";
const DAY: Duration = Duration::from_secs(86_400);

/// A ready recording of `room` that ended `days_ago`.
async fn ended(test: &TestEnv, processor: &EventProcessor, id: &str, room: &str, days_ago: u32) {
    let egress = Egress::new(id, room, &test.bucket.profile);
    test.bucket
        .put(&egress.key, id.as_bytes(), "video/mp4")
        .await;
    for body in [
        egress.started(&format!("EV_s_{id}")),
        egress.ended(&format!("EV_e_{id}")),
    ] {
        handle(processor, &body).await.expect("applied");
    }
    age(test, id, days_ago).await;
}

async fn age(test: &TestEnv, egress_id: &str, days_ago: u32) {
    let days = f64::from(days_ago);
    test.database
        .client()
        .await
        .execute(
            "UPDATE recordings SET ended_at = now() - make_interval(days => $2::float8::int),
                                   created_at = now() - make_interval(days => $2::float8::int)
                 WHERE egress_id = $1",
            &[&egress_id, &days],
        )
        .await
        .expect("age it");
}

/// A processor's sweeper, with its own pool, as each processor has.
fn sweeper(env: &Env, clock: Clock) -> RecordingSweeper {
    let database = DatabaseSettings::from_env(env).expect("database settings");
    let pool = roomtape_shared::db::pool(&database).expect("pool");
    let objects = ObjectStore::new(&StorageProfiles::from_env(env).expect("storage"));
    let mut registry = roomtape_shared::metrics::registry();
    RecordingSweeper {
        library: Library::new(pool.clone(), objects),
        pool,
        rules: RetentionRules::parse(RULES).expect("rules"),
        every: Duration::from_secs(3600),
        clock,
        metrics: ProcessorMetrics::register(&mut registry),
    }
}

fn ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["egress_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_rules_delete_exactly_what_is_past_its_age_once_however_many_processors_sweep() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    // class-* is kept 90 days, everything else 30.
    ended(&test, &processor, "EG_class_old", "class-7", 100).await;
    ended(&test, &processor, "EG_class_kept", "class-8", 60).await;
    ended(&test, &processor, "EG_lobby_old", "lobby", 40).await;
    ended(&test, &processor, "EG_lobby_new", "lobby", 10).await;
    let live = Egress::new("EG_lobby_live", "lobby", &test.bucket.profile);
    handle(&processor, &live.started("EV_live"))
        .await
        .expect("applied");
    age(&test, "EG_lobby_live", 100).await;
    // Without rules or an age, a sweep says what it needs and deletes nothing.
    let mut out = Vec::new();
    let argv = ["roomtape", "recordings", "sweep", "--dry-run"];
    let code = execute(Cli::parse_from(argv), &test.env(), &mut out, false).await;
    let out = String::from_utf8(out).expect("utf-8");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no retention rules: set RECORDING_RETENTION"),
        "{out}"
    );
    let env = test.env_with(&[("RECORDING_RETENTION", RULES)]);

    // The dry run lists what the rules would delete now, with its total, and deletes nothing.
    let dry = json(&env, &["recordings", "sweep", "--dry-run"]).await;
    assert_eq!(ids(&dry["would_delete"]), ["EG_class_old", "EG_lobby_old"]);
    assert_eq!(
        dry["bytes"],
        json!("EG_class_old".len() + "EG_lobby_old".len())
    );
    assert_eq!(test.database.recording_rows("EG_class_old").await, 2);

    // Two processors sweep at once: one holds the lock, each recording goes once.
    let (clock, time) = Clock::controlled(SystemTime::now());
    let (first, second) = (sweeper(&env, clock), sweeper(&env, clock));
    let (a, b) = tokio::join!(first.sweep(), second.sweep());
    let (a, b) = (a.expect("sweep"), b.expect("sweep"));
    let mut deleted: Vec<String> = [a, b]
        .into_iter()
        .flatten()
        .flat_map(|swept| swept.deleted)
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["EG_class_old", "EG_lobby_old"], "each once");
    for gone in ["EG_class_old", "EG_lobby_old"] {
        assert_eq!(test.database.recording_rows(gone).await, 0, "{gone}");
        let key = Egress::new(gone, "", &test.bucket.profile).key;
        assert!(test.bucket.get(&key).await.is_none(), "{gone}'s file");
    }
    for kept in ["EG_class_kept", "EG_lobby_new", "EG_lobby_live"] {
        assert!(test.database.recording(kept).await.is_some(), "{kept} kept");
    }
    let notified = test
        .database
        .count("SELECT count(*) FROM notification_outbox WHERE type = 'recording.deleted'")
        .await;
    assert_eq!(notified, 2, "one recording.deleted each");

    // Three weeks on, the recent lobby recording is past 30 days; class-8 not yet past 90;
    // the one still recording is never touched.
    time.advance(21 * DAY);
    let swept = first
        .sweep()
        .await
        .expect("sweep")
        .expect("the lock is free");
    assert_eq!(swept.deleted, ["EG_lobby_new"]);
    assert!(test.database.recording("EG_lobby_live").await.is_some());
    assert!(test.database.recording("EG_class_kept").await.is_some());
}

/// Rows written as the processor writes them, final, with the times and sizes the sums use.
async fn known_recordings(test: &TestEnv) {
    let client = test.database.client().await;
    for (id, room, user, stream, kind, status, ended_at, seconds, bytes) in [
        (
            "a",
            "class",
            Some("u1"),
            Some("s1"),
            "room_composite",
            "ready",
            "2026-01-01T12:00:00Z",
            600.0,
            Some(3_000_000_000_i64),
        ),
        (
            "b",
            "class",
            Some("u2"),
            None,
            "participant",
            "ready",
            "2026-01-05T12:00:00Z",
            1200.0,
            Some(6_000_000_000),
        ),
        (
            "c",
            "lobby",
            Some("u1"),
            None,
            "track",
            "ready",
            "2026-01-10T12:00:00Z",
            300.0,
            Some(1_000_000_000),
        ),
        (
            "d",
            "lobby",
            None,
            None,
            "room_composite",
            "failed",
            "2026-01-03T12:00:00Z",
            60.0,
            None,
        ),
        // Recorded before the range, stored all through it.
        (
            "e",
            "class",
            Some("u1"),
            None,
            "room_composite",
            "ready",
            "2025-12-20T12:00:00Z",
            900.0,
            Some(2_000_000_000),
        ),
    ] {
        let ended_at: chrono::DateTime<chrono::Utc> = ended_at.parse().expect("time");
        client
            .execute(
                "INSERT INTO recordings (egress_id, room_name, user_id, stream_id, kind, status,
                         ended_at, duration_seconds, file_size_bytes, storage_provider, is_processed)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 's3', true)",
                &[&id, &room, &user, &stream, &kind, &status, &ended_at, &seconds, &bytes],
            )
            .await
            .expect("insert");
    }
    // b is deleted; the ledger keeps what it wrote. Its deletion is placed on the 8th at noon.
    client
        .execute("DELETE FROM recordings WHERE egress_id = 'b'", &[])
        .await
        .expect("delete");
    let deleted = client
        .execute(
            "UPDATE recording_usage SET deleted_at = '2026-01-08T12:00:00Z'
                 WHERE egress_id = 'b' AND deleted_at IS NOT NULL",
            &[],
        )
        .await
        .expect("ledger");
    assert_eq!(deleted, 1, "the delete marked the ledger");
}

/// A LiveKit access token with `video`, signed with the test's key pair.
fn livekit_token(video: Value) -> String {
    let now = now_unix();
    let claims = json!({"iss": API_KEY, "sub": "moderator", "nbf": now - 60, "exp": now + 3600,
                        "video": video});
    sign_claims(&claims, API_SECRET)
}

async fn get_as(api: &Api, path: &str, token: &str) -> (StatusCode, Value) {
    answer(api.send(Method::GET, path, Some(token)).await).await
}

/// The group `key` of an answer's `groups`.
fn group<'a>(answer: &'a Value, key: Option<&str>) -> &'a Value {
    answer["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["key"].as_str() == key)
        .unwrap_or_else(|| panic!("no group {key:?} in {answer}"))
}

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 1e-9)
}

/// (recordings, minutes, bytes written, bytes stored, deleted, GB-days stored).
type Sums = (u64, f64, i64, i64, u64, f64);

fn assert_group(
    answer: &Value,
    key: Option<&str>,
    (recordings, minutes, written, stored, deleted, gb_days): Sums,
) {
    let g = group(answer, key);
    assert_eq!(g["recordings"], recordings, "{key:?}: {g}");
    assert!(close(&g["minutes"], minutes), "{key:?} minutes: {g}");
    assert_eq!(g["bytes_written"], written, "{key:?}: {g}");
    assert_eq!(g["bytes_stored"], stored, "{key:?}: {g}");
    assert_eq!(g["deleted"], deleted, "{key:?}: {g}");
    assert!(
        close(&g["gb_months"], gb_days / 30.0),
        "{key:?} GB-months: {g}"
    );
    let cost = minutes * 0.01 + gb_days / 30.0 * 0.03;
    assert!(close(&g["estimated_cost"], cost), "{key:?} cost: {g}");
}

#[tokio::test]
async fn usage_matches_sums_by_hand_for_every_grouping_a_deleted_recording_included() {
    let test = TestEnv::new().await;
    let prices = [
        ("USAGE_PRICE_PER_EGRESS_MINUTE", "0.01"),
        ("USAGE_PRICE_PER_GB_MONTH", "0.03"),
        ("RECORDING_RETENTION", "vip-*=365d, lobby=30d, *=7d"),
    ];
    let _processor = event_processor(&test.env()).await; // the schema
    let api = Api::start(&test, &prices).await;
    known_recordings(&test).await;
    let range = "from=2026-01-01&to=2026-01-11";
    let usage = |group_by: &'static str| {
        let api = &api;
        async move {
            let (status, answer) = api
                .get(&format!("/api/v1/usage?{range}&group_by={group_by}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }
    };
    // Days stored (ends of the 1st … 10th): a 10 × 3 GB, b the 5th-7th 3 × 6 GB (deleted the
    // 8th at noon), c the 10th 1 × 1 GB, e 10 × 2 GB.
    let rooms = usage("room").await;
    assert_group(
        &rooms,
        Some("class"),
        (2, 30.0, 9_000_000_000, 3_000_000_000, 1, 30.0 + 18.0 + 20.0),
    );
    assert_group(
        &rooms,
        Some("lobby"),
        (2, 6.0, 1_000_000_000, 1_000_000_000, 0, 1.0),
    );
    assert_eq!(rooms["estimate"]["currency"], "USD");

    let users = usage("user").await;
    assert_group(
        &users,
        Some("u1"),
        (2, 15.0, 4_000_000_000, 4_000_000_000, 0, 30.0 + 1.0 + 20.0),
    );
    assert_group(&users, Some("u2"), (1, 20.0, 6_000_000_000, 0, 1, 18.0));
    assert_group(&users, None, (1, 1.0, 0, 0, 0, 0.0));

    let kinds = usage("kind").await;
    assert_group(
        &kinds,
        Some("room_composite"),
        (2, 11.0, 3_000_000_000, 3_000_000_000, 0, 50.0),
    );
    assert_group(
        &kinds,
        Some("participant"),
        (1, 20.0, 6_000_000_000, 0, 1, 18.0),
    );
    assert_group(
        &kinds,
        Some("track"),
        (1, 5.0, 1_000_000_000, 1_000_000_000, 0, 1.0),
    );

    let streams = usage("stream").await;
    assert_group(
        &streams,
        Some("s1"),
        (1, 10.0, 3_000_000_000, 3_000_000_000, 0, 30.0),
    );
    assert_group(
        &streams,
        None,
        (3, 26.0, 7_000_000_000, 1_000_000_000, 1, 18.0 + 1.0 + 20.0),
    );

    // By day: what ended that day; what every recording stored at its end.
    let days = usage("day").await;
    assert_eq!(days["groups"].as_array().map(Vec::len), Some(10), "{days}");
    assert_group(
        &days,
        Some("2026-01-05"),
        (1, 20.0, 6_000_000_000, 11_000_000_000, 1, 11.0),
    );
    assert_group(
        &days,
        Some("2026-01-08"),
        (0, 0.0, 0, 5_000_000_000, 0, 5.0),
    );
    assert_group(
        &days,
        Some("2026-01-10"),
        (1, 5.0, 1_000_000_000, 6_000_000_000, 0, 6.0),
    );
    let months = usage("month").await;
    assert_group(
        &months,
        Some("2026-01"),
        (4, 36.0, 10_000_000_000, 6_000_000_000, 1, 69.0),
    );

    // The CLI's figures are the same.
    let env = test.env_with(&prices);
    let cli_rooms = json(
        &env,
        &[
            "usage",
            "--group-by",
            "room",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-11",
        ],
    )
    .await;
    assert_eq!(cli_rooms["groups"], rooms["groups"]);

    // Bad values are named; a LiveKit roomAdmin token reads its room's usage only.
    for (query, field) in [
        ("group_by=week", "group_by"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2000-01-01&to=2026-01-01", "from"),
    ] {
        let (status, refused) = api.get(&format!("/api/v1/usage?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}: ")), "{refused}");
    }
    let admin = livekit_token(json!({"roomAdmin": true, "room": "lobby"}));
    let (status, lobby) = get_as(
        &api,
        &format!("/api/v1/usage?{range}&group_by=room"),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{lobby}");
    assert_eq!(lobby["groups"].as_array().map(Vec::len), Some(1));
    assert_group(
        &lobby,
        Some("lobby"),
        (2, 6.0, 1_000_000_000, 1_000_000_000, 0, 1.0),
    );
    let (status, _) = get_as(&api, &format!("/api/v1/usage?{range}&room=class"), &admin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let recorder = livekit_token(json!({"roomRecord": true}));
    let (status, _) = get_as(&api, "/api/v1/usage", &recorder).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The retention rules: every one for a static token; for a one-room admin, the one that
    // keeps its room, not the other rooms' patterns.
    let (status, all) = api.get("/api/v1/retention").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["rules"].as_array().map(Vec::len), Some(3), "{all}");
    let (status, own) = get_as(&api, "/api/v1/retention", &admin).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(
        own["rules"],
        json!([{"pattern": "lobby", "keep": "30days"}])
    );
}

#[tokio::test]
async fn a_recording_deleted_before_it_was_final_still_counts_its_minutes() {
    let test = TestEnv::new().await;
    let _processor = event_processor(&test.env()).await; // the schema
    let client = test.database.client().await;
    client
        .batch_execute(
            "INSERT INTO recordings (egress_id, room_name, status, started_at)
                 VALUES ('EG_forced', 'class', 'active', now() - interval '40 minutes');
             DELETE FROM recordings WHERE egress_id = 'EG_forced'",
        )
        .await
        .expect("a recording force-deleted while active");
    let row = client
        .query_one(
            "SELECT duration_seconds, bytes_written, deleted_at IS NOT NULL
                 FROM recording_usage WHERE egress_id = 'EG_forced'",
            &[],
        )
        .await
        .expect("a ledger row");
    let (seconds, bytes, deleted): (f64, i64, bool) = (row.get(0), row.get(1), row.get(2));
    assert!((2390.0..2500.0).contains(&seconds), "40 minutes: {seconds}");
    assert_eq!((bytes, deleted), (0, true));
}
