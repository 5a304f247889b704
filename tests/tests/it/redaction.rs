//! A LiveKit error that quotes a room-join token (`access_token=<jwt>`): the recording's row,
//! the API's answers to a read token, `roomtape dlq show` and every log line show it redacted;
//! the queue message and `webhook_events.payload` keep it as LiveKit sent it.

use std::time::Duration;

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::queue::topology::{DEAD_QUEUE, EVENTS_EXCHANGE};
use roomtape_tests::api_client::Api;
use roomtape_tests::apps::wait_ready;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::logs::LogCapture;
use roomtape_tests::{eventually, spawn_processor, TestEnv};

const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
const PAYLOAD: &str = "eyJ2aWRlbyI6eyJyb29tSm9pbiI6dHJ1ZSwicm9vbSI6ImxlYWt5In19";
const SIGNATURE: &str = "c2lnbmF0dXJlLW9mLXRoZS1qb2luLXRva2Vu";

fn jwt() -> String {
    format!("{HEADER}.{PAYLOAD}.{SIGNATURE}")
}

/// Asserts `text` holds no part of the token.
fn no_token(what: &str, text: &str) {
    for part in [HEADER, PAYLOAD, SIGNATURE] {
        assert!(!text.contains(part), "{what} shows the token: {text}");
    }
}

#[tokio::test]
async fn a_join_token_in_an_egress_error_is_redacted_everywhere_but_the_stored_event() {
    let logs = LogCapture::start();
    let test = TestEnv::new().await;
    let processor = spawn_processor(&test.env()).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_leaky", "leaky", &test.bucket.profile);
    let error = format!(
        "Start signal not received: could not join \
         wss://livekit.example.com/rtc/validate?access_token={}&auto_subscribe=1",
        jwt()
    );
    let failed = egress.failed("EV_leaky", &error);
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            failed.as_bytes(),
            "EV_leaky",
        )
        .await;
    // One that can never be parsed: dead-lettered as it is.
    let poison = format!("not an event: wss://x/rtc?access_token={}", jwt());
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            poison.as_bytes(),
            "EV_poison",
        )
        .await;

    let row = eventually(Duration::from_secs(30), "the failed recording", || async {
        let row = test.database.recording("EG_leaky").await?;
        (row["status"] == "failed").then_some(row)
    })
    .await;
    let stored_error = row["error"].as_str().expect("an error");
    no_token("recordings.error", stored_error);
    assert!(
        stored_error.contains("access_token=[redacted]&auto_subscribe=1"),
        "the rest of the message is kept: {stored_error}"
    );
    let client = test.database.client().await;
    let payload: String = client
        .query_one(
            "SELECT payload -> 'egressInfo' ->> 'error' FROM webhook_events WHERE event_id = 'EV_leaky'",
            &[],
        )
        .await
        .expect("the event")
        .get(0);
    assert_eq!(payload, error, "the stored event is as LiveKit sent it");

    let api = Api::start(&test, &[]).await;
    for path in [
        "/api/v1/recordings/EG_leaky",
        "/api/v1/recordings?status=failed",
        "/api/v1/rooms/leaky/recordings/",
    ] {
        let (status, body) = api.get(path).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        no_token(path, &body.to_string());
    }
    let (_, details) = api.get("/api/v1/recordings/EG_leaky").await;
    assert!(details["error"]
        .as_str()
        .is_some_and(|e| e.contains("[redacted]")));

    eventually(
        Duration::from_secs(30),
        "the poison dead-lettered",
        || async { (test.vhost.ready_count(DEAD_QUEUE).await == 1).then_some(()) },
    )
    .await;
    let mut out = Vec::new();
    let cli = Cli::parse_from(["roomtape", "dlq", "show", "--all"]);
    let code = execute(cli, &test.env(), &mut out, false).await;
    let shown = String::from_utf8(out).expect("utf-8");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("EV_poison"), "{shown}");
    no_token("dlq show", &shown);
    let dead = test.vhost.get(DEAD_QUEUE).await.expect("the dead letter");
    assert_eq!(dead.delivery.data, poison.as_bytes(), "kept byte for byte");

    let logged = logs.text();
    assert!(
        logged.contains("dead-lettering the message"),
        "the capture holds the processor's lines"
    );
    no_token("the logs", &logged);
}
