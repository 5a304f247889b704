//! The API's Prometheus metrics: requests and their latency per endpoint.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use roomtape_shared::metrics::registered;

type RequestLabels = [(&'static str, String); 3];
type EndpointLabels = [(&'static str, String); 2];

#[derive(Debug, Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<EndpointLabels, Histogram>,
}

impl ApiMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            requests: registered(
                registry,
                "api_requests",
                "API requests by endpoint (method and route pattern) and status",
                Family::default(),
            ),
            request_seconds: registered(
                registry,
                "api_request_seconds",
                "Time to answer an API request, by endpoint",
                Family::new_with_constructor(|| {
                    // 1 ms … ~16 s
                    Histogram::new(exponential_buckets(0.001, 2.0, 15))
                }),
            ),
        }
    }

    /// One answered request: `endpoint` is its route pattern (`/api/v1/recordings/{egress_id}`),
    /// never the raw path, so ids do not become series.
    pub fn observe(&self, method: &str, endpoint: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&[
                ("method", method.to_owned()),
                ("endpoint", endpoint.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.request_seconds
            .get_or_create(&[
                ("method", method.to_owned()),
                ("endpoint", endpoint.to_owned()),
            ])
            .observe(took.as_secs_f64());
    }
}
