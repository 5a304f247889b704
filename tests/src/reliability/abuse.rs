//! The ingestor against what it must refuse or shed: bad requests at volume (each answered its
//! status, none published) and overload while the broker stops confirming (503 fast, never a
//! hang, never a 2xx before the confirm).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use roomtape_shared::auth::{webhook_claims, WebhookSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::room_event;
use crate::livekit::{now_unix, sign_claims, webhook_request};

/// How each kind of bad request was answered: kind → (expected, answers by status).
pub type BadInputAnswers = BTreeMap<&'static str, (&'static str, BTreeMap<String, u64>)>;

/// Sends `per_kind` of each kind of bad request to `ingestor` (`127.0.0.1:port`), whose body
/// deadline is `body_timeout`; 16 rounds at a time (a slow body takes its whole deadline).
pub async fn bad_requests(
    port: u16,
    api_key: &str,
    api_secret: &str,
    per_kind: usize,
    body_timeout: Duration,
) -> BadInputAnswers {
    let rounds: Vec<_> = (0..per_kind)
        .map(|n| one_of_each(port, api_key, api_secret, n, body_timeout))
        .collect();
    let rounds: Vec<Vec<Answer>> = stream::iter(rounds).buffer_unordered(16).collect().await;
    let mut answers = BadInputAnswers::new();
    for (kind, expected, got) in rounds.into_iter().flatten() {
        count(&mut answers, kind, expected, got);
    }
    answers
}

/// A kind of bad request, the status it must get, and the one it got.
type Answer = (&'static str, &'static str, String);

async fn one_of_each(
    port: u16,
    api_key: &str,
    api_secret: &str,
    n: usize,
    body_timeout: Duration,
) -> Vec<Answer> {
    let signer = WebhookSigner::new(api_key, api_secret);
    let forger = WebhookSigner::new(api_key, "not-the-secret-0123456789abcdef");
    let body = room_event("room_started", &format!("EV_bad{n}"), "bad", "RM_bad");
    let other = room_event("room_started", &format!("EV_other{n}"), "bad", "RM_bad");
    let mut expired = webhook_claims(api_key, body.as_bytes(), now_unix() - 7_200);
    expired["exp"] = (now_unix() - 3_600).into();
    let random: Vec<u8> = (0..64).map(|i| (n * 31 + i * 7) as u8).collect();
    let oversized = vec![b'x'; 2 * 1024 * 1024];
    let json = "application/webhook+json";
    let cases: [(&'static str, &'static str, Vec<u8>, String, &str); 6] = [
        (
            "forged signature",
            "401",
            body.clone().into(),
            forger.sign(body.as_bytes()),
            json,
        ),
        (
            "expired token",
            "401",
            body.clone().into(),
            sign_claims(&expired, api_secret),
            json,
        ),
        (
            "token of another body",
            "401",
            other.into(),
            signer.sign(body.as_bytes()),
            json,
        ),
        (
            "oversized body",
            "413",
            oversized.clone(),
            signer.sign(&oversized),
            json,
        ),
        (
            "wrong content type",
            "415",
            body.clone().into(),
            signer.sign(body.as_bytes()),
            "text/plain",
        ),
        (
            "random bytes",
            "400",
            random.clone(),
            signer.sign(&random),
            json,
        ),
    ];
    let mut answers = Vec::with_capacity(cases.len() + 2);
    for (kind, expected, bytes, token, content_type) in cases {
        let status = raw_post(port, &bytes, bytes.len(), &token, content_type, None).await;
        answers.push((kind, expected, status));
    }
    let token = signer.sign(body.as_bytes());
    let half = &body.as_bytes()[..body.len() / 2];
    let truncated = raw_post(port, half, body.len(), &token, json, None).await;
    answers.push(("truncated body", "400", truncated));
    let stall = Some(body_timeout + Duration::from_millis(500));
    let slow = raw_post(port, half, body.len(), &token, json, stall).await;
    answers.push(("slow body", "408", slow));
    answers
}

fn count(answers: &mut BadInputAnswers, kind: &'static str, expected: &'static str, got: String) {
    *answers
        .entry(kind)
        .or_insert_with(|| (expected, BTreeMap::new()))
        .1
        .entry(got)
        .or_default() += 1;
}

/// A POST over a raw socket, so a body can be cut short (`sent` shorter than `length`) or
/// stalled (`stall`: wait that long before closing). Returns the status, or what happened.
async fn raw_post(
    port: u16,
    sent: &[u8],
    length: usize,
    token: &str,
    content_type: &str,
    stall: Option<Duration>,
) -> String {
    let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)).await else {
        return "no connection".into();
    };
    let head = format!(
        "POST /webhooks/livekit HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {content_type}\r\n\
         authorization: {token}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return "closed".into();
    }
    // A server may answer (413) before reading the body: a failed write is fine.
    let _ = socket.write_all(sent).await;
    match stall {
        Some(stall) => tokio::time::sleep(stall).await,
        None if sent.len() < length => {
            let _ = socket.shutdown().await;
        }
        None => {}
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer));
    match read.await {
        Err(_) => "hang".into(),
        Ok(_) if answer.is_empty() => "closed".into(),
        Ok(_) => String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)
            .unwrap_or("garbled")
            .to_owned(),
    }
}

/// How a burst of webhooks was answered while the broker held its confirms.
#[derive(Debug, Default)]
pub struct Overload {
    pub answers: BTreeMap<String, u64>,
    pub slowest: Duration,
    /// Ids answered 2xx while no confirm could arrive (must be none).
    pub accepted_unconfirmed: Vec<String>,
}

/// `requests` webhooks, `concurrency` at once, to `url` while no confirm arrives.
/// `requests` refusals anyone can cause without a key, half forged tokens (401), half a wrong
/// content type (415), 32 at a time: how they were answered, by status.
pub async fn unauthenticated(url: &str, api_key: &str, requests: usize) -> BTreeMap<String, u64> {
    let http = reqwest::Client::new();
    let forger = WebhookSigner::new(api_key, "not-the-secret-0123456789abcdef");
    let statuses: Vec<String> = stream::iter(0..requests)
        .map(|n| {
            let body = room_event("room_started", &format!("EV_anon{n}"), "anon", "RM_anon");
            let token = forger.sign(body.as_bytes());
            let content_type = match n % 2 {
                0 => "application/webhook+json",
                _ => "text/plain",
            };
            let request = http
                .post(url)
                .header("content-type", content_type)
                .header("authorization", token)
                .body(body);
            async move {
                match request.send().await {
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(_) => "no answer".to_owned(),
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut answers = BTreeMap::new();
    for status in statuses {
        *answers.entry(status).or_default() += 1;
    }
    answers
}

pub async fn burst(
    url: &str,
    signer: &WebhookSigner,
    requests: usize,
    concurrency: usize,
) -> Overload {
    let http = reqwest::Client::new();
    let results: Vec<(String, Result<u16, String>, Duration)> = stream::iter(0..requests)
        .map(|n| {
            let id = format!("EV_overload{n}");
            let body = room_event("room_started", &id, &format!("overload{n}"), "RM_overload");
            let token = signer.sign(body.as_bytes());
            let request =
                webhook_request(&http, url, body, &token).timeout(Duration::from_secs(60));
            async move {
                let started = Instant::now();
                let status = request.send().await.map(|r| r.status().as_u16());
                (id, status.map_err(|e| e.to_string()), started.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut overload = Overload::default();
    for (id, status, took) in results {
        overload.slowest = overload.slowest.max(took);
        let label = match status {
            Ok(status) if (200..300).contains(&status) => {
                overload.accepted_unconfirmed.push(id);
                status.to_string()
            }
            Ok(status) => status.to_string(),
            Err(_) => "no answer".into(),
        };
        *overload.answers.entry(label).or_default() += 1;
    }
    overload
}
