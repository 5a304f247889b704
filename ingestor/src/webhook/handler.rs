//! `POST /webhooks/livekit`: content type → token (from the header) → declared size → admission
//! → body (with a deadline and the size limit) → body hash → envelope → dedupe → publish.
//! No body is read before the token is authentic, and every rejection happens before the
//! publish, so nothing rejected reaches the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;

use super::error::WebhookError;
use super::log_throttle::LogThrottle;
use super::verify::Verifier;
use super::VerifiedEvent;
use crate::admission::Admission;
use crate::dedupe::RecentIds;
use crate::metrics::IngestorMetrics;
use crate::queue::publish::{Published, Publisher};
use roomtape_shared::Chain;

/// What the webhook handler works with; shared by all workers.
#[derive(Debug)]
pub struct WebhookState {
    pub verifier: Verifier,
    pub publisher: Arc<Publisher>,
    pub recent: RecentIds,
    pub metrics: IngestorMetrics,
    pub admission: Admission,
    pub max_body_bytes: usize,
    /// How long an authenticated request's body may take to arrive.
    pub body_timeout: Duration,
    /// Log lines for refusals of unauthenticated requests (401, 415).
    pub unauthenticated_log: UnauthenticatedLog,
}

/// One throttle per kind of unauthenticated refusal, so a flood of one kind does not hide the
/// first of another.
#[derive(Debug)]
pub struct UnauthenticatedLog {
    unauthorized: LogThrottle,
    unsupported_media_type: LogThrottle,
}

impl UnauthenticatedLog {
    /// At most one line per kind per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            unauthorized: LogThrottle::new(every),
            unsupported_media_type: LogThrottle::new(every),
        }
    }
}

/// The 200 answer's body: which event was taken.
#[derive(Serialize)]
struct Answer<'a> {
    id: &'a str,
    event: &'a str,
}

const ACCEPTED_CONTENT_TYPES: [&str; 2] = ["application/webhook+json", "application/json"];

pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebhookState>,
) -> Result<HttpResponse, WebhookError> {
    // A debug span: at 2,000 webhooks/s, formatting an info span's fields for every request cost
    // a fifth of the ingestor's CPU while the happy path logs nothing at info. The logs that
    // are written at info and above name the event themselves.
    let span = tracing::debug_span!(
        "webhook",
        event_id = tracing::field::Empty,
        event = tracing::field::Empty,
        egress_id = tracing::field::Empty,
        room = tracing::field::Empty,
    );
    let result = handle(&request, payload, &state)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match &result {
        Ok((_, outcome)) => state.metrics.request(outcome),
        Err(error) => {
            state.metrics.request(error.code());
            log_rejection(error, &state);
        }
    }
    result.map(|(response, _)| response)
}

async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    state: &WebhookState,
) -> Result<(HttpResponse, &'static str), WebhookError> {
    check_content_type(request)?;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let authenticated = state.verifier.authenticate(authorization)?;
    if state.publisher.is_blocked() {
        return Err(WebhookError::BrokerBlocked);
    }
    let declared = declared_length(request);
    let limit = state.max_body_bytes;
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::TooLarge { limit });
    }
    // Before the body is read, so the bodies held at once are bounded by the admission limit.
    let _admitted = state.admission.admit().ok_or(WebhookError::Overloaded)?;
    let body = tokio::time::timeout(state.body_timeout, read_body(payload, declared, limit))
        .await
        .map_err(|_| WebhookError::BodyTimeout(state.body_timeout))??;
    let verified = authenticated.check_body(body)?;
    let event = VerifiedEvent::parse(verified)?;
    record_span_fields(&event);

    let answer = HttpResponse::Ok().json(Answer {
        id: event.message_id(),
        event: &event.envelope().event,
    });
    let seen = RecentIds::key(event.message_id());
    if state.recent.contains(seen) {
        log_event(
            &event,
            "duplicate of an event already queued; not published again",
        );
        return Ok((answer, "duplicate"));
    }
    let outcome = match state.publisher.publish(event.message()).await {
        Ok(Published::Queued) => "accepted",
        Ok(Published::NotSubscribed) => "not_subscribed",
        Err(cause) => {
            let envelope = event.envelope();
            tracing::error!(
                event_id = event.message_id(),
                event = %envelope.event,
                egress_id = envelope.egress_id().unwrap_or_default(),
                room = envelope.room_name().unwrap_or_default(),
                cause = %Chain(&cause),
                "webhook not queued; answered 503"
            );
            return Err(WebhookError::Unavailable(cause));
        }
    };
    state.recent.insert(seen);
    tracing::debug!(outcome, "event confirmed by the broker");
    Ok((answer, outcome))
}

fn check_content_type(request: &HttpRequest) -> Result<(), WebhookError> {
    let essence = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(t)
            if ACCEPTED_CONTENT_TYPES
                .iter()
                .any(|a| a.eq_ignore_ascii_case(t)) =>
        {
            Ok(())
        }
        _ => Err(WebhookError::UnsupportedMediaType),
    }
}

fn declared_length(request: &HttpRequest) -> Option<usize> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads the raw bytes (the signature covers them exactly), stopping at `limit`; `declared`
/// (already checked against `limit`) sizes the buffer.
async fn read_body(
    mut payload: web::Payload,
    declared: Option<usize>,
    limit: usize,
) -> Result<Bytes, WebhookError> {
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| WebhookError::BodyRead)?;
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn record_span_fields(event: &VerifiedEvent) {
    let span = tracing::Span::current();
    span.record("event_id", event.message_id());
    span.record("event", event.envelope().event.as_str());
    if let Some(egress_id) = event.envelope().egress_id() {
        span.record("egress_id", egress_id);
    }
    if let Some(room) = event.envelope().room_name() {
        span.record("room", room);
    }
}

fn log_event(event: &VerifiedEvent, message: &str) {
    let envelope = event.envelope();
    tracing::info!(
        event_id = event.message_id(),
        event = %envelope.event,
        egress_id = envelope.egress_id().unwrap_or_default(),
        room = envelope.room_name().unwrap_or_default(),
        "{message}"
    );
}

fn log_rejection(error: &WebhookError, state: &WebhookState) {
    match error {
        WebhookError::Unauthorized(reason) => {
            state.metrics.verification_failure(reason.reason());
            if let Some(left_out) = state.unauthenticated_log.unauthorized.admit(Instant::now()) {
                tracing::warn!(
                    reason = reason.reason(),
                    left_out,
                    "webhook rejected: {error} (at most one such line every {:?}; \
                     roomtape_webhook_verification_failures_total counts them all)",
                    state.unauthenticated_log.unauthorized.every()
                );
            }
        }
        WebhookError::UnsupportedMediaType => {
            let throttle = &state.unauthenticated_log.unsupported_media_type;
            if let Some(left_out) = throttle.admit(Instant::now()) {
                tracing::warn!(
                    left_out,
                    "webhook rejected: {error} (at most one such line every {:?})",
                    throttle.every()
                );
            }
        }
        // Logged where the event is known: `not_queued`.
        WebhookError::Unavailable(_) => {}
        // Counted by admission and by the request metric; a warning per refused request would
        // flood the log just when the ingestor is busiest (the alarm itself is logged once).
        WebhookError::Overloaded | WebhookError::BrokerBlocked => {
            tracing::debug!("webhook refused: {error}");
        }
        _ => tracing::warn!("webhook rejected: {error}"),
    }
}
