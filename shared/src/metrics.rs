//! The Prometheus registry a binary registers its metrics in and `/metrics` serves.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// A fresh registry whose metric names all start with `roomtape_`.
pub fn registry() -> Registry {
    Registry::with_prefix("roomtape")
}

/// The registry in the Prometheus text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// Registers `metric` under `name` and hands it back, so a metrics struct is built with one
/// expression per field.
pub fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}
