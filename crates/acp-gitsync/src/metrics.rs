//! Prometheus metrics of git-sync, served at `/metrics` beside the webhook.
//! Labels are bounded: failure reasons, error categories, where reads came
//! from.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A condition reason (`FetchFailed`, `ValidationFailed`…).
    pub reason: String,
}

/// Label of [`Metrics::reads`]: where a sync read the live sessions from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FromLabel {
    /// `cache` (the watch cache, plus a few reads) or `list`.
    pub from: &'static str,
}

/// git-sync's metrics.
pub struct Metrics {
    /// Syncs run to the end (including no-op syncs).
    pub syncs: Counter,
    /// Syncs that failed or reported errors, by reason.
    pub failures: Family<ReasonLabel, Counter>,
    /// Sync durations in seconds.
    pub sync_seconds: Histogram,
    /// Sessions created or updated.
    pub applied: Counter,
    /// Sessions pruned.
    pub pruned: Counter,
    /// Reads of a target namespace's live sessions, by where from.
    pub reads: Family<FromLabel, Counter>,
    /// 1 once the watch cache of sessions holds its first list.
    pub live_cache_ready: Gauge,
    /// Reconcile failures (retried with backoff) by category.
    pub reconcile_errors: Family<acp_kube::reconcile::ErrorLabels, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("acp_git_sync");
        let metrics = Self {
            syncs: Counter::default(),
            failures: Family::default(),
            sync_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            applied: Counter::default(),
            pruned: Counter::default(),
            reads: Family::default(),
            live_cache_ready: Gauge::default(),
            reconcile_errors: Family::default(),
            registry: Registry::default(),
        };
        registry.register("syncs", "Syncs run to the end", metrics.syncs.clone());
        registry.register("failures", "Syncs that failed or reported errors", metrics.failures.clone());
        registry.register("sync_seconds", "Sync durations", metrics.sync_seconds.clone());
        registry.register("applied", "Sessions created or updated", metrics.applied.clone());
        registry.register("pruned", "Sessions pruned", metrics.pruned.clone());
        registry.register(
            "reads",
            "Reads of a namespace's live sessions, by where from",
            metrics.reads.clone(),
        );
        registry.register(
            "live_cache_ready",
            "The watch cache of sessions is filled",
            metrics.live_cache_ready.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile failures by category",
            metrics.reconcile_errors.clone(),
        );
        Self { registry, ..metrics }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// `/metrics` and `/healthz`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(|State(m): State<Arc<Metrics>>| async move { m.encode() }))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self)
    }
}
