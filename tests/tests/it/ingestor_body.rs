//! The ingestor authenticates from the header before it reads a body: an unauthenticated
//! request is answered without waiting for (or holding) its body, and an authenticated one has
//! a read deadline and the size limit. Raw TCP, so a test controls when body bytes are sent.

use std::time::{Duration, Instant};

use roomtape_shared::clock::Clock;
use roomtape_shared::queue::topology::EVENTS_QUEUE;
use roomtape_tests::apps::wait_ready;
use roomtape_tests::livekit::sign_webhook;
use roomtape_tests::{spawn_ingestor, TestApp, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY: &str = r#"{"event":"room_started","room":{"name":"standup"},"id":"EV_raw"}"#;

/// Sends a request head (and `body_part`, possibly less than `content_length`) and returns the
/// answer's status and body, read within `within`.
async fn raw(
    app: &TestApp,
    authorization: &str,
    content_length: u64,
    body_part: &[u8],
    within: Duration,
) -> (u16, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /webhooks/livekit HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/webhook+json\r\nAuthorization: {authorization}\r\n\
         Content-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body_part).await.expect("body part");
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    let read = async {
        // Until the head and the JSON body's end are in (the connection may stay open).
        while !String::from_utf8_lossy(&answer).ends_with('}') {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("an answer in time, without the rest of the body");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn an_unauthenticated_request_is_refused_before_its_body_is_sent() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(&test.env(), Clock::System);
    wait_ready(&app).await;
    let wrong = sign_webhook(b"something else").replace('.', "x.");

    // Within the size limit, but no byte of it sent: answered without waiting for it.
    let (status, body) = raw(&app, &wrong, 1_000_000, b"", Duration::from_secs(2)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");

    // Far over the limit with a bad token: the token is answered first (401 before 413).
    let (status, _) = raw(&app, "abc", 10_000_000_000, b"", Duration::from_secs(2)).await;
    assert_eq!(status, 401);

    // With a good token, the declared size is refused before the body is read.
    let token = sign_webhook(BODY.as_bytes());
    let (status, body) = raw(&app, &token, 10_000_000_000, b"", Duration::from_secs(2)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    assert_eq!(test.vhost.ready_count(EVENTS_QUEUE).await, 0);
}

#[tokio::test]
async fn a_body_slower_than_the_read_deadline_is_408_and_not_published() {
    let test = TestEnv::new().await;
    let app = spawn_ingestor(
        &test.env_with(&[("INGESTOR_BODY_TIMEOUT", "200ms")]),
        Clock::System,
    );
    wait_ready(&app).await;
    let token = sign_webhook(BODY.as_bytes());
    let half = &BODY.as_bytes()[..BODY.len() / 2];

    let started = Instant::now();
    let (status, body) = raw(
        &app,
        &token,
        BODY.len() as u64,
        half,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("body_timeout"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before the deadline"
    );

    // The same body sent whole is taken.
    let (status, body) = raw(
        &app,
        &token,
        BODY.len() as u64,
        BODY.as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        test.vhost.ready_count(EVENTS_QUEUE).await,
        1,
        "only the whole one"
    );
}
