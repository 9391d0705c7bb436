//! The HTTP server: shared state, routes, errors, and the operations
//! endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::sync::Arc;

use acp_api::{AgenticSession, SessionSource};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::{Access, AuthError, Authorizer, Caller};
use crate::logs::{LogError, LogSource};
use crate::metrics::Metrics;
use crate::pages::Pages;
use crate::store::Cache;
use crate::{api, pages};

/// Everything a request handler reads.
pub struct App {
    /// The watch caches.
    pub cache: Arc<Cache>,
    /// Access decisions.
    pub auth: Authorizer,
    /// Where runner output is read from.
    pub logs: LogSource,
    /// The page templates.
    pub pages: Pages,
    /// Request metrics.
    pub metrics: Metrics,
    /// A notice shown on every page (for example that the model is a replay).
    pub banner: Option<String>,
    /// Set on shutdown: long-lived responses (watches, log streams) end.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// Shared state of the handlers.
pub type Shared = Arc<App>;

impl App {
    /// Resolves when the server shuts down.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            // An error means the sender is gone: stopping as well.
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// Who is calling and which namespaces they may see.
    pub async fn access(&self, headers: &HeaderMap) -> Result<(Option<Caller>, Access), WebError> {
        let caller = self.auth.caller(headers).await?;
        let access = match caller {
            None => Access::All,
            Some(_) => self.auth.access(caller.as_ref(), &self.cache.namespaces()).await?,
        };
        Ok((caller, access))
    }

    /// Fails while the caches are still loading: an empty answer would lie.
    pub fn ready(&self) -> Result<(), WebError> {
        if self.cache.ready() { Ok(()) } else { Err(WebError::NotReady) }
    }

    /// Checks that the caches are loaded and the caller may see `namespace`;
    /// else the object "is not found".
    pub async fn check(&self, headers: &HeaderMap, namespace: &str) -> Result<Option<Caller>, WebError> {
        self.ready()?;
        let caller = self.auth.caller(headers).await?;
        if self.auth.can_list(caller.as_ref(), namespace).await? {
            Ok(caller)
        } else {
            Err(WebError::NotFound)
        }
    }

    /// Session `namespace/name`, if the caller may see it.
    pub async fn session(
        &self,
        headers: &HeaderMap,
        namespace: &str,
        name: &str,
    ) -> Result<(Option<Caller>, Arc<AgenticSession>), WebError> {
        let caller = self.check(headers, namespace).await?;
        Ok((caller, self.cache.session(namespace, name).ok_or(WebError::NotFound)?))
    }

    /// Source `namespace/name`, if the caller may see it.
    pub async fn source(
        &self,
        headers: &HeaderMap,
        namespace: &str,
        name: &str,
    ) -> Result<(Option<Caller>, Arc<SessionSource>), WebError> {
        let caller = self.check(headers, namespace).await?;
        Ok((caller, self.cache.source(namespace, name).ok_or(WebError::NotFound)?))
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Authentication or a review failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No such object, or not visible to the caller.
    #[error("failed to find it: no such object, or you may not see it")]
    NotFound,
    /// The query string is not understood.
    #[error("failed to read the query: {0}")]
    BadRequest(String),
    /// The caches are still loading.
    #[error("failed to answer: the dashboard is still loading its caches")]
    NotReady,
    /// A page could not be rendered.
    #[error("failed to render the page")]
    Render(#[source] minijinja::Error),
    /// The runner's output could not be read.
    #[error(transparent)]
    Logs(#[from] LogError),
}

impl WebError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Auth(AuthError::Missing | AuthError::Invalid(_)) => StatusCode::UNAUTHORIZED,
            Self::Auth(AuthError::Review(_)) => StatusCode::BAD_GATEWAY,
            Self::NotFound | Self::Logs(LogError::NoRun | LogError::NoPod(_)) => StatusCode::NOT_FOUND,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Logs(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The message with its sources.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    fn log(&self) {
        if self.status().is_server_error() {
            tracing::warn!(error = %self.chain(), "request failed");
        }
    }
}

/// An error answered as JSON (`{"error": "…"}`).
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let mut response =
            (self.0.status(), axum::Json(serde_json::json!({ "error": self.0.chain() }))).into_response();
        if self.0.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

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
        .route("/static/{file}", get(static_file))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/sessions", get(api::list_sessions))
        .route("/api/v1/sessions/watch", get(api::watch_sessions))
        .route("/api/v1/sessions/{namespace}/{name}", get(api::get_session))
        .route("/api/v1/sessions/{namespace}/{name}/log", get(api::session_log))
        .route("/api/v1/sources", get(api::list_sources))
        .route("/api/v1/sources/watch", get(api::watch_sources))
        .route("/api/v1/sources/{namespace}/{name}", get(api::get_source))
        .route_layer(middleware::from_fn_with_state(app.clone(), observe))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
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
