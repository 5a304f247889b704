//! The webhook endpoint against a real broker: what is accepted arrives byte for byte with the
//! contract's properties; what is rejected gets its status and leaves the queue empty.

use lapin::types::AMQPValue;
use roomtape_shared::clock::Clock;
use roomtape_shared::queue::topology::EVENTS_QUEUE;
use roomtape_tests::apps::{metrics_text, wait_ready};
use roomtape_tests::livekit::{
    post_webhook, python_sign_webhooks, server_claims, sign_claims, sign_webhook, sign_with,
};
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{spawn_ingestor, TestApp, TestEnv};

fn egress_event(id: &str) -> String {
    // Go protojson style: camelCase, int64 as strings, a space after some commas.
    format!(
        r#"{{"event":"egress_ended", "egressInfo":{{"egressId":"EG_{id}","roomName":"standup","status":"EGRESS_COMPLETE","updatedAt":"1700001803456789012"}}, "id":"EV_{id}", "createdAt":"1700001803"}}"#
    )
}

async fn started(test: &TestEnv) -> TestApp {
    let app = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&app).await;
    app
}

#[tokio::test]
async fn webhooks_signed_by_the_official_python_sdk_arrive_byte_identical() {
    let test = TestEnv::new().await;
    let app = started(&test).await;
    let bodies: Vec<String> = (0..3).map(|i| egress_event(&format!("py{i}"))).collect();
    let tokens = python_sign_webhooks(API_KEY, API_SECRET, &bodies);

    for (body, token) in bodies.iter().zip(&tokens) {
        let response = post_webhook(&app, body.as_bytes(), token).await;
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer["event"], "egress_ended");
    }
    for (i, body) in bodies.iter().enumerate() {
        let message = test.vhost.get(EVENTS_QUEUE).await.expect("queued");
        let properties = &message.delivery.properties;
        assert_eq!(
            message.delivery.data,
            body.as_bytes(),
            "published unchanged"
        );
        assert_eq!(message.delivery.routing_key.as_str(), "egress.ended");
        assert_eq!(
            properties.message_id().as_ref().map(|s| s.to_string()),
            Some(format!("EV_py{i}"))
        );
        assert_eq!(
            properties.kind().as_ref().map(|s| s.to_string()).as_deref(),
            Some("egress_ended")
        );
        assert_eq!(*properties.timestamp(), Some(1_700_001_803));
        assert_eq!(
            properties
                .content_type()
                .as_ref()
                .map(|s| s.to_string())
                .as_deref(),
            Some("application/json")
        );
        assert_eq!(*properties.delivery_mode(), Some(2));
        let headers = properties.headers().as_ref().expect("headers");
        match headers.inner().get("x-livekit-key") {
            Some(AMQPValue::LongString(key)) => assert_eq!(key.to_string(), API_KEY),
            other => panic!("x-livekit-key header: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_django_path_and_bearer_prefix_are_accepted() {
    let test = TestEnv::new().await;
    let app = started(&test).await;
    let body = egress_event("alias");
    let response = reqwest::Client::new()
        .post(app.url("/api/webhooks/livekit/"))
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "authorization",
            format!("Bearer {}", sign_webhook(body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 1);
}

#[tokio::test]
async fn a_retried_event_is_answered_200_and_published_once() {
    let test = TestEnv::new().await;
    let app = started(&test).await;
    let body = egress_event("dup");
    for _ in 0..3 {
        // LiveKit signs every retry afresh; the event id stays.
        let response = post_webhook(&app, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 1);
}

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    authorization: Option<String>,
    status: u16,
    code: &'static str,
}

fn rejection_cases() -> Vec<Case> {
    let good = egress_event("bad").into_bytes();
    let signed = |body: &[u8]| Some(sign_webhook(body));
    let mut expired = server_claims(API_KEY, &good);
    expired["exp"] = serde_json::json!(1_000_000);
    let mut no_sha = server_claims(API_KEY, &good);
    no_sha.as_object_mut().expect("object").remove("sha256");
    let case = |name, content_type, body: &[u8], authorization, status, code| Case {
        name,
        content_type,
        body: body.to_vec(),
        authorization,
        status,
        code,
    };
    vec![
        case(
            "no content type",
            None,
            &good,
            signed(&good),
            415,
            "unsupported_media_type",
        ),
        case(
            "text/plain",
            Some("text/plain"),
            &good,
            signed(&good),
            415,
            "unsupported_media_type",
        ),
        case(
            "no token",
            Some("application/webhook+json"),
            &good,
            None,
            401,
            "unauthorized",
        ),
        case(
            "not a jwt",
            Some("application/webhook+json"),
            &good,
            Some("abc.def".into()),
            401,
            "unauthorized",
        ),
        case(
            "wrong secret",
            Some("application/webhook+json"),
            &good,
            Some(sign_claims(
                &server_claims(API_KEY, &good),
                "not-the-secret",
            )),
            401,
            "unauthorized",
        ),
        case(
            "unknown key",
            Some("application/webhook+json"),
            &good,
            Some(sign_claims(&server_claims("APIother", &good), API_SECRET)),
            401,
            "unauthorized",
        ),
        case(
            "HS384",
            Some("application/webhook+json"),
            &good,
            Some(sign_with(
                "HS384",
                &server_claims(API_KEY, &good),
                API_SECRET,
            )),
            401,
            "unauthorized",
        ),
        case(
            "HS512",
            Some("application/webhook+json"),
            &good,
            Some(sign_with(
                "HS512",
                &server_claims(API_KEY, &good),
                API_SECRET,
            )),
            401,
            "unauthorized",
        ),
        case(
            "expired",
            Some("application/webhook+json"),
            &good,
            Some(sign_claims(&expired, API_SECRET)),
            401,
            "unauthorized",
        ),
        case(
            "no sha256",
            Some("application/webhook+json"),
            &good,
            Some(sign_claims(&no_sha, API_SECRET)),
            401,
            "unauthorized",
        ),
        case(
            "body changed after signing",
            Some("application/webhook+json"),
            b"{\"event\":\"room_started\"}",
            signed(&good),
            401,
            "unauthorized",
        ),
        case(
            "not json",
            Some("application/webhook+json"),
            b"invalid body",
            signed(b"invalid body"),
            400,
            "bad_request",
        ),
        case(
            "no event name",
            Some("application/webhook+json"),
            b"{\"id\":\"EV_1\"}",
            signed(b"{\"id\":\"EV_1\"}"),
            400,
            "bad_request",
        ),
        case(
            "event name with wildcards",
            Some("application/json"),
            b"{\"event\":\"egress.#\"}",
            signed(b"{\"event\":\"egress.#\"}"),
            400,
            "bad_request",
        ),
        case(
            "too large",
            Some("application/webhook+json"),
            &[b' '; 2048],
            signed(&[b' '; 2048]),
            413,
            "payload_too_large",
        ),
    ]
}

#[tokio::test]
async fn every_bad_request_gets_its_status_and_nothing_is_published() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(
        &test.env_with(&[("WEBHOOK_MAX_BODY_BYTES", "1024")]),
        Clock::System,
    );
    wait_ready(&app).await;
    let http = reqwest::Client::new();
    for case in rejection_cases() {
        let mut request = http
            .post(app.url("/webhooks/livekit"))
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(authorization) = &case.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let body: serde_json::Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], case.code, "{}", case.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            case.name
        );
    }
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await,
        0,
        "nothing rejected was published"
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(
            r#"roomtape_webhook_verification_failures_total{reason="sha256_mismatch"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"roomtape_webhook_requests_total{outcome="unauthorized"} 9"#),
        "{metrics}"
    );
}

/// AMQP's message id is a short string: a longer event id cannot be published (amqprs would
/// panic on it), so it is refused as the bad request it is, and the ingestor goes on serving.
#[tokio::test]
async fn an_event_id_over_255_bytes_is_a_400_naming_the_field_and_the_next_webhook_is_queued() {
    let test = TestEnv::new().await;
    let app = started(&test).await;
    let with_id =
        |id: &str| format!(r#"{{"event":"room_started","room":{{"name":"standup"}},"id":"{id}"}}"#);

    let too_long = with_id(&"E".repeat(300));
    let response = post_webhook(
        &app,
        too_long.as_bytes(),
        &sign_webhook(too_long.as_bytes()),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "bad_request");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#""id""#) && message.contains("300") && message.contains("255"),
        "names the field, its length and the limit: {message}"
    );

    let longest = "E".repeat(255);
    for id in [longest.as_str(), "EV_after"] {
        let body = with_id(id);
        let response = post_webhook(&app, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
        assert_eq!(response.status(), 200, "an id of {} bytes", id.len());
    }
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await,
        2,
        "only the two valid events were published"
    );
}
