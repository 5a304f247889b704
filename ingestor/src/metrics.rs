//! The ingestor's Prometheus metrics.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use roomtape_shared::metrics::registered;

type Labels = [(&'static str, &'static str); 1];

#[derive(Debug, Clone)]
pub struct IngestorMetrics {
    requests: Family<Labels, Counter>,
    verification_failures: Family<Labels, Counter>,
    publish_confirm_seconds: Histogram,
    publishes_in_flight: Gauge,
}

/// Decrements the in-flight gauge when the publish ends, however it ends.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl IngestorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            requests: registered(
                registry,
                "webhook_requests",
                "Webhook requests by outcome",
                Family::default(),
            ),
            verification_failures: registered(
                registry,
                "webhook_verification_failures",
                "Webhooks rejected as unauthenticated, by reason",
                Family::default(),
            ),
            publish_confirm_seconds: registered(
                registry,
                "publish_confirm_seconds",
                "Time from publish to the broker's confirm",
                // 0.5 ms … ~4 s
                Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            ),
            publishes_in_flight: registered(
                registry,
                "publishes_in_flight",
                "Publishes waiting for their confirm",
                Gauge::default(),
            ),
        }
    }

    pub fn request(&self, outcome: &'static str) {
        self.requests.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub fn verification_failure(&self, reason: &'static str) {
        self.verification_failures
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    pub fn publish_started(&self) -> InFlight {
        self.publishes_in_flight.inc();
        InFlight(self.publishes_in_flight.clone())
    }

    pub fn observe_confirm(&self, elapsed: Duration) {
        self.publish_confirm_seconds.observe(elapsed.as_secs_f64());
    }
}
