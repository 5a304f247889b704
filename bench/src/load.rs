//! The load loop: `concurrency` workers, each with one request outstanding at a time, either as
//! fast as answers come (closed loop) or on a fixed schedule (open loop, `rate` requests/s).
//!
//! On a schedule, request `i` is due at `start + i / rate` and its latency is counted from that
//! instant, not from when a worker got round to sending it, so a stall shows up in the
//! percentiles instead of silently lowering the offered rate (no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

/// Something that takes one message of the run and answers when it is safely queued.
pub trait Target: Send + Sync + 'static {
    /// Sends message number `n`; `Err` counts as a failed request.
    fn send(&self, n: u64) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub requests: u64,
    /// Requests per second for an open-loop run; `None` runs closed-loop.
    pub rate: Option<f64>,
    /// Number of the first message, so that successive runs never reuse an event id.
    pub first: u64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every successful request, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Failed requests by error message.
    pub errors: BTreeMap<String, u64>,
    /// From the start to the last answer.
    pub elapsed: Duration,
}

impl Outcome {
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs `plan` against `target`.
pub async fn run<T: Target>(target: Arc<T>, plan: Plan) -> anyhow::Result<Outcome> {
    anyhow::ensure!(plan.concurrency > 0, "concurrency must be at least 1");
    if let Some(rate) = plan.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "rate must be positive");
    }
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency {
        workers.spawn(worker(target.clone(), plan, next.clone(), start));
    }
    let mut outcome = Outcome::default();
    while let Some(part) = workers.join_next().await {
        let part = part?;
        outcome.latencies_us.extend(part.latencies_us);
        for (error, count) in part.errors {
            *outcome.errors.entry(error).or_default() += count;
        }
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies_us.sort_unstable();
    Ok(outcome)
}

async fn worker<T: Target>(
    target: Arc<T>,
    plan: Plan,
    next: Arc<AtomicU64>,
    start: Instant,
) -> Outcome {
    let share = plan.requests / plan.concurrency as u64 + 1;
    let mut outcome = Outcome {
        latencies_us: Vec::with_capacity(usize::try_from(share).unwrap_or(0)),
        ..Outcome::default()
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.requests {
            break;
        }
        let began = match plan.rate {
            Some(rate) => {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                due
            }
            None => Instant::now(),
        };
        match target.send(plan.first + i).await {
            Ok(()) => {
                let micros = began.elapsed().as_micros();
                outcome
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(error) => *outcome.errors.entry(format!("{error:#}")).or_default() += 1,
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every message from number 105 on.
    struct FailLate;

    impl Target for FailLate {
        async fn send(&self, n: u64) -> anyhow::Result<()> {
            anyhow::ensure!(n < 105, "late");
            Ok(())
        }
    }

    #[tokio::test]
    async fn sends_each_message_once() {
        let plan = Plan {
            concurrency: 3,
            requests: 10,
            rate: None,
            first: 100,
        };
        let outcome = run(Arc::new(FailLate), plan).await.expect("runs");
        assert_eq!(outcome.latencies_us.len(), 5);
        assert_eq!(outcome.failed(), 5);
    }

    #[tokio::test]
    async fn keeps_to_the_schedule() {
        let plan = Plan {
            concurrency: 2,
            requests: 20,
            rate: Some(200.0),
            first: 0,
        };
        let outcome = run(Arc::new(FailLate), plan).await.expect("runs");
        // 20 requests at 200/s: the last is due at 95 ms.
        assert!(outcome.elapsed >= Duration::from_millis(95), "{outcome:?}");
    }
}
