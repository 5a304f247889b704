//! `roomtape doctor` against real services: everything up, a wrong bucket secret (only that
//! profile's lines fail), and nothing running but the servers (each line says what to fix).

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::Env;
use roomtape_tests::apps::wait_ready;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{spawn_ingestor, spawn_processor, TestEnv};
use serde_json::Value;

async fn doctor(env: &Env, extra: &[&str]) -> (u8, Value) {
    let mut out = Vec::new();
    let argv = ["roomtape", "doctor", "--json"]
        .into_iter()
        .chain(extra.iter().copied());
    let code = execute(Cli::parse_from(argv), env, &mut out, false).await;
    let text = String::from_utf8(out).expect("utf-8");
    (
        code,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// The checks whose name starts with `prefix`: (name, ok, detail).
fn lines(report: &Value, prefix: &str) -> Vec<(String, bool, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (text("name"), c["ok"] == true, text("detail"))
        })
        .collect()
}

fn failing(report: &Value) -> Vec<String> {
    lines(report, "")
        .into_iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(name, _, _)| name)
        .collect()
}

#[tokio::test]
async fn everything_up_passes_and_a_wrong_secret_fails_only_its_storage_lines() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let env = test.env_with(&[("LIVEKIT_URL", &livekit.url)]);
    let processor = spawn_processor(&env).await;
    let ingestor = spawn_ingestor(&env, Clock::System);
    wait_ready(&processor).await;
    wait_ready(&ingestor).await;
    let ingestor_url = ingestor.url("/");
    let env = test.env_with(&[
        ("LIVEKIT_URL", &livekit.url),
        ("ROOMTAPE_INGESTOR_URL", &ingestor_url),
    ]);

    // The test profile's public base (media.example.com) is not ours: that line must fail and
    // say what to fix; skipped by its name, it leaves the exit status alone.
    let (code, report) = doctor(&env, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(
        failing(&report),
        ["storage default public url"],
        "{report:#}"
    );
    let (_, _, detail) = &lines(&report, "storage default public url")[0];
    assert!(detail.contains("check S3_PUBLIC_BASE_URL"), "{detail}");
    let (code, report) = doctor(&env, &["--skip", "storage default public url"]).await;
    assert_eq!(code, 0, "{report:#}");
    let storage: Vec<String> = lines(&report, "storage")
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(
        storage,
        [
            "storage default put",
            "storage default head",
            "storage default ranged get",
            "storage default presigned get",
            "storage default public url",
            "storage default delete"
        ]
    );
    assert!(
        test.bucket
            .client
            .head_object()
            .bucket(&test.bucket.profile.bucket)
            .key("roomtape-doctor/probe.txt")
            .send()
            .await
            .is_err(),
        "probe removed"
    );

    let wrong = test.env_with(&[
        ("LIVEKIT_URL", &livekit.url),
        ("ROOMTAPE_INGESTOR_URL", &ingestor_url),
        ("S3_SECRET_ACCESS_KEY", "not-the-secret"),
    ]);
    let (code, report) = doctor(&wrong, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(failing(&report), ["storage default put"], "{report:#}");
    let (_, _, detail) = &lines(&report, "storage default put")[0];
    assert!(
        detail.contains("HTTP 403") && detail.contains("keys of storage profile default"),
        "{detail}"
    );
}

#[tokio::test]
async fn with_only_the_servers_up_each_line_says_what_to_fix() {
    let test = TestEnv::new().await;
    let env = test.env_with(&[
        ("LIVEKIT_URL", "http://127.0.0.1:9"),
        ("ROOMTAPE_INGESTOR_URL", "http://127.0.0.1:9"),
    ]);
    let (code, report) = doctor(&env, &[]).await;
    assert_eq!(code, 1);
    let detail = |name: &str| {
        lines(&report, name)
            .first()
            .map(|(_, _, d)| d.clone())
            .unwrap_or_default()
    };
    assert!(
        detail("database").contains("run `roomtape-processor migrate`"),
        "{report:#}"
    );
    assert!(
        detail("broker topology").contains("missing roomtape.events"),
        "{report:#}"
    );
    assert!(
        detail("livekit").contains("no LiveKit server answers at http://127.0.0.1:9/"),
        "{report:#}"
    );
    assert!(
        detail("ingestor").contains("is roomtape-ingestor running"),
        "{report:#}"
    );
    assert!(failing(&report).contains(&"livekit".to_owned()));

    // Skipped checks still run and print, but leave the exit status alone.
    let skips = [
        "livekit",
        "ingestor",
        "database",
        "broker",
        "storage default public url",
    ];
    let args: Vec<&str> = skips.iter().flat_map(|s| ["--skip", *s]).collect();
    let (code, report) = doctor(&env, &args).await;
    assert_eq!(code, 0, "{report:#}");
    assert!(lines(&report, "livekit").iter().all(|(_, ok, _)| !ok));
}

#[tokio::test]
async fn the_ffmpeg_line_names_the_version_or_how_to_get_one() {
    let test = TestEnv::new().await;
    let ffmpeg = |report: &Value| {
        lines(report, "ffmpeg")
            .first()
            .cloned()
            .expect("an ffmpeg line")
    };

    // Thumbnails off (the test default): nothing to check.
    let (_, report) = doctor(&test.env(), &[]).await;
    let (_, ok, detail) = ffmpeg(&report);
    assert!(
        ok && detail.contains("RECORDING_THUMBNAILS is off"),
        "{detail}"
    );

    // On, with Debian's ffmpeg (deploy/local/services.sh installs it): its version.
    let on = test.env_with(&[("RECORDING_THUMBNAILS", "on")]);
    let (_, report) = doctor(&on, &[]).await;
    let (_, ok, detail) = ffmpeg(&report);
    assert!(ok && detail.starts_with("ffmpeg version "), "{detail}");

    // On, and none where FFMPEG_PATH says: the line fails, saying what to do; `--skip ffmpeg`
    // marks it skipped.
    let missing = test.env_with(&[
        ("RECORDING_THUMBNAILS", "on"),
        ("FFMPEG_PATH", "/nonexistent/ffmpeg"),
    ]);
    let (_, report) = doctor(&missing, &[]).await;
    let (_, ok, detail) = ffmpeg(&report);
    assert!(!ok, "{detail}");
    assert!(
        detail.contains("ffmpeg not found at /nonexistent/ffmpeg"),
        "{detail}"
    );
    assert!(
        detail.contains("apt-get install ffmpeg") && detail.contains("FFMPEG_PATH"),
        "{detail}"
    );
    let (_, report) = doctor(&missing, &["--skip", "ffmpeg"]).await;
    let skipped = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .any(|c| c["name"] == "ffmpeg" && c["skipped"] == true);
    assert!(skipped, "{report:#}");

    // A setting ffmpeg's check cannot read fails the line, naming it.
    let bad = test.env_with(&[("THUMBNAIL_INTERVAL", "0s")]);
    let (_, report) = doctor(&bad, &[]).await;
    let (_, ok, detail) = ffmpeg(&report);
    assert!(!ok && detail.contains("THUMBNAIL_INTERVAL"), "{detail}");
}
