//! Every LiveKit webhook vector in `shared/livekit/`, through the real endpoint with the clock
//! set to the vector's `now_unix`: accepted ones are queued, rejected ones leave no trace.

use roomtape_ingestor::webhook::verify::Clock;
use roomtape_shared::queue::topology::EVENTS_QUEUE;
use roomtape_tests::apps::wait_ready;
use roomtape_tests::{spawn_ingestor, TestEnv};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    name: String,
    api_key: String,
    api_secret: String,
    body: String,
    authorization: String,
    content_type: String,
    now_unix: u64,
    expect: String,
}

fn shared_livekit_dir() -> String {
    std::env::var("ROOMTAPE_SHARED_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared").to_owned())
        + "/livekit"
}

fn vectors() -> Vec<Vector> {
    ["generated_room_started.json", "generated_egress.json"]
        .iter()
        .flat_map(|file| {
            let path = format!("{}/{file}", shared_livekit_dir());
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::from_str::<Vec<Vector>>(&text).expect("vector file")
        })
        .collect()
}

/// roomtape accepts a `Bearer ` prefix (CONTRACTS §2) where the SDKs do not; every other
/// expectation is the vector's own.
fn should_accept(vector: &Vector) -> bool {
    match vector.expect.as_str() {
        "accept" | "accept_with_60s_leeway" | "reject_by_sdks" => true,
        "reject" => false,
        other => panic!("{}: unknown expectation {other}", vector.name),
    }
}

#[tokio::test]
async fn every_vector_is_accepted_or_rejected_as_it_expects() {
    let test = TestEnv::new().await;
    let vectors = vectors();
    assert!(vectors.len() >= 20, "found {} vectors", vectors.len());
    let mut queued = 0;
    for vector in &vectors {
        let env = test.env_with(&[
            ("LIVEKIT_API_KEY", &vector.api_key),
            ("LIVEKIT_API_SECRET", &vector.api_secret),
        ]);
        let app = spawn_ingestor(&env, Clock::FixedUnix(vector.now_unix));
        wait_ready(&app).await;
        let response = reqwest::Client::new()
            .post(app.url("/webhooks/livekit"))
            .header("content-type", &vector.content_type)
            .header("authorization", &vector.authorization)
            .body(vector.body.clone())
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        if should_accept(vector) {
            assert_eq!(
                status,
                200,
                "{} should be accepted: {}",
                vector.name,
                response.text().await.unwrap_or_default()
            );
            queued += 1;
        } else {
            assert_eq!(status, 401, "{} should be rejected", vector.name);
            let body: serde_json::Value = response.json().await.expect("JSON error body");
            assert_eq!(body["error"]["code"], "unauthorized", "{}", vector.name);
        }
        app.stop().await.expect("stop");
        assert_eq!(
            test.vhost.ready_count(EVENTS_QUEUE).await,
            queued,
            "after {}",
            vector.name
        );
    }
}
