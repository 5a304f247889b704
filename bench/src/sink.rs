//! `sink`: an app's notification endpoint for the benchmark. Listens on 127.0.0.1 (the port
//! goes to stdout's first line), answers every POST with 204, and for each `recording.ready`
//! keeps how long after the notification's `timestamp` (the recording's `updated_at`, stamped
//! in the transaction that made it ready) it arrived. Stops once nothing more came for
//! [`IDLE`] after the first (or after --timeout seconds with none) and prints their count
//! (`RESULT … received=N`, which the script compares with the recordings made ready), rate and
//! delay percentiles.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::cli::Args;

const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
/// How long after the last notification the sink stops.
const IDLE: Duration = Duration::from_secs(5);

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
    println!("port {}", listener.local_addr()?.port());
    let (received, mut delays) = mpsc::unbounded_channel::<(SystemTime, Duration)>();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, received.clone()));
        }
    });
    let mut seen = Vec::new();
    let mut wait = Duration::from_secs(args.timeout_secs);
    while let Ok(Some(got)) = tokio::time::timeout(wait, delays.recv()).await {
        seen.push(got);
        wait = IDLE;
    }
    report(&args.label, &seen);
    anyhow::ensure!(
        !seen.is_empty(),
        "no recording.ready arrived within {} s",
        args.timeout_secs
    );
    Ok(())
}

fn report(label: &str, seen: &[(SystemTime, Duration)]) {
    let mut delays: Vec<Duration> = seen.iter().map(|(_, d)| *d).collect();
    delays.sort();
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let first = seen.iter().map(|(t, _)| *t).min();
    let last = seen.iter().map(|(t, _)| *t).max();
    let span = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default().as_secs_f64(),
        _ => 0.0,
    };
    let rate = if span > 0.0 {
        seen.len() as f64 / span
    } else {
        0.0
    };
    println!(
        "{label}: {} recording.ready received, {rate:.0}/s; from the transaction to the endpoint, ms: p50 {:.0}, p90 {:.0}, p99 {:.0}, max {:.0}",
        seen.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    println!(
        "RESULT label={label} mode=sink received={} rate={rate:.1} p99_ms={:.3}",
        seen.len(),
        at(0.99)
    );
}

/// Reads requests off one keep-alive connection, answering each.
async fn serve(mut stream: TcpStream, received: mpsc::UnboundedSender<(SystemTime, Duration)>) {
    let mut buffer = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let complete = request_head(&buffer).filter(|(head, len)| buffer.len() >= head + len);
        let Some((head, body_len)) = complete else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let now = SystemTime::now();
        if let Some(delay) = ready_delay(&buffer[head..head + body_len], now) {
            let _ = received.send((now, delay));
        }
        buffer.drain(..head + body_len);
        if stream.write_all(ANSWER).await.is_err() {
            return;
        }
    }
}

/// The length of a complete request head and its body's length, once the head is all there.
fn request_head(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = request.parse(buffer).ok()? else {
        return None;
    };
    let length = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0);
    Some((head, length))
}

/// For a `recording.ready` body, how long after its `timestamp` it arrived.
fn ready_delay(body: &[u8], now: SystemTime) -> Option<Duration> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    if body["type"] != "recording.ready" {
        return None;
    }
    let stamp = humantime::parse_rfc3339_weak(body["timestamp"].as_str()?).ok()?;
    Some(now.duration_since(stamp).unwrap_or_default())
}
