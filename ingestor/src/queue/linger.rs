//! Publishes that arrive close together leave together (`INGESTOR_PUBLISH_LINGER`).
//!
//! At a steady rate webhooks arrive one at a time, and RabbitMQ pays for each confirmed publish
//! to a quorum queue on its own: a write-ahead-log write and its `fdatasync`, a raft round,
//! wake-ups of its processes, then a delivery that starts a processor transaction of its own.
//! Held until the end of the current tick of a grid `window` wide, the same grid for every
//! worker, the publishes that fall within one tick reach the broker together and share all of
//! that, as Kafka's producers do with `linger.ms`. The price is at most `window` added to a
//! webhook's answer; the 2xx still waits for the broker's confirm.
//!
//! Under load publishes batch themselves: with [`BUSY`] or more already in flight a publish
//! goes at once, since waiting would only cap the throughput of senders that wait for each
//! answer before the next webhook (measured in `docs/benchmarks.md`).

use std::time::Duration;

use tokio::time::Instant;

/// Publishes in flight from which a new one no longer waits.
pub const BUSY: usize = 32;

/// The grid publishes wait on; zero-width means no waiting.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    window: Duration,
    /// Where the grid starts: every worker shares it, so their ticks end at the same instant.
    epoch: Instant,
}

impl Linger {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            epoch: Instant::now(),
        }
    }

    /// Waits until the end of the tick running now, unless `ahead` publishes (already in flight)
    /// make a batch without it.
    pub async fn wait(&self, ahead: usize) {
        if self.window.is_zero() || ahead >= BUSY {
            return;
        }
        tokio::time::sleep_until(self.tick_end(Instant::now())).await;
    }

    /// The end of the tick `now` falls in.
    fn tick_end(&self, now: Instant) -> Instant {
        let window = self.window.as_nanos();
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        let end = (elapsed / window + 1) * window;
        // u64 nanoseconds last 584 years: the fallback is never reached in practice.
        self.epoch + Duration::from_nanos(u64::try_from(end).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(4);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// Starts one publish's wait at each of `arrivals` (after the linger's start), with `ahead`
    /// publishes in flight, and returns when each left, in the same order.
    async fn departures(window: Duration, ahead: usize, arrivals: &[Duration]) -> Vec<Duration> {
        let linger = Linger::new(window);
        let start = Instant::now();
        let mut waits = Vec::new();
        for &arrival in arrivals {
            tokio::time::sleep_until(start + arrival).await;
            waits.push(tokio::spawn(async move {
                linger.wait(ahead).await;
                Instant::now() - start
            }));
        }
        let mut left = Vec::new();
        for wait in waits {
            left.push(wait.await.expect("waited"));
        }
        left
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_within_one_tick_leave_together_at_its_end() {
        let left = departures(WINDOW, 0, &[ms(0), ms(1), ms(3), ms(4), ms(7)]).await;
        // 0, 1 and 3 ms share the first tick; 4 ms (its boundary) and 7 ms the second.
        assert_eq!(left, [ms(4), ms(4), ms(4), ms(8), ms(8)]);
    }

    #[tokio::test(start_paused = true)]
    async fn under_load_or_with_a_zero_window_a_publish_goes_at_once() {
        let arrivals = [ms(0), ms(3)];
        assert_eq!(
            departures(WINDOW, BUSY - 1, &arrivals).await,
            [ms(4), ms(4)]
        );
        assert_eq!(departures(WINDOW, BUSY, &arrivals).await, arrivals);
        assert_eq!(departures(Duration::ZERO, 0, &arrivals).await, arrivals);
    }
}
