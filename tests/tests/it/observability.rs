//! The dashboards and alerts of `deploy/observability` query only metrics the binaries really
//! serve: every `roomtape_*` name they use (listed by `deploy/validate.sh --metric-names` in
//! `roomtape-metric-names.txt`, which the validator keeps current) is on some `/metrics`.

use std::collections::BTreeSet;
use std::time::Duration;

use roomtape_shared::clock::Clock;
use roomtape_tests::apps::{metrics_text, spawn_api, wait_ready};
use roomtape_tests::fixtures::room_event;
use roomtape_tests::livekit::{post_webhook, sign_webhook};
use roomtape_tests::{eventually, spawn_ingestor, spawn_processor, TestEnv};

const USED: &str = include_str!("../../../deploy/observability/roomtape-metric-names.txt");

/// The sample names a `/metrics` page can carry, from its `# TYPE` lines (a labelled family
/// shows only once something was counted in it).
fn served_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some("TYPE"), Some(family), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{family}{suffix}")));
    }
    names
}

#[tokio::test]
async fn every_roomtape_metric_the_dashboards_and_alerts_use_is_served() {
    let test = TestEnv::new().await;
    // An HTTP endpoint configured (never called here): its labelled families show at 0.
    let env = test.env_with(&[
        ("API_TOKENS", "ops:observability-test-token:read"),
        ("NOTIFY_ENDPOINTS", "app"),
        ("NOTIFY_APP_URL", "http://127.0.0.1:9/hooks"),
        (
            "NOTIFY_APP_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
    ]);
    let ingestor = spawn_ingestor(&env, Clock::System);
    let processor = spawn_processor(&env).await;
    let api = spawn_api(&env);
    for app in [&ingestor, &processor, &api] {
        wait_ready(app).await;
    }
    // One event through the whole path, and one the ingestor refuses: labelled families show.
    let body = room_event("room_started", "EV_observed", "observed", "RM_observed");
    let accepted = post_webhook(&ingestor, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
    assert_eq!(accepted.status(), 200);
    let refused = post_webhook(&ingestor, body.as_bytes(), "not-a-token").await;
    assert_eq!(refused.status(), 401);

    let used: Vec<&str> = USED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(used.len() >= 10, "the list is read: {used:?}");
    let served = eventually(
        Duration::from_secs(15),
        "the event to be handled",
        || async {
            let mut served = BTreeSet::new();
            for app in [&ingestor, &processor, &api] {
                served.extend(served_names(&metrics_text(app).await));
            }
            served.contains("roomtape_messages_total").then_some(served)
        },
    )
    .await;
    let missing: Vec<&&str> = used
        .iter()
        .filter(|name| !served.contains(**name))
        .collect();
    assert!(
        missing.is_empty(),
        "used but served by no binary: {missing:?}\nserved: {served:?}"
    );
}
