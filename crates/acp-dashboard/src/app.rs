//! The dashboard's application state and read model, shared by the JSON API
//! and the pages: the watch caches, access decisions, the runner-output
//! source, the compiled templates; the errors a request can end in; and the
//! queries both front ends answer from the caches.

use std::sync::Arc;

use acp_api::{AgenticSession, SessionSchedule, SessionSource};
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::ResourceExt;

use crate::auth::{Access, AuthError, Authorizer, Caller};
use crate::logs::{LogError, LogSource};
use crate::metrics::Metrics;
use crate::store::Cache;
use crate::templates::Pages;
use crate::view::schedule::{self, ScheduleQuery, ScheduleView};
use crate::view::{self, Page, SessionQuery, SessionRow, SourceRow};

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

    /// Schedule `namespace/name`, if the caller may see it.
    pub async fn schedule(
        &self,
        headers: &HeaderMap,
        namespace: &str,
        name: &str,
    ) -> Result<(Option<Caller>, Arc<SessionSchedule>), WebError> {
        let caller = self.check(headers, namespace).await?;
        Ok((caller, self.cache.schedule(namespace, name).ok_or(WebError::NotFound)?))
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

    pub(crate) fn log(&self) {
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

/// The query string, or a 400 saying what is wrong with it.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, WebError> {
    query.map(|Query(q)| q).map_err(|e| WebError::BadRequest(e.body_text()))
}

/// The visible sessions matching `query`, one page.
pub(crate) async fn session_page(
    app: &Shared,
    headers: &HeaderMap,
    query: &SessionQuery,
) -> Result<(Option<Caller>, Access, Page<Arc<SessionRow>>), WebError> {
    app.ready()?;
    let (caller, access) = app.access(headers).await?;
    let snapshot = app.cache.snapshot();
    let page = view::select(&snapshot, query, |ns| access.allows(ns));
    Ok((caller, access, page))
}

/// Sources visible to the caller, sorted by namespace and name.
pub(crate) async fn source_rows(
    app: &Shared,
    headers: &HeaderMap,
) -> Result<(Option<Caller>, Vec<SourceRow>), WebError> {
    app.ready()?;
    let (caller, access) = app.access(headers).await?;
    let mut rows: Vec<SourceRow> = app
        .cache
        .sources
        .state()
        .iter()
        .filter(|s| access.allows(&s.namespace().unwrap_or_default()))
        .map(|s| SourceRow::new(s))
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok((caller, rows))
}

/// Schedules visible to the caller (in `query`'s namespace, when it names
/// one), sorted by namespace and name.
pub(crate) async fn schedule_views(
    app: &Shared,
    headers: &HeaderMap,
    query: &ScheduleQuery,
) -> Result<(Option<Caller>, Vec<ScheduleView>), WebError> {
    app.ready()?;
    let (caller, access) = app.access(headers).await?;
    let all = app.cache.schedules.state();
    let views = schedule::select(&all, query.namespace.as_deref(), |ns| access.allows(ns));
    Ok((caller, views))
}
