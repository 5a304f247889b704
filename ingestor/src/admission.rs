//! Bounded admission: at most `limit` authenticated webhooks are read and published at once.
//! Past that the broker is confirming slower than webhooks arrive, and waiting in line would
//! only grow memory and latency until LiveKit's own timeout; a request over the limit is
//! refused at once (503 with `Retry-After`) and LiveKit retries it later.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::IngestorMetrics;

#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    metrics: IngestorMetrics,
}

/// A request's place; released (and the gauge lowered) when dropped, however the request ends.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    metrics: IngestorMetrics,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.webhook_finished();
    }
}

impl Admission {
    pub fn new(limit: usize, metrics: IngestorMetrics) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            metrics,
        }
    }

    /// A place if one is free now; `None` (counted) if the limit is reached. Never waits.
    pub fn admit(&self) -> Option<Admitted> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.webhook_started();
                Some(Admitted {
                    _permit: permit,
                    metrics: self.metrics.clone(),
                })
            }
            Err(_) => {
                self.metrics.overloaded();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_admits_again_once_a_place_is_free() {
        let metrics =
            IngestorMetrics::register(&mut prometheus_client::registry::Registry::default());
        let admission = Admission::new(2, metrics);
        let first = admission.admit().expect("first");
        let _second = admission.admit().expect("second");
        assert!(admission.admit().is_none(), "the limit is reached");
        drop(first);
        assert!(admission.admit().is_some(), "a place was freed");
    }
}
