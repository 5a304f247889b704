//! The handlers stepped directly, without RabbitMQ: a message in, what the worker would do with
//! it out (`worker::decide`, the one place retry policy lives). PostgreSQL and the fake LiveKit
//! are real.

use roomtape_processor::commands::CommandProcessor;
use roomtape_processor::worker::{decide, Attempt, Handled, Handler, Message, Settlement, Step};
use roomtape_tests::apps::command_processor;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::outbox::RecordingOutbox;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::TestEnv;
use serde_json::{json, Value};

const START: &str = "StartRoomCompositeEgress";

fn start(room: &str, id: &str, attempt: u32) -> Message {
    let mut message = Message::new(json!({"room_name": room}).to_string(), "recording.start");
    message.message_id = Some(id.to_owned());
    message.reply_to = Some("amq.rabbitmq.reply-to".to_owned());
    message.attempt = Attempt {
        number: attempt,
        schedule_len: 2,
    };
    message
}

/// Handles `message` and lets the worker's policy decide; `Hold` is not expected here.
async fn step(handler: &CommandProcessor, message: &Message) -> Settlement {
    let outbox = RecordingOutbox::default();
    let result = handler.handle(message, &outbox).await;
    match decide(handler, message, result, &outbox).await {
        Step::Settle(settlement) => settlement,
        Step::Hold(error) => panic!("held: {error:?}"),
    }
}

fn reply(settlement: Settlement) -> Value {
    match settlement {
        Settlement::Ack(Handled {
            reply: Some(reply), ..
        }) => reply,
        other => panic!("expected an acked reply, got {other:?}"),
    }
}

async fn handler(test: &TestEnv, livekit: &FakeLiveKit) -> CommandProcessor {
    command_processor(&test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())])).await
}

#[tokio::test]
async fn a_start_replies_with_its_egress_and_a_repeat_gets_the_same_answer() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let handler = handler(&test, &livekit).await;

    let first = reply(step(&handler, &start("lecture", "cmd-a", 1)).await);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["status"], "starting");
    let again = reply(step(&handler, &start("lecture", "cmd-a", 1)).await);
    assert_eq!(again, first);
    assert_eq!(livekit.calls(START).len(), 1, "one egress per command id");
}

#[tokio::test]
async fn livekit_unavailable_is_retried_while_the_schedule_lasts_then_answered() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let handler = handler(&test, &livekit).await;
    livekit.fail_next("unavailable", 3);

    for attempt in [1, 2] {
        match step(&handler, &start("r", "cmd-b", attempt)).await {
            Settlement::Retry(error) => assert_eq!(error.outcome(), "livekit_error"),
            other => panic!("attempt {attempt}: expected a retry, got {other:?}"),
        }
    }
    let last = reply(step(&handler, &start("r", "cmd-b", 3)).await);
    assert_eq!(last["ok"], false);
    assert_eq!(last["error"]["code"], "egress_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable")),
        "{last}"
    );
    // The answer is stored: a late redelivery gets it without calling LiveKit again.
    let calls = livekit.calls(START).len();
    assert_eq!(reply(step(&handler, &start("r", "cmd-b", 1)).await), last);
    assert_eq!(livekit.calls(START).len(), calls);
}

#[tokio::test]
async fn a_refusal_is_answered_at_once_and_an_invalid_command_without_reply_to_is_dead_lettered() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let handler = handler(&test, &livekit).await;
    livekit.fail_next("not_found", 1);

    let refused = reply(step(&handler, &start("gone", "cmd-c", 1)).await);
    assert_eq!(refused["error"]["code"], "room_not_found", "{refused}");

    let mut nobody_asks = start("", "cmd-d", 1);
    nobody_asks.reply_to = None;
    match step(&handler, &nobody_asks).await {
        Settlement::DeadLetter(error) => assert_eq!(error.outcome(), "invalid_command"),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let mut asks = start("", "cmd-e", 1);
    asks.body = br#"{"room_name": "r", "layout": "diagonal"}"#.to_vec();
    let invalid = reply(step(&handler, &asks).await);
    assert_eq!(invalid["error"]["code"], "invalid_command", "{invalid}");
    assert_eq!(
        livekit.calls(START).len(),
        1,
        "only the refused start reached LiveKit"
    );
}
