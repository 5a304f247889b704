//! The one reconnect loop: a session against the broker runs until it fails, then the next one
//! starts after an exponential backoff, until shutdown.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::shutdown::Shutdown;

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// Runs `session` again and again until `shutdown`. A session returns `Ok` when it stopped
/// because of `shutdown`, and `Err` when it lost the broker: then the next one starts after a
/// pause that doubles each time, back to `min` once a session has outlasted the pause before it
/// (it got going, so its end is news, not the same refusal again). Only sessions that fail at
/// once back off all the way to `max`.
/// `what` names the loop in logs.
pub async fn run_reconnecting<F, Fut, E>(
    what: &str,
    backoff: Backoff,
    shutdown: &Shutdown,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut pause = backoff.min;
    while !shutdown.is_cancelled() {
        let started = Instant::now();
        let error = match session().await {
            Ok(()) => return,
            Err(error) => error,
        };
        if started.elapsed() > pause {
            pause = backoff.min;
        }
        tracing::warn!(%error, retry_in = ?pause, "{what} lost the broker");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const BACKOFF: Backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };

    /// Runs the loop with sessions that last `length(n)` for the `n`th start (1-based), then
    /// fail, until the `last`th start; returns when each session started, in milliseconds of
    /// tokio's paused clock.
    async fn starts(last: usize, length: fn(usize) -> Duration) -> Vec<u128> {
        let shutdown = Shutdown::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        run_reconnecting("test", BACKOFF, &shutdown, || {
            let (starts, shutdown) = (starts.clone(), shutdown.clone());
            async move {
                let count = {
                    let mut starts = starts.lock().expect("lock");
                    starts.push(origin.elapsed().as_millis());
                    starts.len()
                };
                tokio::time::sleep(length(count)).await;
                if count == last {
                    shutdown.cancel();
                }
                Err::<(), _>("lost")
            }
        })
        .await;
        let starts = starts.lock().expect("lock").clone();
        starts
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_the_maximum_and_stop_on_shutdown() {
        let refused_at_once = |_| Duration::ZERO;
        assert_eq!(
            starts(6, refused_at_once).await,
            [0, 100, 300, 700, 1200, 1700]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_outlasts_its_pause_resets_the_backoff() {
        // Four refusals (pauses 100, 200, 400, 500), then a 600 ms session: it outlasted the
        // 500 ms pause before it, so the next pause is 100 ms again, not 500.
        let fifth_lasts_600ms = |n| Duration::from_millis(if n == 5 { 600 } else { 0 });
        assert_eq!(
            starts(7, fifth_lasts_600ms).await,
            [0, 100, 300, 700, 1200, 1900, 2100]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_longer_than_the_maximum_pause_resets_the_backoff() {
        let third_lasts_two_seconds = |n| Duration::from_secs(if n == 3 { 2 } else { 0 });
        // 0, +100, +200, then a 2 s session and +100 (reset), +200.
        assert_eq!(
            starts(5, third_lasts_two_seconds).await,
            [0, 100, 300, 2400, 2600]
        );
    }
}
