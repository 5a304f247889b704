//! Reconciliation's timing, on a controlled clock: a recording is looked up only once it has
//! been unchanged for `RECONCILE_AFTER`, and not again until that long after it was asked about.

use std::time::Duration;

use roomtape_processor::reconcile::Reconciler;
use roomtape_shared::clock::Clock;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::TestEnv;

const AFTER: Duration = Duration::from_secs(300);

async fn reconciler_at(test: &TestEnv, livekit: &FakeLiveKit, now_unix: u64) -> Reconciler {
    let env = test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]);
    roomtape_tests::apps::reconciler_at(&env, now_unix, AFTER).await
}

#[tokio::test]
async fn a_recording_is_looked_up_once_unchanged_for_the_whole_window() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    // Built first: it migrates the database.
    let early = reconciler_at(&test, &livekit, 0).await;
    let client = test.database.client().await;
    let updated: f64 = client
        .query_one(
            "INSERT INTO recordings (egress_id, room_name, status) VALUES ('EG_quiet', 'r', 'active')
             RETURNING extract(epoch FROM updated_at)::float8",
            &[],
        )
        .await
        .expect("seed")
        .get(0);
    let updated = updated.ceil() as u64;
    let lookups = || livekit.calls("ListEgress").len();

    let early = Reconciler {
        clock: Clock::FixedUnix(updated + AFTER.as_secs() - 1),
        ..early
    };
    early.round().await.expect("round");
    assert_eq!(lookups(), 0, "one second short of the window: not asked");

    let due = reconciler_at(&test, &livekit, updated + AFTER.as_secs() + 1).await;
    due.round().await.expect("round");
    assert_eq!(lookups(), 1, "past the window: asked");
    let status: String = client
        .query_one(
            "SELECT status FROM recordings WHERE egress_id = 'EG_quiet'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(status, "failed", "LiveKit does not know it any more");
}

#[tokio::test]
async fn a_recording_asked_about_is_not_asked_again_within_the_window() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let reconciler = reconciler_at(&test, &livekit, 0).await;
    let client = test.database.client().await;
    // LiveKit answers 'unavailable', so the recording stays as it is after each round.
    livekit.fail_next("unavailable", 10);
    client
        .execute(
            "INSERT INTO recordings (egress_id, room_name, status, updated_at)
             VALUES ('EG_busy', 'r', 'active', to_timestamp(1700000000))",
            &[],
        )
        .await
        .expect("seed");
    let start = 1_700_000_000 + AFTER.as_secs() + 1;
    for (offset, expected) in [(0, 1), (AFTER.as_secs() - 10, 1), (AFTER.as_secs() + 1, 2)] {
        let at = Reconciler {
            clock: Clock::FixedUnix(start + offset),
            ..reconciler.clone()
        };
        at.round().await.expect("round");
        assert_eq!(
            livekit.calls("ListEgress").len(),
            expected,
            "{offset} s after the first lookup"
        );
    }
}
