//! The JSON API under `/api/v1`: sessions, sources and schedules, each with
//! list, get and watch (server-sent events), a session's runner output, and
//! the OpenAPI document describing them. Everything is read from the watch caches.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use kube::ResourceExt;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::app::{ApiError, Shared, WebError, query, schedule_views, session_page, source_rows};
use crate::auth::Caller;
use crate::store::{Change, Kind, Object};
use crate::view::schedule::{ScheduleQuery, ScheduleView};
use crate::view::{Page, SessionQuery, SessionRow};
use acp_api::progress::render_line;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /api/v1/sessions`: filters `namespace`, `phase`, `source`, `commit`,
/// `q`; `sort`, `order`, `page`, `limit`.
pub async fn list_sessions(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<Page<Arc<SessionRow>>>, ApiError> {
    let query = query(params)?;
    Ok(Json(session_page(&app, &headers, &query).await?.2))
}

/// `GET /api/v1/sessions/{namespace}/{name}`: the AgenticSession.
pub async fn get_session(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, session) = app.session(&headers, &namespace, &name).await?;
    Ok(Json(&*session).into_response())
}

/// `GET /api/v1/sources`.
pub async fn list_sources(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let rows = source_rows(&app, &headers).await?.1;
    Ok(Json(serde_json::json!({ "items": rows, "total": rows.len() })).into_response())
}

/// `GET /api/v1/sources/{namespace}/{name}`: the SessionSource.
pub async fn get_source(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, source) = app.source(&headers, &namespace, &name).await?;
    Ok(Json(&*source).into_response())
}

/// `GET /api/v1/schedules`: filter `namespace`.
pub async fn list_schedules(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<ScheduleQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query(params)?;
    let views = schedule_views(&app, &headers, &query).await?.1;
    Ok(Json(serde_json::json!({ "items": views, "total": views.len() })).into_response())
}

/// `GET /api/v1/schedules/{namespace}/{name}`: the schedule's view
/// (spec in short, next run, run history, Ready).
pub async fn get_schedule(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<ScheduleView>, ApiError> {
    let (_, schedule) = app.schedule(&headers, &namespace, &name).await?;
    Ok(Json(ScheduleView::new(&schedule)))
}

/// Options of a watch.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WatchQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only objects of this name.
    pub name: Option<String>,
    /// Send the current objects first (default true), then `synced`.
    pub initial: Option<bool>,
}

type Events = BoxStream<'static, Result<Event, Infallible>>;

/// `GET /api/v1/sessions/watch`: server-sent events `upsert` and `delete`
/// (data: the object), `synced` after the initial objects, and `reset` when
/// the client must start over (the objects follow again).
pub async fn watch_sessions(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    watch(app, headers, query(params)?, Kind::Session).await
}

/// `GET /api/v1/sources/watch`: as the session watch, for SessionSources.
pub async fn watch_sources(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    watch(app, headers, query(params)?, Kind::Source).await
}

/// `GET /api/v1/schedules/watch`: as the session watch, for SessionSchedules.
pub async fn watch_schedules(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    watch(app, headers, query(params)?, Kind::Schedule).await
}

struct Watch {
    app: Shared,
    caller: Option<Caller>,
    kind: Kind,
    query: WatchQuery,
}

impl Watch {
    fn wants(&self, namespace: &str, name: &str) -> bool {
        self.query.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.query.name.as_deref().is_none_or(|n| n == name)
    }

    /// The event for `object`, when this watch shows it.
    async fn event(&self, name: &'static str, object: &Object) -> Option<Event> {
        let (kind, ns, obj_name, data) = match object {
            Object::Session(s) => (Kind::Session, s.namespace(), s.name_any(), serde_json::to_string(&**s)),
            Object::Source(s) => (Kind::Source, s.namespace(), s.name_any(), serde_json::to_string(&**s)),
            Object::Schedule(s) => (Kind::Schedule, s.namespace(), s.name_any(), serde_json::to_string(&**s)),
        };
        let ns = ns.unwrap_or_default();
        if kind != self.kind || !self.wants(&ns, &obj_name) {
            return None;
        }
        // Access is checked per event (cached), so a revoked binding stops the flow.
        if !self.app.auth.can_list(self.caller.as_ref(), &ns).await.unwrap_or(false) {
            return None;
        }
        Some(Event::default().event(name).data(data.ok()?))
    }

    /// Every current object, then `synced`.
    async fn snapshot(&self) -> Vec<Event> {
        let objects: Vec<Object> = match self.kind {
            Kind::Session => self.app.cache.sessions.state().into_iter().map(Object::Session).collect(),
            Kind::Source => self.app.cache.sources.state().into_iter().map(Object::Source).collect(),
            Kind::Schedule => self.app.cache.schedules.state().into_iter().map(Object::Schedule).collect(),
        };
        let mut events = Vec::with_capacity(objects.len() + 1);
        for object in &objects {
            events.extend(self.event("upsert", object).await);
        }
        events.push(Event::default().event("synced").data("{}"));
        events
    }
}

async fn watch(app: Shared, headers: HeaderMap, query: WatchQuery, kind: Kind) -> Result<Response, ApiError> {
    // Only the caller: access is decided per event (cached), not for every
    // namespace up front.
    app.ready()?;
    let caller = app.auth.caller(&headers).await?;
    if let Some(ns) = &query.namespace {
        app.check(&headers, ns).await?;
    }
    let changes = app.cache.subscribe();
    let stopping = app.stopping();
    let initial = query.initial.unwrap_or(true);
    let watch = Arc::new(Watch { app, caller, kind, query });
    let first: Vec<Event> = if initial { watch.snapshot().await } else { Vec::new() };
    let live = stream::unfold((watch, changes), |(watch, mut changes)| async move {
        loop {
            let events = match changes.recv().await {
                Ok(Change::Upsert(o)) => watch.event("upsert", &o).await.into_iter().collect(),
                Ok(Change::Delete(o)) => watch.event("delete", &o).await.into_iter().collect(),
                Ok(Change::Resync(k)) if k == watch.kind => reset(&watch).await,
                Ok(Change::Resync(_)) => Vec::new(),
                Err(RecvError::Lagged(_)) => reset(&watch).await,
                Err(RecvError::Closed) => return None,
            };
            if !events.is_empty() {
                return Some((stream::iter(events), (watch, changes)));
            }
        }
    })
    .flatten();
    let events = stream::iter(first).chain(live).map(Ok).take_until(stopping);
    Ok(Sse::new(events.boxed() as Events).keep_alive(KeepAlive::default()).into_response())
}

async fn reset(watch: &Watch) -> Vec<Event> {
    let mut events = vec![Event::default().event("reset").data("{}")];
    events.extend(watch.snapshot().await);
    events
}

/// Options of `GET /api/v1/sessions/{namespace}/{name}/log`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    /// Stream new lines as server-sent events `line`, then `end`.
    pub follow: bool,
    /// `raw` (the runner's JSON lines, default) or `text` (for people).
    pub format: Option<String>,
}

/// `GET /api/v1/sessions/{namespace}/{name}/log`: the runner's output.
pub async fn session_log(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    params: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let (_, session) = app.session(&headers, &namespace, &name).await?;
    let text = params.format.as_deref() == Some("text");
    let shape = move |line: String| if text { render_line(&line) } else { line };
    if !params.follow {
        let lines = app.logs.lines(&session, false).await?;
        let lines: Vec<String> = lines.filter_map(|l| async move { l.ok() }).collect().await;
        let body = lines.into_iter().map(shape).collect::<Vec<_>>().join("\n");
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    let lines = app.logs.lines(&session, true).await?;
    // A follow may outlive the caller's access (a RoleBinding removed, a token
    // revoked): ask again each time the cached decision expires, and end the
    // stream when the answer is no.
    let revoked = {
        let (app, headers, namespace) = (app.clone(), headers.clone(), namespace.clone());
        async move {
            loop {
                tokio::time::sleep(crate::auth::CACHE_TTL).await;
                if app.check(&headers, &namespace).await.is_err() {
                    return;
                }
            }
        }
    };
    let events = lines
        .map(move |line| match line {
            Ok(line) => Event::default().event("line").data(shape(line)),
            Err(e) => Event::default().event("failure").data(WebError::from(e).chain()),
        })
        .take_until(Box::pin(revoked))
        .chain(stream::once(async { Event::default().event("end").data("{}") }))
        .map(Ok::<_, Infallible>)
        .take_until(app.stopping());
    Ok(Sse::new(events.boxed() as Events).keep_alive(KeepAlive::default()).into_response())
}
