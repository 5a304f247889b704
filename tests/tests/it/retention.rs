//! `WEBHOOK_EVENTS_RETENTION`: on a controlled clock, exactly the processed event ids, command
//! records, stop requests, finished notification deliveries and relayed notifications older
//! than the retention are pruned (more than one batch of them), a notification stays while a
//! delivery of it is pending, and a recording whose events went says so.

use std::time::Duration;

use roomtape_processor::config::ProcessorSettings;
use roomtape_processor::retention::{Pruned, Pruner};
use roomtape_shared::clock::Clock;
use roomtape_shared::library::Library;
use roomtape_shared::storage::ObjectStore;
use roomtape_tests::TestEnv;

/// The clock's now, and the retention (7 days).
const NOW: u64 = 2_000_000_000;
const WEEK: u64 = 7 * 24 * 3600;

#[tokio::test]
async fn pruning_removes_exactly_what_is_older_than_the_retention() {
    let test = TestEnv::new().await;
    let settings = ProcessorSettings::from_env(&test.env()).expect("settings");
    roomtape_shared::db::migrate(&settings.database)
        .await
        .expect("migrate");
    let (past, kept) = ((NOW - WEEK - 1) as f64, (NOW - WEEK + 1) as f64);
    let client = test.database.client().await;
    client
        .batch_execute("INSERT INTO recordings (egress_id, room_name, status) VALUES ('EG_old', 'r', 'ready'), ('EG_new', 'r', 'ready')")
        .await
        .expect("recordings");
    for (id, egress, at) in [("EV_old", "EG_old", past), ("EV_new", "EG_new", kept)] {
        client
            .execute(
                "INSERT INTO webhook_events (event_id, event, processed_at, payload)
                 VALUES ($1, 'egress_ended', to_timestamp($3),
                         jsonb_build_object('egressInfo', jsonb_build_object('egressId', $2::text)))",
                &[&id, &egress, &at],
            )
            .await
            .expect("event");
    }
    // More than one batch of old room events.
    client
        .execute(
            "INSERT INTO webhook_events (event_id, event, processed_at, payload)
             SELECT 'EV_room_' || n, 'room_started', to_timestamp($1) - make_interval(secs => n), '{}'
             FROM generate_series(1, 1200) AS n",
            &[&past],
        )
        .await
        .expect("room events");
    for (id, at) in [("CMD_old", past), ("CMD_new", kept)] {
        client
            .execute(
                "INSERT INTO recording_commands (message_id, room_name, state, created_at)
                 VALUES ($1, 'r', 'done', to_timestamp($2))",
                &[&id, &at],
            )
            .await
            .expect("command");
    }
    for (room, at) in [("old-room", past), ("new-room", kept)] {
        client
            .execute(
                "INSERT INTO room_stop_requests (room_name, requested_at) VALUES ($1, to_timestamp($2))",
                &[&room, &at],
            )
            .await
            .expect("stop request");
    }
    // Relayed notifications go after the retention; one not relayed yet stays however old, and
    // so does one whose delivery to an endpoint is still pending.
    for (id, created, relayed) in [
        ("N_old", past, Some(past)),
        ("N_new", past, Some(kept)),
        ("N_waiting", past, None),
        ("N_delivered_long_ago", past, Some(past)),
        ("N_still_delivering", past, Some(past)),
    ] {
        client
            .execute(
                "INSERT INTO notification_outbox (notification_id, type, body, created_at, relayed_at)
                 VALUES ($1, 'room.finished', '{}', to_timestamp($2), to_timestamp($3))",
                &[&id, &created, &relayed],
            )
            .await
            .expect("notification");
    }

    // Finished deliveries go after the retention; a pending one stays however old.
    for (notification, status, finished) in [
        ("N_delivered_long_ago", "delivered", Some(past)),
        ("N_new", "failed", Some(kept)),
        ("N_still_delivering", "pending", None),
    ] {
        client
            .execute(
                "INSERT INTO notification_deliveries
                     (outbox_id, endpoint, status, next_attempt_at, finished_at, created_at)
                 SELECT id, 'app', $2, to_timestamp($4), to_timestamp($3), to_timestamp($4)
                     FROM notification_outbox WHERE notification_id = $1",
                &[&notification, &status, &finished, &past],
            )
            .await
            .expect("delivery");
    }

    let pool = roomtape_shared::db::pool(&settings.database).expect("pool");
    let pruner = Pruner {
        pool: pool.clone(),
        retention: Duration::from_secs(WEEK),
        clock: Clock::FixedUnix(NOW),
    };
    let pruned = pruner.prune().await.expect("prune");
    assert_eq!(
        pruned,
        Pruned {
            events: 1201,
            commands: 1,
            stop_requests: 1,
            notifications: 2,
            deliveries: 1,
        }
    );
    let left = |sql: &'static str| {
        let client = &client;
        async move {
            let rows = client.query(sql, &[]).await.expect("query");
            rows.iter().map(|row| row.get(0)).collect::<Vec<String>>()
        }
    };
    assert_eq!(
        left("SELECT event_id FROM webhook_events").await,
        ["EV_new"]
    );
    assert_eq!(
        left("SELECT message_id FROM recording_commands").await,
        ["CMD_new"]
    );
    assert_eq!(
        left("SELECT room_name FROM room_stop_requests").await,
        ["new-room"]
    );
    assert_eq!(
        left("SELECT notification_id FROM notification_outbox ORDER BY id").await,
        ["N_new", "N_waiting", "N_still_delivering"]
    );
    assert_eq!(
        left("SELECT o.notification_id FROM notification_deliveries d JOIN notification_outbox o ON o.id = d.outbox_id ORDER BY d.id").await,
        ["N_new", "N_still_delivering"]
    );
    assert_eq!(pruner.prune().await.expect("again"), Pruned::default());

    let library = Library::new(pool, ObjectStore::new(&settings.storage));
    let old = library.details("EG_old").await.expect("details");
    assert!(old.events.is_empty());
    let pruned_at = old.events_pruned_at.expect("says its events were pruned");
    assert!(pruned_at.starts_with("2033-05-18"), "{pruned_at}");
    let new = library.details("EG_new").await.expect("details");
    assert_eq!(new.events.len(), 1);
    assert_eq!(new.events_pruned_at, None);
}
