//! Prometheus metrics of the dashboard: requests and their latency by route
//! (the route pattern, never the raw path, so labels stay bounded).

use std::time::Duration;

use axum::http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route pattern, like `/sessions/{namespace}/{name}`.
    pub route: String,
    /// Status code class: `2xx`, `4xx`…
    pub code: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route pattern.
    pub route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The dashboard's metrics.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("acp_dashboard");
        let requests = Family::<RequestLabels, Counter>::default();
        let seconds =
            Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("requests", "HTTP requests answered", requests.clone());
        registry.register("request_seconds", "Time to the response head", seconds.clone());
        Self { requests, seconds, registry }
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, route: &str, status: StatusCode, took: Duration) {
        let code = format!("{}xx", status.as_u16() / 100);
        self.requests.get_or_create(&RequestLabels { route: route.to_owned(), code }).inc();
        self.seconds.get_or_create(&RouteLabel { route: route.to_owned() }).observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "failed to encode metrics");
        }
        out
    }
}
