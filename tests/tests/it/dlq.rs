//! `roomtape dlq` against a real RabbitMQ: reading `roomtape.dead` loses and ages nothing,
//! `show`, `replay` (all, or one id) and `purge`.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use lapin::options::{
    BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use roomtape_cli::{execute, Cli};
use roomtape_shared::queue::headers;
use roomtape_shared::queue::topology::{self, COMMANDS_QUEUE, DEAD_QUEUE, EVENTS_QUEUE};
use roomtape_tests::{eventually, TestEnv};
use serde_json::Value;

async fn run(test: &TestEnv, args: &[&str]) -> (u8, String) {
    let mut out = Vec::new();
    let mut argv = vec!["roomtape"];
    argv.extend_from_slice(args);
    let code = execute(Cli::parse_from(argv), &test.env(), &mut out, false).await;
    (code, String::from_utf8(out).expect("utf-8"))
}

/// Runs a `--json` command that must succeed and returns what it printed.
async fn run_json(test: &TestEnv, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (code, out) = run(test, &args).await;
    assert_eq!(code, 0, "{args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

/// The queues, and a confirm-mode channel to publish with.
async fn setup(test: &TestEnv) -> Channel {
    let channel = test.vhost.channel().await;
    topology::declare(&channel, &[]).await.expect("declare");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    channel
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// What the processor publishes to `roomtape.dead` when it gives up on a message (see
/// `processor/src/worker/settle.rs`); `source` None records no queue.
fn processor_dead_letter(
    id: &str,
    source: Option<&str>,
    error: &str,
) -> (BasicProperties, Vec<u8>) {
    let mut headers = FieldTable::default();
    headers.insert("x-roomtape-error".into(), text(error));
    headers.insert("x-roomtape-attempt".into(), AMQPValue::LongUInt(3));
    headers.insert("x-roomtape-routing-key".into(), text("room.started"));
    if let Some(source) = source {
        headers.insert("x-roomtape-source-queue".into(), text(source));
    }
    let properties = BasicProperties::default()
        .with_message_id(id.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type("room_started".into())
        .with_timestamp(1_700_000_000)
        .with_headers(headers);
    let body = roomtape_tests::fixtures::room_event("room_started", id, "town-hall", "RM_th");
    (properties, body.into_bytes())
}

async fn publish(channel: &Channel, queue: &str, properties: BasicProperties, body: &[u8]) {
    let confirmation = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirmation.is_ack(), "broker confirmed");
}

async fn dead_letter(channel: &Channel, id: &str, source: Option<&str>, error: &str) {
    let (properties, body) = processor_dead_letter(id, source, error);
    publish(channel, DEAD_QUEUE, properties, &body).await;
}

/// A message the broker itself dead-letters from `roomtape.events` (rejected), so it carries
/// `x-death` and none of roomtape's headers.
async fn broker_dead_letter(test: &TestEnv, channel: &Channel, id: &str) {
    let before = test.vhost.ready_count(DEAD_QUEUE).await;
    let properties = BasicProperties::default()
        .with_message_id(id.into())
        .with_delivery_mode(2);
    publish(channel, EVENTS_QUEUE, properties, b"not json at all").await;
    let taken = channel
        .basic_get(EVENTS_QUEUE.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("the message");
    taken
        .nack(BasicNackOptions::default())
        .await
        .expect("reject");
    eventually(
        Duration::from_secs(10),
        "the broker's dead letter",
        || async { (test.vhost.ready_count(DEAD_QUEUE).await > before).then_some(()) },
    )
    .await;
}

/// RabbitMQ 4's default for quorum queues, a delivery limit of 20, put on `roomtape.dead` here
/// too (RabbitMQ 3 has no default) by a policy: a browse that counted as deliveries would drop
/// dead letters after 20 walks.
async fn limit_deliveries_as_rabbitmq_4_does(test: &TestEnv) {
    let api = std::env::var("ROOMTAPE_TEST_RABBITMQ_API")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".to_owned());
    let vhost = &test.vhost.name;
    let http = reqwest::Client::new();
    let policy = serde_json::json!({
        "pattern": "^roomtape\\.dead$",
        "definition": {"delivery-limit": 20},
        "apply-to": "queues",
    });
    http.put(format!(
        "{api}/api/policies/{vhost}/rabbitmq-4-delivery-limit"
    ))
    .json(&policy)
    .send()
    .await
    .and_then(reqwest::Response::error_for_status)
    .expect("set the policy");
    // The management API shows a queue's policy with its next statistics (every 5 s), which
    // can take several rounds on a loaded machine.
    eventually(
        Duration::from_secs(30),
        "the policy on roomtape.dead",
        || async {
            let url = format!("{api}/api/queues/{vhost}/{DEAD_QUEUE}");
            let queue: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (queue["effective_policy_definition"]["delivery-limit"] == 20).then_some(())
        },
    )
    .await;
}

fn ids(listing: &Value) -> Vec<String> {
    listing["dead_letters"]
        .as_array()
        .expect("dead_letters")
        .iter()
        .map(|letter| {
            letter["message_id"]
                .as_str()
                .expect("message_id")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn listing_thirty_times_loses_and_ages_nothing_and_replay_still_works() {
    let test = TestEnv::new().await;
    let channel = setup(&test).await;
    limit_deliveries_as_rabbitmq_4_does(&test).await;
    let long_error = format!(
        "storage is not configured: {}\ncaused by: no bucket",
        "x".repeat(100)
    );
    for (id, source) in [
        ("EV_1", Some(EVENTS_QUEUE)),
        ("EV_2", Some(EVENTS_QUEUE)),
        ("CMD_1", Some(COMMANDS_QUEUE)),
        ("EV_orphan", None),
        ("EV_3", Some(EVENTS_QUEUE)),
        ("CMD_2", Some(COMMANDS_QUEUE)),
    ] {
        dead_letter(&channel, id, source, &long_error).await;
    }
    broker_dead_letter(&test, &channel, "EV_broker").await;
    let expected = [
        "EV_1",
        "EV_2",
        "CMD_1",
        "EV_orphan",
        "EV_3",
        "CMD_2",
        "EV_broker",
    ];
    let before = run_json(&test, &["dlq", "show", "--all"]).await;
    assert_eq!(ids(&before), expected);

    for listing in 0..30 {
        let listed = run_json(&test, &["dlq", "list"]).await;
        assert_eq!(listed["total"], 7, "listing {listing}: {listed}");
        assert_eq!(
            ids(&listed),
            expected,
            "same ids, same order, listing {listing}"
        );
    }
    let after = run_json(&test, &["dlq", "show", "--all"]).await;
    assert_eq!(
        after, before,
        "bodies, properties and headers (x-death included) as they were"
    );
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 7);

    let listed = run_json(&test, &["dlq", "list"]).await;
    let first = &listed["dead_letters"][0];
    assert_eq!(first["kind"], "room_started");
    assert_eq!(first["source_queue"], EVENTS_QUEUE);
    assert_eq!(first["attempts"], 3);
    assert_eq!(first["when"], "2023-11-14T22:13:20Z");
    assert_eq!(
        first["error"],
        long_error.as_str(),
        "JSON has the whole error"
    );
    let broker = &listed["dead_letters"][6];
    assert_eq!(broker["source_queue"], EVENTS_QUEUE, "from x-death");
    assert_eq!(
        broker["kind"], EVENTS_QUEUE,
        "the routing key it was published with"
    );
    assert!(
        broker["error"]
            .as_str()
            .expect("error")
            .starts_with("dead-lettered by RabbitMQ (rejected) from roomtape.events"),
        "{broker}"
    );

    let (code, table) = run(&test, &["dlq", "list"]).await;
    assert_eq!(code, 0, "{table}");
    assert!(table.to_lowercase().starts_with("message_id"), "{table}");
    assert!(table.contains("storage is not configured: xxx"), "{table}");
    assert!(
        !table.contains("caused by"),
        "errors cut to a line: {table}"
    );
    assert!(table.contains('…'), "{table}");
    assert!(
        table
            .trim_end()
            .ends_with("7 dead letters in roomtape.dead"),
        "{table}"
    );

    let (code, page) = run(&test, &["dlq", "list", "--limit", "2"]).await;
    assert_eq!(code, 0, "{page}");
    assert!(page.contains("showing 2 of 7 dead letters"), "{page}");
    let paged = run_json(&test, &["dlq", "list"]).await;
    assert_eq!(
        ids(&paged),
        [
            "CMD_1",
            "EV_orphan",
            "EV_3",
            "CMD_2",
            "EV_broker",
            "EV_1",
            "EV_2"
        ],
        "the two shown moved to the back, none lost"
    );

    let (code, out) = run(&test, &["dlq", "replay"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "replayed 2 to roomtape.commands, 4 to roomtape.events; 1 left in roomtape.dead (no source queue)"
    );
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 4);
    assert_eq!(test.vhost.ready_count(COMMANDS_QUEUE).await, 2);
    let orphan = test.vhost.get(DEAD_QUEUE).await.expect("the orphan stays");
    let headers = orphan
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let deliveries = headers::count(Some(&headers), "x-delivery-count").unwrap_or(0);
    assert_eq!(
        deliveries, 0,
        "walked over and over, never a counted delivery"
    );
    assert_eq!(
        headers::text(Some(&headers), "x-roomtape-error").as_deref(),
        Some(long_error.as_str())
    );
    let mut replayed = Vec::new();
    while let Some(message) = test.vhost.get(EVENTS_QUEUE).await {
        let id = message
            .delivery
            .properties
            .message_id()
            .clone()
            .expect("id");
        if id.as_str() == "EV_broker" {
            assert_eq!(message.delivery.data, b"not json at all", "byte for byte");
        } else {
            let (_, body) = processor_dead_letter(id.as_str(), None, "");
            assert_eq!(message.delivery.data, body, "{id}: same body");
        }
        replayed.push(id.to_string());
    }
    replayed.sort();
    assert_eq!(replayed, ["EV_1", "EV_2", "EV_3", "EV_broker"]);
}

#[tokio::test]
async fn show_prints_a_whole_dead_letter_and_refuses_an_unknown_id() {
    let test = TestEnv::new().await;
    let channel = setup(&test).await;
    dead_letter(
        &channel,
        "EV_a",
        Some(EVENTS_QUEUE),
        "bucket gone\ncaused by: 404",
    )
    .await;
    dead_letter(&channel, "EV_b", Some(EVENTS_QUEUE), "other").await;

    let (code, out) = run(&test, &["dlq", "show", "EV_a"]).await;
    assert_eq!(code, 0, "{out}");
    for expected in [
        "dead letter EV_a",
        "source queue   roomtape.events",
        "    bucket gone",
        "    caused by: 404",
        "x-roomtape-attempt",
        "content_type",
        "body (json,",
        "    \"event\": \"room_started\"",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }

    let shown = run_json(&test, &["dlq", "show", "EV_a"]).await;
    assert_eq!(shown["message_id"], "EV_a");
    assert_eq!(shown["body"]["event"], "room_started", "the body as JSON");
    assert_eq!(shown["body_encoding"], "json");
    assert_eq!(shown["headers"]["x-roomtape-attempt"], 3);
    assert_eq!(
        shown["headers"]["x-roomtape-error"],
        "bucket gone\ncaused by: 404"
    );
    assert_eq!(shown["properties"]["type"], "room_started");
    assert!(shown["headers"].get("x-delivery-count").is_none());

    let (code, out) = run(&test, &["dlq", "show", "EV_nope"]).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        "roomtape: no dead letter in roomtape.dead has message id \"EV_nope\": `roomtape dlq list` shows the ids there"
    );
    assert_eq!(
        ids(&run_json(&test, &["dlq", "list"]).await),
        ["EV_a", "EV_b"]
    );

    let missing = Cli::try_parse_from(["roomtape", "dlq", "show"]).expect_err("an id or --all");
    assert_eq!(
        missing.kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
}

#[tokio::test]
async fn replay_of_one_id_moves_exactly_that_one() {
    let test = TestEnv::new().await;
    let channel = setup(&test).await;
    for id in ["EV_1", "EV_2", "EV_3"] {
        dead_letter(&channel, id, Some(EVENTS_QUEUE), "not configured").await;
    }
    dead_letter(&channel, "EV_orphan", None, "not configured").await;

    let (code, out) = run(&test, &["dlq", "replay", "EV_2"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "replayed 1 to roomtape.events; 0 left in roomtape.dead (no source queue)"
    );
    let moved = test.vhost.get(EVENTS_QUEUE).await.expect("EV_2 replayed");
    assert_eq!(
        moved
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str()),
        Some("EV_2")
    );
    let headers = moved
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    assert!(
        headers.inner().get("x-roomtape-error").is_none(),
        "a fresh schedule"
    );
    assert!(headers.inner().get("x-roomtape-attempt").is_none());
    assert_eq!(
        headers::text(Some(&headers), "x-roomtape-routing-key").as_deref(),
        Some("room.started"),
        "its original routing key travels with it"
    );
    assert!(
        test.vhost.get(EVENTS_QUEUE).await.is_none(),
        "only that one"
    );
    assert_eq!(
        ids(&run_json(&test, &["dlq", "list"]).await),
        ["EV_1", "EV_3", "EV_orphan"],
        "the others stay, in order"
    );

    let (code, out) = run(&test, &["dlq", "replay", "EV_2"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("roomtape: no dead letter in roomtape.dead has message id \"EV_2\""),
        "{out}"
    );
    let (code, out) = run(&test, &["dlq", "replay", "EV_orphan"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("records no queue it failed on"), "{out}");
    assert!(out.contains("`roomtape dlq show EV_orphan`"), "{out}");
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 3);
}

#[tokio::test]
async fn replay_moves_every_dead_letter_without_losing_any() {
    let test = TestEnv::new().await;
    let channel = setup(&test).await;
    let mut expected = Vec::new();
    for n in 0..150 {
        let id = format!("EV_{n:03}");
        let source = if n % 3 == 0 {
            COMMANDS_QUEUE
        } else {
            EVENTS_QUEUE
        };
        dead_letter(&channel, &id, Some(source), "not configured").await;
        expected.push(id);
    }

    let (code, out) = run(&test, &["dlq", "replay", "--limit", "100"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("; 50 not replayed yet (--limit)"), "{out}");
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 50);
    let done = run_json(&test, &["dlq", "replay"]).await;
    assert_eq!(done["left"], 0, "{done}");
    assert_eq!(done["not_reached"], 0, "{done}");
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);

    let mut replayed = Vec::new();
    for queue in [EVENTS_QUEUE, COMMANDS_QUEUE] {
        while let Some(message) = test.vhost.get(queue).await {
            let id = message
                .delivery
                .properties
                .message_id()
                .clone()
                .expect("id");
            replayed.push(id.to_string());
        }
    }
    replayed.sort();
    assert_eq!(replayed, expected, "every one, once");

    let (code, out) = run(&test, &["dlq", "replay"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "replayed nothing; 0 left in roomtape.dead (no source queue)"
    );
}

/// Set in the copy of the test binary that `purge_without_yes_refuses_off_a_terminal` starts
/// with stdin detached, when the test itself runs on a terminal.
const DETACHED: &str = "ROOMTAPE_TEST_DETACHED_STDIN";

#[tokio::test]
async fn purge_without_yes_refuses_off_a_terminal() {
    if std::io::stdin().is_terminal() && std::env::var_os(DETACHED).is_none() {
        // Run this same test again, where nobody can answer a question.
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "dlq::purge_without_yes_refuses_off_a_terminal",
                "--nocapture",
            ])
            .env(DETACHED, "1")
            .stdin(std::process::Stdio::null())
            .status()
            .expect("run the test detached");
        assert!(status.success(), "the detached run failed");
        return;
    }
    let test = TestEnv::new().await;
    let channel = setup(&test).await;
    dead_letter(&channel, "EV_keep", Some(EVENTS_QUEUE), "not configured").await;

    let (code, out) = run(&test, &["dlq", "purge"]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        out.trim(),
        "roomtape: delete 1 dead letter in roomtape.dead for good?: pass --yes to confirm without a terminal"
    );
    assert_eq!(
        test.vhost.ready_count(DEAD_QUEUE).await,
        1,
        "nothing purged"
    );
}

#[tokio::test]
async fn purge_with_yes_empties_the_queue_and_says_how_many() {
    let test = TestEnv::new().await;
    let channel = setup(&test).await;
    for n in 0..5 {
        dead_letter(&channel, &format!("EV_{n}"), Some(EVENTS_QUEUE), "x").await;
    }
    let (code, out) = run(&test, &["dlq", "purge", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "purged 5 dead letters from roomtape.dead");
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);

    dead_letter(&channel, "EV_again", Some(EVENTS_QUEUE), "x").await;
    let purged = run_json(&test, &["dlq", "purge", "--yes"]).await;
    assert_eq!(purged["purged"], 1);
    let (code, out) = run(&test, &["dlq", "list"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "roomtape.dead is empty");
}

#[tokio::test]
async fn without_the_queues_every_subcommand_says_what_is_missing() {
    let test = TestEnv::new().await;
    for args in [
        &["dlq", "list"][..],
        &["dlq", "show", "--all"],
        &["dlq", "replay"],
        &["dlq", "purge", "--yes"],
    ] {
        let (code, out) = run(&test, args).await;
        assert_eq!(code, 3, "{args:?}: {out}");
        assert!(
            out.starts_with("roomtape: there is no roomtape.dead queue on this vhost: is roomtape-processor deployed here"),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn every_dlq_subcommand_has_help() {
    for args in [
        &["roomtape", "dlq", "--help"][..],
        &["roomtape", "dlq", "list", "--help"],
        &["roomtape", "dlq", "show", "--help"],
        &["roomtape", "dlq", "replay", "--help"],
        &["roomtape", "dlq", "purge", "--help"],
    ] {
        let help = Cli::try_parse_from(args).expect_err("prints help");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
        let help = help.render().to_string();
        assert!(help.contains("Usage: roomtape dlq"), "{args:?}: {help}");
    }
    let help = Cli::try_parse_from(["roomtape", "dlq", "purge", "--help"])
        .expect_err("help")
        .render()
        .to_string();
    assert!(help.contains("--yes"), "{help}");
}
