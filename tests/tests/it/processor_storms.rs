//! Join storms: room events applied in batches stay exact in every order, with duplicates, with
//! two processors on one room at once, with a poison event in a batch, and when a processor
//! dies or loses PostgreSQL in the middle of a batch.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roomtape_processor::events::EventProcessor;
use roomtape_processor::worker::{Handler, Message};
use roomtape_shared::queue::topology::{DEAD_QUEUE, EVENTS_EXCHANGE};
use roomtape_tests::apps::{event_processor, wait_ready};
use roomtape_tests::fixtures::{room_event, Egress, STARTED_NS};
use roomtape_tests::outbox::RecordingOutbox;
use roomtape_tests::proxy::{ProxiedLinks, TcpProxy};
use roomtape_tests::{eventually, spawn_processor, TestEnv};
use serde_json::json;

/// Seconds since the epoch of the test's room sessions.
const EPOCH: i64 = 1_700_000_000;

/// A join at `at_ms` (LiveKit's `joinedAtMs`), or a leave at `at_ms` (its `createdAt`, seconds).
fn presence(room: &str, sid: &str, id: &str, who: usize, join: bool, at_ms: i64) -> String {
    let (name, created) = match join {
        true => ("participant_joined", at_ms / 1000),
        false => ("participant_left", at_ms / 1000),
    };
    json!({"event": name, "room": {"sid": sid, "name": room},
           "participant": {"sid": format!("PA_{who}"), "identity": format!("viewer-{who}"),
                           "kind": "STANDARD", "joinedAtMs": at_ms.to_string(),
                           "joinedAt": (at_ms / 1000).to_string()},
           "id": id, "createdAt": created.to_string()})
    .to_string()
}

/// Hands `bodies` to `processor` as one batch, as the worker would; every event must apply.
async fn batch(processor: &EventProcessor, bodies: &[String]) {
    let messages: Vec<Message> = bodies
        .iter()
        .map(|body| Message::new(body.as_str(), "participant.joined"))
        .collect();
    for (result, body) in processor
        .handle_batch(&messages, &RecordingOutbox::default())
        .await
        .into_iter()
        .zip(bodies)
    {
        result.unwrap_or_else(|e| panic!("{e}: {body}"));
    }
}

async fn batches_in_turn(processor: &EventProcessor, batches: Vec<Vec<String>>) {
    for bodies in batches {
        batch(processor, &bodies).await;
    }
}

/// The true peak of a session: joins +1, leaves -1, a leave first at equal times; a leave
/// whose participant never joined counts neither.
fn true_peak(stays: &[(i64, Option<i64>)]) -> i32 {
    let mut changes: Vec<(i64, i32)> = Vec::new();
    for &(joined, left) in stays {
        changes.push((joined, 1));
        if let Some(left) = left {
            changes.push((left, -1));
        }
    }
    changes.sort();
    let mut running = 0;
    changes
        .into_iter()
        .map(|(_, change)| {
            running += change;
            running
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn counts_and_peaks_are_exact_in_any_order_with_duplicates_across_rooms_and_processors() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (test, first, second) = runtime.block_on(async {
        let test = TestEnv::new().await;
        let first = event_processor(&test.env()).await;
        let second = event_processor(&test.env()).await;
        (test, first, second)
    });
    // Each viewer: when it joined (in half seconds after the epoch, so that joins and leaves
    // often fall on the same instant) and, maybe, how long it stayed (whole seconds, as a
    // leave's createdAt is).
    let viewers = proptest::collection::vec((0..40i64, proptest::option::of(0..10i64)), 1..40);
    let cases = (viewers, any::<u64>(), 0..20usize, 1..12usize);
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&cases, |(viewers, seed, duplicates, batch_size)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Two rooms, their events mixed in the same batches: viewer `who` is in room
            // `who % 2`.
            let rooms = [format!("storm-{case}-a"), format!("storm-{case}-b")];
            let start = EPOCH * 1000;
            let mut stays: [Vec<(i64, Option<i64>)>; 2] = [Vec::new(), Vec::new()];
            let mut events: Vec<String> = rooms
                .iter()
                .map(|room| room_event("room_started", &format!("EV_{room}_s"), room, "RM_s"))
                .collect();
            for (who, (joined, stay)) in viewers.iter().enumerate() {
                let room = &rooms[who % 2];
                let joined_ms = start + joined * 500;
                // Leaves carry whole seconds only.
                let left_ms = stay.map(|seconds| (joined_ms / 1000 + seconds) * 1000);
                stays[who % 2].push((joined_ms, left_ms));
                let id = format!("EV_{room}_j{who}");
                events.push(presence(room, "RM_s", &id, who, true, joined_ms));
                if let Some(left_ms) = left_ms {
                    let id = format!("EV_{room}_l{who}");
                    events.push(presence(room, "RM_s", &id, who, false, left_ms));
                }
            }
            // Shuffle (a small LCG on the seed keeps the case reproducible), then repeat some.
            let mut state = seed | 1;
            let mut next = |bound: usize| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 33) as usize % bound
            };
            for i in (1..events.len()).rev() {
                let j = next(i + 1);
                events.swap(i, j);
            }
            for _ in 0..duplicates {
                let again = events[next(events.len())].clone();
                let at = next(events.len() + 1);
                events.insert(at, again);
            }
            let batches: Vec<&[String]> = events.chunks(batch_size).collect();
            let (live, finished) = runtime.block_on(async {
                // Alternate batches between the processors, both running at once.
                let (mut odd, mut even) = (Vec::new(), Vec::new());
                for (i, bodies) in batches.iter().enumerate() {
                    let mine = if i % 2 == 1 { &mut odd } else { &mut even };
                    mine.push(bodies.to_vec());
                }
                tokio::join!(batches_in_turn(&first, even), batches_in_turn(&second, odd));
                let mut live = Vec::new();
                for room in &rooms {
                    live.push(test.database.room(room).await);
                }
                let finishes: Vec<String> = rooms
                    .iter()
                    .map(|room| room_event("room_finished", &format!("EV_{room}_f"), room, "RM_s"))
                    .collect();
                batch(&first, &finishes).await;
                let mut finished = Vec::new();
                for room in &rooms {
                    finished.push(test.database.room(room).await);
                }
                (live, finished)
            });
            for (n, stays) in stays.iter().enumerate() {
                let present = stays.iter().filter(|(_, left)| left.is_none()).count() as i32;
                let peak = true_peak(stays);
                prop_assert_eq!(
                    live[n].1,
                    present,
                    "room {}: live count, {} events",
                    n,
                    events.len()
                );
                // Live, the highest count applied so far: out-of-order events can take it past
                // the true peak, never below who is present; the finish puts the true peak in
                // its place.
                prop_assert!(
                    live[n].2 >= present,
                    "room {}: live peak {} below {}",
                    n,
                    live[n].2,
                    present
                );
                prop_assert_eq!(
                    &finished[n],
                    &("finished".to_owned(), 0, peak),
                    "room {}",
                    n
                );
            }
            Ok(())
        })
        .expect("exact counts in every order");
}

#[tokio::test]
async fn a_reused_room_name_never_loses_a_viewer_of_its_new_session() {
    let test = TestEnv::new().await;
    let (first, second) = (
        event_processor(&test.env()).await,
        event_processor(&test.env()).await,
    );
    for round in 0..40 {
        let room = format!("reused-{round}");
        let old = room_event("room_started", &format!("EV_{round}_a"), &room, "RM_old");
        let ended = room_event("room_finished", &format!("EV_{round}_b"), &room, "RM_old");
        batch(&first, &[old, ended]).await;
        // The new session's start and its first join, on two processors at the same moment.
        let started = room_event("room_started", &format!("EV_{round}_c"), &room, "RM_new");
        let join = presence(
            &room,
            "RM_new",
            &format!("EV_{round}_d"),
            1,
            true,
            EPOCH * 1000,
        );
        let (started, join) = ([started], [join]);
        tokio::join!(batch(&first, &started), batch(&second, &join));
        assert_eq!(
            test.database.room(&room).await,
            ("active".to_owned(), 1, 1),
            "round {round}"
        );
    }
}

/// Hands `bodies` to `processor` as one batch: the one at `poison` fails with a database error,
/// every other event applies.
async fn only_the_poison_fails(processor: &EventProcessor, bodies: &[String], poison: usize) {
    let messages: Vec<Message> = bodies
        .iter()
        .map(|body| Message::new(body.as_str(), "livekit.event"))
        .collect();
    let results = processor
        .handle_batch(&messages, &RecordingOutbox::default())
        .await;
    for (n, result) in results.iter().enumerate() {
        match (n == poison, result) {
            (true, Err(error)) => assert_eq!(error.outcome(), "database_error", "{error}"),
            (true, Ok(handled)) => panic!("the poison was applied: {handled:?}"),
            (false, Ok(handled)) => assert_eq!(handled.outcome, "applied", "event {n}"),
            (false, Err(error)) => panic!("event {n} held back: {error}"),
        }
    }
}

#[tokio::test]
async fn a_poison_event_in_a_batch_holds_none_of_the_others_back() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let mut bodies: Vec<String> = (0..10)
        .map(|who| {
            presence(
                "poisoned",
                "RM_p",
                &format!("EV_p{who}"),
                who,
                true,
                EPOCH * 1000,
            )
        })
        .collect();
    // PostgreSQL refuses NUL in text: this event can never be applied.
    bodies[4] = bodies[4].replace("viewer-4", "viewer\\u00004");
    only_the_poison_fails(&processor, &bodies, 4).await;
    assert_eq!(test.database.room("poisoned").await.1, 9);
}

/// A batch's egress events commit in the batch's one transaction with its room events; one that
/// cannot be written fails alone, and the room's events and the other egress's still apply.
#[tokio::test]
async fn a_poison_egress_event_in_a_batch_holds_none_of_the_others_back() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let good = Egress::new("EG_good", "mixed", &test.bucket.profile);
    let poison = Egress::new("EG_poison", "mixed", &test.bucket.profile);
    let bodies = [
        room_event("room_started", "EV_m_start", "mixed", "RM_test"),
        good.started("EV_m_good_started"),
        presence("mixed", "RM_test", "EV_m_join", 1, true, EPOCH * 1000),
        // PostgreSQL refuses NUL in text: this event can never be written.
        poison
            .updated("EV_m_poison", "EGRESS_ACTIVE", STARTED_NS)
            .replace("\"roomId\":\"RM_test\"", "\"roomId\":\"RM\\u0000x\""),
        good.updated("EV_m_good_active", "EGRESS_ACTIVE", STARTED_NS + 1),
    ];
    only_the_poison_fails(&processor, &bodies, 3).await;
    let recording = test
        .database
        .recording("EG_good")
        .await
        .expect("EG_good's row");
    assert_eq!(recording["status"], "active", "{recording}");
    assert!(test.database.recording("EG_poison").await.is_none());
    assert_eq!(test.database.room("mixed").await.1, 1, "the join counted");
    let outbox = test.database.client().await;
    let started: i64 = outbox
        .query_one(
            "SELECT count(*) FROM notification_outbox WHERE notification_id = 'recording.started:EG_good'",
            &[],
        )
        .await
        .expect("outbox")
        .get(0);
    assert_eq!(
        started, 1,
        "recording.started written once, in the batch's transaction"
    );
}

/// Joins for `rooms` rooms, `per_room` each, published before any processor consumes them.
async fn queued_joins(test: &TestEnv, rooms: usize, per_room: usize) {
    let declaring = spawn_processor(&test.env()).await;
    wait_ready(&declaring).await;
    declaring.stop().await.expect("stopped");
    let events: Vec<(String, Vec<u8>)> = (0..rooms * per_room)
        .map(|n| {
            let (room, who) = (format!("hall-{}", n % rooms), n);
            let id = format!("EV_q{n}");
            let body = presence(&room, "RM_q", &id, who, true, EPOCH * 1000);
            (id, body.into_bytes())
        })
        .collect();
    test.vhost
        .publish_all(EVENTS_EXCHANGE, "participant.joined", &events)
        .await;
}

async fn processed(test: &TestEnv) -> i64 {
    let client = test.database.client().await;
    let row = client
        .query_one("SELECT count(*) FROM webhook_events", &[])
        .await
        .expect("count");
    row.get(0)
}

/// Every room counts exactly its joins, each event recorded once, nothing dead-lettered.
async fn exact_after_all(test: &TestEnv, rooms: usize, per_room: usize) {
    let total = (rooms * per_room) as i64;
    eventually(Duration::from_secs(60), "every event applied", || async {
        (processed(test).await == total).then_some(())
    })
    .await;
    for room in 0..rooms {
        let (_, count, _) = test.database.room(&format!("hall-{room}")).await;
        assert_eq!(count as usize, per_room, "hall-{room}");
    }
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);
}

#[tokio::test]
async fn a_processor_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    let test = TestEnv::new().await;
    let (rooms, per_room) = (4, 500);
    queued_joins(&test, rooms, per_room).await;
    // Both of its connections pass through proxies, so killing it also closes them as a dead
    // process's would: its open transaction is rolled back, its unacked deliveries requeued.
    let links = ProxiedLinks::start(&test).await;
    let doomed = spawn_processor(&links.env(&test, &[])).await;
    eventually(Duration::from_secs(20), "the first batches", || async {
        (processed(&test).await > 0).then_some(())
    })
    .await;
    doomed.kill();
    links.cut();
    let applied_before = processed(&test).await;
    assert!(
        applied_before < (rooms * per_room) as i64,
        "killed mid-stream"
    );

    let _survivor = spawn_processor(&test.env()).await;
    exact_after_all(&test, rooms, per_room).await;
}

#[tokio::test]
async fn postgres_cut_mid_batch_loses_nothing_and_applies_nothing_twice() {
    let test = TestEnv::new().await;
    let (rooms, per_room) = (4, 500);
    queued_joins(&test, rooms, per_room).await;
    let database = TcpProxy::start("127.0.0.1:5432".into()).await;
    let db = database.through(&test.database.url());
    let _processor = spawn_processor(&test.env_with(&[("DATABASE_URL", &db)])).await;
    eventually(Duration::from_secs(20), "the first batches", || async {
        (processed(&test).await > 0).then_some(())
    })
    .await;
    database.cut();
    assert!(
        processed(&test).await < (rooms * per_room) as i64,
        "cut mid-stream"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    database.restore();
    exact_after_all(&test, rooms, per_room).await;
}
