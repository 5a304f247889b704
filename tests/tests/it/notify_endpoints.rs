//! Notifications POSTed to apps' HTTP endpoints (CONTRACTS §8, Standard Webhooks): what an app
//! receives passes the reference verifier (`standardwebhooks`) and fails with a wrong secret or
//! a changed body; refusals are retried on the schedule with one `webhook-id` and a fresh
//! signature each (controlled clock); a dead endpoint holds up no other endpoint and no event;
//! a spent schedule dead-letters, is listed, and is replayed once the endpoint is back;
//! redirects are not followed.

use std::time::{Duration, SystemTime};

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::Env;
use roomtape_shared::queue::topology::EVENTS_EXCHANGE;
use roomtape_tests::api_client::Api;
use roomtape_tests::apps::{spawn_processor_with_clock, wait_ready};
use roomtape_tests::fixtures::Egress;
use roomtape_tests::webhook_sink::{Mode, WebhookSink};
use roomtape_tests::{eventually, spawn_ingestor, spawn_processor, TestEnv};
use serde_json::Value;
use standardwebhooks::WebhookError;

/// The secret apps give their verifier (`whsec_` + base64 of 24 bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IGtleSEh";
/// A little over the delivery workers' poll, so a retry that was due would have been sent.
const PAST_A_POLL: Duration = Duration::from_millis(1500);

/// The test's settings with endpoint `app` at `url`, sent what `events` selects.
fn with_endpoint(test: &TestEnv, url: &str, events: &str, extra: &[(&str, &str)]) -> Env {
    let mut vars = vec![
        ("NOTIFY_ENDPOINTS", "app"),
        ("NOTIFY_APP_URL", url),
        ("NOTIFY_APP_SECRET", SECRET),
        ("NOTIFY_APP_EVENTS", events),
    ];
    vars.extend_from_slice(extra);
    test.env_with(&vars)
}

/// Plays one egress from start to a verified file: `recording.ready` follows.
async fn record_until_ready(test: &TestEnv, egress_id: &str) {
    let egress = Egress::new(egress_id, "standup", &test.bucket.profile);
    test.bucket
        .put(&egress.key, &[7u8; 1024], "video/mp4")
        .await;
    let start = format!("{egress_id}-start");
    let end = format!("{egress_id}-end");
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.started",
            egress.started(&start).as_bytes(),
            &start,
        )
        .await;
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            egress.ended(&end).as_bytes(),
            &end,
        )
        .await;
}

/// The delivery of `recording.ready:<egress_id>` to `app`: (status, attempts).
async fn delivery(test: &TestEnv, egress_id: &str) -> Option<(String, i32)> {
    let client = test.database.client().await;
    let id = format!("recording.ready:{egress_id}");
    client
        .query_opt(
            "SELECT d.status, d.attempts FROM notification_deliveries d
                 JOIN notification_outbox o ON o.id = d.outbox_id WHERE o.notification_id = $1",
            &[&id],
        )
        .await
        .expect("delivery")
        .map(|row| (row.get(0), row.get(1)))
}

async fn wait_delivery(test: &TestEnv, egress_id: &str, status: &str) -> i32 {
    eventually(Duration::from_secs(20), status, || async {
        delivery(test, egress_id)
            .await
            .filter(|(s, _)| s == status)
            .map(|(_, attempts)| attempts)
    })
    .await
}

/// Waits until attempt `attempts` of `recording.ready:<egress_id>` was refused and its retry
/// scheduled: the clock may only move on once the retry's due time was taken from it.
async fn wait_retry_scheduled(test: &TestEnv, egress_id: &str, attempts: i32) {
    let id = format!("recording.ready:{egress_id}");
    eventually(
        Duration::from_secs(20),
        "the retry to be scheduled",
        || async {
            let client = test.database.client().await;
            let row = client
                .query_opt(
                    "SELECT 1 FROM notification_deliveries d
                     JOIN notification_outbox o ON o.id = d.outbox_id
                     WHERE o.notification_id = $1 AND d.status = 'pending'
                       AND d.attempts = $2 AND d.last_error IS NOT NULL",
                    &[&id, &attempts],
                )
                .await
                .expect("delivery");
            row.map(drop)
        },
    )
    .await;
}

async fn wait_count(sink: &WebhookSink, count: usize) {
    eventually(
        Duration::from_secs(20),
        &format!("{count} POST(s)"),
        || async { (sink.count() >= count).then_some(()) },
    )
    .await;
}

async fn cli(env: &Env, args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let mut argv = vec!["roomtape"];
    argv.extend_from_slice(args);
    let code = execute(Cli::parse_from(argv), env, &mut out, false).await;
    (code, String::from_utf8(out).expect("utf-8"))
}

#[tokio::test]
async fn simulate_sends_one_signed_recording_ready_that_the_reference_verifier_accepts() {
    let test = TestEnv::new().await;
    let sink = WebhookSink::start();
    let env = with_endpoint(&test, &sink.url, "recording.ready", &[]);
    let ingestor = spawn_ingestor(&env, Clock::System);
    let processor = spawn_processor(&env).await;
    wait_ready(&ingestor).await;
    wait_ready(&processor).await;
    let env = with_endpoint(
        &test,
        &sink.url,
        "recording.ready",
        &[("ROOMTAPE_INGESTOR_URL", &ingestor.address)],
    );

    let (code, out) = cli(&env, &["simulate", "--json", "--timeout", "20s"]).await;
    assert_eq!(code, 0, "{out}");
    let egress_id = serde_json::from_str::<Value>(&out).expect("json")["egress_id"]
        .as_str()
        .expect("egress id")
        .to_owned();
    assert_eq!(wait_delivery(&test, &egress_id, "delivered").await, 1);
    tokio::time::sleep(PAST_A_POLL).await;
    let received = sink.received();
    assert_eq!(received.len(), 1, "exactly one POST: {received:?}");
    let post = &received[0];

    assert_eq!(
        post.verify(SECRET).ok(),
        Some(()),
        "the reference verifier accepts it"
    );
    assert_eq!(
        post.header("webhook-id"),
        format!("recording.ready:{egress_id}")
    );
    assert_eq!(post.header("content-type"), "application/json");
    assert!(post.header("webhook-signature").starts_with("v1,"));
    let body = post.json();
    assert_eq!(body["type"], "recording.ready");
    assert_eq!(body["data"]["egress_id"], egress_id.as_str());
    assert_eq!(body["data"]["status"], "ready");

    assert!(matches!(
        post.verify(OTHER_SECRET),
        Err(WebhookError::InvalidSignature)
    ));
    let mut changed = post.clone();
    changed.body = post.body.replace_bytes("\"ready\"", "\"failed\"");
    assert!(matches!(
        changed.verify(SECRET),
        Err(WebhookError::InvalidSignature)
    ));
}

#[tokio::test]
async fn refusals_are_retried_on_the_schedule_with_one_id_each_signed_at_its_own_time() {
    let test = TestEnv::new().await;
    let sink = WebhookSink::start();
    sink.script(&[500, 500]);
    // The clock starts 605 s behind the real one: the last retry is signed at about the real
    // now, so the reference verifier (real clock, 5 minutes' tolerance) can judge each stamp.
    let start = SystemTime::now() - Duration::from_secs(605);
    let (clock, time) = Clock::controlled(start);
    let t0 = clock.now_unix();
    let env = with_endpoint(
        &test,
        &sink.url,
        "recording.*",
        &[
            ("NOTIFY_RETRY_DELAYS", "5s,10m,1h"),
            ("NOTIFY_APP_EVENTS", "recording.ready"),
        ],
    );
    let processor = spawn_processor_with_clock(&env, clock).await;
    wait_ready(&processor).await;
    record_until_ready(&test, "EG_retry").await;

    wait_count(&sink, 1).await;
    wait_retry_scheduled(&test, "EG_retry", 1).await;
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(sink.count(), 1, "not retried before its time on the clock");
    time.advance(Duration::from_secs(5));
    wait_count(&sink, 2).await;
    wait_retry_scheduled(&test, "EG_retry", 2).await;
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(sink.count(), 2, "the second retry waits 10 minutes");
    time.advance(Duration::from_secs(600));
    wait_count(&sink, 3).await;
    assert_eq!(wait_delivery(&test, "EG_retry", "delivered").await, 3);

    let posts = sink.received();
    let ids: Vec<&str> = posts.iter().map(|p| p.header("webhook-id")).collect();
    assert_eq!(
        ids, ["recording.ready:EG_retry"; 3],
        "one webhook-id on every attempt"
    );
    let stamps: Vec<u64> = posts
        .iter()
        .map(|p| p.header("webhook-timestamp").parse().expect("unix seconds"))
        .collect();
    assert_eq!(
        stamps,
        [t0, t0 + 5, t0 + 605],
        "each attempt stamped with its own time"
    );
    assert!(
        posts.iter().all(|p| p.body == posts[0].body),
        "the same body every time"
    );
    // The retry ten minutes on verifies; the first attempt's stamp would by then be refused.
    assert_eq!(posts[2].verify(SECRET).ok(), Some(()));
    assert!(matches!(
        posts[0].verify(SECRET),
        Err(WebhookError::TimestampTooOldError)
    ));
}

#[tokio::test]
async fn an_endpoint_that_never_answers_holds_up_no_other_endpoint_and_no_event() {
    let test = TestEnv::new().await;
    let (dead, live) = (WebhookSink::start(), WebhookSink::start());
    dead.set_mode(Mode::Hang);
    let env = test.env_with(&[
        ("NOTIFY_ENDPOINTS", "dead,live"),
        ("NOTIFY_DEAD_URL", &dead.url),
        ("NOTIFY_DEAD_SECRET", SECRET),
        ("NOTIFY_LIVE_URL", &live.url),
        ("NOTIFY_LIVE_SECRET", SECRET),
        ("NOTIFY_TIMEOUT", "5s"),
        ("NOTIFY_DEAD_EVENTS", "recording.ready"),
        ("NOTIFY_LIVE_EVENTS", "recording.ready"),
    ]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    const RECORDINGS: usize = 40;
    for n in 0..RECORDINGS {
        record_until_ready(&test, &format!("EG_{n}")).await;
    }
    // Well inside the dead endpoint's 5-second timeout: nothing waited for it.
    eventually(
        Duration::from_secs(4),
        "the live endpoint to get all",
        || async { (live.count() == RECORDINGS).then_some(()) },
    )
    .await;
    let applied = test
        .database
        .count("SELECT count(*) FROM recordings WHERE status = 'ready'")
        .await;
    assert_eq!(applied, RECORDINGS as i64, "every event applied");
    assert!(dead.count() >= 1, "the dead endpoint was tried");
    let delivered_to_dead = test
        .database
        .count("SELECT count(*) FROM notification_deliveries WHERE endpoint = 'dead' AND status = 'delivered'")
        .await;
    assert_eq!(delivered_to_dead, 0);
}

#[tokio::test]
async fn a_spent_schedule_is_dead_lettered_listed_and_replayed_once_the_endpoint_is_back() {
    let test = TestEnv::new().await;
    let sink = WebhookSink::start();
    sink.set_mode(Mode::Down);
    // The processors' clock an hour behind the machine the replay is typed on: a replay is
    // still due at once.
    let (clock, time) = Clock::controlled(SystemTime::now() - Duration::from_secs(3600));
    let env = with_endpoint(
        &test,
        &sink.url,
        "recording.ready",
        &[("NOTIFY_RETRY_DELAYS", "5s")],
    );
    let processor = spawn_processor_with_clock(&env, clock).await;
    wait_ready(&processor).await;
    record_until_ready(&test, "EG_down").await;
    wait_count(&sink, 1).await;
    wait_retry_scheduled(&test, "EG_down", 1).await;
    time.advance(Duration::from_secs(5));
    assert_eq!(wait_delivery(&test, "EG_down", "failed").await, 2);

    let api = Api::start(&test, &[]).await;
    let (status, page) = api.get("/api/v1/notifications?status=failed").await;
    assert_eq!(status, 200, "{page}");
    let item = &page["items"][0];
    assert_eq!(item["notification_id"], "recording.ready:EG_down");
    assert_eq!(item["endpoint"], "app");
    assert_eq!(item["type"], "recording.ready");
    assert_eq!(item["attempts"], 2);
    assert_eq!(item["last_status"], 503);
    assert_eq!(item["last_error"], "answered 503: down for maintenance");
    assert_eq!(page["endpoints"][0]["endpoint"], "app");
    assert_eq!(page["endpoints"][0]["failed"], 1);
    let (status, error) = api.get("/api/v1/notifications?status=lost").await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"]["message"],
        "status: \"lost\" is not one of pending, delivered, failed"
    );

    let (code, out) = cli(
        &env,
        &["notifications", "list", "--status", "failed", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let listed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        listed["items"][0]["notification_id"],
        "recording.ready:EG_down"
    );

    // Back, and replayed: delivered once, nothing else sent.
    sink.set_mode(Mode::Answer);
    let (code, out) = cli(
        &env,
        &["notifications", "replay", "--endpoint", "app", "--yes"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed 1 delivery"), "{out}");
    assert_eq!(wait_delivery(&test, "EG_down", "delivered").await, 1);
    tokio::time::sleep(PAST_A_POLL).await;
    assert_eq!(sink.count(), 3);
    let (code, out) = cli(&env, &["notifications", "replay", "--yes", "999999"]).await;
    assert_eq!(code, 1, "nothing with that id was failed: {out}");
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_not_delivered() {
    let test = TestEnv::new().await;
    let (redirecting, elsewhere) = (WebhookSink::start(), WebhookSink::start());
    redirecting.redirect_to(&elsewhere.url);
    let env = with_endpoint(
        &test,
        &redirecting.url,
        "recording.ready",
        &[("NOTIFY_RETRY_DELAYS", "none")],
    );
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    record_until_ready(&test, "EG_moved").await;
    assert_eq!(wait_delivery(&test, "EG_moved", "failed").await, 1);
    assert_eq!(redirecting.count(), 1);
    assert_eq!(elsewhere.count(), 0, "the Location was not followed");
}

#[tokio::test]
async fn notifications_test_and_doctor_send_a_signed_test_and_say_what_the_endpoint_answered() {
    let test = TestEnv::new().await;
    let sink = WebhookSink::start();
    let env = with_endpoint(&test, &sink.url, "recording.*", &[]);

    let (code, out) = cli(&env, &["notifications", "test", "app"]).await;
    assert_eq!(code, 0, "{out}");
    let post = &sink.received()[0];
    assert_eq!(post.verify(SECRET).ok(), Some(()));
    assert_eq!(post.json()["type"], "notification.test");

    let (code, out) = cli(&env, &["doctor", "--json"]).await;
    let report: Value = serde_json::from_str(&out).expect("json");
    let check = report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "notify app"))
        .unwrap_or_else(|| panic!("a notify check: {out}"));
    assert_eq!(check["ok"], true, "{check} (doctor exit {code})");

    sink.set_mode(Mode::Down);
    let (code, out) = cli(&env, &["notifications", "test", "app"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("answered 503: down for maintenance"), "{out}");
    let (code, out) = cli(&env, &["notifications", "test", "nowhere"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no endpoint \"nowhere\" in NOTIFY_ENDPOINTS"),
        "{out}"
    );
}

/// Byte-string replace for a body under test.
trait ReplaceBytes {
    fn replace_bytes(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceBytes for Vec<u8> {
    fn replace_bytes(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(self)
            .replacen(from, to, 1)
            .into_bytes()
    }
}
