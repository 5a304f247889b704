//! Room and participant events → `rooms`: counts right in any order, duplicates once, never
//! negative, recorders not counted.

use roomtape_processor::events::EventProcessor;
use roomtape_tests::apps::event_processor;
use roomtape_tests::fixtures::{participant_event, room_event};
use roomtape_tests::outbox::{handle, handle_batch};
use roomtape_tests::TestEnv;

/// Applies each event in turn.
async fn apply(processor: &EventProcessor, events: &[String]) {
    for body in events {
        handle(processor, body)
            .await
            .unwrap_or_else(|e| panic!("{e}: {body}"));
    }
}

fn viewer(event: &str, id: &str, who: &str) -> String {
    participant_event(event, id, "class", who, "STANDARD")
}

#[tokio::test]
async fn viewer_counts_hold_in_any_order_and_never_go_negative() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;

    apply(
        &processor,
        &[room_event("room_started", "EV_r1", "class", "RM_test")],
    )
    .await;
    // A leave that arrives before its join…
    apply(&processor, &[viewer("participant_left", "EV_l1", "alice")]).await;
    assert_eq!(
        test.database.room("class").await,
        ("active".into(), 0, 0),
        "never negative"
    );
    // …then that join, a duplicate join, and the recorder joining.
    apply(
        &processor,
        &[
            viewer("participant_joined", "EV_j1", "alice"),
            viewer("participant_joined", "EV_j2", "bob"),
            viewer("participant_joined", "EV_j2", "bob"),
            viewer("participant_joined", "EV_j3", "carol"),
            participant_event("participant_joined", "EV_eg", "class", "EG_rec", "EGRESS"),
        ],
    )
    .await;
    assert_eq!(
        test.database.room("class").await,
        ("active".into(), 2, 2),
        "alice left; recorder not counted"
    );

    apply(
        &processor,
        &[room_event("room_finished", "EV_r2", "class", "RM_test")],
    )
    .await;
    assert_eq!(test.database.room("class").await, ("finished".into(), 0, 2));
    // A late room_started of the same session does not reopen it.
    apply(
        &processor,
        &[room_event("room_started", "EV_r1_late", "class", "RM_test")],
    )
    .await;
    assert_eq!(test.database.room("class").await.0, "finished");
    // A new session of the same room starts afresh.
    apply(
        &processor,
        &[room_event("room_started", "EV_r3", "class", "RM_next")],
    )
    .await;
    assert_eq!(test.database.room("class").await, ("active".into(), 0, 0));
}

#[tokio::test]
async fn a_reused_room_name_counts_right_when_its_events_arrive_out_of_order() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let session = |name: &str, id: &str, sid: &str, at: u64| {
        serde_json::json!({"event": name, "room": {"sid": sid, "name": "reused"}, "id": id,
            "createdAt": (1_700_000_000 + at).to_string()})
        .to_string()
    };
    let join = |id: &str, who: &str, sid: &str| {
        serde_json::json!({"event": "participant_joined", "room": {"sid": sid, "name": "reused"},
            "participant": {"sid": format!("PA_{who}"), "identity": who, "joinedAt": "1700000300"},
            "id": id, "createdAt": "1700000300"})
        .to_string()
    };
    // The first session, over.
    let first = [
        session("room_started", "EV_s1", "RM_one", 100),
        session("room_finished", "EV_f1", "RM_one", 200),
    ];
    apply(&processor, &first).await;
    // The second session: a join handled before its room_started.
    apply(
        &processor,
        &[
            join("EV_j2", "dana", "RM_two"),
            session("room_started", "EV_s2", "RM_two", 300),
        ],
    )
    .await;
    assert_eq!(
        test.database.room("reused").await,
        ("active".into(), 1, 1),
        "dana is counted"
    );

    // The third session: room_finished handled before its room_started.
    apply(
        &processor,
        &[
            session("room_finished", "EV_f3", "RM_three", 500),
            session("room_started", "EV_s3", "RM_three", 400),
        ],
    )
    .await;
    assert_eq!(
        test.database.room("reused").await.0,
        "finished",
        "a late start does not reopen it"
    );

    // Two later sessions whose starts come after both finishes; the older session's late events
    // must not take the room back.
    let scrambled = [
        session("room_finished", "EV_f4", "RM_four", 700),
        session("room_finished", "EV_f5", "RM_five", 900),
        session("room_started", "EV_s4", "RM_four", 600),
        session("room_started", "EV_s5", "RM_five", 800),
    ];
    apply(&processor, &scrambled).await;
    assert_eq!(
        test.database.room("reused").await.0,
        "finished",
        "the newest session is over"
    );
}

/// `body` with its `createdAt` set to `unix` seconds (a leave's time).
fn at(body: String, unix: i64) -> String {
    let mut event: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    event["createdAt"] = unix.to_string().into();
    event.to_string()
}

/// A viewer's join at `joined` and, when given, leave at `left` (seconds).
fn visit(who: &str, joined: i64, left: Option<i64>) -> Vec<String> {
    let mut join: serde_json::Value =
        serde_json::from_str(&viewer("participant_joined", &format!("EV_j_{who}"), who))
            .expect("JSON");
    join["participant"]["joinedAt"] = joined.to_string().into();
    let mut events = vec![join.to_string()];
    if let Some(left) = left {
        events.push(at(
            viewer("participant_left", &format!("EV_l_{who}"), who),
            left,
        ));
    }
    events
}

#[tokio::test]
async fn a_late_join_and_its_leave_in_one_batch_after_the_end_still_count_in_the_peak() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    let start = 1_700_000_000;
    let mut before_end = vec![at(
        room_event("room_started", "EV_r1", "class", "RM_test"),
        start,
    )];
    before_end.extend(visit("alice", start + 10, Some(start + 40)));
    before_end.extend(visit("bob", start + 20, Some(start + 30)));
    before_end.push(at(
        room_event("room_finished", "EV_r2", "class", "RM_test"),
        start + 50,
    ));
    apply(&processor, &before_end).await;
    assert_eq!(test.database.room("class").await, ("finished".into(), 0, 2));

    // Carol was there from 15 to 35 (with alice and bob at 20): her join and leave were
    // delayed (a broker restart) and arrive together, after the room ended.
    let late = visit("carol", start + 15, Some(start + 35));
    for result in handle_batch(&processor, &late).await {
        result.expect("applied");
    }
    assert_eq!(
        test.database.room("class").await,
        ("finished".into(), 0, 3),
        "the true peak, carol included"
    );
}
