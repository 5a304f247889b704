//! `GET /api/v1/recordings/{egress_id}/playlist.m3u8` from a private bucket: an HLS recording's
//! playlist with every segment a presigned link that opens; what is not an HLS recording, a
//! playlist naming objects outside its folder, a bad `expires` and a missing token are refused,
//! each with its code.

use reqwest::{Method, StatusCode};
use roomtape_processor::events::EventProcessor;
use roomtape_tests::api_client::{answer, ready_recording, Api, READ};
use roomtape_tests::apps::event_processor;
use roomtape_tests::fixtures::Egress;
use roomtape_tests::media::{hls_ended, upload_hls, HLS_PLAYLIST, HLS_SEGMENTS};
use roomtape_tests::outbox::handle;
use roomtape_tests::TestEnv;

const ROOM: &str = "lecture-hall";
const PRIVATE: [(&str, &str); 1] = [("S3_PUBLIC_BASE_URL", "")];

/// A ready HLS recording whose playlist is `playlist`, its segments uploaded beside it.
async fn hls_recording(
    test: &TestEnv,
    processor: &EventProcessor,
    egress_id: &str,
    playlist: &str,
) -> String {
    let mut egress = Egress::new(egress_id, ROOM, &test.bucket.profile);
    let folder = format!("recordings/{ROOM}/{egress_id}");
    egress.key = format!("{folder}/rec.m3u8");
    upload_hls(&test.bucket, &egress.key, playlist.as_bytes(), None).await;
    let ended = hls_ended(&egress, &format!("EV_{egress_id}"));
    handle(processor, &ended).await.expect("applied");
    folder
}

fn playlist_text() -> String {
    String::from_utf8(HLS_PLAYLIST.to_vec()).expect("the playlist is text")
}

fn playlist_path(egress_id: &str, query: &str) -> String {
    format!("/api/v1/recordings/{egress_id}/playlist.m3u8{query}")
}

#[tokio::test]
async fn an_hls_playlist_is_served_with_every_segment_signed() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env_with(&PRIVATE)).await;
    let api = Api::start(&test, &PRIVATE).await;
    let folder = hls_recording(&test, &processor, "EG_hls", &playlist_text()).await;

    let response = api
        .send(
            Method::GET,
            &playlist_path("EG_hls", "?expires=2h"),
            Some(READ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        let value = response.headers().get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or_default().to_owned()
    };
    assert_eq!(header("content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header("cache-control"), "no-store");
    let text = response.text().await.expect("playlist");

    // The tags as they were; each segment line a link to it, signed for 2 h, that opens.
    let tags: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    let original_text = playlist_text();
    let original: Vec<&str> = original_text
        .lines()
        .filter(|l| l.starts_with('#'))
        .collect();
    assert_eq!(tags, original);
    let links: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(links.len(), HLS_SEGMENTS.len(), "{text}");
    let endpoint = test.bucket.profile.endpoint.as_str();
    for (link, (name, bytes)) in links.iter().zip(HLS_SEGMENTS) {
        let object = format!("{endpoint}{}/{folder}/{name}?", test.bucket.profile.bucket);
        assert!(link.starts_with(&object), "{link} is not {object}");
        assert!(link.contains("X-Amz-Expires=7200"), "{link}");
        let segment = reqwest::get(*link).await.expect("GET a segment");
        assert_eq!(segment.status(), StatusCode::OK, "{link}");
        assert_eq!(segment.bytes().await.expect("bytes").as_ref(), bytes);
    }
}

#[tokio::test]
async fn what_is_not_an_hls_recording_or_leaves_its_folder_is_refused() {
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env_with(&PRIVATE)).await;
    let api = Api::start(&test, &PRIVATE).await;
    ready_recording(&test, &processor, "EG_mp4", ROOM, b"video bytes").await;
    let outside = playlist_text().replace("rec_00001.ts", "../EG_other/rec_00001.ts");
    hls_recording(&test, &processor, "EG_outside", &outside).await;
    hls_recording(&test, &processor, "EG_fine", &playlist_text()).await;

    for (path, status, code, says) in [
        (playlist_path("EG_mp4", ""), 404, "not_hls", "is not HLS"),
        (playlist_path("EG_none", ""), 404, "not_found", "EG_none"),
        (
            playlist_path("EG_outside", ""),
            422,
            "invalid_playlist",
            "\"../EG_other/rec_00001.ts\", outside its own folder",
        ),
        (
            playlist_path("EG_fine", "?expires=8d"),
            400,
            "invalid_request",
            "expires",
        ),
        (
            playlist_path("EG_fine", "?expires=soon"),
            400,
            "invalid_request",
            "expires",
        ),
    ] {
        let (got, body) = api.get(&path).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }
    let (status, body) = answer(
        api.send(Method::GET, &playlist_path("EG_fine", ""), None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
