//! `roomtape-api` against real PostgreSQL and S3: recordings made by the processor's event
//! handler (stepped directly), then listed, paged, shown, linked and deleted over HTTP, with
//! token scopes, query validation, CORS, metrics and the OpenAPI document.

use clap::Parser;
use reqwest::{header, Method, StatusCode};
use roomtape_cli::{execute, Cli};
use roomtape_tests::api_client::{ready_recording as ready, Api, ALLOWED_ORIGIN, READ, WRITE};
use roomtape_tests::apps::{counter_sum, event_processor, metrics_text};
use roomtape_tests::fixtures::{participant_event, room_event, Egress};
use roomtape_tests::outbox::handle;
use roomtape_tests::shapes::{assert_has_recording_fields, assert_recording, RECORDING_FIELDS};
use roomtape_tests::TestEnv;
use serde_json::Value;

fn ids(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn recordings_are_listed_paged_and_shown() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready(&test, &processor, "EG_a", "algebra", b"0123456789").await;
    ready(&test, &processor, "EG_b", "algebra", b"01234").await;
    ready(&test, &processor, "EG_c", "biology", b"012").await;
    let failed = Egress::new("EG_d", "math class", &test.bucket.profile);
    handle(&processor, &failed.failed("EV_f", "AccessDenied"))
        .await
        .expect("applied");
    // Without a public base URL, a room's list links each file with a presigned URL.
    let api = Api::start(&test, &[("S3_PUBLIC_BASE_URL", "")]).await;

    // The Django deployment's shape, newest first.
    let (status, room) = api.get("/api/v1/rooms/algebra/recordings/").await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(ids(&room, "recording_id"), ["EG_b", "EG_a"]);
    let first = &room[1];
    for field in [
        "id",
        "recording_id",
        "status",
        "started_at",
        "ended_at",
        "duration_seconds",
        "duration_formatted",
        "file_size_bytes",
        "file_format",
        "download_url",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert_eq!(first["status"], "ready");
    assert_eq!(first["file_size_bytes"], 10);
    assert_eq!(
        first["duration_formatted"], "30:00",
        "as the Django pages show it"
    );
    let link = first["download_url"].as_str().expect("a download url");
    assert!(link.contains("X-Amz-Signature="), "presigned: {link}");
    let bytes = reqwest::get(link).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"0123456789");
    // A percent-encoded room name; a recording without a file has no link.
    let (status, spaced) = api.get("/api/v1/rooms/math%20class/recordings/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&spaced, "recording_id"), ["EG_d"]);
    assert_eq!(spaced[0]["download_url"], Value::Null);
    let (_, nobody) = api.get("/api/v1/rooms/nobody/recordings/").await;
    assert_eq!(nobody, serde_json::json!([]));

    // Filters, and pages through the cursor.
    let (_, algebra) = api
        .get("/api/v1/recordings?room=algebra&status=ready&since=1h")
        .await;
    assert_eq!(ids(&algebra["items"], "egress_id"), ["EG_b", "EG_a"]);
    let (_, future) = api
        .get("/api/v1/recordings?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(future["items"], serde_json::json!([]));
    assert_eq!(future["next_cursor"], Value::Null);
    let (_, failed) = api.get("/api/v1/recordings?status=failed").await;
    assert_eq!(ids(&failed["items"], "egress_id"), ["EG_d"]);

    let mut seen = Vec::new();
    let mut path = "/api/v1/recordings?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        seen.extend(ids(&page["items"], "egress_id"));
        match page["next_cursor"].as_i64() {
            Some(cursor) => {
                let last = page["items"].as_array().unwrap().last().unwrap();
                assert_eq!(last["id"].as_i64(), Some(cursor));
                path = format!("/api/v1/recordings?limit=3&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["EG_d", "EG_c", "EG_b", "EG_a"]);
    assert_eq!(pages, 2);
    let (_, exact) = api.get("/api/v1/recordings?limit=4").await;
    assert!(exact["next_cursor"].is_i64(), "a full page has a cursor");

    // Details with the files; an unknown id is 404.
    let (status, shown) = api.get("/api/v1/recordings/EG_a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["egress_id"], "EG_a");
    assert_eq!(shown["room_name"], "algebra");
    assert_eq!(shown["status"], "ready");
    assert_eq!(shown["assets"][0]["file_size_bytes"], 10);

    // One shape of a recording: every field, where the file is among them, and what
    // `roomtape recordings --json` prints for the same recordings.
    for item in algebra["items"].as_array().expect("items") {
        assert_recording(item);
    }
    let listed = &algebra["items"][1];
    let egress = Egress::new("EG_a", "algebra", &test.bucket.profile);
    assert_eq!(listed["egress_id"], "EG_a");
    assert_eq!(
        listed["storage_provider"],
        test.bucket.profile.provider.as_str()
    );
    assert_eq!(
        listed["storage_bucket"],
        test.bucket.profile.bucket.as_str()
    );
    assert_eq!(listed["storage_key"], egress.key.as_str());
    let mut out = Vec::new();
    let cli =
        Cli::parse_from("roomtape recordings list --room algebra --status ready --json".split(' '));
    assert_eq!(execute(cli, &test.env(), &mut out, false).await, 0);
    let printed: Value = serde_json::from_slice(&out).expect("the CLI prints JSON");
    assert_eq!(
        printed, algebra["items"],
        "the CLI's recordings are the API's"
    );
    // Details are the recording, the same as listed, with its files.
    assert_eq!(
        assert_has_recording_fields(&shown),
        RECORDING_FIELDS.len() + 1,
        "{shown}"
    );
    let mut recording = shown.clone();
    recording.as_object_mut().expect("object").remove("assets");
    assert_eq!(&recording, listed);

    let (status, missing) = api.get("/api/v1/recordings/EG_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "not_found");
    assert!(missing["error"]["message"].is_string());

    // Every endpoint is counted under its route, not its raw path.
    let counted = counter_sum(
        &api.app,
        "roomtape_api_requests_total",
        &[
            "endpoint=\"/api/v1/recordings/{egress_id}\"",
            "status=\"404\"",
        ],
    )
    .await;
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn invalid_queries_are_refused_naming_the_field() {
    let test = TestEnv::new().await;
    event_processor(&test.env()).await;
    let api = Api::start(&test, &[]).await;
    for (path, field) in [
        ("/api/v1/recordings?status=done", "status"),
        ("/api/v1/recordings?since=yesterday", "since"),
        ("/api/v1/recordings?limit=0", "limit"),
        ("/api/v1/recordings?limit=many", "limit"),
        ("/api/v1/recordings?cursor=abc", "cursor"),
        ("/api/v1/recordings/EG_x/download?expires=30d", "expires"),
        ("/api/v1/rooms?status=open", "status"),
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{path}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn tokens_and_their_scopes_are_enforced() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready(&test, &processor, "EG_a", "algebra", b"0123").await;
    let api = Api::start(&test, &[]).await;

    for path in [
        "/api/v1/recordings",
        "/api/v1/recordings/EG_a",
        "/api/v1/recordings/EG_a/download",
        "/api/v1/rooms",
        "/api/v1/rooms/algebra/recordings/",
    ] {
        for token in [None, Some("wrong-token"), Some("")] {
            let response = api.send(Method::GET, path, token).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {token:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    let response = api
        .send(Method::DELETE, "/api/v1/recordings/EG_a", None)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = api
        .send(Method::DELETE, "/api/v1/recordings/EG_a", Some(READ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    // A write token reads too.
    let response = api
        .send(Method::GET, "/api/v1/recordings/EG_a", Some(WRITE))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The operational routes and the document need no token.
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        let response = api.send(Method::GET, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let (status, _) = api.get("/api/v1/recordings/EG_a").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still there: the refused delete did nothing"
    );
}

#[tokio::test]
async fn download_redirects_to_the_file_and_delete_removes_it() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready(&test, &processor, "EG_a", "algebra", b"the recording").await;
    let active = Egress::new("EG_live", "algebra", &test.bucket.profile);
    handle(&processor, &active.started("EV_live"))
        .await
        .expect("applied");
    let api = Api::start(&test, &[]).await;

    let response = api
        .send(
            Method::GET,
            "/api/v1/recordings/EG_a/download?expires=10m",
            Some(READ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let file = reqwest::get(&location).await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(&file.bytes().await.unwrap()[..], b"the recording");
    // For pages: the link as JSON, not a redirect their fetch() would follow.
    let (status, link) = api
        .get("/api/v1/recordings/EG_a/download?redirect=false&expires=10m")
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().expect("url");
    assert_eq!(
        &reqwest::get(url).await.unwrap().bytes().await.unwrap()[..],
        b"the recording"
    );
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(link["expires_at"].clone()).expect("RFC 3339");
    let lifetime = expires_at - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::minutes(9) && lifetime <= chrono::Duration::minutes(10),
        "{lifetime}"
    );
    let (status, body) = api.get("/api/v1/recordings/EG_live/download").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no file yet: {body}");
    assert_eq!(body["error"]["code"], "no_file");

    let response = api
        .send(Method::DELETE, "/api/v1/recordings/EG_live", Some(WRITE))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "recording_active");

    let response = api
        .send(Method::DELETE, "/api/v1/recordings/EG_a", Some(WRITE))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = api.get("/api/v1/recordings/EG_a").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = api
        .send(Method::DELETE, "/api/v1/recordings/EG_a", Some(WRITE))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        reqwest::get(&location).await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "the object is gone"
    );
}

#[tokio::test]
async fn rooms_list_their_viewer_counts() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    for body in [
        room_event("room_started", "EV_r1", "class", "RM_test"),
        participant_event("participant_joined", "EV_j1", "class", "alice", "STANDARD"),
        participant_event("participant_joined", "EV_j2", "class", "bob", "STANDARD"),
        participant_event("participant_left", "EV_l1", "class", "bob", "STANDARD"),
        room_event("room_started", "EV_r2", "over", "RM_over"),
        room_event("room_finished", "EV_r3", "over", "RM_over"),
    ] {
        handle(&processor, &body).await.expect("applied");
    }
    let api = Api::start(&test, &[]).await;

    let (status, active) = api.get("/api/v1/rooms?status=active").await;
    assert_eq!(status, StatusCode::OK, "{active}");
    assert_eq!(ids(&active, "room_name"), ["class"]);
    assert_eq!(active[0]["status"], "active");
    assert_eq!(active[0]["participant_count"], 1);
    assert_eq!(active[0]["max_participants"], 2);
    let (_, all) = api.get("/api/v1/rooms").await;
    let mut names = ids(&all, "room_name");
    names.sort();
    assert_eq!(names, ["class", "over"]);
    let (_, finished) = api.get("/api/v1/rooms?status=finished").await;
    assert_eq!(ids(&finished, "room_name"), ["over"]);
}

#[tokio::test]
async fn the_openapi_document_lists_every_path_and_cors_admits_only_listed_origins() {
    let test = TestEnv::new().await;
    event_processor(&test.env()).await;
    let api = Api::start(&test, &[]).await;

    let response = api.send(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(
        document["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "{document}"
    );
    for path in [
        "/api/v1/rooms/{room}/recordings/",
        "/api/v1/recordings",
        "/api/v1/recordings/{egress_id}",
        "/api/v1/recordings/{egress_id}/download",
        "/api/v1/recordings/{egress_id}/playlist.m3u8",
        "/api/v1/rooms",
        "/api/v1/me",
        "/api/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} in the document"
        );
    }
    assert!(document["paths"]["/api/v1/recordings/{egress_id}"]["delete"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    // LiveKit access tokens: a scheme of their own, on every route that takes them.
    let livekit = &document["components"]["securitySchemes"]["livekit"];
    assert_eq!(livekit["bearerFormat"], "JWT", "{livekit}");
    let security = &document["paths"]["/api/v1/recordings"]["get"]["security"];
    assert_eq!(
        security,
        &serde_json::json!([{"bearer": []}, {"livekit": []}])
    );
    let me = &document["components"]["schemas"]["Me"]["properties"];
    for field in ["kind", "identity", "room", "can"] {
        assert!(me[field].is_object(), "{field} in {me}");
    }
    // The recording's schema is derived from the one type the API and the CLI serialize.
    let schema = &document["components"]["schemas"]["Recording"];
    for field in RECORDING_FIELDS {
        assert!(
            schema["properties"][field].is_object(),
            "{field} in {schema}"
        );
    }
    // The thumbnail's key is the processor's and the library's, not the API's.
    assert!(schema["properties"]["thumbnail_key"].is_null(), "{schema}");
    let statuses = &document["components"]["schemas"]["Status"]["enum"];
    assert_eq!(
        statuses,
        &serde_json::json!([
            "starting", "active", "stopping", "stopped", "ready", "failed", "aborted"
        ])
    );

    let asked = |origin: &'static str| {
        api.http
            .get(api.app.url("/api/v1/recordings"))
            .bearer_auth(READ)
            .header(header::ORIGIN, origin)
            .send()
    };
    let allowed = asked(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&header::HeaderValue::from_static(ALLOWED_ORIGIN))
    );
    let other = asked("https://elsewhere.example.com").await.unwrap();
    assert!(other
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());

    let preflight = |origin: &'static str| {
        api.http
            .request(Method::OPTIONS, api.app.url("/api/v1/recordings/EG_a"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "DELETE")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .send()
    };
    let allowed = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&header::HeaderValue::from_static(ALLOWED_ORIGIN))
    );
    let other = preflight("https://elsewhere.example.com").await.unwrap();
    assert!(other
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
}

/// Every series on `/metrics`: its name and labels, without the value.
fn series(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// One request of each kind a stranger can invent: a method, a path, an id in a route.
async fn invented(api: &Api, n: usize) {
    let method = Method::from_bytes(format!("INVENT{n}").as_bytes()).unwrap();
    for (method, path) in [
        (method.clone(), "/api/v1/recordings".to_owned()),
        (method, format!("/nowhere-{n}")),
        (Method::GET, format!("/made-up-{n}/x")),
        (Method::GET, format!("/api/v1/made-up-{n}")),
        (Method::GET, format!("/api/v1/recordings/EG_{n}")),
    ] {
        api.send(method, &path, None).await;
    }
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let test = TestEnv::new().await;
    let api = Api::start(&test, &[]).await;
    // Each kind once (and a scrape), so its (bounded) series exist; then many more.
    invented(&api, 0).await;
    metrics_text(&api.app).await;
    let before = series(&metrics_text(&api.app).await);
    for n in 1..=300 {
        invented(&api, n).await;
    }
    let after = series(&metrics_text(&api.app).await);
    assert_eq!(
        after.difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "1,500 invented requests made new series"
    );
    assert_eq!(before, after);
    assert!(
        before.iter().any(|s| s.contains("method=\"other\"")),
        "invented methods are counted, as other: {before:?}"
    );
}

#[tokio::test]
async fn readyz_names_no_database_address() {
    let test = TestEnv::new().await;
    let env = test.env_with(&[
        ("API_TOKENS", "viewer:a-token:read"),
        (
            "DATABASE_URL",
            "postgres://someone:pw@127.0.0.1:1/hidden_database_name",
        ),
    ]);
    let api = roomtape_tests::apps::spawn_api(&env);
    let http = reqwest::Client::new();
    let response = roomtape_tests::eventually(
        std::time::Duration::from_secs(15),
        "the API to answer /readyz",
        || {
            let request = http.get(api.url("/readyz")).send();
            async move { request.await.ok() }
        },
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "not_ready", "reason": "database unreachable"})
    );
}

#[tokio::test]
async fn a_rooms_list_links_the_public_url_where_the_profile_has_one() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    ready(&test, &processor, "EG_pub", "lecture", b"0123").await;
    let long = Egress::new("EG_long", "lecture", &test.bucket.profile);
    test.bucket.put(&long.key, b"012345", "video/mp4").await;
    let mut ended: Value = serde_json::from_str(&long.ended("EV_e_long")).expect("json");
    ended["egressInfo"]["fileResults"][0]["duration"] = "3723000000000".into();
    for body in [long.started("EV_s_long"), ended.to_string()] {
        handle(&processor, &body).await.expect("applied");
    }
    // S3_PUBLIC_BASE_URL is https://media.example.com/rec in every test.
    let api = Api::start(&test, &[]).await;

    let (status, room) = api.get("/api/v1/rooms/lecture/recordings/").await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(ids(&room, "recording_id"), ["EG_long", "EG_pub"]);
    assert_eq!(room[0]["duration_formatted"], "1:02:03");
    let key = Egress::new("EG_pub", "lecture", &test.bucket.profile).key;
    assert_eq!(
        room[1]["download_url"],
        format!("https://media.example.com/rec/{key}"),
        "the public URL, not a presigned one"
    );
}
