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
    let code = execute(Cli::parse_from(argv), &test.env(), &mut out, false).await;
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
        // Long enough to connect on a loaded machine: the wait that must run out is the reply's.
        "3s",
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

#[tokio::test]
async fn dlq_replay_sends_dead_letters_back_to_their_queue_once_the_cause_is_fixed() {
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use roomtape_shared::queue::topology::{DEAD_QUEUE, EVENTS_QUEUE};
    let test = TestEnv::new().await;
    let channel = test.vhost.channel().await;
    roomtape_shared::queue::topology::declare(&channel, &[])
        .await
        .expect("declare");
    // Confirmed, so the letters are in the queue before the tool looks.
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    // A good event, dead-lettered (say while its bucket was not configured), and one that names
    // no source queue.
    for (id, source) in [("EV_back", Some(EVENTS_QUEUE)), ("EV_orphan", None)] {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-roomtape-error".into(),
            AMQPValue::LongString(LongString::from("not configured")),
        );
        headers.insert("x-roomtape-attempt".into(), AMQPValue::LongUInt(3));
        if let Some(source) = source {
            headers.insert(
                "x-roomtape-source-queue".into(),
                AMQPValue::LongString(LongString::from(source)),
            );
        }
        let body = roomtape_tests::fixtures::room_event("room_started", id, "replayed", "RM_r");
        let properties = lapin::BasicProperties::default()
            .with_message_id(id.into())
            .with_headers(headers);
        channel
            .basic_publish(
                "".into(),
                DEAD_QUEUE.into(),
                Default::default(),
                body.as_bytes(),
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    let (code, out) = run(&test, &["dlq", "replay"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "replayed 1 to roomtape.events; 1 left in roomtape.dead (no source queue)"
    );
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 1);
    let replayed = test
        .vhost
        .get(EVENTS_QUEUE)
        .await
        .expect("back in roomtape.events");
    let headers = replayed
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    assert!(
        headers.inner().get("x-roomtape-attempt").is_none(),
        "a fresh retry schedule"
    );
    assert!(headers.inner().get("x-roomtape-error").is_none());
    assert_eq!(
        replayed
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some("EV_back")
    );
}
