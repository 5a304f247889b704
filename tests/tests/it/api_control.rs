//! Start and stop over HTTP: `roomtape-api` publishes the §4 commands, a real processor carries
//! them out against the fake LiveKit, and its replies become the answers.

use reqwest::{Method, StatusCode};
use roomtape_shared::clock::Clock;
use roomtape_shared::queue::topology::COMMANDS_QUEUE;
use roomtape_tests::api_client::{Api, READ};
use roomtape_tests::apps::{spawn_processor_with_clock, wait_ready};
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::livekit::now_unix;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::shapes::assert_recording;
use roomtape_tests::{eventually, spawn_processor, TestApp, TestEnv};
use serde_json::Value;

const START: &str = "StartRoomCompositeEgress";

async fn processor(test: &TestEnv, livekit: &FakeLiveKit, clock: Clock) -> TestApp {
    let env = test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]);
    let processor = spawn_processor_with_clock(&env, clock).await;
    wait_ready(&processor).await;
    processor
}

fn start_path(room: &str) -> String {
    format!("/api/v1/rooms/{room}/start-recording/")
}

fn stop_path(room: &str) -> String {
    format!("/api/v1/rooms/{room}/stop-recording/")
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn start_and_stop_answer_in_the_django_shape_and_a_retried_start_starts_one_egress() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &livekit, Clock::System).await;
    let api = Api::start(&test, &[]).await;
    let body = r#"{"layout": "grid", "user_id": "user-42", "metadata": {"course": "algebra"}}"#;

    let (status, started) = api
        .post(&start_path("class%201"), body, Some("key-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let egress_id = started["recording_id"]
        .as_str()
        .expect("egress id")
        .to_owned();
    assert!(egress_id.starts_with("EG_"), "{started}");
    assert_eq!(started["status"], "starting");
    assert_eq!(started["message"], "Recording started successfully.");
    assert_eq!(
        started["recording"]["room_name"], "class 1",
        "decoded from the path"
    );
    assert_eq!(started["recording"]["layout"], "grid");
    assert_eq!(started["recording"]["metadata"]["course"], "algebra");
    assert_recording(&started["recording"]);

    // The client retries (it lost the answer): the same recording, LiveKit asked once.
    let (status, retried) = api
        .post(&start_path("class%201"), body, Some("key-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    assert_eq!(retried["recording_id"], egress_id.as_str());
    assert_eq!(livekit.calls(START).len(), 1);

    // Another start while it records; the same key with another body.
    let (status, refused) = api.post(&start_path("class%201"), "", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(code(&refused), "already_recording");
    let other = r#"{"layout": "speaker"}"#;
    let (status, conflict) = api
        .post(&start_path("class%201"), other, Some("key-1"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{conflict}");
    assert_eq!(code(&conflict), "idempotency_conflict");
    assert_eq!(livekit.calls(START).len(), 1, "neither reached LiveKit");

    let (status, stopped) = api.post(&stop_path("class%201"), "", None).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["recording_id"], egress_id.as_str());
    assert_eq!(stopped["status"], "stopping");
    assert_eq!(stopped["recording"]["status"], "stopping");
    assert_recording(&stopped["recording"]);
    assert_eq!(livekit.calls("StopEgress").len(), 1);

    let (status, nothing) = api.post(&stop_path("class%201"), "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{nothing}");
    assert_eq!(code(&nothing), "not_recording");
}

#[tokio::test]
async fn livekit_refusing_a_start_answers_502_with_its_reason() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &livekit, Clock::System).await;
    let api = Api::start(&test, &[]).await;

    livekit.fail_next("not_found", 1);
    let (status, body) = api.post(&start_path("nobody-here"), "", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(code(&body), "room_not_found");

    livekit.fail_next("invalid_argument", 1);
    let (status, body) = api.post(&start_path("refused"), "", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(code(&body), "egress_error");
}

/// The topology a processor declares, with no processor left running.
async fn declared_without_processor(test: &TestEnv) {
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let env = test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    processor.stop().await.expect("processor stopped");
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_field_and_publish_nothing() {
    let test = TestEnv::new().await;
    declared_without_processor(&test).await;
    let api = Api::start(&test, &[]).await;

    for (body, key, field) in [
        (r#"{"audio_only": "yes"}"#, None, "audio_only: "),
        (r#"{"layout": "mosaic"}"#, None, "layout: unknown layout"),
        (r#"{"file_format": "avi"}"#, None, "file_format: unknown"),
        (
            r#"{"storage": "nas"}"#,
            None,
            "storage: unknown storage profile",
        ),
        (r#"{"metadata": [1]}"#, None, "metadata: "),
        (
            r#"{"filepath": "elsewhere/{room_name}"}"#,
            None,
            "filepath: must start with \"recordings/\" (COMMAND_FILEPATH_TEMPLATE)",
        ),
        (
            r#"{"filepath": "recordings/../x"}"#,
            None,
            "filepath: must not have . or .. segments",
        ),
        (
            r#"{"preset": "H264_4K"}"#,
            None,
            "preset: unknown preset \"H264_4K\"; one of LiveKit's H264_720P_30, ",
        ),
        (
            r#"{"preset": "h264_720p_30"}"#,
            None,
            "preset: unknown preset",
        ),
        (
            r#"{"room_name": "other"}"#,
            None,
            "unknown field `room_name`",
        ),
        ("{not json", None, "body: "),
        ("", Some(" "), "Idempotency-Key: "),
    ] {
        let key_too_long = "k".repeat(256);
        let key = key.map(|k| if k == " " { key_too_long.as_str() } else { k });
        let (status, answer) = api.post(&start_path("room"), body, key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(code(&answer), "invalid_request");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(field) || message.contains(field),
            "{body}: {message}"
        );
    }

    let anonymous = api.send(Method::POST, &start_path("room"), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let reader = api.send(Method::POST, &stop_path("room"), Some(READ)).await;
    assert_eq!(reader.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        test.vhost.ready_count(COMMANDS_QUEUE).await,
        0,
        "nothing published"
    );
}

#[tokio::test]
async fn no_processor_answers_504_and_the_start_is_never_carried_out_later() {
    let test = TestEnv::new().await;
    declared_without_processor(&test).await;
    let api = Api::start(
        &test,
        &[
            ("API_COMMAND_TIMEOUT", "2s"),
            ("COMMAND_START_DEADLINE", "1s"),
        ],
    )
    .await;

    let (status, body) = api.post(&start_path("late"), "", Some("late-1")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(code(&body), "no_reply");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2s"),
        "{body}"
    );
    assert_eq!(
        test.vhost.ready_count(COMMANDS_QUEUE).await,
        1,
        "the command waits"
    );

    // A processor comes back a minute later (its clock says so): the start has expired.
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &livekit, Clock::FixedUnix(now_unix() + 60)).await;
    let client = test.database.client().await;
    let reply: Value = eventually(std::time::Duration::from_secs(10), "the start expired", || {
        let client = &client;
        async move {
            let row = client
                .query_opt(
                    "SELECT reply FROM recording_commands WHERE message_id = 'late-1' AND state = 'done'",
                    &[],
                )
                .await
                .ok()??;
            Some(row.get::<_, Value>(0))
        }
    })
    .await;
    assert_eq!(reply["error"]["code"], "deadline_exceeded", "{reply}");
    assert!(livekit.calls(START).is_empty(), "never reached LiveKit");

    // The client retries with its key: told, not started.
    let (status, body) = api.post(&start_path("late"), "", Some("late-1")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(code(&body), "deadline_exceeded");
    assert!(livekit.calls(START).is_empty());
}

#[tokio::test]
async fn a_preset_and_a_filepath_reach_livekit_as_its_enum_and_the_key() {
    use prost::Message;
    use roomtape_shared::events::proto::{
        room_composite_egress_request::Options, EncodingOptionsPreset, RoomCompositeEgressRequest,
    };
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &livekit, Clock::System).await;
    let api = Api::start(&test, &[]).await;

    let body = r#"{"preset": "H264_1080P_60", "filepath": "recordings/vip/{room_name}-{time}"}"#;
    let (status, started) = api.post(&start_path("gala"), body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let call = livekit.calls(START).pop().expect("a start");
    let request = RoomCompositeEgressRequest::decode(call.body.as_slice()).expect("protobuf");
    assert_eq!(
        request.options,
        Some(Options::Preset(EncodingOptionsPreset::H2641080p60.into()))
    );
    assert_eq!(
        request.file_outputs[0].filepath,
        "recordings/vip/{room_name}-{time}.mp4"
    );

    // Without one, LiveKit's own default: no options at all.
    let (status, started) = api.post(&start_path("plain"), "", None).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let call = livekit.calls(START).pop().expect("a start");
    let request = RoomCompositeEgressRequest::decode(call.body.as_slice()).expect("protobuf");
    assert_eq!(request.options, None);
}
