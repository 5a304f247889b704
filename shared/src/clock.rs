//! Where "now" comes from for wall-clock decisions (token expiry, which recordings are stale,
//! when a notification is retried and what its signature's timestamp says): the system clock,
//! a fixed instant, or one a test moves by hand. Durations measured in-process (dedupe windows,
//! backoff) use tokio's clock instead, which tests pause and advance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    /// Always this many seconds since the epoch.
    FixedUnix(u64),
    /// Whatever the test last set it to (see [`Clock::controlled`]).
    Controlled(&'static ControlledTime),
}

impl Clock {
    /// A clock that stands still until [`ControlledTime::advance`] moves it, starting at
    /// `start`. It lives for the rest of the process (a few bytes per test), so the clock stays
    /// `Copy` like the others.
    pub fn controlled(start: SystemTime) -> (Self, &'static ControlledTime) {
        let time: &'static ControlledTime = Box::leak(Box::new(ControlledTime {
            unix_ms: AtomicU64::new(unix_ms(start)),
        }));
        (Self::Controlled(time), time)
    }

    /// Seconds since the epoch.
    pub fn now_unix(self) -> u64 {
        self.now_unix_ms() / 1000
    }

    /// Milliseconds since the epoch.
    pub fn now_unix_ms(self) -> u64 {
        match self {
            Self::System => unix_ms(SystemTime::now()),
            Self::FixedUnix(secs) => secs * 1000,
            Self::Controlled(time) => time.unix_ms.load(Ordering::SeqCst),
        }
    }

    /// The clock's now as a point in time.
    pub fn now(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_unix_ms())
    }
}

/// The time of a [`Clock::Controlled`].
#[derive(Debug)]
pub struct ControlledTime {
    unix_ms: AtomicU64,
}

impl PartialEq for ControlledTime {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ControlledTime {}

impl ControlledTime {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.unix_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controlled_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (clock, time) = Clock::controlled(start);
        assert_eq!(clock.now(), start);
        time.advance(Duration::from_millis(600_250));
        assert_eq!(clock.now_unix(), 1_700_000_600);
        assert_eq!(clock.now_unix_ms(), 1_700_000_600_250);
        assert_eq!(Clock::FixedUnix(5).now_unix_ms(), 5000);
    }
}
