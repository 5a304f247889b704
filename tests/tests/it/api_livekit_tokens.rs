//! `roomtape-api` with the LiveKit access tokens apps mint for their users: tokens the official
//! SDKs minted (`tests/fixtures/livekit/access_tokens_*.json`, cross-checked by its
//! `crosscheck.sh`), presented with the API's clock at their `verify_at`. Each grant does what
//! CONTRACTS §7 says and nothing more; lists hold only what the token may read; bad tokens are
//! 401; static tokens work as before.

use reqwest::{Method, StatusCode};
use roomtape_shared::clock::Clock;
use roomtape_tests::api_client::{answer, ready_recording, Api, READ, WRITE};
use roomtape_tests::apps::{event_processor, spawn_processor, wait_ready};
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::livekit::{access_token as token, app_keys};
use roomtape_tests::outbox::handle;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{TestApp, TestEnv};
use serde_json::{json, Value};

/// The API with the app's keys, its clock at the tokens' `verify_at`.
async fn api(test: &TestEnv, extra: &[(&str, &str)]) -> Api {
    let keys = app_keys();
    let mut settings = vec![("LIVEKIT_KEYS", keys.as_str())];
    settings.extend_from_slice(extra);
    let verify_at = token("node_room_join_r1").verify_at;
    Api::start_with_clock(test, &settings, Clock::FixedUnix(verify_at)).await
}

async fn call(api: &Api, method: Method, path: &str, token: &str) -> (StatusCode, Value) {
    answer(api.send(method, path, Some(token)).await).await
}

async fn get(api: &Api, path: &str, token: &str) -> (StatusCode, Value) {
    call(api, Method::GET, path, token).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

fn egress_ids(items: &Value) -> Vec<&str> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| {
            r["egress_id"]
                .as_str()
                .or(r["recording_id"].as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// 403 `forbidden`, naming the grant that would have allowed it.
#[track_caller]
fn assert_forbidden((status, body): &(StatusCode, Value), grant: &str) {
    assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(body), "forbidden", "{body}");
    assert!(
        message(body).contains(&format!("video grant {grant}")),
        "names {grant}: {body}"
    );
}

async fn processor(test: &TestEnv, livekit: &FakeLiveKit) -> TestApp {
    let env = test.env_with(&[("LIVEKIT_URL", livekit.url.as_str())]);
    let processor = spawn_processor(&env).await;
    wait_ready(&processor).await;
    processor
}

#[tokio::test]
async fn a_room_record_token_for_r1_starts_and_stops_r1_and_nothing_else() {
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &livekit).await;
    let api = api(&test, &[]).await;
    let record_r1 = token("python_room_record_r1").token;

    let (status, me) = get(&api, "/api/v1/me", &record_r1).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me,
        json!({"kind": "livekit", "identity": "recorder-bot", "room": "r1",
               "can": ["read", "start", "stop"]})
    );

    let started = answer(
        api.request(
            Method::POST,
            "/api/v1/rooms/r1/start-recording/",
            Some(&record_r1),
        )
        .header("content-type", "application/json")
        .body(r#"{"metadata": {"course": "algebra"}}"#)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    let recording = &started.1["recording"];
    assert_eq!(recording["room_name"], "r1");
    // Who asked is kept with the recording, beside the app's own metadata.
    assert_eq!(
        recording["metadata"],
        json!({"course": "algebra",
               "requested_by": {"kind": "livekit", "identity": "recorder-bot"}})
    );
    let egress_id = started.1["recording_id"].as_str().expect("an egress id");

    let other = call(
        &api,
        Method::POST,
        "/api/v1/rooms/r2/start-recording/",
        &record_r1,
    )
    .await;
    assert_forbidden(&other, "roomRecord (with room \"r2\" or none)");
    let other = call(
        &api,
        Method::POST,
        "/api/v1/rooms/r2/stop-recording/",
        &record_r1,
    )
    .await;
    assert_forbidden(&other, "roomRecord (with room \"r2\" or none)");
    assert_eq!(
        livekit.calls("StartRoomCompositeEgress").len(),
        1,
        "r2 never reached LiveKit"
    );

    // It reads r1's recordings (any status), not deletes them.
    let (status, page) = get(&api, "/api/v1/recordings", &record_r1).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(egress_ids(&page["items"]), [egress_id]);
    let path = format!("/api/v1/recordings/{egress_id}");
    assert_forbidden(
        &call(&api, Method::DELETE, &path, &record_r1).await,
        "roomAdmin with room \"r1\"",
    );

    let (status, stopped) = call(
        &api,
        Method::POST,
        "/api/v1/rooms/r1/stop-recording/",
        &record_r1,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["recording_id"], egress_id);
    assert_eq!(livekit.calls("StopEgress").len(), 1);
}

#[tokio::test]
async fn a_room_join_token_for_r1_reads_r1s_ready_recordings_and_nothing_else() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    // Interleaved, so a list narrowed after the query would lose whole pages.
    ready_recording(&test, &processor, "EG_r1_old", "r1", b"first lecture").await;
    ready_recording(&test, &processor, "EG_r2_old", "r2", b"another room").await;
    ready_recording(&test, &processor, "EG_r1_new", "r1", b"second lecture").await;
    ready_recording(&test, &processor, "EG_r2_new", "r2", b"another room").await;
    let failed = Egress::new("EG_r1_failed", "r1", &test.bucket.profile);
    handle(&processor, &failed.failed("EV_failed", "AccessDenied"))
        .await
        .expect("applied");
    // Without a public base URL, the room's list links files with presigned URLs.
    let api = api(&test, &[("S3_PUBLIC_BASE_URL", "")]).await;
    let join_r1 = token("node_room_join_r1").token;

    let (status, me) = get(&api, "/api/v1/me", &join_r1).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me,
        json!({"kind": "livekit", "identity": "alice", "room": "r1", "can": ["read"]})
    );

    // The list holds r1's ready recordings only, a full page at a time.
    let (status, page) = get(&api, "/api/v1/recordings", &join_r1).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(egress_ids(&page["items"]), ["EG_r1_new", "EG_r1_old"]);
    let mut seen = Vec::new();
    let mut path = "/api/v1/recordings?limit=1".to_owned();
    loop {
        let (status, page) = get(&api, &path, &join_r1).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = egress_ids(&page["items"]);
        seen.extend(items.iter().map(|id| (*id).to_owned()));
        let Some(cursor) = page["next_cursor"].as_i64() else {
            break;
        };
        assert_eq!(items.len(), 1, "a page with a cursor is full");
        path = format!("/api/v1/recordings?limit=1&cursor={cursor}");
    }
    assert_eq!(seen, ["EG_r1_new", "EG_r1_old"]);
    let (status, failed) = get(&api, "/api/v1/recordings?status=failed", &join_r1).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["items"], json!([]), "roomJoin reads only ready ones");
    assert_forbidden(
        &get(&api, "/api/v1/recordings?room=r2", &join_r1).await,
        "roomRecord (with room \"r2\" or none), or roomAdmin with room \"r2\", or roomJoin with room \"r2\"",
    );

    // The room's list (the Django shape), details and download.
    let (status, room) = get(&api, "/api/v1/rooms/r1/recordings/", &join_r1).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(egress_ids(&room), ["EG_r1_new", "EG_r1_old"]);
    let link = room[1]["download_url"].as_str().expect("a download url");
    let bytes = reqwest::get(link).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"first lecture");
    assert_eq!(
        get(&api, "/api/v1/rooms/r2/recordings/", &join_r1).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, details) = get(&api, "/api/v1/recordings/EG_r1_new", &join_r1).await;
    assert_eq!(status, StatusCode::OK, "{details}");
    assert_eq!(details["room_name"], "r1");
    let (status, download) = get(
        &api,
        "/api/v1/recordings/EG_r1_new/download?redirect=false",
        &join_r1,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{download}");
    let url = download["url"].as_str().expect("a url");
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"second lecture");
    for path in [
        "/api/v1/recordings/EG_r2_new",
        "/api/v1/recordings/EG_r2_new/download",
        "/api/v1/recordings/EG_r1_failed",
    ] {
        let refused = get(&api, path, &join_r1).await;
        assert_eq!(refused.0, StatusCode::FORBIDDEN, "{path}: {}", refused.1);
        assert_eq!(code(&refused.1), "forbidden");
    }

    // Nothing that changes anything, and no rooms list.
    assert_forbidden(
        &call(
            &api,
            Method::POST,
            "/api/v1/rooms/r1/start-recording/",
            &join_r1,
        )
        .await,
        "roomRecord (with room \"r1\" or none)",
    );
    assert_forbidden(
        &call(
            &api,
            Method::DELETE,
            "/api/v1/recordings/EG_r1_old",
            &join_r1,
        )
        .await,
        "roomAdmin with room \"r1\"",
    );
    assert_forbidden(&get(&api, "/api/v1/rooms", &join_r1).await, "roomList");
    let (status, _) = get(&api, "/api/v1/recordings/EG_r1_old", READ).await;
    assert_eq!(status, StatusCode::OK, "still there");

    // API_LIVEKIT_JOIN_READS=off: roomJoin reads nothing.
    let strict = self::api(&test, &[("API_LIVEKIT_JOIN_READS", "off")]).await;
    assert_forbidden(
        &get(&strict, "/api/v1/recordings", &join_r1).await,
        "roomRecord, or roomAdmin with a room",
    );
    assert_eq!(
        get(&strict, "/api/v1/recordings/EG_r1_new", &join_r1)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, me) = get(&strict, "/api/v1/me", &join_r1).await;
    assert_eq!(me["can"], json!([]));
}

#[tokio::test]
async fn a_room_admin_token_for_r1_deletes_r1s_recordings_only() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready_recording(&test, &processor, "EG_r1", "r1", b"r1").await;
    ready_recording(&test, &processor, "EG_r2", "r2", b"r2").await;
    let api = api(&test, &[]).await;
    let admin_r1 = token("node_room_admin_r1").token;

    let (_, me) = get(&api, "/api/v1/me", &admin_r1).await;
    assert_eq!(
        me,
        json!({"kind": "livekit", "identity": "moderator", "room": "r1",
               "can": ["read", "delete", "usage"]})
    );
    assert_forbidden(
        &call(&api, Method::DELETE, "/api/v1/recordings/EG_r2", &admin_r1).await,
        "roomAdmin with room \"r2\"",
    );
    let (status, body) = call(&api, Method::DELETE, "/api/v1/recordings/EG_r1", &admin_r1).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        get(&api, "/api/v1/recordings/EG_r1", READ).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&api, "/api/v1/recordings/EG_r2", READ).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_tokens_are_401_other_grants_get_what_they_name_and_static_tokens_are_unchanged() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready_recording(&test, &processor, "EG_r1", "r1", b"r1").await;
    ready_recording(&test, &processor, "EG_r2", "r2", b"r2").await;
    let api = api(&test, &[]).await;

    for (name, reason) in [
        ("python_expired_room_record", "token has expired"),
        (
            "node_unknown_key",
            "token is signed with an unknown API key",
        ),
    ] {
        let (status, body) = get(&api, "/api/v1/recordings", &token(name).token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(code(&body), "unauthorized");
        assert_eq!(message(&body), format!("LiveKit token refused: {reason}"));
    }
    let join_r1 = token("node_room_join_r1").token;
    let tampered = format!("{}x", &join_r1[..join_r1.len() - 1]);
    let (status, body) = get(&api, "/api/v1/me", &tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        message(&body),
        "LiveKit token refused: token signature does not verify"
    );

    // roomRecord without a room reads every room's recordings.
    let record = token("node_room_record").token;
    let (_, page) = get(&api, "/api/v1/recordings", &record).await;
    assert_eq!(egress_ids(&page["items"]), ["EG_r2", "EG_r1"]);
    let (_, me) = get(&api, "/api/v1/me", &record).await;
    assert_eq!(
        me,
        json!({"kind": "livekit", "identity": "ops-bot", "room": null,
               "can": ["read", "start", "stop"]})
    );
    // roomList lists rooms and reads no recording; no video grant at all may do nothing.
    let list = token("python_room_list").token;
    assert_eq!(get(&api, "/api/v1/rooms", &list).await.0, StatusCode::OK);
    let refused = get(&api, "/api/v1/recordings", &list).await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    let nothing = token("python_no_video_grant").token;
    let (_, me) = get(&api, "/api/v1/me", &nothing).await;
    assert_eq!(
        me,
        json!({"kind": "livekit", "identity": "nobody-special", "room": null, "can": []})
    );
    assert_forbidden(&get(&api, "/api/v1/rooms", &nothing).await, "roomList");

    // Static tokens, as before.
    let (_, me) = get(&api, "/api/v1/me", READ).await;
    assert_eq!(
        me,
        json!({"kind": "static", "identity": "viewer", "room": null, "can": ["read", "rooms", "usage"]})
    );
    let (_, me) = get(&api, "/api/v1/me", WRITE).await;
    assert_eq!(
        me["can"],
        json!(["read", "start", "stop", "delete", "rooms", "usage"])
    );
    let (_, page) = get(&api, "/api/v1/recordings", READ).await;
    assert_eq!(egress_ids(&page["items"]), ["EG_r2", "EG_r1"]);
    let (status, body) = call(&api, Method::DELETE, "/api/v1/recordings/EG_r1", READ).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(message(&body), "this token may only read");
    let anonymous = answer(api.send(Method::GET, "/api/v1/me", None).await).await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);

    // The tokens are checked against the API's clock: by the real one they expired long ago.
    let keys = app_keys();
    let today = Api::start(&test, &[("LIVEKIT_KEYS", keys.as_str())]).await;
    let (status, body) = get(&today, "/api/v1/me", &join_r1).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(message(&body), "LiveKit token refused: token has expired");
    // API_LIVEKIT_TOKENS=off: not a token at all.
    let off = self::api(&test, &[("API_LIVEKIT_TOKENS", "off")]).await;
    let (status, body) = get(&off, "/api/v1/me", &join_r1).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(message(&body), "the bearer token is not valid");
}

/// The Supabase deployment's start function, at its path and in its shape.
async fn egress_function(api: &Api, token: &str, body: &str) -> (StatusCode, Value) {
    answer(
        api.request(Method::POST, "/functions/v1/livekit-egress", Some(token))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_supabase_start_function_answers_in_its_shape_under_the_token_rules() {
    use prost::Message;
    use roomtape_shared::events::proto::RoomCompositeEgressRequest;
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let _processor = processor(&test, &livekit).await;
    let api = api(&test, &[]).await;
    let minted = token("python_room_record_r1");

    let (status, started) = egress_function(
        &api,
        &minted.token,
        r#"{"roomName": "r1", "streamId": "5b1f-stream"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    // The API's clock stands at the fixtures' `verify_at` (see `api`).
    let now = token("node_room_join_r1").verify_at;
    let at = chrono::DateTime::from_timestamp(i64::try_from(now).expect("time"), 0)
        .expect("time")
        .format("%Y-%m-%dT%H%M%S");
    let filename = format!("recordings/r1/{at}.mp4");
    let egress_id = started["egressId"].as_str().expect("egressId").to_owned();
    assert_eq!(
        started,
        json!({"success": true, "egressId": egress_id, "filename": filename,
               "message": "Recording started successfully."})
    );
    let call = livekit
        .calls("StartRoomCompositeEgress")
        .pop()
        .expect("a start");
    let request = RoomCompositeEgressRequest::decode(call.body.as_slice()).expect("protobuf");
    assert_eq!(request.room_name, "r1");
    assert_eq!(
        request.file_outputs[0].filepath, filename,
        "the file the answer names"
    );
    let recording = test.database.recording(&egress_id).await.expect("a row");
    assert_eq!(recording["stream_id"], "5b1f-stream");
    assert_eq!(
        recording["user_id"], "recorder-bot",
        "the streamer's token identity"
    );

    // Lists by the app's stream and user.
    let (_, by_stream) = get(
        &api,
        "/api/v1/recordings?stream_id=5b1f-stream",
        &minted.token,
    )
    .await;
    assert_eq!(egress_ids(&by_stream["items"]), [egress_id.as_str()]);
    let (_, by_user) = get(
        &api,
        "/api/v1/recordings?user_id=recorder-bot",
        &minted.token,
    )
    .await;
    assert_eq!(egress_ids(&by_user["items"]), [egress_id.as_str()]);
    let (_, nobody) = get(&api, "/api/v1/recordings?stream_id=other", &minted.token).await;
    assert_eq!(nobody["items"], json!([]));

    // Another room, a token without roomRecord, bad bodies: refused, nothing started.
    assert_forbidden(
        &egress_function(&api, &minted.token, r#"{"roomName": "r2"}"#).await,
        "roomRecord",
    );
    let join = token("node_room_join_r1").token;
    assert_forbidden(
        &egress_function(&api, &join, r#"{"roomName": "r1"}"#).await,
        "roomRecord",
    );
    for (body, field) in [
        (r#"{"roomName": " "}"#, "roomName: roomName is required"),
        (r#"{"streamId": "s"}"#, "missing field `roomName`"),
        (
            r#"{"roomName": "r1", "room": "r1"}"#,
            "unknown field `room`",
        ),
        (r#"["r1"]"#, "body: must be a JSON object"),
    ] {
        let (status, refused) = egress_function(&api, &minted.token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {refused}");
        assert!(message(&refused).contains(field), "{body}: {refused}");
    }
    assert_eq!(livekit.calls("StartRoomCompositeEgress").len(), 1);
}
