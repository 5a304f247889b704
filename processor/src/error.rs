//! Everything handling a message can fail with, and the one place that decides whether a
//! failure is worth retrying: [`HandleError::disposition`]. Causes are kept as sources; logs and
//! dead-letter headers show the whole chain.

use roomtape_shared::commands::InvalidCommand;
use roomtape_shared::events::parse::ParseError;
use roomtape_shared::livekit::EgressError;
use roomtape_shared::queue::PublishError;
use roomtape_shared::storage::StorageError;

use crate::egress::{FilesUnconfirmed, LifecycleError};

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The body is not a LiveKit event.
    #[error("not a LiveKit event")]
    NotAnEvent(#[from] ParseError),
    /// A command that can never succeed, and nobody asked for a reply to say so.
    #[error("invalid command")]
    InvalidCommand(#[from] InvalidCommand),
    /// A recording's files could not be confirmed in their bucket: see [`FilesUnconfirmed`].
    #[error(transparent)]
    Files(#[from] FilesUnconfirmed),
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("LiveKit's Egress API failed")]
    LiveKit(#[from] EgressError),
    /// A start sent earlier may have reached LiveKit, and its egress is not listed (yet): it is
    /// looked up again later, never sent twice.
    #[error("LiveKit did not confirm the start sent earlier, and lists no egress of it yet")]
    StartUnconfirmed,
    /// A follow-up message or reply could not be published.
    #[error("could not publish")]
    Publish(#[from] PublishError),
    /// The handler panicked (a bug): the message is retried on the schedule, not stranded.
    #[error("the handler panicked: {0}")]
    Panicked(String),
}

/// What a failure means for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Nothing is wrong with the message (the database is away): keep it unacked and try again
    /// in this process, without using up its retries.
    RetryInPlace,
    /// It may work later: the next delay queue, while the schedule lasts.
    RetryLater,
    /// It will never work: the handler may give up gracefully (a reply, a failed recording),
    /// else it is dead-lettered.
    GiveUp,
}

impl HandleError {
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::NotAnEvent(_)
            | Self::InvalidCommand(_)
            | Self::Files(FilesUnconfirmed::UnknownBucket { .. })
            | Self::Files(FilesUnconfirmed::Storage(StorageError::NoSuchBucket { .. })) => {
                Disposition::GiveUp
            }
            Self::Database(error) if connection_lost(error) => Disposition::RetryInPlace,
            Self::Pool(_) => Disposition::RetryInPlace,
            Self::LiveKit(error) if !error.is_transient() => Disposition::GiveUp,
            Self::Files(_)
            | Self::Database(_)
            | Self::LiveKit(_)
            | Self::StartUnconfirmed
            | Self::Publish(_)
            | Self::Panicked(_) => Disposition::RetryLater,
        }
    }

    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotAnEvent(_) => "poison",
            Self::InvalidCommand(_) => "invalid_command",
            Self::Files(
                FilesUnconfirmed::UnknownBucket { .. }
                | FilesUnconfirmed::Storage(StorageError::NoSuchBucket { .. }),
            ) => "not_configured",
            Self::Files(FilesUnconfirmed::Storage(StorageError::NotFound { .. })) => {
                "object_missing"
            }
            Self::Files(FilesUnconfirmed::Storage(_)) => "storage_unavailable",
            Self::Database(error) if connection_lost(error) => "database_down",
            Self::Pool(_) => "database_down",
            Self::Database(_) => "database_error",
            Self::LiveKit(_) => "livekit_error",
            Self::StartUnconfirmed => "start_unconfirmed",
            Self::Publish(_) => "publish_failed",
            Self::Panicked(_) => "panic",
        }
    }
}

/// The egress lifecycle's failures, as the worker sees them: its database errors are the
/// worker's own, retried in place when the connection is lost.
impl From<LifecycleError> for HandleError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::Files(files) => Self::Files(files),
            LifecycleError::Database(error) => Self::Database(error),
            LifecycleError::Pool(error) => Self::Pool(error),
        }
    }
}

/// Whether PostgreSQL is unreachable or shedding load, as opposed to refusing this message's
/// data (a constraint, a type error), which retrying in place would not fix.
fn connection_lost(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match error.code() {
        // No SQLSTATE: the connection broke, or our code is wrong (a type mismatch).
        None => {
            error.is_closed()
                || std::error::Error::source(error)
                    .is_some_and(|source| source.is::<std::io::Error>())
        }
        Some(code) => {
            code.code().starts_with("08") // connection exception
                || code.code().starts_with("57P") // admin/crash shutdown, cannot connect now
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_can_never_work_is_given_up_and_what_may_work_is_retried() {
        let not_json = serde_json::from_slice::<serde_json::Value>(b"{").expect_err("not JSON");
        let poison = HandleError::from(ParseError::NotJson(not_json));
        assert_eq!(poison.disposition(), Disposition::GiveUp);
        let unknown = HandleError::from(FilesUnconfirmed::UnknownBucket {
            bucket: "b".into(),
            egress_id: "EG_1".into(),
        });
        assert_eq!(unknown.disposition(), Disposition::GiveUp);
        assert_eq!(unknown.outcome(), "not_configured");
        let missing = HandleError::from(FilesUnconfirmed::from(StorageError::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        }));
        assert_eq!(missing.disposition(), Disposition::RetryLater);
        assert_eq!(missing.outcome(), "object_missing");
        // Through the lifecycle's own error, the same.
        let via_lifecycle = HandleError::from(LifecycleError::from(FilesUnconfirmed::from(
            StorageError::NotFound {
                bucket: "b".into(),
                key: "k".into(),
            },
        )));
        assert_eq!(via_lifecycle.outcome(), "object_missing");
        assert_eq!(
            roomtape_shared::Chain(&via_lifecycle).to_string(),
            roomtape_shared::Chain(&missing).to_string()
        );
        let refused = HandleError::from(EgressError::Twirp {
            method: "StartRoomCompositeEgress",
            code: "invalid_argument".into(),
            msg: "bad layout".into(),
        });
        assert_eq!(refused.disposition(), Disposition::GiveUp);
        let down = HandleError::from(EgressError::Twirp {
            method: "StartRoomCompositeEgress",
            code: "unavailable".into(),
            msg: "try later".into(),
        });
        assert_eq!(down.disposition(), Disposition::RetryLater);
        assert_eq!(
            HandleError::from(PublishError::Nacked).disposition(),
            Disposition::RetryLater
        );
    }
}
