//! Prometheus metrics of the operator, and the HTTP endpoint serving them
//! (`/metrics`, `/healthz`). Labels are bounded: error categories, phases.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of error counters (`category`), shared by every controller.
pub use acp_kube::reconcile::ErrorLabels;

/// Labels of phase transitions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// Phase before.
    pub from: String,
    /// Phase after.
    pub to: String,
}

/// Label of session durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Terminal phase.
    pub phase: String,
}

/// The operator's metrics.
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconcile failures by category.
    pub errors: Family<ErrorLabels, Counter>,
    /// Phase transitions.
    pub transitions: Family<TransitionLabels, Counter>,
    /// Run durations (start to completion) by terminal phase, in seconds.
    pub durations: Family<PhaseLabel, Histogram>,
    /// Requests sent to the Kubernetes API (watches count once).
    pub api_requests: Counter,
    /// Sessions the scheduler created for SessionSchedules.
    pub scheduled_runs: Counter,
    /// Scheduler reconciles completed.
    pub schedule_reconciles: Counter,
    /// Session reconciles completed, with or without an error (none before
    /// the caches hold their first lists).
    pub reconciles_completed: Counter,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("acp_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let transitions = Family::<TransitionLabels, Counter>::default();
        let durations = Family::<PhaseLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 14))
        });
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconcile failures by category", errors.clone());
        registry.register("phase_transitions", "Session phase transitions", transitions.clone());
        registry.register("session_duration_seconds", "Run durations by terminal phase", durations.clone());
        let api_requests = Counter::default();
        registry.register("api_requests", "Requests sent to the Kubernetes API", api_requests.clone());
        let scheduled_runs = Counter::default();
        registry.register("scheduled_runs", "Sessions created for SessionSchedules", scheduled_runs.clone());
        let schedule_reconciles = Counter::default();
        registry.register(
            "schedule_reconciles",
            "Scheduler reconciles completed",
            schedule_reconciles.clone(),
        );
        let reconciles_completed = Counter::default();
        registry.register(
            "reconciles_completed",
            "Session reconciles completed",
            reconciles_completed.clone(),
        );
        Self {
            reconciles_completed,
            reconciles,
            errors,
            transitions,
            durations,
            api_requests,
            scheduled_runs,
            schedule_reconciles,
            registry,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    acp_kube::ops::serve(listener, acp_kube::ops::router(move || metrics.encode())).await
}

/// A client that counts every request it sends in `metrics.api_requests`.
pub fn counting_client(config: kube::Config, metrics: &Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    acp_kube::client::counting(config, metrics.api_requests.clone())
}
