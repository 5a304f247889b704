//! Where "now" comes from for wall-clock decisions (token expiry, which recordings are stale):
//! the system clock, or a fixed instant in tests. Durations measured in-process (dedupe
//! windows, backoff) use tokio's clock instead, which tests pause and advance.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    /// Always this many seconds since the epoch.
    FixedUnix(u64),
}

impl Clock {
    /// Seconds since the epoch.
    pub fn now_unix(self) -> u64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            Self::FixedUnix(secs) => secs,
        }
    }
}
