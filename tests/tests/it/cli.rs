//! The `roomtape` tool against a running processor and a fake LiveKit.

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_tests::apps::wait_ready;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{spawn_processor, TestEnv};

async fn run(test: &TestEnv, args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let mut argv = vec!["roomtape"];
    argv.extend_from_slice(args);
    let code = execute(Cli::parse_from(argv), &test.env(), &mut out).await;
    (code, String::from_utf8(out).expect("utf-8"))
}

#[tokio::test]
async fn record_start_and_stop_print_the_processors_reply() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let processor = spawn_processor(&test.env_with(&[("LIVEKIT_URL", &livekit.url)])).await;
    wait_ready(&processor).await;

    let (code, out) = run(
        &test,
        &["record", "start", "town-hall", "--layout", "grid", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let reply: serde_json::Value = serde_json::from_str(&out).expect("--json prints the reply");
    assert_eq!(reply["status"], "starting");
    let egress_id = reply["egress_id"].as_str().expect("egress id").to_owned();

    let (code, out) = run(&test, &["record", "stop", "--room", "town-hall"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), format!("stopping {egress_id}"));

    let (code, out) = run(&test, &["record", "start", "r", "--layout", "mosaic"]).await;
    assert_eq!(code, 1, "the processor refused it");
    assert!(
        out.starts_with("error (invalid_command): unknown layout"),
        "{out}"
    );
}

#[tokio::test]
async fn without_a_processor_the_tool_says_so_instead_of_hanging() {
    let test = TestEnv::new().await;
    // The topology exists (so the command is routed) but nothing consumes it.
    roomtape_shared::queue::topology::declare(&test.vhost.channel().await, &[])
        .await
        .expect("declare");
    let args = [
        "record",
        "start",
        "r",
        "--id",
        "cmd-7",
        "--timeout",
        "300ms",
    ];
    let (code, out) = run(&test, &args).await;
    assert_eq!(code, 3);
    assert!(out.contains("is roomtape-processor running?"), "{out}");
    assert!(
        out.contains("repeat it with --id cmd-7"),
        "tells how to retry safely: {out}"
    );
    let (code, out) = run(&test, &["record", "start", "r", "--metadata", "not json"]).await;
    assert_eq!(code, 2, "{out}");
}
