//! acp's read-only dashboard and JSON API.
//!
//! Three kube-runtime reflectors cache every AgenticSession, SessionSource
//! and SessionSchedule ([`store`]); pages ([`pages`]) and the API ([`api`])
//! are answered from them, filtered per caller by [`auth`]; the runner's
//! output is streamed from [`logs`]. [`view`] holds the pure parts (rows,
//! queries, links; schedules in [`view::schedule`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
/// The runner's output, read from a run's pod log or from the `process`
/// executor's run directory (`acp_kube::output`, shared with the status bot).
pub use acp_kube::output as logs;
pub mod metrics;
pub mod pages;
pub mod server;
pub mod store;
pub mod templates;
pub mod view;

use std::sync::Arc;

use app::App;

/// Settings of the dashboard.
pub struct Config {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// How callers are authorized.
    pub auth: auth::Mode,
    /// Where runner output is read from.
    pub logs: logs::LogSource,
    /// A notice shown on every page.
    pub banner: Option<String>,
}

/// Failures starting the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A built-in template does not compile.
    #[error("failed to compile the page templates")]
    Templates(#[source] minijinja::Error),
    /// The server failed.
    #[error("failed to serve HTTP")]
    Serve(#[source] std::io::Error),
}

/// The dashboard's state and the future keeping its caches current.
pub fn app(
    client: kube::Client,
    config: Config,
) -> Result<(server::Shared, impl Future<Output = ()> + Send), Error> {
    let (cache, watches) = store::start(client.clone(), config.namespace.clone());
    let app = Arc::new(App {
        cache,
        auth: auth::Authorizer::new(config.auth, client),
        logs: config.logs,
        pages: templates::Pages::new().map_err(Error::Templates)?,
        metrics: metrics::Metrics::default(),
        banner: config.banner,
        stop: tokio::sync::watch::channel(false).0,
    });
    Ok((app, watches))
}

/// Runs the dashboard on `listener` (and `/metrics` on `metrics`, when
/// given) until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    config: Config,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let sessions: kube::Api<acp_api::AgenticSession> = match &config.namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    };
    acp_kube::watch::detect(&sessions).await;
    let (app, watches) = app(client, config)?;
    let watches = tokio::spawn(watches);
    let ops = metrics.map(|listener| {
        let router = server::ops_router(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await })
    });
    let served = server::serve(listener, app, shutdown).await;
    watches.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    served.map_err(Error::Serve)
}
