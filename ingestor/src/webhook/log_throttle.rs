//! Bounds the log lines written for refusals anyone can cause: without a valid token, every
//! request would otherwise be a WARN line, and a scanner or a misconfigured sender would fill
//! the disk. The refusals are all counted in metrics; the log shows the first of each kind and
//! then at most one line per [`LogThrottle::every`], saying how many it left out.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When the last line was written.
    last: Option<Instant>,
    /// Refusals not logged since.
    left_out: u64,
}

impl LogThrottle {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::default(),
        }
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of refusals left out
    /// since the last line, or `None` (this one is left out and counted).
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut window = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = window
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if !due {
            window.left_out += 1;
            return None;
        }
        window.last = Some(now);
        Some(std::mem::take(&mut window.left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_logged_then_one_per_period_with_the_count_left_out() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(throttle.admit(at(0)), Some(0));
        let logged: Vec<_> = (0..1_000).filter_map(|_| throttle.admit(at(3))).collect();
        assert!(
            logged.is_empty(),
            "within the period nothing more is logged"
        );
        assert_eq!(throttle.admit(at(9)), None);
        assert_eq!(
            throttle.admit(at(10)),
            Some(1_001),
            "the next line says how many were left out"
        );
        assert_eq!(throttle.admit(at(25)), Some(0));
    }
}
