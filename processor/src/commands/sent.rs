//! When a command was sent, at the precision its sender gave (CONTRACTS §4): milliseconds in
//! `x-roomtape-sent-at-ms`, whole seconds in the AMQP `timestamp`, or not at all (then a
//! processor's first sight of it stands in). Start deadlines count from it, and a stop cancels
//! the starts of its room sent surely before it.

use std::time::Duration;

use crate::worker::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentAt {
    Millis(u64),
    /// Some time in this second.
    Seconds(u64),
    /// The sender did not say.
    Unstamped,
}

impl SentAt {
    pub fn of(message: &Message) -> Self {
        match (message.sent_at_ms, message.published_at) {
            (Some(ms), _) => Self::Millis(ms),
            (None, Some(seconds)) => Self::Seconds(seconds),
            (None, None) => Self::Unstamped,
        }
    }

    /// The earliest it can have been sent, in milliseconds since the epoch; `seen_ms` (when it
    /// was first seen) if unstamped. A start's deadline counts from here, and a stop's time is
    /// this.
    pub fn earliest_ms(self, seen_ms: u64) -> u64 {
        match self {
            Self::Millis(ms) => ms,
            Self::Seconds(seconds) => seconds.saturating_mul(1000),
            Self::Unstamped => seen_ms,
        }
    }

    /// The latest it can have been sent: a start's time when stops are compared with it, so a
    /// start and a stop stamped in the same whole second keep the start (ties go to the start).
    pub fn latest_ms(self, seen_ms: u64) -> u64 {
        match self {
            Self::Millis(ms) => ms,
            Self::Seconds(seconds) => seconds.saturating_mul(1000).saturating_add(999),
            Self::Unstamped => seen_ms,
        }
    }
}

/// What is left at `now_ms` of a `deadline` counted from `sent_ms`; `None` once it has passed.
pub fn time_left(sent_ms: u64, deadline: Duration, now_ms: u64) -> Option<Duration> {
    let deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
    let left = sent_ms.saturating_add(deadline_ms).checked_sub(now_ms)?;
    (left > 0).then(|| Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_in_whole_seconds_spans_its_second() {
        let sent = SentAt::Seconds(1_700_000_007);
        assert_eq!(sent.earliest_ms(0), 1_700_000_007_000);
        assert_eq!(sent.latest_ms(0), 1_700_000_007_999);
        let exact = SentAt::Millis(1_700_000_007_100);
        assert_eq!(
            (exact.earliest_ms(0), exact.latest_ms(0)),
            (1_700_000_007_100, 1_700_000_007_100)
        );
        assert_eq!(SentAt::Unstamped.earliest_ms(42), 42);
        assert_eq!(SentAt::Unstamped.latest_ms(42), 42);
    }

    #[test]
    fn the_deadline_counts_from_the_send_time_to_the_millisecond() {
        let deadline = Duration::from_secs(4);
        assert_eq!(
            time_left(10_000, deadline, 11_250),
            Some(Duration::from_millis(2_750))
        );
        assert_eq!(time_left(10_000, deadline, 14_000), None);
        assert_eq!(time_left(10_000, deadline, 20_000), None);
        // A clock behind the sender's: the whole deadline and more, never a panic.
        assert_eq!(
            time_left(10_000, deadline, 9_000),
            Some(Duration::from_secs(5))
        );
    }
}
