//! The API's Prometheus metrics: requests and their latency per endpoint.

use std::time::Duration;

use actix_web::http::Method;
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
    /// never the raw path, so ids do not become series. Methods and paths are chosen by
    /// whoever sends the request: both come from fixed sets, anything else is `other`.
    pub fn observe(&self, method: &Method, endpoint: Option<&str>, status: u16, took: Duration) {
        let method = method_label(method);
        let endpoint = endpoint.unwrap_or(OTHER);
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

/// The label of what is not in a fixed set.
const OTHER: &str = "other";

/// The methods HTTP defines (RFC 9110, and PATCH); any other name a client sends is `other`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

fn method_label(method: &Method) -> &'static str {
    KNOWN_METHODS
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let invented = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&invented), "other");
    }
}
