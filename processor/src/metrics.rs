//! The processor's Prometheus metrics.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use roomtape_shared::db::notifications::Kind;
use roomtape_shared::metrics::registered;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
pub struct ProcessorMetrics {
    messages: Family<Labels, Counter>,
    handle_seconds: Family<Labels, Histogram>,
    lag_seconds: Family<Labels, Histogram>,
    head_seconds: Histogram,
    probe_seconds: Histogram,
    in_flight: Family<Labels, Gauge>,
    relayed: Family<Vec<(&'static str, &'static str)>, Counter>,
    deliveries: Family<Labels, Counter>,
    delivery_seconds: Family<Labels, Histogram>,
    retention_deleted: Counter,
    retention_failed: Counter,
    retention_bytes: Counter,
    retention_sweeps: Counter,
}

impl ProcessorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            messages: registered(
                registry,
                "messages",
                "Messages handled, by queue, event type and outcome",
                Family::default(),
            ),
            handle_seconds: registered(
                registry,
                "handle_seconds",
                "Time to handle one message, by queue",
                Family::new_with_constructor(|| {
                    Histogram::new(exponential_buckets(0.001, 2.0, 14))
                }),
            ),
            lag_seconds: registered(
                registry,
                "queue_lag_seconds",
                "Time from the message's timestamp to its handling, by queue",
                Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 16))),
            ),
            head_seconds: registered(
                registry,
                "head_seconds",
                "Latency of checking a finished file in the bucket (a HEAD, or the probe's first ranged GET)",
                Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            ),
            probe_seconds: registered(
                registry,
                "probe_seconds",
                "Time to probe one finished file (its ranged reads and checks)",
                Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            ),
            in_flight: registered(
                registry,
                "messages_in_flight",
                "Deliveries being handled, by queue",
                Family::default(),
            ),
            relayed: registered(
                registry,
                "notifications_relayed",
                "Notifications published to roomtape.notifications and marked relayed, by type",
                Family::default(),
            ),
            deliveries: registered(
                registry,
                "notification_deliveries",
                "Attempts to POST a notification to an HTTP endpoint, by endpoint and outcome (delivered, retried, failed: dead-lettered)",
                Family::default(),
            ),
            delivery_seconds: registered(
                registry,
                "notification_delivery_seconds",
                "Time of one POST to an endpoint, answer or timeout included, by endpoint",
                Family::new_with_constructor(|| {
                    Histogram::new(exponential_buckets(0.005, 2.0, 14))
                }),
            ),
            retention_deleted: registered(
                registry,
                "retention_deleted",
                "Recordings the retention rules deleted (RECORDING_RETENTION)",
                Counter::default(),
            ),
            retention_failed: registered(
                registry,
                "retention_failed",
                "Recordings due under the retention rules that could not be deleted",
                Counter::default(),
            ),
            retention_bytes: registered(
                registry,
                "retention_freed_bytes",
                "Bytes of recording files the retention rules freed",
                Counter::default(),
            ),
            retention_sweeps: registered(
                registry,
                "retention_sweeps",
                "Retention sweeps this processor ran (one processor at a time sweeps)",
                Counter::default(),
            ),
        };
        // Every type served from the start, at 0: a rate over it is defined before the first.
        for kind in Kind::ALL {
            drop(
                metrics
                    .relayed
                    .get_or_create(&vec![("type", kind.as_str())]),
            );
        }
        metrics
    }

    pub fn handled(&self, queue: &str, event: &str, outcome: &str, took: Duration) {
        let labels = vec![
            ("queue", queue.to_owned()),
            ("event", event_label(event).to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        self.messages.get_or_create(&labels).inc();
        self.handle_seconds
            .get_or_create(&vec![("queue", queue.to_owned())])
            .observe(took.as_secs_f64());
    }

    pub fn lag(&self, queue: &str, lag: Duration) {
        self.lag_seconds
            .get_or_create(&vec![("queue", queue.to_owned())])
            .observe(lag.as_secs_f64());
    }

    pub fn head(&self, took: Duration) {
        self.head_seconds.observe(took.as_secs_f64());
    }

    pub fn probe(&self, took: Duration) {
        self.probe_seconds.observe(took.as_secs_f64());
    }

    /// A notification of type `kind` was relayed (committed as such).
    pub fn relayed(&self, kind: &str) {
        let kind = Kind::ALL
            .into_iter()
            .map(Kind::as_str)
            .find(|known| *known == kind)
            .unwrap_or("other");
        self.relayed.get_or_create(&vec![("type", kind)]).inc();
    }

    /// Serves `endpoint`'s outcomes from the start, at 0: a rate over them is defined before
    /// the first attempt.
    pub fn delivery_outcomes_at_zero(&self, endpoint: &str) {
        for outcome in ["delivered", "retried", "failed"] {
            let labels = vec![
                ("endpoint", endpoint.to_owned()),
                ("outcome", outcome.to_owned()),
            ];
            drop(self.deliveries.get_or_create(&labels));
        }
    }

    /// One attempt to POST to `endpoint` (a name from `NOTIFY_ENDPOINTS`, a fixed set).
    pub fn delivery(&self, endpoint: &str, outcome: &'static str, took: Duration) {
        let labels = vec![
            ("endpoint", endpoint.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        self.deliveries.get_or_create(&labels).inc();
        self.delivery_seconds
            .get_or_create(&vec![("endpoint", endpoint.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// One retention sweep: how many it deleted, how many failed, the bytes freed.
    pub fn swept(&self, deleted: usize, failed: usize, bytes: i64) {
        self.retention_sweeps.inc();
        self.retention_deleted.inc_by(deleted as u64);
        self.retention_failed.inc_by(failed as u64);
        self.retention_bytes.inc_by(bytes.unsigned_abs());
    }

    pub fn in_flight(&self, queue: &str) -> Gauge {
        self.in_flight
            .get_or_create(&vec![("queue", queue.to_owned())])
            .clone()
    }
}

/// The events and commands a metric names; anything else (a name from a message's body, type or
/// routing key that a publisher chose) is `other`, so labels stay a fixed, small set.
const KNOWN_EVENTS: [&str; 14] = [
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
    "egress_started",
    "egress_updated",
    "egress_ended",
    "ingress_started",
    "ingress_ended",
    "recording.start",
    "recording.stop",
];

fn event_label(event: &str) -> &'static str {
    KNOWN_EVENTS
        .into_iter()
        .find(|known| *known == event)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::event_label;

    #[test]
    fn labels_come_from_a_fixed_set() {
        assert_eq!(event_label("egress_ended"), "egress_ended");
        assert_eq!(event_label("recording.stop"), "recording.stop");
        assert_eq!(event_label("x".repeat(10_000).as_str()), "other");
        assert_eq!(event_label("room_started\n"), "other");
    }
}
