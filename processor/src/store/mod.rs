//! PostgreSQL access: one module per table, each a few statements that are safe to repeat.

pub mod assets;
pub mod commands;
pub mod prepared;
pub mod recordings;
pub mod rooms;
pub mod webhook_events;

use chrono::{DateTime, Utc};

/// A LiveKit nanosecond timestamp as a database timestamp; 0 (unset) is `None`.
pub fn from_nanos(nanos: i64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| DateTime::from_timestamp_nanos(nanos))
}

/// A LiveKit seconds timestamp as a database timestamp; 0 (unset) is `None`.
pub fn from_secs(secs: i64) -> Option<DateTime<Utc>> {
    (secs > 0)
        .then(|| DateTime::from_timestamp(secs, 0))
        .flatten()
}
