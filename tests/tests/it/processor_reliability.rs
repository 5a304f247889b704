//! The processor under failure: competing consumers, missing objects, a database outage and
//! poison messages. Nothing is lost, nothing is applied twice.

use std::time::Duration;

use lapin::types::AMQPValue;
use roomtape_processor::db::transaction::Transaction;
use roomtape_shared::queue::topology::{DEAD_QUEUE, EVENTS_EXCHANGE, EVENTS_QUEUE};
use roomtape_tests::apps::{counter_sum, wait_ready};
use roomtape_tests::fixtures::{participant_event, Egress};
use roomtape_tests::proxy::TcpProxy;
use roomtape_tests::{eventually, spawn_processor, TestEnv};

async fn count(test: &TestEnv, sql: &str) -> i64 {
    test.database.count(sql).await
}

#[tokio::test]
async fn two_processors_consuming_at_once_apply_each_event_once() {
    let test = TestEnv::new().await;
    let first = spawn_processor(&test.env()).await;
    let second = spawn_processor(&test.env()).await;
    wait_ready(&first).await;
    wait_ready(&second).await;

    let mut published = 0;
    for n in 0..20 {
        let egress = Egress::new(&format!("EG_{n}"), "busy", &test.bucket.profile);
        test.bucket.put(&egress.key, b"data", "video/mp4").await;
        let events = [
            (
                format!("EV_{n}_s"),
                "egress.started",
                egress.started(&format!("EV_{n}_s")),
            ),
            (
                format!("EV_{n}_e"),
                "egress.ended",
                egress.ended(&format!("EV_{n}_e")),
            ),
            (
                format!("EV_{n}_j"),
                "participant.joined",
                participant_event(
                    "participant_joined",
                    &format!("EV_{n}_j"),
                    "busy",
                    &format!("u{n}"),
                    "STANDARD",
                ),
            ),
        ];
        for (id, key, body) in &events {
            // Each twice, as LiveKit retries and redeliveries do.
            for _ in 0..2 {
                test.vhost
                    .publish(EVENTS_EXCHANGE, key, body.as_bytes(), id)
                    .await;
                published += 1;
            }
        }
    }
    assert_eq!(published, 120);
    eventually(
        Duration::from_secs(30),
        "all 60 distinct events to be processed",
        || async {
            (count(&test, "SELECT count(*) FROM webhook_events").await == 60).then_some(())
        },
    )
    .await;
    eventually(Duration::from_secs(10), "the queue to drain", || async {
        (test.vhost.ready_count(EVENTS_QUEUE).await == 0).then_some(())
    })
    .await;
    let mut duplicates = 0.0;
    for processor in [&first, &second] {
        duplicates += counter_sum(
            processor,
            "roomtape_messages_total",
            &[r#"outcome="duplicate""#],
        )
        .await;
    }
    assert_eq!(
        duplicates, 60.0,
        "every second copy was recognised, none applied twice"
    );
    assert_eq!(
        count(
            &test,
            "SELECT count(*) FROM recordings WHERE status = 'ready'"
        )
        .await,
        20
    );
    assert_eq!(count(&test, "SELECT count(*) FROM assets").await, 20);
    assert_eq!(
        count(
            &test,
            "SELECT participant_count::bigint FROM rooms WHERE room_name = 'busy'"
        )
        .await,
        20
    );
}

#[tokio::test]
async fn a_missing_object_is_retried_then_the_recording_fails_with_the_reason() {
    let test = TestEnv::new().await;
    let processor = spawn_processor(&test.env()).await; // RETRY_DELAYS=100ms,200ms
    wait_ready(&processor).await;
    let egress = Egress::new("EG_missing", "r", &test.bucket.profile);
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            egress.ended("EV_m").as_bytes(),
            "EV_m",
        )
        .await;

    let error: String = eventually(Duration::from_secs(20), "the recording to fail", || async {
        let client = test.database.client().await;
        let row = client
            .query_opt(
                "SELECT error FROM recordings WHERE egress_id = 'EG_missing' AND status = 'failed'",
                &[],
            )
            .await
            .expect("query")?;
        row.get(0)
    })
    .await;
    assert!(error.contains("does not exist"), "{error}");
    assert!(
        error.contains("after 3 attempts"),
        "tried once, then after 100ms and 200ms: {error}"
    );
    assert_eq!(
        test.vhost.ready_count(DEAD_QUEUE).await,
        0,
        "handled, not dead-lettered"
    );
}

#[tokio::test]
async fn an_object_that_appears_during_the_retries_makes_the_recording_ready() {
    let test = TestEnv::new().await;
    let processor = spawn_processor(&test.env_with(&[("RETRY_DELAYS", "300ms,1s,5s")])).await;
    wait_ready(&processor).await;
    let egress = Egress::new("EG_late", "r", &test.bucket.profile);
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            egress.ended("EV_late").as_bytes(),
            "EV_late",
        )
        .await;
    eventually(
        Duration::from_secs(10),
        "the recording to be stopped while it waits",
        || async {
            (count(
                &test,
                "SELECT count(*) FROM recordings WHERE status = 'stopped'",
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    test.bucket
        .put(&egress.key, b"late upload", "video/mp4")
        .await;
    eventually(
        Duration::from_secs(15),
        "the recording to be ready",
        || async {
            (count(
                &test,
                "SELECT count(*) FROM recordings WHERE status = 'ready' AND file_size_bytes = 11",
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn nothing_is_lost_while_postgres_is_away() {
    let test = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".into()).await;
    let database_url = proxy.through(&test.database.url());
    let processor = spawn_processor(&test.env_with(&[("DATABASE_URL", &database_url)])).await;
    wait_ready(&processor).await;

    proxy.cut();
    for n in 0..10 {
        let id = format!("EV_down{n}");
        let body = participant_event(
            "participant_joined",
            &id,
            "outage",
            &format!("u{n}"),
            "STANDARD",
        );
        test.vhost
            .publish(EVENTS_EXCHANGE, "participant.joined", body.as_bytes(), &id)
            .await;
    }
    let ready = reqwest::get(processor.url("/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503, "not ready while the database is away");
    proxy.restore();

    eventually(
        Duration::from_secs(30),
        "every event once the database is back",
        || async {
            (count(&test, "SELECT count(*) FROM webhook_events").await == 10).then_some(())
        },
    )
    .await;
    assert_eq!(
        count(
            &test,
            "SELECT participant_count::bigint FROM rooms WHERE room_name = 'outage'"
        )
        .await,
        10
    );
    assert_eq!(
        test.vhost.ready_count(DEAD_QUEUE).await,
        0,
        "an outage is not the messages' fault"
    );
}

#[tokio::test]
async fn poison_goes_to_the_dead_letter_queue_at_once_with_its_error() {
    let test = TestEnv::new().await;
    let processor = spawn_processor(&test.env()).await;
    wait_ready(&processor).await;
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            b"not json at all",
            "EV_poison",
        )
        .await;
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "room.started",
            br#"{"no":"event"}"#,
            "EV_poison2",
        )
        .await;

    eventually(
        Duration::from_secs(10),
        "both messages in roomtape.dead",
        || async { (test.vhost.ready_count(DEAD_QUEUE).await == 2).then_some(()) },
    )
    .await;
    let dead = test.vhost.get(DEAD_QUEUE).await.expect("dead letter");
    assert_eq!(dead.delivery.data, b"not json at all", "kept byte for byte");
    let headers = dead.delivery.properties.headers().clone().expect("headers");
    match headers.inner().get("x-roomtape-error") {
        Some(AMQPValue::LongString(error)) => {
            assert!(error.to_string().contains("not JSON"), "{error}")
        }
        other => panic!("x-roomtape-error: {other:?}"),
    }
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 0);
    assert_eq!(count(&test, "SELECT count(*) FROM webhook_events").await, 0);
}

#[tokio::test]
async fn stopping_mid_stream_and_starting_again_loses_nothing() {
    let test = TestEnv::new().await;
    // One batch (of up to the prefetch) at a time, and enough events that the stop lands
    // mid-stream with deliveries prefetched but not started.
    const EVENTS: i64 = 1000;
    let slow = [("PROCESSOR_CONCURRENCY", "1"), ("PROCESSOR_PREFETCH", "10")];
    // The queue is filled before the processor consumes it (a first one declares it), so the
    // processor cannot simply keep up with the publisher.
    let declaring = spawn_processor(&test.env()).await;
    wait_ready(&declaring).await;
    declaring.stop().await.expect("stopped");
    let events: Vec<(String, Vec<u8>)> = (0..EVENTS)
        .map(|n| {
            let id = format!("EV_stop{n}");
            let body = participant_event(
                "participant_joined",
                &id,
                "restart",
                &format!("u{n}"),
                "STANDARD",
            );
            (id, body.into_bytes())
        })
        .collect();
    test.vhost
        .publish_all(EVENTS_EXCHANGE, "participant.joined", &events)
        .await;
    let first = spawn_processor(&test.env_with(&slow)).await;
    eventually(
        Duration::from_secs(20),
        "some events to be processed",
        || async { (count(&test, "SELECT count(*) FROM webhook_events").await > 0).then_some(()) },
    )
    .await;
    first.stop().await.expect("graceful stop");

    // Unstarted deliveries return to the queue as the channel closes.
    let (processed, waiting) = eventually(
        Duration::from_secs(10),
        "every event processed or queued",
        || async {
            let processed = count(&test, "SELECT count(*) FROM webhook_events").await;
            let waiting = i64::from(test.vhost.ready_count(EVENTS_QUEUE).await);
            (processed + waiting >= EVENTS).then_some((processed, waiting))
        },
    )
    .await;
    assert!(
        waiting > 0 && processed > 0,
        "the stop came mid-stream ({processed} processed)"
    );

    let second = spawn_processor(&test.env()).await;
    wait_ready(&second).await;
    eventually(
        Duration::from_secs(30),
        "the rest to be processed",
        || async {
            (count(&test, "SELECT count(*) FROM webhook_events").await == EVENTS).then_some(())
        },
    )
    .await;
    assert_eq!(
        count(
            &test,
            "SELECT participant_count::bigint FROM rooms WHERE room_name = 'restart'"
        )
        .await,
        EVENTS
    );
}

/// A transaction that never ends (an error, a dropped future) must not go back to the pool: the
/// next user of the connection would run, and commit, inside it.
#[tokio::test]
async fn an_unfinished_transaction_writes_nothing_and_leaves_the_pool() {
    let test = TestEnv::new().await;
    let client = test.database.client().await;
    client
        .batch_execute("CREATE TABLE marks (id int)")
        .await
        .expect("table");
    let pool = roomtape_shared::db::pool(&test.database.settings).expect("pool");

    let unfinished = Transaction::new(pool.get().await.expect("connection"));
    unfinished
        .begin_with(insert_mark(unfinished.client(), 1))
        .await
        .expect("begun with the insert");
    drop(unfinished);
    assert_eq!(pool.status().size, 0, "its connection left the pool");

    let committed = Transaction::new(pool.get().await.expect("connection"));
    committed
        .begin_with(insert_mark(committed.client(), 2))
        .await
        .expect("begun with the insert");
    committed.commit().await.expect("committed");
    assert_eq!(
        pool.status().size,
        1,
        "a finished transaction's connection goes back"
    );
    let ids: Vec<i32> = client
        .query("SELECT id FROM marks", &[])
        .await
        .expect("marks")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        ids,
        [2],
        "the unfinished transaction's insert was rolled back"
    );
}

async fn insert_mark(
    client: &tokio_postgres::Client,
    id: i32,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("INSERT INTO marks VALUES ($1)", &[&id])
        .await
}
