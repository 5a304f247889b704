//! `roomtape recordings` against real PostgreSQL and S3: recordings made by the processor's
//! event handler (stepped directly), then listed, shown, linked, deleted and swept.

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_processor::events::EventProcessor;
use roomtape_shared::config::Env;
use roomtape_tests::apps::event_processor;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::outbox::handle;
use roomtape_tests::shapes::{assert_has_recording_fields, assert_recording};
use roomtape_tests::TestEnv;
use serde_json::Value;

async fn run(env: &Env, args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let argv = std::iter::once("roomtape").chain(args.iter().copied());
    let code = execute(Cli::parse_from(argv), env, &mut out, false).await;
    (code, String::from_utf8(out).expect("utf-8"))
}

/// `roomtape ARGS --json`, which must exit 0: its JSON.
pub(crate) async fn json(env: &Env, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (code, out) = run(env, &args).await;
    assert_eq!(code, 0, "{args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A ready recording of `room` whose file holds `bytes`.
async fn ready(
    test: &TestEnv,
    processor: &EventProcessor,
    id: &str,
    room: &str,
    bytes: &[u8],
) -> Egress {
    let egress = Egress::new(id, room, &test.bucket.profile);
    test.bucket.put(&egress.key, bytes, "video/mp4").await;
    for body in [
        egress.started(&format!("EV_s_{id}")),
        egress.ended(&format!("EV_e_{id}")),
    ] {
        handle(processor, &body).await.expect("applied");
    }
    egress
}

async fn exists(test: &TestEnv, key: &str) -> bool {
    test.bucket
        .client
        .head_object()
        .bucket(&test.bucket.profile.bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn list_filters_and_show_tells_the_whole_story() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready(&test, &processor, "EG_a", "algebra", b"0123456789").await;
    ready(&test, &processor, "EG_b", "biology", b"01234").await;
    let failed = Egress::new("EG_c", "algebra", &test.bucket.profile);
    handle(&processor, &failed.failed("EV_f", "AccessDenied"))
        .await
        .expect("applied");
    let env = test.env();

    let all = json(&env, &["recordings", "list"]).await;
    let ids: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["egress_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["EG_c", "EG_b", "EG_a"], "newest first");
    // The API's shape of a recording, where the file is among it.
    for recording in all.as_array().expect("array") {
        assert_recording(recording);
    }
    assert_eq!(all[2]["storage_key"], "recordings/algebra/EG_a.mp4");
    assert_eq!(
        all[2]["storage_bucket"],
        test.bucket.profile.bucket.as_str()
    );
    let algebra = json(
        &env,
        &[
            "recordings",
            "list",
            "--room",
            "algebra",
            "--status",
            "ready",
        ],
    )
    .await;
    assert_eq!(algebra.as_array().map(Vec::len), Some(1));
    assert_eq!(algebra[0]["egress_id"], "EG_a");
    assert_eq!(algebra[0]["file_size_bytes"], 10);
    let future = json(
        &env,
        &["recordings", "list", "--since", "2999-01-01T00:00:00Z"],
    )
    .await;
    assert_eq!(future, serde_json::json!([]));
    let recent = json(&env, &["recordings", "list", "--since", "1h"]).await;
    assert_eq!(recent.as_array().map(Vec::len), Some(3));

    let (code, table) = run(&env, &["recordings", "list"]).await;
    assert_eq!(code, 0);
    assert!(table.starts_with("EGRESS"), "{table}");
    assert!(
        table.contains("EG_a") && table.contains("algebra") && table.contains("10 B"),
        "{table}"
    );

    let shown = json(&env, &["recordings", "show", "EG_a"]).await;
    assert_has_recording_fields(&shown);
    assert_eq!(shown["status"], "ready");
    assert_eq!(shown["assets"][0]["file_size_bytes"], 10);
    let events: Vec<&str> = shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(events, ["egress_started", "egress_ended"]);
    let (code, out) = run(&env, &["recordings", "show", "EG_nope"]).await;
    assert_eq!(
        (code, out.trim()),
        (1, "roomtape: no recording has egress id EG_nope")
    );
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    for argv in [
        vec!["roomtape", "recordings", "url", "EG_a", "--expires", "8d"],
        vec!["roomtape", "recordings", "list", "--since", "yesterday-ish"],
        vec!["roomtape", "recordings", "sweep", "--older-than", "soon"],
        vec!["roomtape", "usage", "--group-by", "week"],
        vec!["roomtape", "usage", "--from", "01/01/2026"],
    ] {
        assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
    }
}

#[tokio::test]
async fn url_serves_the_file_and_delete_removes_objects_then_rows() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let egress = ready(&test, &processor, "EG_d", "r", b"the recording").await;
    let env = test.env();

    let (code, url) = run(&env, &["recordings", "url", "EG_d", "--expires", "10m"]).await;
    assert_eq!(code, 0, "{url}");
    let body = reqwest::get(url.trim())
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.as_ref(), b"the recording");

    let (code, out) = run(&env, &["recordings", "delete", "EG_d"]).await;
    assert_eq!(code, 2, "no terminal, no --yes: {out}");
    assert!(out.contains("--yes"), "{out}");
    assert!(
        exists(&test, &egress.key).await,
        "nothing deleted without confirmation"
    );

    let (code, out) = run(&env, &["recordings", "delete", "EG_d", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("deleted EG_d: 1 object(s)"), "{out}");
    assert!(!exists(&test, &egress.key).await, "object gone");
    assert_eq!(test.database.recording_rows("EG_d").await, 0, "rows gone");

    let (code, out) = run(&env, &["recordings", "delete", "EG_d", "--yes"]).await;
    assert_eq!(
        (code, out.trim()),
        (1, "roomtape: no recording has egress id EG_d")
    );
}

#[tokio::test]
async fn an_active_recording_or_a_wrong_secret_deletes_nothing() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let done = ready(&test, &processor, "EG_done", "r", b"12345").await;
    let live = Egress::new("EG_live", "r", &test.bucket.profile);
    handle(&processor, &live.started("EV_live"))
        .await
        .expect("applied");

    let (code, out) = run(&test.env(), &["recordings", "delete", "EG_live", "--yes"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("EG_live is starting, not finished"), "{out}");
    assert_eq!(test.database.recording_rows("EG_live").await, 1);
    let (code, out) = run(
        &test.env(),
        &["recordings", "delete", "EG_live", "--yes", "--force"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(test.database.recording_rows("EG_live").await, 0);

    let wrong = test.env_with(&[("S3_SECRET_ACCESS_KEY", "not-the-secret")]);
    let (code, out) = run(&wrong, &["recordings", "delete", "EG_done", "--yes"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("HTTP 403"), "{out}");
    assert!(exists(&test, &done.key).await);
    assert_eq!(
        test.database.recording_rows("EG_done").await,
        2,
        "recording and asset kept"
    );
}

#[tokio::test]
async fn sweep_deletes_only_what_ended_before_the_age_and_dry_run_deletes_nothing() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let old = ready(&test, &processor, "EG_old", "r", b"old").await;
    let recent = ready(&test, &processor, "EG_recent", "r", b"recent").await;
    let live = Egress::new("EG_old_live", "r", &test.bucket.profile);
    handle(&processor, &live.started("EV_old_live"))
        .await
        .expect("applied");
    let client = test.database.client().await;
    client
        .execute(
            "UPDATE recordings SET
                 ended_at = CASE egress_id WHEN 'EG_recent' THEN now() - interval '1 day'
                                           ELSE now() - interval '40 days' END,
                 created_at = now() - interval '40 days'",
            &[],
        )
        .await
        .expect("age them");
    let env = test.env();

    let dry = json(
        &env,
        &["recordings", "sweep", "--older-than", "30d", "--dry-run"],
    )
    .await;
    let would: Vec<&str> = dry["would_delete"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["egress_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(would, ["EG_old"], "final and old only");
    assert!(exists(&test, &old.key).await, "dry run deletes nothing");
    assert_eq!(test.database.recording_rows("EG_old").await, 2);

    let swept = json(
        &env,
        &["recordings", "sweep", "--older-than", "30d", "--yes"],
    )
    .await;
    assert_eq!(swept["deleted"], serde_json::json!(["EG_old"]));
    assert!(!exists(&test, &old.key).await);
    assert!(exists(&test, &recent.key).await);
    assert_eq!(test.database.recording_rows("EG_old").await, 0);
    assert_eq!(test.database.recording_rows("EG_recent").await, 2);
    assert_eq!(
        test.database.recording_rows("EG_old_live").await,
        1,
        "not final: kept"
    );
}

#[tokio::test]
async fn deleting_an_hls_recording_leaves_nothing_under_its_prefix() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let egress = Egress::new("EG_hls", "lecture", &test.bucket.profile);
    let stem = "recordings/lecture/EG_hls";
    let written = [
        format!("{stem}.m3u8"),
        format!("{stem}-live.m3u8"),
        format!("{stem}_00000.ts"),
        format!("{stem}_00001.ts"),
        format!("{stem}.json"),
    ];
    for key in &written {
        test.bucket
            .put(key, b"#EXTM3U or a segment", "application/octet-stream")
            .await;
    }
    // Another recording's objects beside it, whose keys merely begin the same way.
    let neighbours = [
        "recordings/lecture/EG_hls2.mp4",
        "recordings/lecture/EG_hlsx_00000.ts",
    ];
    for key in neighbours {
        test.bucket.put(key, b"not ours", "video/mp4").await;
    }
    let segments = serde_json::json!({"segmentResults": [{
        "playlistName": written[0], "livePlaylistName": written[1],
        "segmentCount": "2", "size": "4000", "duration": "20000000000"}]});
    handle(&processor, &egress.started("EV_hls_s"))
        .await
        .expect("applied");
    handle(&processor, &egress.ended_with("EV_hls_e", segments))
        .await
        .expect("applied");
    assert_eq!(
        test.database.recording("EG_hls").await.unwrap()["status"],
        "ready"
    );

    let (code, out) = run(&test.env(), &["recordings", "delete", "EG_hls", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    for key in &written {
        assert!(!exists(&test, key).await, "{key} is left");
    }
    for key in neighbours {
        assert!(exists(&test, key).await, "{key} was not the recording's");
    }
    assert!(out.contains("deleted EG_hls: 5 object(s)"), "{out}");
}

/// A ready recording whose bucket's name two profiles share: `real` (where its file is) and
/// `default` (the same name on another server, where nothing listens); the settings of both.
async fn ready_in_one_of_two_profiles(test: &TestEnv, egress_id: &str) -> (Env, Egress) {
    let real = &test.bucket.profile;
    let env = test.env_with_profile("real", real, &[("S3_ENDPOINT", "http://127.0.0.1:1")]);
    let processor = event_processor(&env).await;
    let egress = Egress::new(egress_id, "r", real);
    test.bucket
        .put(&egress.key, b"the recording", "video/mp4")
        .await;
    for body in [egress.started("EV_s"), egress.ended("EV_e")] {
        handle(&processor, &body).await.expect("applied");
    }
    let row = test.database.recording(egress_id).await.expect("row");
    assert_eq!(row["status"], "ready", "verified on the real server: {row}");
    assert_eq!(row["metadata"]["storage_profile"], "real");
    (env, egress)
}

#[tokio::test]
async fn two_profiles_with_one_bucket_name_delete_through_the_one_the_files_are_in() {
    let test = TestEnv::new().await;
    let (env, egress) = ready_in_one_of_two_profiles(&test, "EG_two").await;

    let (code, out) = run(&env, &["recordings", "delete", "EG_two", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!exists(&test, &egress.key).await, "deleted where it was");
    assert_eq!(test.database.recording_rows("EG_two").await, 0);
}

#[tokio::test]
async fn a_recording_that_does_not_name_its_profile_is_not_deleted_by_a_guess() {
    let test = TestEnv::new().await;
    let (env, egress) = ready_in_one_of_two_profiles(&test, "EG_guess").await;
    // As a row written before the profile was noted.
    test.database
        .client()
        .await
        .execute(
            "UPDATE recordings SET metadata = metadata - 'storage_profile' WHERE egress_id = 'EG_guess'",
            &[],
        )
        .await
        .expect("update");

    let (code, out) = run(&env, &["recordings", "delete", "EG_guess", "--yes"]).await;
    assert_eq!(code, 1, "refused: {out}");
    assert!(
        out.contains("storage profiles") && out.contains("\"default\"") && out.contains("\"real\""),
        "names the profiles that share the bucket: {out}"
    );
    assert!(exists(&test, &egress.key).await, "nothing deleted");
    assert_eq!(
        test.database.recording_rows("EG_guess").await,
        2,
        "the row and its asset are kept"
    );
}
