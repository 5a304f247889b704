//! Everything handling a message can fail with, and the one place each becomes an ack, a
//! delayed retry, a dead letter, or a wait for the database.

use crate::storage::objects::HeadError;

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The message can never succeed (not JSON, not an event): dead-letter it at once.
    #[error("poison message: {0}")]
    Poison(String),
    /// This message failed for now (the object is not in the bucket yet): retry it later.
    #[error(transparent)]
    Object(#[from] HeadError),
    /// The database is unreachable: nothing is wrong with the message, so hold it and retry
    /// in place rather than burning its retries.
    #[error("database unavailable: {0}")]
    DatabaseDown(String),
    /// The database refused this message's data: retry on the schedule, then dead-letter.
    #[error("database error: {0}")]
    Database(String),
    /// LiveKit's API is unreachable or overloaded: retry on the schedule.
    #[error("LiveKit unavailable: {0}")]
    LiveKit(String),
    /// A reply or follow-up command could not be published: retry (what was stored is
    /// published again).
    #[error("could not publish: {0}")]
    Publish(String),
    /// A setting is missing for this message (e.g. its bucket is not a storage profile):
    /// dead-letter it, to be replayed once the configuration is fixed.
    #[error("not configured: {0}")]
    NotConfigured(String),
}

/// What to do with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Republish to the next delay queue (or dead-letter when the schedule is used up).
    RetryLater(String),
    DeadLetter(String),
    /// Keep the delivery unacked and try again in this process after a pause.
    RetryInPlace(String),
}

impl HandleError {
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Poison(_) | Self::NotConfigured(_) => Disposition::DeadLetter(self.to_string()),
            Self::Object(_) | Self::Database(_) | Self::LiveKit(_) | Self::Publish(_) => {
                Disposition::RetryLater(self.to_string())
            }
            Self::DatabaseDown(_) => Disposition::RetryInPlace(self.to_string()),
        }
    }

    /// A stable label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Poison(_) => "poison",
            Self::Object(_) => "object_unavailable",
            Self::DatabaseDown(_) => "database_down",
            Self::Database(_) => "database_error",
            Self::NotConfigured(_) => "not_configured",
            Self::LiveKit(_) => "livekit_unavailable",
            Self::Publish(_) => "publish_failed",
        }
    }
}

impl From<tokio_postgres::Error> for HandleError {
    fn from(error: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let connection_broke = error.is_closed()
            || std::error::Error::source(&error)
                .is_some_and(|source| source.is::<std::io::Error>());
        let transient = match error.code() {
            // No SQLSTATE: the connection broke, or our code is wrong (a type mismatch).
            None => connection_broke,
            Some(code) => {
                code.code().starts_with("08") // connection exception
                    || code.code().starts_with("57P") // admin/crash shutdown, cannot connect now
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
            }
        };
        let text = match error.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => error.to_string(),
        };
        if transient {
            Self::DatabaseDown(text)
        } else {
            Self::Database(text)
        }
    }
}

impl From<deadpool_postgres::PoolError> for HandleError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::DatabaseDown(error.to_string())
    }
}
