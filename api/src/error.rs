//! Every failure of a request, and the one place it becomes a status and a body
//! (`{"error": {"code", "message"}}`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use roomtape_shared::library::LibraryError;
use roomtape_shared::queue::commands::CommandError;
use roomtape_shared::token::TokenError;
use roomtape_shared::Chain;
use serde::Serialize;
use utoipa::ToSchema;

use crate::grants::Denied;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a bearer token is required")]
    MissingToken,
    #[error("the bearer token is not valid")]
    UnknownToken,
    #[error("LiveKit token refused: {0}")]
    LiveKitToken(#[source] TokenError),
    #[error("LiveKit token refused: its claims are not LiveKit's: {0}")]
    LiveKitClaims(String),
    #[error(transparent)]
    Forbidden(#[from] Denied),
    #[error("{field}: {reason}")]
    InvalidRequest { field: String, reason: String },
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The processor answered the command with an error (CONTRACTS §4 codes).
    #[error("{message}")]
    Refused { code: String, message: String },
    #[error("room {0} has no active recording")]
    NotRecording(String),
    #[error("no processor answered within {} (API_COMMAND_TIMEOUT); a start not carried out by COMMAND_START_DEADLINE never will be: retry with the same Idempotency-Key", humantime::format_duration(*.0))]
    NoReply(std::time::Duration),
    #[error("the broker is unavailable")]
    Broker(#[source] CommandError),
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl ApiError {
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::InvalidRequest {
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The status and the stable code clients match on.
    fn kind(&self) -> (StatusCode, &str) {
        match self {
            Self::Refused { code, .. } => (refusal_status(code), refusal_code(code)),
            Self::NotRecording(_) => (StatusCode::NOT_FOUND, "not_recording"),
            Self::NoReply(_) => (StatusCode::GATEWAY_TIMEOUT, "no_reply"),
            Self::Broker(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::MissingToken
            | Self::UnknownToken
            | Self::LiveKitToken(_)
            | Self::LiveKitClaims(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Library(LibraryError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Library(LibraryError::NoFile(_)) => (StatusCode::NOT_FOUND, "no_file"),
            Self::Library(LibraryError::NotPlaylist { .. }) => (StatusCode::NOT_FOUND, "not_hls"),
            Self::Library(LibraryError::InvalidPlaylist { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_playlist")
            }
            Self::Library(LibraryError::NotFinal { .. }) => {
                (StatusCode::CONFLICT, "recording_active")
            }
            Self::Library(
                LibraryError::InBackupStorage(_)
                | LibraryError::UnknownBucket { .. }
                | LibraryError::AmbiguousBucket { .. },
            ) => (StatusCode::CONFLICT, "file_unreachable"),
            Self::Library(
                LibraryError::Database(_) | LibraryError::Pool(_) | LibraryError::Storage(_),
            )
            | Self::Database(_)
            | Self::Pool(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::NoReply(waited) => Self::NoReply(waited),
            other => Self::Broker(other),
        }
    }
}

/// The status of a command the processor refused, by its reply's code.
fn refusal_status(code: &str) -> StatusCode {
    match code {
        "invalid_command" => StatusCode::BAD_REQUEST,
        "already_recording" | "cancelled" => StatusCode::CONFLICT,
        "idempotency_conflict" => StatusCode::UNPROCESSABLE_ENTITY,
        // egress_error, room_not_found, deadline_exceeded and codes to come: LiveKit's doing.
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The API's own name for an invalid command; the processor's codes otherwise.
fn refusal_code(code: &str) -> &str {
    match code {
        "invalid_command" => "invalid_request",
        "" => "egress_error",
        other => other,
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `unauthorized`, `forbidden`, `invalid_request`, `not_found`, `no_file`,
    /// `not_hls`, `invalid_playlist`, `recording_active`, `file_unreachable`, `unavailable`; for start and stop also
    /// `already_recording`, `cancelled`, `idempotency_conflict`, `egress_error`,
    /// `room_not_found`, `deadline_exceeded`, `not_recording`, `no_reply`.
    pub code: String,
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.kind();
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            // The cause stays in the log: it may name hosts, buckets or SQL.
            tracing::error!(error = %Chain(self), "request failed");
            "a service roomtape depends on is unavailable; retry later".to_owned()
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        })
    }
}
