//! Every kind of recording (CONTRACTS §4): participant, track composite and track egresses,
//! started over the queue and the API, reach the fake LiveKit as their own RPC and end `ready`
//! with what they record stored; `already_recording` is scoped to what is recorded;
//! participants are recorded on their own when they join; and the official Python SDK sends
//! the same RPCs the same way.

use std::time::Duration;

use prost::Message;
use reqwest::StatusCode;
use roomtape_shared::events::proto::{
    direct_file_output, encoded_file_output, track_egress_request, EncodedFileOutput,
    ParticipantEgressRequest, S3Upload, TrackCompositeEgressRequest, TrackEgressRequest,
};
use roomtape_shared::queue::topology::EVENTS_EXCHANGE;
use roomtape_tests::api_client::Api;
use roomtape_tests::apps::counter_sum;
use roomtape_tests::fake_livekit::{Call, FakeLiveKit};
use roomtape_tests::media::{final_recording, publish_ended};
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::shapes::assert_recording;
use roomtape_tests::{eventually, TestEnv};

use crate::commands::started;
use serde_json::{json, Value};

const ROOM_COMPOSITE: &str = "StartRoomCompositeEgress";
const PARTICIPANT: &str = "StartParticipantEgress";
const TRACK_COMPOSITE: &str = "StartTrackCompositeEgress";
const TRACK: &str = "StartTrackEgress";

/// The studio: alice publishes a camera and a microphone, bob a microphone.
fn studio(livekit: &FakeLiveKit) {
    livekit.join("studio", "alice", &["TR_alice_cam", "TR_alice_mic"]);
    livekit.join("studio", "bob", &["TR_bob_mic"]);
}

fn egress_id(reply: &Value) -> String {
    reply["egress_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no egress id: {reply}"))
        .to_owned()
}

fn only_call(livekit: &FakeLiveKit, method: &str) -> Call {
    let calls = livekit.calls(method);
    assert_eq!(calls.len(), 1, "one {method}");
    calls.into_iter().next().expect("a call")
}

fn encoded_upload(outputs: &[EncodedFileOutput]) -> (&str, &S3Upload) {
    assert_eq!(outputs.len(), 1, "one file output: {outputs:?}");
    match &outputs[0].output {
        Some(encoded_file_output::Output::S3(s3)) => (outputs[0].filepath.as_str(), s3),
        other => panic!("not an S3 upload: {other:?}"),
    }
}

/// The upload goes to the test's storage profile, tagged with the command's id.
fn assert_upload(test: &TestEnv, s3: &S3Upload, command_id: &str) {
    let profile = &test.bucket.profile;
    assert_eq!(s3.bucket, profile.bucket);
    assert_eq!(s3.endpoint, profile.endpoint.as_str().trim_end_matches('/'));
    assert_eq!(s3.access_key, profile.access_key_id);
    assert!(s3.force_path_style);
    assert_eq!(
        s3.metadata.get("roomtape-command-id").map(String::as_str),
        Some(command_id)
    );
}

/// LiveKit writes `key` and ends the egress: the recording's row once final.
async fn finish(test: &TestEnv, livekit: &FakeLiveKit, egress_id: &str, key: &str) -> Value {
    test.bucket.put(key, b"recorded bytes", "video/mp4").await;
    livekit.complete(egress_id, key, 14);
    let event_id = format!("EV_end_{egress_id}");
    publish_ended(test, &livekit.ended_event(egress_id, &event_id), &event_id).await;
    final_recording(test, egress_id).await
}

#[tokio::test]
async fn each_kind_started_over_the_queue_is_its_own_rpc_and_ends_ready_knowing_what_it_recorded() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    studio(&livekit);
    let _processor = started(&test, &livekit, &[]).await;

    // A participant: alice's screen share, in 1080p.
    let command = json!({"room_name": "studio", "kind": "participant", "identity": "alice",
                         "screen_share": true, "preset": "H264_1080P_30", "user_id": "u-1"});
    let reply = test
        .vhost
        .command("recording.start", &command, "cmd-alice")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let alice = egress_id(&reply);
    assert_eq!(reply["recording"]["kind"], "participant");
    assert_eq!(reply["recording"]["identity"], "alice");
    let request =
        ParticipantEgressRequest::decode(only_call(&livekit, PARTICIPANT).body.as_slice())
            .expect("a ParticipantEgressRequest");
    assert_eq!(
        (request.room_name.as_str(), request.identity.as_str()),
        ("studio", "alice")
    );
    assert!(request.screen_share);
    assert!(request.options.is_some(), "the preset: {request:?}");
    let (filepath, s3) = encoded_upload(&request.file_outputs);
    assert_eq!(filepath, "recordings/{room_name}/{time}-alice-screen.mp4");
    assert_upload(&test, s3, "cmd-alice");

    // A track composite: bob's microphone with alice's camera, as WebM.
    let command = json!({"room_name": "studio", "kind": "track_composite",
                         "audio_track_id": "TR_bob_mic", "video_track_id": "TR_alice_cam",
                         "file_format": "webm"});
    let reply = test
        .vhost
        .command("recording.start", &command, "cmd-mix")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let mix = egress_id(&reply);
    let request =
        TrackCompositeEgressRequest::decode(only_call(&livekit, TRACK_COMPOSITE).body.as_slice())
            .expect("a TrackCompositeEgressRequest");
    assert_eq!(
        (
            request.audio_track_id.as_str(),
            request.video_track_id.as_str()
        ),
        ("TR_bob_mic", "TR_alice_cam")
    );
    let (filepath, s3) = encoded_upload(&request.file_outputs);
    assert_eq!(filepath, "recordings/{room_name}/{time}-TR_bob_mic.webm");
    assert_upload(&test, s3, "cmd-mix");

    // A track as it is: alice's microphone, no transcoding, LiveKit picks the container.
    let command = json!({"room_name": "studio", "kind": "track", "track_id": "TR_alice_mic"});
    let reply = test
        .vhost
        .command("recording.start", &command, "cmd-track")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let track = egress_id(&reply);
    let request = TrackEgressRequest::decode(only_call(&livekit, TRACK).body.as_slice())
        .expect("a TrackEgressRequest");
    assert_eq!(request.track_id, "TR_alice_mic");
    let Some(track_egress_request::Output::File(file)) = &request.output else {
        panic!("not a file: {request:?}");
    };
    assert_eq!(file.filepath, "recordings/{room_name}/{time}-TR_alice_mic");
    let Some(direct_file_output::Output::S3(s3)) = &file.output else {
        panic!("not an S3 upload: {file:?}");
    };
    assert_upload(&test, s3, "cmd-track");
    assert!(livekit.calls(ROOM_COMPOSITE).is_empty());

    // Their lifecycles end ready, each knowing what it recorded.
    let expected = [
        (
            &alice,
            "studio/alice.mp4",
            json!({"kind": "participant", "identity": "alice"}),
        ),
        (
            &mix,
            "studio/mix.webm",
            json!({"kind": "track_composite", "audio_track_id": "TR_bob_mic",
                   "video_track_id": "TR_alice_cam"}),
        ),
        (
            &track,
            "studio/TR_alice_mic.ogg",
            json!({"kind": "track", "track_id": "TR_alice_mic"}),
        ),
    ];
    for (egress_id, key, subject) in expected {
        let key = format!("recordings/{key}");
        let row = finish(&test, &livekit, egress_id, &key).await;
        assert_eq!(row["status"], "ready", "{row}");
        assert_eq!(row["storage_key"], key.as_str());
        for field in ["identity", "audio_track_id", "video_track_id", "track_id"] {
            assert_eq!(row[field], subject[field], "{field} of {row}");
        }
        assert_eq!(row["kind"], subject["kind"], "{row}");
    }
    let ogg = test.database.recording(&track).await.expect("row");
    assert_eq!(ogg["file_format"], "ogg", "from the file LiveKit wrote");
}

#[tokio::test]
async fn already_recording_is_scoped_to_the_participant_track_or_room_recorded() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    studio(&livekit);
    let _processor = started(&test, &livekit, &[]).await;
    let start = |id: &'static str, command: Value| {
        let test = &test;
        async move { test.vhost.command("recording.start", &command, id).await }
    };
    let participant = |identity: &str| json!({"room_name": "studio", "kind": "participant", "identity": identity});

    let alice = start("cmd-a", participant("alice")).await;
    let bob = start("cmd-b", participant("bob")).await;
    let room = start("cmd-r", json!({"room_name": "studio"})).await;
    let track = start(
        "cmd-t",
        json!({"room_name": "studio", "kind": "track",
                                       "track_id": "TR_alice_mic"}),
    )
    .await;
    for reply in [&alice, &bob, &room, &track] {
        assert_eq!(
            reply["ok"], true,
            "alice, bob, the room and a track together: {reply}"
        );
    }

    let again = start("cmd-a2", participant("alice")).await;
    assert_eq!(again["error"]["code"], "already_recording", "{again}");
    assert_eq!(again["error"]["egress_ids"], json!([egress_id(&alice)]));
    let message = again["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("participant alice in room studio"),
        "{message}"
    );
    // The track alice's microphone is already recorded as, in a composite of it.
    let mixed = start(
        "cmd-m",
        json!({"room_name": "studio", "kind": "track_composite",
                                       "audio_track_id": "TR_alice_mic"}),
    )
    .await;
    assert_eq!(
        mixed["error"]["egress_ids"],
        json!([egress_id(&track)]),
        "{mixed}"
    );
    let room_again = start("cmd-r2", json!({"room_name": "studio"})).await;
    assert_eq!(room_again["error"]["egress_ids"], json!([egress_id(&room)]));
    assert_eq!(
        livekit.calls(PARTICIPANT).len(),
        2,
        "LiveKit was not asked again"
    );

    let concurrent = start(
        "cmd-a3",
        json!({"room_name": "studio", "kind": "participant",
                                             "identity": "alice", "allow_concurrent": true}),
    )
    .await;
    assert_eq!(concurrent["ok"], true, "{concurrent}");
    assert_eq!(livekit.calls(PARTICIPANT).len(), 3);
}

#[tokio::test]
async fn livekit_refusals_of_each_kind_reach_the_requester_or_fail_the_recording() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    studio(&livekit);
    let _processor = started(&test, &livekit, &[]).await;

    // A room LiveKit does not have: refused before anything starts.
    let command = json!({"room_name": "nowhere", "kind": "participant", "identity": "alice"});
    let reply = test
        .vhost
        .command("recording.start", &command, "cmd-nowhere")
        .await;
    assert_eq!(reply["error"]["code"], "room_not_found", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("requested room does not exist")),
        "{reply}"
    );

    // Someone not in the room: LiveKit starts the egress, which fails once it has waited for
    // them; its failure reaches the recording.
    let command = json!({"room_name": "studio", "kind": "participant", "identity": "carol"});
    let reply = test
        .vhost
        .command("recording.start", &command, "cmd-carol")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let carol = egress_id(&reply);
    let failed = livekit.egress(&carol).expect("listed");
    assert_eq!(failed.error, "participant carol not found");
    let event_id = "EV_carol";
    publish_ended(&test, &livekit.ended_event(&carol, event_id), event_id).await;
    let row = final_recording(&test, &carol).await;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["error"], "participant carol not found");
    assert_eq!(row["kind"], "participant");
}

fn start_path(room: &str) -> String {
    format!("/api/v1/rooms/{room}/start-recording/")
}

#[tokio::test]
async fn the_api_starts_each_kind_and_lists_by_kind_and_identity() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    studio(&livekit);
    let _processor = started(&test, &livekit, &[]).await;
    let api = Api::start(&test, &[]).await;

    for (body, method) in [
        (
            r#"{"kind": "participant", "identity": "alice"}"#,
            PARTICIPANT,
        ),
        (
            r#"{"kind": "track_composite", "audio_track_id": "TR_alice_mic"}"#,
            TRACK_COMPOSITE,
        ),
        (r#"{"kind": "track", "track_id": "TR_bob_mic"}"#, TRACK),
        ("", ROOM_COMPOSITE),
    ] {
        let (status, started) = api.post(&start_path("studio"), body, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}: {started}");
        assert_recording(&started["recording"]);
        assert_eq!(livekit.calls(method).len(), 1, "{method}");
    }

    // A second alice is a conflict; a track with a preset, or an unknown kind, a 400 that
    // names its field, and nothing reaches LiveKit.
    let (status, conflict) = api
        .post(
            &start_path("studio"),
            r#"{"kind": "participant", "identity": "alice"}"#,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    for (body, field) in [
        (
            r#"{"kind": "track", "track_id": "TR_bob_mic", "preset": "H264_720P_30"}"#,
            "preset",
        ),
        (r#"{"kind": "camera"}"#, "kind"),
        (r#"{"kind": "participant"}"#, "identity"),
        (r#"{"identity": "alice"}"#, "identity"),
    ] {
        let (status, refused) = api.post(&start_path("studio"), body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{body}: {refused}"
        );
    }
    assert_eq!(livekit.calls(PARTICIPANT).len(), 1);
    assert_eq!(livekit.calls(TRACK).len(), 1);

    let (status, page) = api.get("/api/v1/recordings?kind=participant").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["identity"], "alice");
    let (_, page) = api.get("/api/v1/recordings?identity=alice").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let (_, page) = api.get("/api/v1/recordings?kind=track").await;
    assert_eq!(page["items"][0]["track_id"], "TR_bob_mic", "{page}");
    let (status, refused) = api.get("/api/v1/recordings?kind=camera").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

/// `participant_joined` for a participant session (`sid`) of `identity` of LiveKit's `kind`.
fn joined(id: &str, identity: &str, sid: &str, kind: &str) -> String {
    json!({"event": "participant_joined", "id": id, "createdAt": "1700000000",
           "room": {"sid": "RM_calls", "name": "calls"},
           "participant": {"sid": sid, "identity": identity, "kind": kind,
                           "joinedAt": "1700000000"}})
    .to_string()
}

#[tokio::test]
async fn sip_callers_are_recorded_on_their_own_once_per_participant_session() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    for identity in ["sip_+15550001", "assistant", "host"] {
        livekit.join("calls", identity, &[]);
    }
    let processor = started(&test, &livekit, &[("AUTO_RECORD_PARTICIPANT_KINDS", "sip")]).await;
    let events = [
        joined("EV_1", "sip_+15550001", "PA_call1", "SIP"),
        // The same join sent again, under another event id.
        joined("EV_2", "sip_+15550001", "PA_call1", "SIP"),
        // An agent and a standard participant: their kinds are not listed.
        joined("EV_3", "assistant", "PA_agent", "AGENT"),
        joined("EV_4", "host", "PA_host", "STANDARD"),
        // A recorder joining: never recorded.
        joined("EV_5", "EG_abc", "PA_rec", "EGRESS"),
    ];
    for (index, body) in events.iter().enumerate() {
        let id = format!("EV_{}", index + 1);
        test.vhost
            .publish(EVENTS_EXCHANGE, "participant.joined", body.as_bytes(), &id)
            .await;
    }
    let commands_handled = |at_least: f64| {
        let processor = &processor;
        async move {
            eventually(
                Duration::from_secs(20),
                "the auto-record commands",
                || async {
                    let handled = counter_sum(
                        processor,
                        "roomtape_messages_total",
                        &[r#"queue="roomtape.commands""#],
                    )
                    .await;
                    (handled >= at_least).then_some(())
                },
            )
            .await
        }
    };
    commands_handled(2.0).await;
    let calls = livekit.calls(PARTICIPANT);
    assert_eq!(calls.len(), 1, "one egress for the caller's session");
    let request =
        ParticipantEgressRequest::decode(calls[0].body.as_slice()).expect("a participant request");
    assert_eq!(request.identity, "sip_+15550001");

    // The caller hangs up (LiveKit ends the egress) and calls again: a new session, a second.
    let first = livekit.egress("EG_fake1").expect("the first egress");
    assert_eq!(first.room_name, "calls");
    livekit.complete("EG_fake1", "recordings/calls/first.mp4", 1);
    let body = joined("EV_6", "sip_+15550001", "PA_call2", "SIP");
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "participant.joined",
            body.as_bytes(),
            "EV_6",
        )
        .await;
    commands_handled(3.0).await;
    assert_eq!(
        livekit.calls(PARTICIPANT).len(),
        2,
        "one per participant session"
    );
    let recorded = test
        .database
        .count("SELECT count(*) FROM recordings WHERE kind = 'participant' AND identity = 'sip_+15550001'")
        .await;
    assert_eq!(recorded, 2);
    assert!(livekit.calls(ROOM_COMPOSITE).is_empty());
}

#[tokio::test]
async fn the_official_python_sdk_sends_each_rpc_as_roomtape_does() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    studio(&livekit);
    let _processor = started(&test, &livekit, &[]).await;
    for (id, command) in [
        (
            "cmd-p",
            json!({"room_name": "studio", "kind": "participant", "identity": "alice"}),
        ),
        (
            "cmd-tc",
            json!({"room_name": "studio", "kind": "track_composite",
                          "audio_track_id": "TR_alice_mic", "video_track_id": "TR_alice_cam"}),
        ),
        (
            "cmd-t",
            json!({"room_name": "studio", "kind": "track", "track_id": "TR_bob_mic"}),
        ),
    ] {
        let reply = test.vhost.command("recording.start", &command, id).await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let ours: Vec<Call> = [PARTICIPANT, TRACK_COMPOSITE, TRACK]
        .iter()
        .map(|method| only_call(&livekit, method))
        .collect();

    // livekit-api's EgressClient, pointed at the same fake, starts the same three.
    let script = r#"
import asyncio, sys
from livekit import api
async def main(url, key, secret):
    async with api.LiveKitAPI(url, key, secret) as lk:
        s3 = api.S3Upload(bucket="b")
        await lk.egress.start_participant_egress(api.ParticipantEgressRequest(
            room_name="studio", identity="alice",
            file_outputs=[api.EncodedFileOutput(filepath="p.mp4", s3=s3)]))
        await lk.egress.start_track_composite_egress(api.TrackCompositeEgressRequest(
            room_name="studio", audio_track_id="TR_alice_mic", video_track_id="TR_alice_cam",
            file_outputs=[api.EncodedFileOutput(filepath="tc.mp4", s3=s3)]))
        await lk.egress.start_track_egress(api.TrackEgressRequest(
            room_name="studio", track_id="TR_bob_mic",
            file=api.DirectFileOutput(filepath="t", s3=s3)))
asyncio.run(main(*sys.argv[1:4]))
print("ok")
"#;
    let url = livekit.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        roomtape_tests::livekit::python(script, &[&url, API_KEY, API_SECRET], "")
    })
    .await
    .expect("python");
    assert_eq!(output.trim(), "ok");

    let grants = |call: &Call| {
        let payload = call.token.split('.').nth(1).expect("a JWT");
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .expect("base64url"),
        )
        .expect("claims");
        (claims["iss"].clone(), claims["video"]["roomRecord"].clone())
    };
    for (method, ours) in [PARTICIPANT, TRACK_COMPOSITE, TRACK].iter().zip(&ours) {
        let calls = livekit.calls(method);
        assert_eq!(calls.len(), 2, "ours and the SDK's {method}");
        let sdk = &calls[1];
        assert_eq!(sdk.content_type, ours.content_type, "{method}");
        assert_eq!(grants(sdk), grants(ours), "{method}");
        assert_eq!(grants(ours), (json!(API_KEY), json!(true)));
    }
    // The SDK's requests decode as the messages ours are, with the same fields set.
    let sdk = |method: &str| livekit.calls(method).pop().expect("the SDK's").body;
    let participant = ParticipantEgressRequest::decode(sdk(PARTICIPANT).as_slice()).expect("p");
    assert_eq!(participant.identity, "alice");
    let composite =
        TrackCompositeEgressRequest::decode(sdk(TRACK_COMPOSITE).as_slice()).expect("tc");
    assert_eq!(composite.video_track_id, "TR_alice_cam");
    let track = TrackEgressRequest::decode(sdk(TRACK).as_slice()).expect("t");
    assert_eq!(track.track_id, "TR_bob_mic");
}
