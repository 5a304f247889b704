//! Both binaries start from settings, serve /healthz, /readyz and /metrics, and stop cleanly.

use roomtape_shared::clock::Clock;
use roomtape_tests::apps::{metrics_text, wait_ready};
use roomtape_tests::{spawn_ingestor, spawn_processor, TestEnv};

#[tokio::test]
async fn the_ingestor_serves_health_readiness_and_metrics_and_stops() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&app).await;
    let http = reqwest::Client::new();
    let health = http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("roomtape_publish_confirm_seconds"),
        "{metrics}"
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_processor_migrates_serves_health_and_stops() {
    let test = TestEnv::new().await;
    let app = spawn_processor(&test.env()).await;
    wait_ready(&app).await;
    let health = reqwest::get(app.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let client = test.database.client().await;
    client
        .query_one("SELECT count(*) FROM recordings", &[])
        .await
        .expect("schema applied at start-up");
    app.stop().await.expect("clean stop");
}
