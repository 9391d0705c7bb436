//! The HTTP servers: the public routes (the JSON API, the pages, static
//! files, `/healthz`, `/readyz`), and apart from them, on their own port,
//! the operations endpoint `/metrics` ([`ops_router`]). The state and errors
//! handlers share live in [`crate::app`].

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

pub use crate::app::{ApiError, App, Shared, WebError};
use crate::{api, pages};

/// Serves `/metrics`.
async fn metrics(State(app): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        app.metrics.encode(),
    )
}

async fn readyz(State(app): State<Shared>) -> impl IntoResponse {
    if app.cache.ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches are loading")
    }
}

async fn observe(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    app.metrics.observe(&route, response.status(), started.elapsed());
    response
}

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (include_str!("../static/app.css"), "text/css; charset=utf-8"),
        "live.js" => (include_str!("../static/live.js"), "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// Every route of the dashboard.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/sessions") }))
        .route("/sessions", get(pages::sessions))
        .route("/sessions/{namespace}/{name}", get(pages::session))
        .route("/sources", get(pages::sources))
        .route("/sources/{namespace}/{name}", get(pages::source))
        .route("/schedules", get(pages::schedules))
        .route("/schedules/{namespace}/{name}", get(pages::schedule))
        .route("/static/{file}", get(static_file))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/sessions", get(api::list_sessions))
        .route("/api/v1/sessions/watch", get(api::watch_sessions))
        .route("/api/v1/sessions/{namespace}/{name}", get(api::get_session))
        .route("/api/v1/sessions/{namespace}/{name}/log", get(api::session_log))
        .route("/api/v1/sources", get(api::list_sources))
        .route("/api/v1/sources/watch", get(api::watch_sources))
        .route("/api/v1/sources/{namespace}/{name}", get(api::get_source))
        .route("/api/v1/schedules", get(api::list_schedules))
        .route("/api/v1/schedules/watch", get(api::watch_schedules))
        .route("/api/v1/schedules/{namespace}/{name}", get(api::get_schedule))
        .route_layer(middleware::from_fn_with_state(app.clone(), observe))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// The operations routes (`/metrics`, `/healthz`), served on a port of
/// their own, never next to the public pages.
pub fn ops_router(app: Shared) -> Router {
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok" })).with_state(app)
}

/// What a page may load: only this origin's scripts, styles and connections
/// (`live.js` and the SSE streams), no framing, no inline code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers on every response: the content security policy, no MIME sniffing,
/// no referrer leaking session URLs to other sites.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = app.stop.clone();
    let shutdown = async move {
        shutdown.await;
        stop.send_replace(true);
    };
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await
}
