//! The ingestor's publisher pool against a real broker: each HTTP worker publishes on its own
//! channels in turn, a channel or connection that fails is replaced while the others serve (a
//! worker whose connection is down publishes on another's), and past the in-flight limit requests
//! are refused at once with 503, never answered 2xx without a confirm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::ExchangeDeleteOptions;
use roomtape_ingestor::config::IngestorSettings;
use roomtape_ingestor::metrics::IngestorMetrics;
use roomtape_ingestor::queue::publish::{PublishError, Published, Publisher};
use roomtape_ingestor::webhook::verify::Verifier;
use roomtape_ingestor::webhook::VerifiedEvent;
use roomtape_shared::clock::Clock;
use roomtape_shared::queue::topology::{EVENTS_EXCHANGE, EVENTS_QUEUE};
use roomtape_tests::apps::{counter_sum, wait_ready};
use roomtape_tests::livekit::{post_webhook, sign_webhook, webhook_request};
use roomtape_tests::proxy::TcpProxy;
use roomtape_tests::{eventually, spawn_ingestor, TestApp, TestEnv};

fn event(id: &str) -> String {
    format!(r#"{{"event":"room_started","room":{{"name":"standup"}},"id":"{id}"}}"#)
}

/// A room event with 8 KiB of room metadata.
fn padded_event(id: &str) -> String {
    let metadata = "m".repeat(8 * 1024);
    format!(
        r#"{{"event":"room_started","room":{{"name":"standup","metadata":"{metadata}"}},"id":"{id}"}}"#
    )
}

async fn post(app: &TestApp, id: &str) -> reqwest::Response {
    let body = event(id);
    post_webhook(app, body.as_bytes(), &sign_webhook(body.as_bytes())).await
}

async fn channel_publishes(app: &TestApp, channel: usize) -> f64 {
    let label = format!("channel=\"{channel}\"");
    counter_sum(app, "roomtape_publish_channel_publishes_total", &[&label]).await
}

async fn usable_channels(app: &TestApp) -> f64 {
    counter_sum(app, "roomtape_publish_channels_usable", &[]).await
}

/// The ingestor's publish connections, one per HTTP worker (not its short-lived topology ones).
const PUBLISH_CONNECTIONS: &str = "roomtape-ingestor-publish";

async fn wait_all_usable(app: &TestApp, channels: f64) {
    eventually(
        Duration::from_secs(15),
        "every pool channel usable",
        || async { (usable_channels(app).await == channels).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn publishes_spread_over_the_pool_and_a_closed_connection_is_replaced_while_the_others_serve()
{
    let test = TestEnv::new().await;
    let env = test.env_with(&[
        ("INGESTOR_WORKERS", "2"),
        ("INGESTOR_PUBLISH_CHANNELS", "4"),
    ]);
    let app = spawn_ingestor(&env, Clock::System);
    wait_ready(&app).await;
    wait_all_usable(&app, 4.0).await;

    // Each request on a connection of its own: the server hands connections to its two workers
    // in turn, and each worker takes its two channels (0 and 2, 1 and 3) in turn.
    for i in 0..40 {
        assert_eq!(post(&app, &format!("EV_spread{i}")).await.status(), 200);
    }
    for channel in 0..4 {
        assert_eq!(
            channel_publishes(&app, channel).await,
            10.0,
            "channel {channel} carried a quarter"
        );
    }

    let connections = eventually(
        Duration::from_secs(15),
        "the management API to list both workers' connections",
        || async {
            let listed = test.vhost.connections(PUBLISH_CONNECTIONS).await;
            (listed.len() == 2).then_some(listed)
        },
    )
    .await;
    test.vhost.close_connection(&connections[0]).await;
    // At once, before the keeper has noticed: a request that lands on a dead channel (half of
    // them reach the worker whose connection was closed) is carried by a live one instead of
    // failing.
    for i in 0..20 {
        let response = post(&app, &format!("EV_during{i}")).await;
        assert_eq!(response.status(), 200, "the other connection serves");
    }
    wait_all_usable(&app, 4.0).await;
    eventually(
        Duration::from_secs(15),
        "a replacement connection",
        || async {
            let listed = test.vhost.connections(PUBLISH_CONNECTIONS).await;
            (listed.len() == 2 && !listed.contains(&connections[0])).then_some(())
        },
    )
    .await;
    for i in 0..8 {
        assert_eq!(post(&app, &format!("EV_after{i}")).await.status(), 200);
    }
    let queued = test.vhost.ready_count(EVENTS_QUEUE).await;
    assert!(
        (68..=88).contains(&queued),
        "every 200 is queued (a publish retried on another channel may be queued twice): {queued}"
    );
}

#[tokio::test]
async fn a_channel_closed_by_a_channel_error_is_replaced_on_its_connection() {
    let test = TestEnv::new().await;
    let env = test.env_with(&[
        ("INGESTOR_WORKERS", "1"),
        ("INGESTOR_PUBLISH_CHANNELS", "2"),
    ]);
    let app = spawn_ingestor(&env, Clock::System);
    wait_ready(&app).await;
    wait_all_usable(&app, 2.0).await;
    let connections = eventually(Duration::from_secs(15), "the connection listed", || async {
        let listed = test.vhost.connections(PUBLISH_CONNECTIONS).await;
        (listed.len() == 1).then_some(listed)
    })
    .await;

    // Publishing to a missing exchange is a channel error (404): the broker closes the channel
    // but not its connection.
    let channel = test.vhost.channel().await;
    channel
        .exchange_delete(EVENTS_EXCHANGE.into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    let response = post(&app, "EV_lost").await;
    assert_eq!(response.status(), 503, "no channel could take it");

    // Each replacement declares the topology again, so publishing recovers on its own.
    eventually(Duration::from_secs(15), "a 200 again", || async {
        (post(&app, "EV_back").await.status() == 200).then_some(())
    })
    .await;
    assert!(
        counter_sum(&app, "roomtape_publish_channel_replacements_total", &[]).await >= 1.0,
        "the failed channels were replaced"
    );
    assert_eq!(
        test.vhost.connections(PUBLISH_CONNECTIONS).await,
        connections,
        "on the same connection"
    );
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 1);
}

#[tokio::test]
async fn past_the_in_flight_limit_requests_get_503_at_once_and_nothing_unconfirmed_is_200() {
    let test = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672".into()).await;
    let amqp_url = proxy.through(&test.vhost.amqp_url);
    let env = test.env_with(&[
        ("AMQP_URL", &amqp_url),
        ("INGESTOR_MAX_IN_FLIGHT", "3"),
        ("PUBLISH_CONFIRM_TIMEOUT_MS", "30000"),
    ]);
    let app = spawn_ingestor(&env, Clock::System);
    wait_ready(&app).await;

    // The broker takes the messages but its confirms do not come back.
    proxy.hold();
    let waiting: Vec<_> = (0..3)
        .map(|i| {
            let body = event(&format!("EV_held{i}"));
            let token = sign_webhook(body.as_bytes());
            let url = app.url("/webhooks/livekit");
            let request = webhook_request(&reqwest::Client::new(), &url, body, &token).send();
            tokio::spawn(request)
        })
        .collect();
    eventually(
        Duration::from_secs(10),
        "three publishes in flight",
        || async {
            (counter_sum(&app, "roomtape_webhooks_in_flight", &[]).await == 3.0).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    let refused = post(&app, "EV_over").await;
    assert_eq!(refused.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not queued: {:?}",
        started.elapsed()
    );
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(
        waiting.iter().all(|request| !request.is_finished()),
        "no answer before the broker's confirm"
    );
    assert_eq!(
        counter_sum(&app, "roomtape_webhook_overload_rejections_total", &[]).await,
        1.0
    );

    proxy.release();
    for request in waiting {
        let response = request.await.expect("task").expect("answer");
        assert_eq!(response.status(), 200, "answered once confirmed");
    }
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await,
        3,
        "the refused event was not published"
    );
    assert_eq!(post(&app, "EV_over").await.status(), 200, "room again");
}

/// RabbitMQ stops reading a publisher's socket while it blocks it (a resource alarm); the
/// ingestor's connection then queues frames until its outgoing queue (8,192) is full, and
/// publishes wait for room there. A publish given up while it waits (its confirm timeout, or
/// its request dropped) must not leave the channel numbering publishes one ahead of the broker:
/// every later publish would be settled by another's confirm, and on a quiet channel none.
#[tokio::test]
async fn publishes_given_up_while_the_broker_reads_nothing_leave_every_later_confirm_its_own() {
    let test = TestEnv::new().await;
    let proxy = TcpProxy::start_with_small_buffers("127.0.0.1:5672".into()).await;
    let amqp_url = proxy.through(&test.vhost.amqp_url);
    let settings =
        IngestorSettings::from_env(&test.env_with(&[("AMQP_URL", &amqp_url)])).expect("settings");
    let metrics = IngestorMetrics::register(&mut roomtape_shared::metrics::registry());
    // One worker (this test's thread) with one channel, so every publish shares its numbering.
    let publisher = Arc::new(Publisher::new(
        settings.amqp.clone(),
        Duration::from_millis(1_500),
        Duration::ZERO,
        1,
        1,
        metrics,
    ));
    publisher.attach_worker();
    let ready = || async { publisher.unready_reason().is_none().then_some(()) };
    eventually(Duration::from_secs(15), "the channel open", ready).await;
    let verifier = Verifier::new(&settings.keys, Clock::System);
    let verified = |body: String| {
        let token = sign_webhook(body.as_bytes());
        let authenticated = verifier.authenticate(Some(&token)).expect("token");
        let event = authenticated.check_body(body.into()).expect("body");
        VerifiedEvent::parse(event).expect("event")
    };

    proxy.stall();
    // More than the 8,192 frames the connection queues, plus what the socket buffers hold
    // (bodies of 8 KiB fill them in a few hundred): the last ones wait for room until their
    // confirm timeout gives them up.
    let burst: Vec<_> = (0..9_000)
        .map(|i| {
            let id = format!("EV_burst{i}");
            let event = verified(padded_event(&id));
            let publisher = publisher.clone();
            tokio::spawn(async move { (id, publisher.publish(event.message()).await) })
        })
        .collect();
    let (mut confirmed, mut timed_out) = (Vec::new(), 0);
    for publish in burst {
        match publish.await.expect("task") {
            (id, Ok(Published::Queued)) => confirmed.push(id),
            (_, Err(PublishError::Timeout(_))) => timed_out += 1,
            _ => {}
        }
    }
    assert!(
        timed_out > 0,
        "the stall made publishes wait past their confirm timeout"
    );
    proxy.unstall();

    eventually(Duration::from_secs(30), "a usable channel again", ready).await;
    for i in 0..20 {
        let id = format!("EV_quiet{i}");
        let outcome = publisher.publish(verified(event(&id)).message()).await;
        assert!(
            matches!(outcome, Ok(Published::Queued)),
            "{id}, published alone after the stall, is confirmed: {outcome:?}"
        );
        confirmed.push(id);
    }

    // The broker may also hold burst publishes answered 503 (their frames went out after the
    // stall): LiveKit sends those again and consumers dedupe. Every confirmed one must be there,
    // byte for byte.
    let queued: HashMap<String, Vec<u8>> = test
        .vhost
        .drain(EVENTS_QUEUE)
        .await
        .into_iter()
        .filter_map(|m| {
            Some((
                m.properties.message_id().as_ref()?.to_string(),
                m.data.clone(),
            ))
        })
        .collect();
    for id in &confirmed {
        let sent = match id.starts_with("EV_burst") {
            true => padded_event(id),
            false => event(id),
        };
        assert_eq!(
            queued.get(id).map(Vec::as_slice),
            Some(sent.as_bytes()),
            "{id} was answered as confirmed: it is on the queue as sent"
        );
    }
}
