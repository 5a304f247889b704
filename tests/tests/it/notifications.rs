//! Notifications out (CONTRACTS §8): one per real transition, written with the change, relayed
//! to `roomtape.notifications` after the commit, and never lost.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Consumer;
use roomtape_shared::events::parse;
use roomtape_shared::queue::topology::{self, EVENTS_EXCHANGE, NOTIFICATIONS_EXCHANGE};
use roomtape_tests::api_client::{Api, WRITE};
use roomtape_tests::apps::{event_processor, reconciler_at, wait_ready};
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::fixtures::{participant_event, room_event, Egress};
use roomtape_tests::outbox::handle;
use roomtape_tests::proxy::TcpProxy;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::shapes::assert_has_recording_fields;
use roomtape_tests::{eventually, spawn_processor, TestEnv};
use serde_json::Value;

/// A notification as a consumer receives it.
#[derive(Debug)]
struct Received {
    routing_key: String,
    message_id: Option<String>,
    persistent: bool,
    body: Value,
}

/// An app's queue bound to `roomtape.notifications` with `pattern`.
struct Subscriber {
    consumer: Consumer,
    _channel: lapin::Channel,
}

impl Subscriber {
    async fn bind(test: &TestEnv, pattern: &str) -> Self {
        let channel = test.vhost.channel().await;
        topology::declare_notifications(&channel)
            .await
            .expect("declare the exchange");
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().clone(),
                NOTIFICATIONS_EXCHANGE.into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        Self {
            consumer,
            _channel: channel,
        }
    }

    /// The next notification within `wait`, if one comes.
    async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let delivery = tokio::time::timeout(wait, self.consumer.next())
            .await
            .ok()?
            .expect("consumer open")
            .expect("delivery");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        let properties = &delivery.properties;
        Some(Received {
            routing_key: delivery.routing_key.to_string(),
            message_id: properties.message_id().as_ref().map(ToString::to_string),
            persistent: *properties.delivery_mode() == Some(2),
            body: serde_json::from_slice(&delivery.data).expect("a JSON body"),
        })
    }

    async fn next(&mut self) -> Received {
        self.next_within(Duration::from_secs(20))
            .await
            .expect("a notification in time")
    }

    /// Asserts that nothing more arrives once the outbox is relayed.
    async fn assert_no_more(&mut self, test: &TestEnv) {
        wait_relayed(test).await;
        if let Some(extra) = self.next_within(Duration::from_millis(700)).await {
            panic!("one notification too many: {extra:?}");
        }
    }
}

/// Waits until every notification written is relayed.
async fn wait_relayed(test: &TestEnv) {
    eventually(
        Duration::from_secs(20),
        "the outbox to be relayed",
        || async {
            let waiting = test
                .database
                .count("SELECT count(*) FROM notification_outbox WHERE relayed_at IS NULL")
                .await;
            (waiting == 0).then_some(())
        },
    )
    .await;
}

/// The notifications written for `egress_id`, in order: (type, body).
async fn outbox_of(test: &TestEnv, notification_ids_like: &str) -> Vec<(String, Value)> {
    let client = test.database.client().await;
    client
        .query(
            "SELECT type, body FROM notification_outbox WHERE notification_id LIKE $1 ORDER BY id",
            &[&notification_ids_like],
        )
        .await
        .expect("outbox")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

fn assert_envelope(body: &Value, kind: &str) {
    assert_eq!(body["type"], kind, "{body}");
    let stamp = body["timestamp"].as_str().expect("a timestamp");
    chrono::DateTime::parse_from_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp}: {e}"));
    let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(keys.len(), 3, "type, timestamp, data: {body}");
}

async fn publish(test: &TestEnv, key: &str, id: &str, body: &str) {
    test.vhost
        .publish(EVENTS_EXCHANGE, key, body.as_bytes(), id)
        .await;
}

#[tokio::test]
async fn one_recording_tells_started_then_ready_once_each_in_the_apis_shape() {
    let test = TestEnv::new().await;
    let mut subscriber = Subscriber::bind(&test, "recording.#").await;
    let processor = spawn_processor(&test.env()).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_note", "standup", &test.bucket.profile);
    test.bucket
        .put(&egress.key, &[7u8; 2048], "video/mp4")
        .await;

    publish(&test, "egress.started", "EV_1", &egress.started("EV_1")).await;
    let active = egress.updated("EV_2", "EGRESS_ACTIVE", 1_700_000_002_000_000_000);
    publish(&test, "egress.updated", "EV_2", &active).await;
    let started = subscriber.next().await;
    publish(&test, "egress.ended", "EV_3", &egress.ended("EV_3")).await;
    let ready = subscriber.next().await;
    // LiveKit re-sending the end and a later update under new ids, and a replayed copy of the
    // end under its own id: the recording is ready, nothing more is told.
    publish(&test, "egress.ended", "EV_4", &egress.ended("EV_4")).await;
    let late = egress.updated("EV_5", "EGRESS_ACTIVE", 1_700_000_003_000_000_000);
    publish(&test, "egress.updated", "EV_5", &late).await;
    publish(&test, "egress.ended", "EV_3", &egress.ended("EV_3")).await;
    eventually(
        Duration::from_secs(20),
        "every event to be applied",
        || async {
            let applied = test
                .database
                .count("SELECT count(*) FROM webhook_events")
                .await;
            (applied == 5).then_some(())
        },
    )
    .await;
    subscriber.assert_no_more(&test).await;

    assert_eq!(started.routing_key, "recording.started");
    assert_eq!(
        started.message_id.as_deref(),
        Some("recording.started:EG_note")
    );
    assert!(started.persistent && ready.persistent);
    assert_envelope(&started.body, "recording.started");
    assert_eq!(started.body["data"]["status"], "active");
    assert_eq!(ready.routing_key, "recording.ready");
    assert_eq!(ready.message_id.as_deref(), Some("recording.ready:EG_note"));
    assert_envelope(&ready.body, "recording.ready");

    let api = Api::start(&test, &[]).await;
    let (status, details) = api.get("/api/v1/recordings/EG_note").await;
    assert_eq!(status, 200);
    assert_eq!(
        ready.body["data"], details,
        "the recording exactly as the API shows it"
    );
    assert_has_recording_fields(&ready.body["data"]);
    assert_eq!(ready.body["data"]["status"], "ready");
    assert_eq!(ready.body["data"]["assets"][0]["file_size_bytes"], 2048);
    assert_eq!(
        ready.body["data"]["assets"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn racing_processors_and_repeated_ends_still_tell_ready_once_per_egress() {
    let test = TestEnv::new().await;
    let mut subscriber = Subscriber::bind(&test, "recording.ready").await;
    let first = spawn_processor(&test.env()).await;
    let second = spawn_processor(&test.env()).await;
    wait_ready(&first).await;
    wait_ready(&second).await;
    let mut published = 0;
    for n in 0..8 {
        let egress = Egress::new(&format!("EG_race{n}"), "busy", &test.bucket.profile);
        test.bucket.put(&egress.key, b"data", "video/mp4").await;
        // The end three times under different ids (LiveKit's retries, reconciliation's copy),
        // each twice (redeliveries): two processors take them at once.
        for copy in 0..3 {
            let id = format!("EV_{n}_{copy}");
            for _ in 0..2 {
                publish(&test, "egress.ended", &id, &egress.ended(&id)).await;
                published += 1;
            }
        }
    }
    assert_eq!(published, 48);
    eventually(
        Duration::from_secs(30),
        "every distinct end applied",
        || async {
            let applied = test
                .database
                .count("SELECT count(*) FROM webhook_events")
                .await;
            (applied == 24).then_some(())
        },
    )
    .await;
    let mut told = Vec::new();
    for _ in 0..8 {
        told.push(subscriber.next().await.message_id.expect("an id"));
    }
    subscriber.assert_no_more(&test).await;
    told.sort();
    let expected: Vec<String> = (0..8)
        .map(|n| format!("recording.ready:EG_race{n}"))
        .collect();
    assert_eq!(told, expected, "one recording.ready per egress");
}

#[tokio::test]
async fn an_end_found_by_reconciliation_and_its_late_webhook_tell_ready_once() {
    let test = TestEnv::new().await;
    let mut subscriber = Subscriber::bind(&test, "recording.#").await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let env = test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_lost", "r", &test.bucket.profile);
    test.bucket.put(&egress.key, b"video", "video/mp4").await;
    let active = egress.updated("EV_a", "EGRESS_ACTIVE", 1_700_000_002_000_000_000);
    publish(&test, "egress.updated", "EV_a", &active).await;
    assert_eq!(subscriber.next().await.routing_key, "recording.started");

    // The end's webhook is lost; LiveKit knows the egress ended, and reconciliation says so.
    let ended = egress.ended("EV_end");
    let parsed = parse::parse(ended.as_bytes()).expect("an event");
    livekit.insert(parsed.event.egress_info.expect("egress info"));
    let far_later = 4_000_000_000;
    let reconciler = reconciler_at(&env, far_later, Duration::from_secs(60)).await;
    assert_eq!(reconciler.round().await.expect("round"), 1);
    let ready = subscriber.next().await;
    assert_eq!(ready.message_id.as_deref(), Some("recording.ready:EG_lost"));

    // The webhook arrives after all, and another round runs: nothing more is told.
    publish(&test, "egress.ended", "EV_end", &ended).await;
    let later = reconciler_at(&env, far_later + 3600, Duration::from_secs(60)).await;
    assert_eq!(later.round().await.expect("round"), 0, "ready is final");
    eventually(
        Duration::from_secs(20),
        "the late webhook applied",
        || async {
            let applied = test
                .database
                .count("SELECT count(*) FROM webhook_events WHERE event_id = 'EV_end'")
                .await;
            (applied == 1).then_some(())
        },
    )
    .await;
    subscriber.assert_no_more(&test).await;
}

#[tokio::test]
async fn failures_streams_deletes_and_finished_rooms_are_each_told_once() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let step = |body: String| {
        let processor = &processor;
        async move {
            handle(processor, &body)
                .await
                .unwrap_or_else(|e| panic!("{e}: {body}"));
        }
    };

    let empty = Egress::new("EG_empty", "r", &test.bucket.profile);
    test.bucket.put(&empty.key, b"", "video/mp4").await;
    step(empty.ended("EV_empty")).await;
    step(empty.ended("EV_empty_again")).await;
    let told = outbox_of(&test, "%:EG_empty").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, "recording.failed");
    assert_envelope(&told[0].1, "recording.failed");
    let error = told[0].1["data"]["error"].as_str().expect("why");
    assert!(error.contains("empty (0 bytes)"), "{error}");

    let stream = Egress::new("EG_stream", "r", &test.bucket.profile);
    let streams = serde_json::json!({"streamResults": [{"url": "rtmp://live.example.com/app/k",
        "status": "FINISHED", "duration": "60000000000"}]});
    step(stream.ended_with("EV_stream", streams.clone())).await;
    step(stream.ended_with("EV_stream_again", streams)).await;
    let told = outbox_of(&test, "%:EG_stream").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, "recording.stopped");
    assert_eq!(told[0].1["data"]["status"], "stopped");
    assert_eq!(told[0].1["data"]["is_processed"], true);

    // The true peak: two viewers at once, then one left and a third came (all within a second).
    for (id, who, joined) in [
        ("EV_j1", "a", true),
        ("EV_j2", "b", true),
        ("EV_l1", "a", false),
    ] {
        let name = if joined {
            "participant_joined"
        } else {
            "participant_left"
        };
        step(participant_event(name, id, "class", who, "STANDARD")).await;
    }
    step(participant_event(
        "participant_joined",
        "EV_j3",
        "class",
        "c",
        "STANDARD",
    ))
    .await;
    step(room_event("room_finished", "EV_fin", "class", "RM_test")).await;
    step(room_event(
        "room_finished",
        "EV_fin_again",
        "class",
        "RM_test",
    ))
    .await;
    let told = outbox_of(&test, "room.finished:%").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_envelope(&told[0].1, "room.finished");
    let data = &told[0].1["data"];
    assert_eq!(data["room_name"], "class");
    assert_eq!(data["room_sid"], "RM_test");
    assert_eq!(
        data["max_participants"], 2,
        "the true peak, not the three joins"
    );
    assert_eq!(
        test.database.room("class").await,
        ("finished".to_owned(), 0, 2)
    );
    assert!(data["finished_at"].is_string(), "{data}");

    let gone = Egress::new("EG_gone", "lecture", &test.bucket.profile);
    test.bucket.put(&gone.key, b"video", "video/mp4").await;
    step(gone.ended("EV_gone")).await;
    let api = Api::start(&test, &[]).await;
    for expected in [204, 404] {
        let response = api
            .send(
                reqwest::Method::DELETE,
                "/api/v1/recordings/EG_gone",
                Some(WRITE),
            )
            .await;
        assert_eq!(response.status(), expected);
    }
    let told = outbox_of(&test, "%:EG_gone").await;
    let kinds: Vec<&str> = told.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["recording.ready", "recording.deleted"]);
    assert_envelope(&told[1].1, "recording.deleted");
    let data = &told[1].1["data"];
    assert_eq!(data["egress_id"], "EG_gone");
    assert_eq!(data["room_name"], "lecture");
    assert_eq!(data["by"], "api");
    assert!(data["deleted_at"].is_string(), "{data}");
}

#[tokio::test]
async fn a_notification_committed_while_the_relay_cannot_publish_arrives_once_after_restart() {
    let test = TestEnv::new().await;
    let mut subscriber = Subscriber::bind(&test, "#").await;
    // The change commits (stepped without a broker); the processor's broker link is down.
    let egress = Egress::new("EG_cut", "r", &test.bucket.profile);
    test.bucket.put(&egress.key, b"video", "video/mp4").await;
    handle(&event_processor(&test.env()).await, &egress.ended("EV_cut"))
        .await
        .expect("applied");
    let proxy = TcpProxy::start("127.0.0.1:5672".into()).await;
    let amqp = proxy.through(&test.vhost.amqp_url);
    proxy.cut();
    let processor = spawn_processor(&test.env_with(&[("AMQP_URL", amqp.as_str())])).await;
    assert!(
        subscriber
            .next_within(Duration::from_secs(1))
            .await
            .is_none(),
        "nothing is relayed while the link is cut"
    );
    processor.kill();

    proxy.restore();
    let restarted = spawn_processor(&test.env_with(&[("AMQP_URL", amqp.as_str())])).await;
    wait_ready(&restarted).await;
    let ready = subscriber.next().await;
    assert_eq!(ready.message_id.as_deref(), Some("recording.ready:EG_cut"));
    subscriber.assert_no_more(&test).await;

    // A relay that published and died before its commit: the row is still unrelayed, so it is
    // published again, under the same id for the consumer to recognise.
    let client = test.database.client().await;
    client
        .execute("UPDATE notification_outbox SET relayed_at = NULL", &[])
        .await
        .expect("as if the commit was lost");
    let again = subscriber.next().await;
    assert_eq!(again.message_id, ready.message_id);
    assert_eq!(again.body, ready.body);
    subscriber.assert_no_more(&test).await;
}
