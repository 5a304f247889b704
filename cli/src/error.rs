//! Everything the tool can fail with, and the exit status each means.

use roomtape_shared::config::ConfigError;
use roomtape_shared::library::LibraryError;
use roomtape_shared::queue::PublishError;
use roomtape_shared::storage::StorageError;

/// Exit statuses, listed in `--help`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNAVAILABLE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--metadata is not a JSON object: {0}")]
    Metadata(String),
    #[error("cannot talk to RabbitMQ")]
    Broker(#[from] lapin::Error),
    #[error("RabbitMQ did not answer within {0:?}")]
    BrokerTimeout(std::time::Duration),
    #[error("no queue takes the message: is roomtape-processor deployed on this vhost?")]
    NotDeployed(#[source] PublishError),
    #[error("the broker did not take the message")]
    Publish(#[source] PublishError),
    #[error("no reply within {0:?}: is roomtape-processor running? The command may still be carried out; to retry it without starting a second recording, repeat it with --id {1}")]
    Timeout(std::time::Duration, String),
    #[error("the reply is not JSON")]
    BadReply(#[from] serde_json::Error),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("cannot set up the database pool")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("{0}: pass --yes to confirm without a terminal")]
    NeedsConfirmation(String),
    #[error("not confirmed; nothing was changed")]
    NotConfirmed,
    #[error(
        "no retention rules: set RECORDING_RETENTION (e.g. class-*=90d,*=30d) or pass --older-than"
    )]
    NoRetention,
    #[error("--from must be before --to, and the range at most 5 years")]
    EmptyRange,
    #[error("cannot read the answer")]
    Prompt(#[source] std::io::Error),
    #[error("no dead letter in roomtape.dead has message id {0:?}: `roomtape dlq list` shows the ids there")]
    NoDeadLetter(String),
    #[error("dead letter {0:?} records no queue it failed on (no x-roomtape-source-queue or x-death header), so it stays in roomtape.dead: `roomtape dlq show {0}` shows it")]
    NoSourceQueue(String),
    #[error("there is no roomtape.dead queue on this vhost: is roomtape-processor deployed here (it declares the queues when it starts), and is the vhost in AMQP_URL the right one?")]
    NoDeadQueue,
    #[error("the bucket {bucket} of storage profile {profile} ({endpoint}) does not exist: create it first (roomtape simulate does not)")]
    NoBucket {
        bucket: String,
        profile: String,
        endpoint: String,
    },
    #[error("the bucket did not take the request")]
    Storage(#[source] StorageError),
    #[error("cannot reach the ingestor at {0} (ROOMTAPE_INGESTOR_URL)")]
    IngestorUnreachable(String, #[source] reqwest::Error),
    #[error("the ingestor at {url} answered {status} to {event}: {body}{hint}")]
    IngestorRefused {
        url: String,
        event: &'static str,
        status: reqwest::StatusCode,
        body: String,
        hint: &'static str,
    },
    #[error("cannot read recordings from PostgreSQL (DATABASE_URL)")]
    DatabaseUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no endpoint {0:?} in NOTIFY_ENDPOINTS")]
    NoEndpoint(String),
    #[error("cannot set up the HTTP client")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("recording {egress_id} of room {room} is not ready: {reason}")]
    NotReady {
        egress_id: String,
        room: String,
        reason: String,
    },
}

impl From<PublishError> for CliError {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::Unroutable { .. } => Self::NotDeployed(error),
            other => Self::Publish(other),
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::Metadata(_)
            | Self::NeedsConfirmation(_)
            | Self::NoRetention
            | Self::EmptyRange => EXIT_USAGE,
            Self::NotConfirmed | Self::NoDeadLetter(_) | Self::NoSourceQueue(_) => EXIT_REFUSED,
            Self::NoBucket { .. } | Self::NoEndpoint(_) => EXIT_USAGE,
            Self::NotReady { .. } => EXIT_REFUSED,
            Self::IngestorRefused { status, .. } if !status.is_server_error() => EXIT_REFUSED,
            Self::Library(error) => match error {
                LibraryError::Database(_) | LibraryError::Pool(_) | LibraryError::Storage(_) => {
                    EXIT_UNAVAILABLE
                }
                _ => EXIT_REFUSED,
            },
            _ => EXIT_UNAVAILABLE,
        }
    }
}
