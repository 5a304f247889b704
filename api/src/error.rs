//! Every failure of a request, and the one place it becomes a status and a body
//! (`{"error": {"code", "message"}}`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use roomtape_shared::library::LibraryError;
use roomtape_shared::Chain;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a bearer token is required")]
    MissingToken,
    #[error("the bearer token is not valid")]
    UnknownToken,
    #[error("this token may only read")]
    ReadOnlyToken,
    #[error("{field}: {reason}")]
    InvalidQuery { field: String, reason: String },
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl ApiError {
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::InvalidQuery {
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The status and the stable code clients match on.
    fn kind(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MissingToken | Self::UnknownToken => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::ReadOnlyToken => (StatusCode::FORBIDDEN, "forbidden"),
            Self::InvalidQuery { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Library(LibraryError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Library(LibraryError::NoFile(_)) => (StatusCode::NOT_FOUND, "no_file"),
            Self::Library(LibraryError::NotFinal { .. }) => {
                (StatusCode::CONFLICT, "recording_active")
            }
            Self::Library(
                LibraryError::InBackupStorage(_) | LibraryError::UnknownBucket { .. },
            ) => (StatusCode::CONFLICT, "file_unreachable"),
            Self::Library(
                LibraryError::Database(_) | LibraryError::Pool(_) | LibraryError::Storage(_),
            )
            | Self::Database(_)
            | Self::Pool(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
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
    /// `recording_active`, `file_unreachable`, `unavailable`.
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
            "the recording store is unavailable; retry later".to_owned()
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
