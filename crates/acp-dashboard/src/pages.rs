//! Server-rendered pages (minijinja templates under `templates/`, compiled
//! into the binary): the session list and detail, the source list and detail,
//! the schedule list and detail, and error pages. They read as plain HTML; `static/live.js` adds live updates.

use acp_api::SessionPhase;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, value::Serde};
use serde::Serialize;

use crate::app::{Shared, WebError, query, schedule_views, session_page, source_rows};
use crate::auth::Caller;
use crate::view::schedule::{self, RunView, ScheduleQuery, ScheduleView};
use crate::view::{self, SessionQuery, SessionRow, SourceRow};

/// Most inventory rows a source page lists.
const INVENTORY_SHOWN: usize = 500;

/// An error answered as an HTML page.
pub struct PageError {
    app: Shared,
    error: WebError,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::warn!(error = %self.error.chain(), "page failed");
        }
        let ctx = context! {
            status => format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
            message => self.error.chain(),
            banner => self.app.banner.clone(),
        };
        let body = self.app.pages.render("error.html", ctx).unwrap_or_else(|_| self.error.chain());
        let mut response = (status, Html(body)).into_response();
        if status == axum::http::StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn render(
    app: &Shared,
    name: &str,
    caller: Option<&Caller>,
    section: &str,
    ctx: minijinja::Value,
) -> Result<Response, WebError> {
    let base = context! {
        user => caller.map(Caller::username),
        banner => app.banner.clone(),
        section => section,
    };
    let body = app.pages.render(name, context! { ..ctx, ..base }).map_err(WebError::Render)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response())
}

/// `GET /sessions`.
pub async fn sessions(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let fail = |error| PageError { app: app.clone(), error };
    let query = query(params).map_err(fail)?;
    let (caller, access, page) = session_page(&app, &headers, &query).await.map_err(fail)?;
    let namespaces: Vec<String> = app.cache.namespaces().into_iter().filter(|ns| access.allows(ns)).collect();
    let mut sources: Vec<String> = app
        .cache
        .sources
        .state()
        .iter()
        .filter_map(|s| Some(format!("{}/{}", s.metadata.namespace.as_deref()?, s.metadata.name.as_deref()?)))
        .filter(|s| s.split('/').next().is_some_and(|ns| access.allows(ns)))
        .collect();
    sources.sort();
    let pages = page.pages();
    let ctx = context! {
        page => context! { items => Serde(&page.items), total => page.total, page => page.page, pages => pages },
        query => Serde(&query),
        sort => Serde(query.sort_key()),
        order => Serde(query.order()),
        prev => query.with_page(page.page.saturating_sub(1).max(1)),
        next => query.with_page(page.page + 1),
        namespaces => namespaces,
        sources => sources,
        phases => SessionPhase::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
    };
    render(&app, "sessions.html", caller.as_ref(), "sessions", ctx).map_err(fail)
}

#[derive(Serialize)]
struct BranchLink {
    repo: String,
    branch: String,
    commit: String,
    url: Option<String>,
}

/// `GET /sessions/{namespace}/{name}`.
pub async fn session(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let fail = |error| PageError { app: app.clone(), error };
    let (caller, session) = app.session(&headers, &namespace, &name).await.map_err(fail)?;
    let row = SessionRow::new(&session);
    let source = app.cache.source_of(&session);
    let links = view::links(&session, source.as_deref());
    let status = session.status.clone().unwrap_or_default();
    let branches: Vec<BranchLink> = status
        .result
        .iter()
        .flat_map(|r| &r.pushed_branches)
        .map(|b| BranchLink {
            url: view::web_url(&b.repo).map(|w| view::branch_url(&w, &b.branch)),
            repo: b.repo.clone(),
            branch: b.branch.clone(),
            commit: b.commit.clone(),
        })
        .collect();
    let spec =
        serde_saphyr::to_string(&session.spec).unwrap_or_else(|e| format!("(failed to show the spec: {e})"));
    let schedule = schedule::schedule_of(&session);
    let ctx = context! {
        s => Serde(&row),
        links => Serde(&links),
        result => Serde(&status.result),
        branches => Serde(&branches),
        conditions => Serde(view::timeline(&status.conditions)),
        terminal => row.phase.is_terminal(),
        has_run => status.job_name.is_some(),
        spec => spec,
        schedule => schedule,
    };
    render(&app, "session.html", caller.as_ref(), "sessions", ctx).map_err(fail)
}

/// `GET /sources`.
pub async fn sources(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, PageError> {
    let fail = |error| PageError { app: app.clone(), error };
    let (caller, rows) = source_rows(&app, &headers).await.map_err(fail)?;
    render(&app, "sources.html", caller.as_ref(), "sources", context! { sources => Serde(&rows) })
        .map_err(fail)
}

/// `GET /sources/{namespace}/{name}`.
pub async fn source(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let fail = |error| PageError { app: app.clone(), error };
    let (caller, source) = app.source(&headers, &namespace, &name).await.map_err(fail)?;
    let status = source.status.clone().unwrap_or_default();
    let mut history = status.history.clone();
    history.reverse();
    let inventory_more = status.inventory.len().saturating_sub(INVENTORY_SHOWN);
    let ctx = context! {
        s => Serde(SourceRow::new(&source)),
        errors => Serde(&status.errors),
        inventory => Serde(&status.inventory[..status.inventory.len().min(INVENTORY_SHOWN)]),
        inventory_more => inventory_more,
        history => Serde(&history),
        conditions => Serde(view::timeline(&status.conditions)),
    };
    render(&app, "source.html", caller.as_ref(), "sources", ctx).map_err(fail)
}

/// `GET /schedules`: filter `namespace`.
pub async fn schedules(
    State(app): State<Shared>,
    headers: HeaderMap,
    params: Result<Query<ScheduleQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let fail = |error| PageError { app: app.clone(), error };
    let query = query(params).map_err(fail)?;
    let (caller, views) = schedule_views(&app, &headers, &query).await.map_err(fail)?;
    let ctx = context! { schedules => Serde(&views), namespace => query.namespace };
    render(&app, "schedules.html", caller.as_ref(), "schedules", ctx).map_err(fail)
}

/// A run on the schedule page, with the link to its session while it exists
/// (the history limits delete old runs; the status still lists them).
#[derive(Serialize)]
struct RunLink<'a> {
    #[serde(flatten)]
    run: &'a RunView,
    href: Option<String>,
}

/// `GET /schedules/{namespace}/{name}`.
pub async fn schedule(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let fail = |error| PageError { app: app.clone(), error };
    let (caller, schedule) = app.schedule(&headers, &namespace, &name).await.map_err(fail)?;
    let view = ScheduleView::new(&schedule);
    let link = |session: &str| {
        app.cache.session(&namespace, session).is_some().then(|| view::session_path(&namespace, session))
    };
    let runs: Vec<RunLink<'_>> = view.runs.iter().map(|run| RunLink { run, href: link(&run.name) }).collect();
    let status = schedule.status.clone().unwrap_or_default();
    let template = serde_saphyr::to_string(&schedule.spec.template)
        .unwrap_or_else(|e| format!("(failed to show it: {e})"));
    let ctx = context! {
        s => Serde(&view),
        runs => Serde(&runs),
        deadline => schedule.spec.starting_deadline_seconds,
        keep_successful => schedule.spec.successful_history(),
        keep_failed => schedule.spec.failed_history(),
        last_trigger => status.last_trigger,
        conditions => Serde(view::timeline(&status.conditions)),
        template => template,
    };
    render(&app, "schedule.html", caller.as_ref(), "schedules", ctx).map_err(fail)
}
