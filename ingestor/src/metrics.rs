//! The ingestor's Prometheus metrics.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use roomtape_shared::metrics::registered;

type Labels = [(&'static str, &'static str); 1];
/// The pool's channel index, as a label.
type ChannelLabel = [(&'static str, String); 1];

#[derive(Debug, Clone)]
pub struct IngestorMetrics {
    requests: Family<Labels, Counter>,
    verification_failures: Family<Labels, Counter>,
    publish_confirm_seconds: Histogram,
    publishes_in_flight: Gauge,
    webhooks_in_flight: Gauge,
    overload_rejections: Counter,
    channels_usable: Gauge,
    channel_publishes: Family<ChannelLabel, Counter>,
    channel_replacements: Counter,
    broker_blocked: Gauge,
}

/// Decrements the in-flight gauge when the publish ends, however it ends.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
    /// Publishes already in flight when this one started.
    ahead: i64,
}

impl InFlight {
    /// How many publishes were in flight when this one started.
    pub fn ahead(&self) -> usize {
        usize::try_from(self.ahead).unwrap_or(0)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
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
            webhooks_in_flight: registered(
                registry,
                "webhooks_in_flight",
                "Authenticated webhooks being read or published (bounded by INGESTOR_MAX_IN_FLIGHT)",
                Gauge::default(),
            ),
            overload_rejections: registered(
                registry,
                "webhook_overload_rejections",
                "Webhooks refused with 503 because INGESTOR_MAX_IN_FLIGHT were in flight",
                Counter::default(),
            ),
            channels_usable: registered(
                registry,
                "publish_channels_usable",
                "Confirm channels of the publisher pool that can publish now",
                Gauge::default(),
            ),
            channel_publishes: registered(
                registry,
                "publish_channel_publishes",
                "Publishes started, by the pool channel that carried them",
                Family::default(),
            ),
            channel_replacements: registered(
                registry,
                "publish_channel_replacements",
                "Pool channels opened again after theirs failed",
                Counter::default(),
            ),
            broker_blocked: registered(
                registry,
                "broker_blocked",
                "1 while RabbitMQ blocks publishers (a memory or disk alarm): webhooks get 503",
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
        InFlight {
            ahead: self.publishes_in_flight.inc(),
            gauge: self.publishes_in_flight.clone(),
        }
    }

    pub fn webhook_started(&self) {
        self.webhooks_in_flight.inc();
    }

    pub fn webhook_finished(&self) {
        self.webhooks_in_flight.dec();
    }

    pub fn overloaded(&self) {
        self.overload_rejections.inc();
    }

    pub fn set_channels_usable(&self, usable: usize) {
        self.channels_usable
            .set(i64::try_from(usable).unwrap_or(i64::MAX));
    }

    /// The publish counter of pool channel `channel`, made once so publishing does not format
    /// a label each time.
    pub fn channel_publishes(&self, channel: usize) -> Counter {
        self.channel_publishes
            .get_or_create(&[("channel", channel.to_string())])
            .clone()
    }

    pub fn channel_replaced(&self) {
        self.channel_replacements.inc();
    }

    pub fn set_broker_blocked(&self, blocked: bool) {
        self.broker_blocked.set(i64::from(blocked));
    }

    pub fn observe_confirm(&self, elapsed: Duration) {
        self.publish_confirm_seconds.observe(elapsed.as_secs_f64());
    }
}
