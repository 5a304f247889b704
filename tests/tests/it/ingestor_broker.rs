//! The ingestor answers 2xx only for what the broker confirmed: a broker it cannot reach or a
//! message no queue takes is a 503 that LiveKit will retry.

use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use roomtape_shared::clock::Clock;
use roomtape_shared::queue::topology::EVENTS_QUEUE;
use roomtape_tests::apps::wait_ready;
use roomtape_tests::livekit::{post_webhook, sign_webhook, webhook_request};
use roomtape_tests::proxy::TcpProxy;
use roomtape_tests::{eventually, spawn_ingestor, TestEnv};

fn event(name: &str, id: &str) -> String {
    format!(
        r#"{{"event":"{name}","room":{{"name":"standup"}},"id":"{id}","createdAt":"1700000000"}}"#
    )
}

#[tokio::test]
async fn broker_down_is_503_and_broker_back_is_200_without_a_restart() {
    let test = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672".into()).await;
    let amqp_url = proxy.through(&test.vhost.amqp_url);
    let app = spawn_ingestor(&test.env_with(&[("AMQP_URL", &amqp_url)]), Clock::System);
    wait_ready(&app).await;

    proxy.cut();
    let down = event("room_started", "EV_down");
    let token = sign_webhook(down.as_bytes());
    let response = eventually(
        Duration::from_secs(10),
        "a 503 while the broker is away",
        || {
            let (app, down, token) = (&app, &down, &token);
            async move {
                let response = post_webhook(app, down.as_bytes(), token).await;
                (response.status() == 503).then_some(response)
            }
        },
    )
    .await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("1")
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        body["error"]["message"], "the event could not be queued; retry later",
        "the broker's error stays in the log"
    );
    let ready = reqwest::get(app.url("/readyz")).await.expect("readyz");
    assert_eq!(
        ready.status(),
        503,
        "/readyz tells that publishing does not work"
    );

    proxy.restore();
    eventually(
        Duration::from_secs(15),
        "a 200 once the broker is back",
        || {
            let (app, down, token) = (&app, &down, &token);
            async move {
                (post_webhook(app, down.as_bytes(), token).await.status() == 200).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await,
        1,
        "queued exactly once"
    );
}

#[tokio::test]
async fn an_event_no_queue_takes_is_503_not_200() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&app).await;
    // Break the topology under the running ingestor: egress.* now routes nowhere.
    let channel = test.vhost.channel().await;
    channel
        .queue_delete(EVENTS_QUEUE.into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");

    let body = event("egress_ended", "EV_lost");
    let response = post_webhook(&app, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn events_roomtape_does_not_consume_are_acknowledged_but_not_queued() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&app).await;
    let body = event("track_published", "EV_track");
    let response = post_webhook(&app, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
    assert_eq!(
        response.status(),
        200,
        "a 503 would make LiveKit retry it forever"
    );
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 0);
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_publishes() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&app).await;
    let client = reqwest::Client::new();
    let url = app.url("/webhooks/livekit");
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let body = event("participant_joined", &format!("EV_p{i}"));
            let token = sign_webhook(body.as_bytes());
            tokio::spawn(webhook_request(&client, &url, body, &token).send())
        })
        .collect();
    // Stop once publishing is under way, with requests still arriving.
    eventually(
        Duration::from_secs(10),
        "the first event to be queued",
        || async { (test.vhost.ready_count(EVENTS_QUEUE).await > 0).then_some(()) },
    )
    .await;
    app.stop().await.expect("clean stop");

    let mut accepted = 0;
    for request in requests {
        if request
            .await
            .expect("task")
            .is_ok_and(|r| r.status() == 200)
        {
            accepted += 1;
        }
    }
    assert!(accepted > 0, "some requests were answered before the stop");
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await as usize,
        accepted,
        "every 200 was queued, nothing more"
    );
}
