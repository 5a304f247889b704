//! The handlers stepped directly, without RabbitMQ: a message in, what the worker would do with
//! it out (`worker::decide`, the one place retry policy lives). PostgreSQL and the fake LiveKit
//! are real.

use std::time::Duration;

use roomtape_processor::commands::CommandProcessor;
use roomtape_processor::worker::{decide, Attempt, Handled, Handler, Message, Settlement, Step};
use roomtape_shared::clock::Clock;
use roomtape_tests::apps::command_processor;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::outbox::RecordingOutbox;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::TestEnv;
use serde_json::{json, Value};

const START: &str = "StartRoomCompositeEgress";

/// The retry schedule of these tests.
const DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];
/// When the test's commands were sent (seconds since the epoch).
const SENT: u64 = 1_800_000_000;

fn start(room: &str, id: &str, attempt: u32) -> Message {
    let mut message = Message::new(json!({"room_name": room}).to_string(), "recording.start");
    message.message_id = Some(id.to_owned());
    message.reply_to = Some("amq.rabbitmq.reply-to".to_owned());
    message.attempt = Attempt::nth(attempt, &DELAYS);
    message
}

/// A start sent at `SENT`.
fn sent_start(room: &str, id: &str, attempt: u32) -> Message {
    Message {
        published_at: Some(SENT),
        ..start(room, id, attempt)
    }
}

fn stop_room(room: &str) -> Message {
    let mut message = Message::new(json!({"room_name": room}).to_string(), "recording.stop");
    message.message_id = Some(format!("stop-{room}"));
    message.reply_to = Some("amq.rabbitmq.reply-to".to_owned());
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
    handler_at(test, livekit, Clock::System).await
}

/// A handler whose clock says `clock`; `COMMAND_START_DEADLINE` is its default, 20 s.
async fn handler_at(test: &TestEnv, livekit: &FakeLiveKit, clock: Clock) -> CommandProcessor {
    command_processor(
        &test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]),
        clock,
    )
    .await
}

fn error_code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or_default()
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

#[tokio::test]
async fn a_start_that_cannot_reach_livekit_by_its_deadline_is_answered_and_never_carried_out() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    livekit.fail_next("unavailable", 2);

    // 1 s after it was sent: LiveKit is down; the next try (after 1 s) is within the deadline.
    let early = handler_at(&test, &livekit, Clock::FixedUnix(SENT + 1)).await;
    assert!(matches!(
        step(&early, &sent_start("r", "cmd-f", 1)).await,
        Settlement::Retry(_)
    ));
    // 16 s after: still down, and the next try (after 5 s) would land past the 20 s deadline.
    let late = handler_at(&test, &livekit, Clock::FixedUnix(SENT + 16)).await;
    let answer = reply(step(&late, &sent_start("r", "cmd-f", 2)).await);
    assert_eq!(error_code(&answer), "deadline_exceeded", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("COMMAND_START_DEADLINE (20s)"),
        "{message}"
    );
    assert!(message.contains("unavailable"), "the real cause: {message}");

    // LiveKit is back just after the deadline: a redelivery gets the same answer, no egress.
    let after = handler_at(&test, &livekit, Clock::FixedUnix(SENT + 21)).await;
    assert_eq!(
        reply(step(&after, &sent_start("r", "cmd-f", 3)).await),
        answer
    );
    assert_eq!(
        livekit.calls(START).len(),
        1,
        "only the first try called Start (the second asked ListEgress, which failed too)"
    );
    assert!(livekit.egress("EG_fake1").is_none());
}

#[tokio::test]
async fn a_start_that_waited_past_its_deadline_in_the_queue_never_reaches_livekit() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let handler = handler_at(&test, &livekit, Clock::FixedUnix(SENT + 21)).await;
    let answer = reply(step(&handler, &sent_start("r", "cmd-q", 1)).await);
    assert_eq!(error_code(&answer), "deadline_exceeded", "{answer}");
    assert!(answer.to_string().contains("waited 21s"), "{answer}");
    assert!(livekit.calls(START).is_empty());
}

#[tokio::test]
async fn a_slow_livekit_past_the_deadline_gets_its_egress_stopped() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    // 1 s of the deadline left; LiveKit stores the egress but answers after 3 s.
    livekit.slow_next(Duration::from_secs(3), 1);
    let handler = handler_at(&test, &livekit, Clock::FixedUnix(SENT + 19)).await;
    let answer = reply(step(&handler, &sent_start("r", "cmd-slow", 1)).await);
    assert_eq!(error_code(&answer), "deadline_exceeded", "{answer}");
    // Stopped in the background, once the answer is stored.
    roomtape_tests::eventually(
        Duration::from_secs(10),
        "the egress LiveKit started late to be stopped",
        || async { (!livekit.calls("StopEgress").is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(livekit.calls("StopEgress").len(), 1, "stopped once");
    assert_ne!(
        livekit.egress("EG_fake1").map(|e| e.status),
        Some(roomtape_shared::events::proto::EgressStatus::EgressStarting as i32)
    );
}

#[tokio::test]
async fn a_stop_for_the_room_cancels_a_pending_start() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    livekit.fail_next("unavailable", 1);
    let handler = handler_at(&test, &livekit, Clock::FixedUnix(SENT + 1)).await;
    assert!(matches!(
        step(&handler, &sent_start("class", "cmd-g", 1)).await,
        Settlement::Retry(_)
    ));

    let stopped = reply(step(&handler, &stop_room("class")).await);
    assert_eq!(stopped["ok"], true, "{stopped}");
    assert_eq!(stopped["cancelled_commands"], json!(["cmd-g"]));
    let retried = reply(step(&handler, &sent_start("class", "cmd-g", 2)).await);
    assert_eq!(error_code(&retried), "cancelled", "{retried}");
    assert_eq!(
        livekit.calls(START).len(),
        1,
        "only the failed try reached LiveKit"
    );

    // A start sent before the stop but seen only after it is cancelled too.
    let now = Clock::System.now_unix();
    let queued = Message {
        published_at: Some(now - 5),
        ..start("class", "cmd-h", 1)
    };
    let handler = handler_at(&test, &livekit, Clock::System).await;
    assert_eq!(
        error_code(&reply(step(&handler, &queued).await)),
        "cancelled"
    );
    assert_eq!(livekit.calls(START).len(), 1);
}
