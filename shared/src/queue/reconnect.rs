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
/// pause that doubles each time, back to `min` once a session has lasted longer than `max`.
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
        if started.elapsed() > backoff.max {
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

    /// Sessions fail at once; the pauses between them double up to the maximum. Time is paused,
    /// so the loop's sleeps advance a virtual clock that the test reads.
    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_the_maximum_and_stop_on_shutdown() {
        let shutdown = Shutdown::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let recorded = starts.clone();
        let stopper = shutdown.clone();
        run_reconnecting("test", backoff, &shutdown, move || {
            let recorded = recorded.clone();
            let stopper = stopper.clone();
            async move {
                let mut starts = recorded.lock().expect("lock");
                starts.push(origin.elapsed());
                if starts.len() == 6 {
                    stopper.cancel();
                }
                Err::<(), _>("refused")
            }
        })
        .await;
        let starts = starts.lock().expect("lock").clone();
        let ms: Vec<u128> = starts.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 100, 300, 700, 1200, 1700]);
    }

    /// A session that lasted longer than the maximum pause resets the backoff.
    #[tokio::test(start_paused = true)]
    async fn a_long_session_resets_the_backoff() {
        let shutdown = Shutdown::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let recorded = starts.clone();
        let stopper = shutdown.clone();
        run_reconnecting("test", backoff, &shutdown, move || {
            let recorded = recorded.clone();
            let stopper = stopper.clone();
            async move {
                let count = {
                    let mut starts = recorded.lock().expect("lock");
                    starts.push(origin.elapsed());
                    starts.len()
                };
                if count == 3 {
                    // Connected for a while, then lost.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                if count == 5 {
                    stopper.cancel();
                }
                Err::<(), _>("lost")
            }
        })
        .await;
        let ms: Vec<u128> = starts
            .lock()
            .expect("lock")
            .iter()
            .map(Duration::as_millis)
            .collect();
        // 0, +100, +200, (2 s session) +100 (reset), +200.
        assert_eq!(ms, [0, 100, 300, 2400, 2600]);
    }
}
