//! Everything a webhook request can fail with, and the one place each becomes a status.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use roomtape_shared::events::EnvelopeError;
use serde_json::json;

use super::verify::VerifyError;
use crate::queue::publish::PublishError;

/// Seconds LiveKit is asked to wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";
/// A resource alarm lasts until RabbitMQ has paged out or consumers have drained: seconds at
/// least, so there is no point in asking sooner.
const BLOCKED_RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("content type must be application/webhook+json or application/json")]
    UnsupportedMediaType,
    #[error("body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body")]
    BodyRead,
    #[error("the body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error(transparent)]
    Unauthorized(#[from] VerifyError),
    #[error("body is not a LiveKit WebhookEvent: {0}")]
    BadRequest(#[from] EnvelopeError),
    /// The cause is in the log, not in the answer: the broker's internals are not the
    /// caller's business.
    #[error("the event could not be queued; retry later")]
    Unavailable(#[source] PublishError),
    /// RabbitMQ blocks publishers (a memory or disk alarm): refused at once, since a publish
    /// would only wait behind a socket the broker does not read.
    #[error("the broker is not taking messages now; retry later")]
    BrokerBlocked,
    /// More requests are being published than the broker confirms: refused at once rather than
    /// queued behind them, so memory stays bounded and LiveKit retries later.
    #[error("too many webhooks in flight; retry later")]
    Overloaded,
}

impl WebhookError {
    /// A stable label for metrics and the error body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooLarge { .. } => "payload_too_large",
            Self::BodyRead | Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::BodyTimeout(_) => "body_timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded => "overloaded",
            Self::BrokerBlocked => "broker_blocked",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) | Self::Overloaded | Self::BrokerBlocked => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unavailable(_) | Self::Overloaded => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            Self::BrokerBlocked => {
                response.insert_header((header::RETRY_AFTER, BLOCKED_RETRY_AFTER_SECS));
            }
            _ => {}
        }
        response.json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}
