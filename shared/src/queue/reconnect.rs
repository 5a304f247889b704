//! The one reconnect loop: a session against the broker runs until it fails, then the next one
//! starts after an exponential backoff, until shutdown.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// Handed to each session, which [marks](Established::mark) it once it got going (connected,
/// channels open, consuming): losing such a session is news, retried after `min`, while a
/// session that never got going is the same refusal again and backs off further.
#[derive(Debug, Clone, Default)]
pub struct Established(Arc<AtomicBool>);

impl Established {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `session` again and again until `shutdown`. A session returns `Ok` when it stopped
/// because of `shutdown`, and `Err` when it lost the broker: then the next one starts after a
/// pause that doubles each time, back to `min` after a session that got going (see
/// [`Established`]). `what` names the loop in logs.
pub async fn run_reconnecting<F, Fut, E>(
    what: &str,
    backoff: Backoff,
    shutdown: &Shutdown,
    mut session: F,
) where
    F: FnMut(Established) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut pause = backoff.min;
    while !shutdown.is_cancelled() {
        let established = Established::default();
        let error = match session(established.clone()).await {
            Ok(()) => return,
            Err(error) => error,
        };
        if established.is_marked() {
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
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    const BACKOFF: Backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };

    /// Runs the loop with sessions that last `length(n)` for the `n`th start (1-based), got
    /// going when `going(n)`, then fail, until the `last`th start; returns when each session
    /// started, in milliseconds of tokio's paused clock.
    async fn starts(
        last: usize,
        length: fn(usize) -> Duration,
        going: fn(usize) -> bool,
    ) -> Vec<u128> {
        let shutdown = Shutdown::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        run_reconnecting("test", BACKOFF, &shutdown, |established| {
            let (starts, shutdown) = (starts.clone(), shutdown.clone());
            async move {
                let count = {
                    let mut starts = starts.lock().expect("lock");
                    starts.push(origin.elapsed().as_millis());
                    starts.len()
                };
                if going(count) {
                    established.mark();
                }
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
            starts(6, refused_at_once, |_| false).await,
            [0, 100, 300, 700, 1200, 1700]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_got_going_is_retried_after_the_minimum_however_short() {
        // Four refusals (pauses 100, 200, 400, 500), then a session that connected and was
        // lost 50 ms later: the next pause is 100 ms again, not 500; then refusals double again.
        let fifth_lasts_50ms = |n| Duration::from_millis(if n == 5 { 50 } else { 0 });
        assert_eq!(
            starts(8, fifth_lasts_50ms, |n| n == 5).await,
            [0, 100, 300, 700, 1200, 1350, 1550, 1950]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_session_that_never_got_going_keeps_backing_off() {
        let third_lasts_two_seconds = |n| Duration::from_secs(if n == 3 { 2 } else { 0 });
        // 0, +100, +200, then 2 s stuck connecting and +400, +500.
        assert_eq!(
            starts(5, third_lasts_two_seconds, |_| false).await,
            [0, 100, 300, 2700, 3200]
        );
    }
}
