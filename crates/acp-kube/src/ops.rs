//! The operational endpoints every controller serves: `/metrics` (the
//! Prometheus text exposition of its registry) and `/healthz`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

/// The text exposition's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics` (what `encode` returns) and `/healthz` (always `ok`: a process
/// that answers is alive, a standby waiting for its lease included).
pub fn router(encode: impl Fn() -> String + Send + Sync + 'static) -> Router {
    let encode = Arc::new(encode);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let encode = encode.clone();
                async move { ([("content-type", METRICS_CONTENT_TYPE)], encode()) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// Several registries' expositions as one: each without its `# EOF`, then one.
pub fn join(expositions: &[String]) -> String {
    let mut out: String =
        expositions.iter().map(|e| e.trim_end().trim_end_matches("# EOF").to_owned()).collect();
    out.push_str("# EOF\n");
    out
}

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
