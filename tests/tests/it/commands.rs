//! Start/stop recording over the queue, against a fake LiveKit Egress service that decodes the
//! real protobuf and verifies the real token.

use std::time::Duration;

use roomtape_shared::events::proto::{EgressInfo, EgressStatus, RoomCompositeEgressRequest};
use roomtape_shared::queue::topology::{COMMANDS_QUEUE, DEAD_QUEUE, EVENTS_EXCHANGE};
use roomtape_tests::apps::{counter_sum, wait_ready};
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::fixtures::{room_event, Egress};
use roomtape_tests::proxy::ProxiedLinks;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{eventually, spawn_processor, TestApp, TestEnv};
use serde_json::{json, Value};

const START: &str = "StartRoomCompositeEgress";

/// A processor that calls `livekit`, with `extra` settings.
pub(crate) async fn started(
    test: &TestEnv,
    livekit: &FakeLiveKit,
    extra: &[(&str, &str)],
) -> TestApp {
    let mut overrides = vec![("LIVEKIT_URL", livekit.url.as_str())];
    overrides.extend_from_slice(extra);
    let processor = spawn_processor(&test.env_with(&overrides)).await;
    wait_ready(&processor).await;
    processor
}

async fn recording(test: &TestEnv, egress_id: &str) -> Option<Value> {
    test.database.recording(egress_id).await
}

fn start_command(room: &str) -> Value {
    json!({"room_name": room, "layout": "grid", "file_format": "mp4", "stream_id": "0b6f0f2e-9d1e-4a57-9c39-5d3f1d1f6a10",
           "user_id": "user-42", "metadata": {"course": "algebra"}})
}

fn egress_id(reply: &Value) -> String {
    reply["egress_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no egress id: {reply}"))
        .to_owned()
}

#[tokio::test]
async fn start_replies_with_the_egress_and_its_webhooks_make_it_ready() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;

    let reply = test
        .vhost
        .command("recording.start", &start_command("stream-123"), "cmd-1")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["status"], "starting");
    let egress_id = egress_id(&reply);
    let row = recording(&test, &egress_id).await.expect("row");
    assert_eq!(row["status"], "starting");
    assert_eq!(row["stream_id"], "0b6f0f2e-9d1e-4a57-9c39-5d3f1d1f6a10");
    assert_eq!(row["user_id"], "user-42");
    assert_eq!(row["metadata"]["course"], "algebra");
    assert_eq!(
        (row["layout"].as_str(), row["file_format"].as_str()),
        (Some("grid"), Some("mp4"))
    );

    // What LiveKit was asked: the profile's S3 settings, path style, the default file path.
    let calls = livekit.calls(START);
    assert_eq!(calls.len(), 1);
    let request = <RoomCompositeEgressRequest as prost::Message>::decode(calls[0].body.as_slice())
        .expect("protobuf");
    let output = &request.file_outputs[0];
    assert_eq!(output.filepath, "recordings/{room_name}/{time}.mp4");
    let Some(roomtape_shared::events::proto::encoded_file_output::Output::S3(s3)) = &output.output
    else {
        panic!("no S3 output: {output:?}");
    };
    let profile = &test.bucket.profile;
    assert_eq!(s3.bucket, profile.bucket);
    assert_eq!(s3.endpoint, profile.endpoint.as_str().trim_end_matches('/'));
    assert_eq!(
        (s3.access_key.as_str(), s3.region.as_str()),
        (profile.access_key_id.as_str(), "us-east-1")
    );
    assert!(s3.force_path_style);

    // Then LiveKit's webhooks carry it to ready, and the asset carries the command's ids.
    let egress = Egress::new(&egress_id, "stream-123", profile);
    test.bucket
        .put(&egress.key, b"video bytes", "video/mp4")
        .await;
    for (id, key, body) in [
        ("EV_s", "egress.started", egress.started("EV_s")),
        ("EV_e", "egress.ended", egress.ended("EV_e")),
    ] {
        test.vhost
            .publish(EVENTS_EXCHANGE, key, body.as_bytes(), id)
            .await;
    }
    let row = eventually(
        Duration::from_secs(20),
        "the recording to be ready",
        || async {
            recording(&test, &egress_id)
                .await
                .filter(|r| r["status"] == "ready")
        },
    )
    .await;
    assert_eq!(row["stream_id"], "0b6f0f2e-9d1e-4a57-9c39-5d3f1d1f6a10");
    let client = test.database.client().await;
    let asset = client
        .query_one(
            "SELECT stream_id, user_id FROM assets WHERE egress_id = $1",
            &[&egress_id],
        )
        .await
        .expect("asset");
    assert_eq!(
        asset.get::<_, Option<String>>(1).as_deref(),
        Some("user-42")
    );
}

#[tokio::test]
async fn the_official_python_sdk_verifies_the_token_and_parses_the_request() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let reply = test
        .vhost
        .command("recording.start", &start_command("py-room"), "cmd-py")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let call = &livekit.calls(START)[0];

    let script = r#"
import json, sys
from livekit import api
from livekit.protocol import egress
key, secret, token, body = sys.argv[1], sys.argv[2], sys.argv[3], bytes.fromhex(sys.stdin.read())
claims = api.TokenVerifier(key, secret).verify(token)
request = egress.RoomCompositeEgressRequest.FromString(body)
out = request.file_outputs[0]
print(json.dumps({"room_record": claims.video.room_record, "room": request.room_name, "layout": request.layout,
    "file_type": egress.EncodedFileType.Name(out.file_type), "filepath": out.filepath, "bucket": out.s3.bucket,
    "force_path_style": out.s3.force_path_style, "metadata": dict(out.s3.metadata)}))
"#;
    let hex: String = call.body.iter().map(|b| format!("{b:02x}")).collect();
    let output = roomtape_tests::livekit::python(script, &[API_KEY, API_SECRET, &call.token], &hex);
    let parsed: Value = serde_json::from_str(&output).expect("python output");
    assert_eq!(parsed["room_record"], true);
    assert_eq!(parsed["room"], "py-room");
    assert_eq!(parsed["layout"], "grid");
    assert_eq!(parsed["file_type"], "MP4");
    assert_eq!(parsed["bucket"], test.bucket.profile.bucket.as_str());
    assert_eq!(parsed["force_path_style"], true);
    assert_eq!(parsed["metadata"]["roomtape-command-id"], "cmd-py");
}

#[tokio::test]
async fn the_same_command_twice_starts_one_egress() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let first = test
        .vhost
        .command("recording.start", &start_command("dup"), "cmd-dup")
        .await;
    let second = test
        .vhost
        .command("recording.start", &start_command("dup"), "cmd-dup")
        .await;
    assert_eq!(first["ok"], true);
    assert_eq!(
        egress_id(&first),
        egress_id(&second),
        "the same reply again"
    );
    assert_eq!(livekit.calls(START).len(), 1);
}

#[tokio::test]
async fn a_room_already_recording_refuses_a_second_start_unless_it_allows_concurrent() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let first = egress_id(
        &test
            .vhost
            .command("recording.start", &start_command("busy"), "cmd-1")
            .await,
    );

    let refused = test
        .vhost
        .command("recording.start", &start_command("busy"), "cmd-2")
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "already_recording");
    assert_eq!(refused["error"]["egress_ids"], json!([first]));
    assert_eq!(livekit.calls(START).len(), 1, "LiveKit was not asked");
    let again = test
        .vhost
        .command("recording.start", &start_command("busy"), "cmd-2")
        .await;
    assert_eq!(
        again, refused,
        "the stored answer, even once the room is free"
    );

    let mut concurrent = start_command("busy");
    concurrent["allow_concurrent"] = json!(true);
    let second = test
        .vhost
        .command("recording.start", &concurrent, "cmd-3")
        .await;
    assert_eq!(second["ok"], true, "{second}");
    assert_ne!(egress_id(&second), first);
    assert_eq!(livekit.calls(START).len(), 2);
}

#[tokio::test]
async fn two_starts_for_one_room_at_once_start_one_egress() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    // Two processors, and LiveKit slow enough that both starts are in flight together.
    let _processors = (
        started(&test, &livekit, &[]).await,
        started(&test, &livekit, &[]).await,
    );
    for round in 0..5 {
        let room = format!("race-{round}");
        livekit.slow_next(Duration::from_millis(300), 1);
        let command = start_command(&room);
        let (id_a, id_b) = (format!("a-{round}"), format!("b-{round}"));
        let (a, b) = tokio::join!(
            test.vhost.command("recording.start", &command, &id_a),
            test.vhost.command("recording.start", &command, &id_b),
        );
        let mut codes = [&a, &b].map(|reply| match reply["ok"] == true {
            true => "ok".to_owned(),
            false => reply["error"]["code"].as_str().unwrap_or("?").to_owned(),
        });
        codes.sort();
        assert_eq!(codes, ["already_recording", "ok"], "{a} {b}");
    }
    assert_eq!(livekit.calls(START).len(), 5);
}

#[tokio::test]
async fn a_message_id_reused_with_another_body_is_refused_and_keeps_its_first_answer() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let first = test
        .vhost
        .command("recording.start", &start_command("one"), "cmd-reused")
        .await;
    assert_eq!(first["ok"], true, "{first}");

    let other = test
        .vhost
        .command("recording.start", &start_command("two"), "cmd-reused")
        .await;
    assert_eq!(other["ok"], false, "{other}");
    assert_eq!(other["error"]["code"], "idempotency_conflict");
    assert_eq!(livekit.calls(START).len(), 1);

    // The first body again: the first answer.
    let repeat = test
        .vhost
        .command("recording.start", &start_command("one"), "cmd-reused")
        .await;
    assert_eq!(repeat, first);
}

#[tokio::test]
async fn a_crash_between_the_egress_call_and_the_commit_does_not_start_a_second_egress() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let processor = started(&test, &livekit, &[]).await;
    // The state a crash leaves: the command marked as calling LiveKit, and LiveKit running the
    // egress it started (tagged with the command id), but no recording row and no reply.
    let client = test.database.client().await;
    client
        .execute("INSERT INTO recording_commands (message_id, room_name, state) VALUES ('cmd-crash', 'crashy', 'calling')", &[])
        .await
        .expect("seed");
    let request = roomtape_processor::commands::request::egress_request(
        &match roomtape_shared::commands::parse(
            "recording.start",
            start_command("crashy").to_string().as_bytes(),
            &roomtape_shared::config::StorageProfiles::from_env(&test.env()).expect("storage"),
            &roomtape_shared::commands::FilepathTemplate::default(),
        ) {
            Ok(roomtape_shared::commands::Command::Start(start)) => *start,
            other => panic!("{other:?}"),
        },
        "cmd-crash",
    );
    livekit.insert(EgressInfo {
        egress_id: "EG_before_crash".into(),
        room_name: "crashy".into(),
        status: EgressStatus::EgressActive as i32,
        request: Some(request.into()),
        ..EgressInfo::default()
    });

    let reply = test
        .vhost
        .command("recording.start", &start_command("crashy"), "cmd-crash")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        egress_id(&reply),
        "EG_before_crash",
        "adopted, not started again"
    );
    assert!(livekit.calls(START).is_empty());
    assert!(recording(&test, "EG_before_crash").await.is_some());
    drop(processor);
}

#[tokio::test]
async fn a_start_whose_answer_is_lost_is_looked_up_and_never_sent_twice() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[("RETRY_DELAYS", "300ms,1s,2s")]).await;
    // LiveKit starts the egress, answers 500, and lists it only once the first retry's
    // lookup has found nothing.
    livekit.lose_next_answer("internal");

    let catch_up = async {
        looked_up(&livekit, 1).await;
        livekit.list_held();
    };
    let command = start_command("lossy");
    let (reply, ()) = tokio::join!(
        test.vhost.command("recording.start", &command, "cmd-lossy"),
        catch_up
    );
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        egress_id(&reply),
        "EG_fake1",
        "the egress the lost answer was about"
    );
    assert_eq!(livekit.calls(START).len(), 1, "sent once");
    assert_eq!(livekit.started(), 1, "one egress");
    assert!(
        livekit.calls("ListEgress").len() >= 2,
        "looked up on each retry"
    );
}

#[tokio::test]
async fn a_start_never_confirmed_nor_listed_is_answered_and_not_sent_again() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    // RETRY_DELAYS=100ms,200ms. Never listed: the command gives up, and says why.
    livekit.lose_next_answer("internal");

    let reply = test
        .vhost
        .command("recording.start", &start_command("void"), "cmd-void")
        .await;
    assert_eq!(reply["error"]["code"], "deadline_exceeded", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("never sent twice"), "{message}");
    assert_eq!(livekit.calls(START).len(), 1);
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);
}

#[tokio::test]
async fn a_processor_killed_mid_start_leaves_one_egress_which_the_next_adopts() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    // Its connections pass through proxies, so killing it closes them as a dead process's
    // would: its delivery is requeued for the next processor.
    let links = ProxiedLinks::start(&test).await;
    let settings = [
        ("LIVEKIT_URL", livekit.url.as_str()),
        ("RETRY_DELAYS", "300ms,1s,2s"),
    ];
    let env = test.env_with(&settings);
    let doomed = spawn_processor(&links.env(&test, &settings)).await;
    wait_ready(&doomed).await;
    // The call hangs for 3 s; LiveKit lists the egress only once the next processor has
    // looked for it and found nothing.
    livekit.slow_next(Duration::from_secs(3), 1);
    livekit.lose_next_answer("internal");

    let crash_and_take_over = async {
        eventually(Duration::from_secs(10), "the start to be sent", || async {
            (!livekit.calls(START).is_empty()).then_some(())
        })
        .await;
        doomed.kill();
        links.cut();
        let next = spawn_processor(&env).await;
        looked_up(&livekit, 1).await;
        livekit.list_held();
        next
    };
    let command = start_command("crashing");
    let (reply, _next) = tokio::join!(
        test.vhost
            .command("recording.start", &command, "cmd-crashing"),
        crash_and_take_over
    );
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(egress_id(&reply), "EG_fake1");
    assert_eq!(
        livekit.calls(START).len(),
        1,
        "the next processor never sent it again"
    );
    assert_eq!(livekit.started(), 1);
}

#[tokio::test]
async fn stop_by_room_stops_every_active_recording_and_stopping_twice_is_fine() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let a = egress_id(
        &test
            .vhost
            .command("recording.start", &start_command("lecture"), "cmd-a")
            .await,
    );
    let mut concurrent = start_command("lecture");
    concurrent["allow_concurrent"] = json!(true);
    let b = egress_id(
        &test
            .vhost
            .command("recording.start", &concurrent, "cmd-b")
            .await,
    );

    let reply = test
        .vhost
        .command("recording.stop", &json!({"room_name": "lecture"}), "stop-1")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut stopped: Vec<String> =
        serde_json::from_value(reply["egress_ids"].clone()).expect("ids");
    stopped.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(stopped, expected);
    assert_eq!(livekit.calls("StopEgress").len(), 2);
    assert_eq!(
        recording(&test, &a).await.expect("row")["status"],
        "stopping"
    );

    // LiveKit says failed_precondition for an egress already stopping/ended: still success.
    livekit.complete(&a, "recordings/lecture/a.mp4", 10);
    let again = test
        .vhost
        .command("recording.stop", &json!({"egress_id": a}), "stop-2")
        .await;
    assert_eq!(again["ok"], true, "{again}");
    let unknown = test
        .vhost
        .command("recording.stop", &json!({"egress_id": "EG_nope"}), "stop-3")
        .await;
    assert_eq!(unknown["ok"], true, "not_found is success too: {unknown}");
}

#[tokio::test]
async fn livekit_unavailable_is_retried_then_answered_with_an_error() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await; // RETRY_DELAYS=100ms,200ms

    livekit.fail_next("unavailable", 1);
    let recovered = test
        .vhost
        .command("recording.start", &start_command("flaky"), "cmd-flaky")
        .await;
    assert_eq!(
        recovered["ok"], true,
        "one failure, then the retry succeeds: {recovered}"
    );

    livekit.fail_next("unavailable", 100);
    let reply = test
        .vhost
        .command("recording.start", &start_command("down"), "cmd-down")
        .await;
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "egress_error");
    // cmd-flaky: a failed call and a good one; cmd-down: one failed call, then two attempts
    // whose ListEgress (asking whether the first call started anything) failed too.
    assert_eq!(livekit.calls(START).len(), 2 + 1);
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);
}

#[tokio::test]
async fn invalid_commands_get_an_error_reply_and_never_reach_livekit() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let cases = [
        ("recording.start", json!({"layout": "grid"}), "room_name"),
        (
            "recording.start",
            json!({"room_name": "r", "layout": "mosaic"}),
            "unknown layout",
        ),
        (
            "recording.start",
            json!({"room_name": "r", "storage": "nas"}),
            "unknown storage profile",
        ),
        (
            "recording.start",
            json!({"room_name": "r", "file_format": "avi"}),
            "unknown file_format",
        ),
        ("recording.stop", json!({}), "egress_id or room_name"),
        (
            "recording.start",
            json!({"room_name": "r", "filepath": "private/{time}"}),
            "COMMAND_FILEPATH_TEMPLATE",
        ),
        (
            "recording.start",
            json!({"room_name": "..", "filepath": "recordings/{room_name}/x"}),
            "cannot be part of an object key",
        ),
        ("recording.start", json!("not an object"), "bad JSON"),
    ];
    for (n, (key, body, expected)) in cases.iter().enumerate() {
        let reply = test.vhost.command(key, body, &format!("bad-{n}")).await;
        assert_eq!(reply["ok"], false, "{body}");
        assert_eq!(reply["error"]["code"], "invalid_command", "{body}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert!(livekit.calls(START).is_empty() && livekit.calls("StopEgress").is_empty());
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);
    assert_eq!(test.vhost.ready_count(COMMANDS_QUEUE).await, 0);
}

#[tokio::test]
async fn auto_record_starts_one_recording_per_room_session() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let processor = started(&test, &livekit, &[("AUTO_RECORD_ROOMS", "class-*")]).await;
    for (id, room, sid) in [
        ("EV_1", "class-7", "RM_a"),
        ("EV_2", "class-7", "RM_a"),
        ("EV_3", "lobby", "RM_b"),
    ] {
        let body = room_event("room_started", id, room, sid);
        test.vhost
            .publish(EVENTS_EXCHANGE, "room.started", body.as_bytes(), id)
            .await;
    }
    // By metadata, and by name with metadata: the app's stream and user come along.
    for (id, room, metadata) in [
        (
            "EV_4",
            "private",
            r#"{"record": true, "stream_id": "st-1", "user_id": "u-1"}"#,
        ),
        ("EV_5", "class-8", r#"{"stream_id": "st-2", "user_id": 7}"#),
    ] {
        let body = json!({"event": "room_started", "id": id,
                          "room": {"sid": format!("RM_{id}"), "name": room, "metadata": metadata}})
        .to_string();
        test.vhost
            .publish(EVENTS_EXCHANGE, "room.started", body.as_bytes(), id)
            .await;
    }

    let rooms_seen = eventually(
        Duration::from_secs(20),
        "recordings for class-7, class-8 and private",
        || async {
            let client = test.database.client().await;
            let rooms: Vec<(String, Option<String>, Option<String>)> = client
                .query(
                    "SELECT room_name, stream_id, user_id FROM recordings ORDER BY room_name",
                    &[],
                )
                .await
                .expect("query")
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            (rooms.len() == 3).then_some(rooms)
        },
    )
    .await;
    let linked = |stream: &str, user: &str| (Some(stream.to_owned()), Some(user.to_owned()));
    assert_eq!(
        rooms_seen
            .iter()
            .map(|(room, stream, user)| (room.as_str(), (stream.clone(), user.clone())))
            .collect::<Vec<_>>(),
        [
            ("class-7", (None, None)),
            ("class-8", linked("st-2", "7")),
            ("private", linked("st-1", "u-1")),
        ]
    );
    // Wait until all four start commands (class-7 twice, class-8 and private once) were handled.
    eventually(
        Duration::from_secs(10),
        "every auto-record command to be handled",
        || async {
            let handled = counter_sum(
                &processor,
                "roomtape_messages_total",
                &[r#"queue="roomtape.commands""#],
            )
            .await;
            (handled >= 4.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        livekit.calls(START).len(),
        3,
        "one per matching room session"
    );
}

#[tokio::test]
async fn reconciliation_makes_a_recording_ready_without_its_webhook() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(
        &test,
        &livekit,
        &[("RECONCILE_INTERVAL", "200ms"), ("RECONCILE_AFTER", "0s")],
    )
    .await;
    let reply = test
        .vhost
        .command("recording.start", &start_command("lost"), "cmd-lost")
        .await;
    let egress_id = egress_id(&reply);
    let key = format!("recordings/lost/{egress_id}.mp4");
    test.bucket.put(&key, b"0123456789", "video/mp4").await;
    // LiveKit finished the egress, but its egress_ended webhook never arrives.
    livekit.complete(&egress_id, &key, 10);

    let row = eventually(
        Duration::from_secs(20),
        "ListEgress to make it ready",
        || async {
            recording(&test, &egress_id)
                .await
                .filter(|r| r["status"] == "ready")
        },
    )
    .await;
    assert_eq!(row["file_size_bytes"], 10);
    assert_eq!(row["storage_key"], key.as_str());
}

#[tokio::test]
async fn reconciliation_fails_a_recording_livekit_no_longer_knows() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let fast = [("RECONCILE_INTERVAL", "200ms"), ("RECONCILE_AFTER", "0s")];
    let _processor = started(&test, &livekit, &fast).await;
    let client = test.database.client().await;
    client
        .execute(
            "INSERT INTO recordings (egress_id, room_name, status) VALUES ('EG_gone', 'old', 'active')",
            &[],
        )
        .await
        .expect("seed");

    let row = eventually(
        Duration::from_secs(20),
        "the forgotten recording to fail",
        || async {
            recording(&test, "EG_gone")
                .await
                .filter(|r| r["status"] == "failed")
        },
    )
    .await;
    let error = row["error"].as_str().unwrap_or_default();
    assert!(error.contains("no longer knows egress EG_gone"), "{error}");
}

#[tokio::test]
async fn replies_go_only_to_direct_reply_to_or_the_configured_queues() {
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let processor = started(&test, &livekit, &[]).await;
    // A queue of someone else's that a publisher names as its reply_to.
    let channel = test.vhost.channel().await;
    channel
        .queue_declare(
            "orders".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    let properties = lapin::BasicProperties::default()
        .with_message_id("cmd-elsewhere".into())
        .with_content_type("application/json".into())
        .with_reply_to("orders".into());
    let body = start_command("elsewhere").to_string();
    channel
        .basic_publish(
            "roomtape.commands".into(),
            "recording.start".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await
        .expect("publish");
    let client = test.database.client().await;
    eventually(Duration::from_secs(10), "the command carried out", || {
        let client = &client;
        async move {
            let row = client
                .query_opt(
                    "SELECT 1 FROM recording_commands WHERE message_id = 'cmd-elsewhere' AND state = 'done'",
                    &[],
                )
                .await
                .ok()??;
            Some(row)
        }
    })
    .await;
    // A graceful stop settles what is in flight, reply included, before it returns.
    processor.stop().await.expect("stopped");
    assert_eq!(livekit.calls(START).len(), 1, "carried out");
    assert_eq!(
        test.vhost.ready_count("orders").await,
        0,
        "no reply written there"
    );

    // Server-named queues (amq.gen-*) and direct reply-to still get theirs.
    let _processor = started(&test, &livekit, &[]).await;
    let reply = test
        .vhost
        .command(
            "recording.stop",
            &json!({"room_name": "elsewhere"}),
            "stop-1",
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
}

/// A port nothing listens on (yet): connecting to it is refused.
fn refusing_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

#[tokio::test]
async fn a_start_without_a_timestamp_is_answered_by_its_deadline_naming_the_refusal() {
    let test = TestEnv::new().await;
    let address = refusing_address();
    let url = format!("http://{address}");
    let settings = [
        ("LIVEKIT_URL", url.as_str()),
        ("COMMAND_START_DEADLINE", "4s"),
        ("RETRY_DELAYS", "1s,5s,30s"),
    ];
    let processor = spawn_processor(&test.env_with(&settings)).await;
    wait_ready(&processor).await;

    // The test harness publishes with no AMQP timestamp, as pika, amqplib and Bunny do.
    let command = start_command("refused");
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        test.vhost
            .command("recording.start", &command, "cmd-refused"),
    )
    .await
    .expect("answered within the deadline plus a second");
    assert_eq!(reply["error"]["code"], "deadline_exceeded", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_lowercase().contains("connection refused"),
        "the cause is LiveKit's: {message}"
    );

    // LiveKit is back: nothing calls it for this start, not a retry and not a redelivery.
    let livekit = FakeLiveKit::start_at(API_KEY, API_SECRET, &address);
    let again = test
        .vhost
        .command("recording.start", &command, "cmd-refused")
        .await;
    assert_eq!(again, reply, "the stored answer");
    tokio::time::sleep(Duration::from_secs(6)).await;
    for method in [START, "ListEgress", "StopEgress"] {
        assert!(livekit.calls(method).is_empty(), "{method} called");
    }
    assert_eq!(test.vhost.ready_count(DEAD_QUEUE).await, 0);
}

/// Waits until the wall clock is just past the start of a second.
async fn start_of_a_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into + Duration::from_millis(10)).await;
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    u64::try_from(since.as_millis()).expect("ms")
}

/// The reply the processor stored for `message_id`, once it has one.
async fn stored_reply(test: &TestEnv, message_id: &str) -> Value {
    let client = test.database.client().await;
    eventually(Duration::from_secs(10), "the command answered", || {
        let client = &client;
        async move {
            let row = client
                .query_opt(
                    "SELECT reply FROM recording_commands WHERE message_id = $1 AND state = 'done'",
                    &[&message_id],
                )
                .await
                .ok()??;
            Some(row.get::<_, Value>(0))
        }
    })
    .await
}

#[tokio::test]
async fn a_stop_cancels_exactly_the_starts_sent_before_it_to_the_millisecond() {
    use lapin::options::BasicPublishOptions;
    use lapin::types::{AMQPValue, FieldTable};
    use roomtape_shared::queue::commands::SENT_AT_MS;
    use roomtape_tests::api_client::Api;
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    let api = Api::start(&test, &[]).await;

    // Stop, then start, both within one second (the API stamps milliseconds).
    start_of_a_second().await;
    let before_the_stop = now_ms();
    let (status, body) = api
        .post("/api/v1/rooms/same-second/stop-recording/", "", None)
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "nothing to stop: {body}"
    );
    let (status, body) = api
        .post("/api/v1/rooms/same-second/start-recording/", "", None)
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::CREATED,
        "sent after the stop: {body}"
    );

    // A start sent just before that stop, in the same second, and seen only after it.
    let mut headers = FieldTable::default();
    let sent_at = i64::try_from(before_the_stop).expect("ms");
    headers.insert(SENT_AT_MS.into(), AMQPValue::LongLongInt(sent_at));
    let properties = lapin::BasicProperties::default()
        .with_message_id("cmd-before-the-stop".into())
        .with_content_type("application/json".into())
        .with_timestamp(before_the_stop / 1000)
        .with_headers(headers);
    let mut command = start_command("same-second");
    command["allow_concurrent"] = json!(true);
    test.vhost
        .channel()
        .await
        .basic_publish(
            "roomtape.commands".into(),
            "recording.start".into(),
            BasicPublishOptions::default(),
            command.to_string().as_bytes(),
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let reply = stored_reply(&test, "cmd-before-the-stop").await;
    assert_eq!(reply["error"]["code"], "cancelled", "{reply}");
    assert_eq!(livekit.calls(START).len(), 1, "only the later start");
}

/// Waits until the processor has asked LiveKit for its egresses `times` times.
async fn looked_up(livekit: &FakeLiveKit, times: usize) {
    eventually(
        Duration::from_secs(15),
        "the egresses looked up",
        || async { (livekit.calls("ListEgress").len() >= times).then_some(()) },
    )
    .await;
}

/// Waits until LiveKit has been told to stop `egress_id` (the second sweep runs 5 s after the
/// answer).
async fn stopped(livekit: &FakeLiveKit, egress_id: &str) {
    eventually(Duration::from_secs(15), "the egress stopped", || async {
        let info = livekit.egress(egress_id)?;
        (info.status == EgressStatus::EgressEnding as i32).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_start_answered_with_a_body_that_does_not_decode_has_its_egress_stopped() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await;
    livekit.garble_next_answer();

    let reply = test
        .vhost
        .command("recording.start", &start_command("garbled"), "cmd-garbled")
        .await;
    assert_eq!(reply["error"]["code"], "egress_error", "{reply}");
    stopped(&livekit, "EG_fake1").await;
    assert_eq!(livekit.calls(START).len(), 1, "sent once");
}

#[tokio::test]
async fn a_start_whose_egress_is_listed_only_after_the_last_look_has_it_stopped() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = started(&test, &livekit, &[]).await; // RETRY_DELAYS=100ms,200ms
    livekit.lose_next_answer("internal");

    let reply = test
        .vhost
        .command(
            "recording.start",
            &start_command("late-list"),
            "cmd-late-list",
        )
        .await;
    assert_eq!(reply["error"]["code"], "deadline_exceeded", "{reply}");
    // Listed only after the last look has answered; the second sweep, 5 s after the answer,
    // finds it if the first one looked too early.
    livekit.list_held();
    stopped(&livekit, "EG_fake1").await;
    assert_eq!(livekit.calls(START).len(), 1, "sent once");
}

#[tokio::test]
async fn a_broker_that_never_answers_gets_start_and_stop_answered_within_the_timeout() {
    use roomtape_tests::api_client::Api;
    let test = TestEnv::new().await;
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("address").port();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let amqp_url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let settings = [
        ("AMQP_URL", amqp_url.as_str()),
        ("API_COMMAND_TIMEOUT", "2s"),
        ("COMMAND_START_DEADLINE", "1s"),
    ];
    let api = Api::start(&test, &settings).await;

    // Two at once: the second must not wait on the first's connection attempt.
    let limit = Duration::from_secs(3);
    let (start, stop) = tokio::join!(
        tokio::time::timeout(
            limit,
            api.post("/api/v1/rooms/hung/start-recording/", "", None)
        ),
        tokio::time::timeout(
            limit,
            api.post("/api/v1/rooms/hung/stop-recording/", "", None)
        ),
    );
    for (what, answer) in [("start", start), ("stop", stop)] {
        let (status, body) = answer.unwrap_or_else(|_| panic!("{what} not answered in time"));
        assert!(
            [503, 504].contains(&status.as_u16()),
            "{what}: {status} {body}"
        );
    }
    held.abort();
}
