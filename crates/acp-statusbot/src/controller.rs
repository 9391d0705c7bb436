//! The kube-runtime shell of the status bot. For each AgenticSession that
//! git-sync applied: report it, set the commit status when its state changes,
//! create (on first progress) or edit the pull request comment when its body
//! changes (debounced while running), and write the status file back to git
//! when the run ends. What was done is kept in the session's
//! `ambient-code.io/status-bot` annotation, per run and source commit (so per
//! pull request), so a restart resumes where it stopped: nothing is posted
//! twice and no final result is lost. The comment of a session on a pull
//! request is found by its marker and the bot's own login, never by the
//! marker alone.
//!
//! A reconcile observes ([`observe`]: the session's source, whether it really
//! applied the session, the state saved, the todo list), decides
//! ([`crate::plan::decide`], pure) and acts ([`act`]: the write-back commit,
//! then GitHub ([`post`]), then the state saved). This module owns the
//! watch, the settings, the errors and what reconciles share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acp_api::constants::labels;
use acp_api::{AgenticSession, SessionSource};
use futures_util::StreamExt as _;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt as _};
use tracing::instrument;

use crate::plan::{self, Decision};
use crate::render::{RenderError, Renderer};
use crate::writeback::WriteBackError;
use acp_github::GitHubError;
use acp_kube::reconcile::{Categorized, KubeError};

mod act;
mod observe;
mod post;

/// Status bot settings.
#[derive(Clone)]
pub struct Config {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// GitHub API base URL (GitHub Enterprise: `https://host/api/v3`).
    pub github_api_url: String,
    /// Dashboard base URL used in links.
    pub dashboard_url: Option<String>,
    /// Comment templates.
    pub renderer: Arc<Renderer>,
    /// Where write-back mirrors are kept.
    pub cache_dir: PathBuf,
    /// Least time between two edits of a running session's comment.
    pub debounce: Duration,
    /// Author of write-back commits.
    pub author: (String, String),
    /// Where runner output is read for the agent's todo list (none: no list).
    pub output: Option<acp_kube::output::LogSource>,
}

/// A reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// GitHub refused or failed (the source's credentials included).
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// The write-back commit failed.
    #[error(transparent)]
    WriteBack(#[from] WriteBackError),
    /// The comment template failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A blocking task panicked or was cancelled.
    #[error("failed to run the write-back task: {0}")]
    Task(String),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Kube(e) => e.category(),
            Error::GitHub(e) => e.category(),
            Error::WriteBack(e) => e.category(),
            Error::Render(_) => "render",
            Error::Task(_) => "task",
        }
    }
}

pub use acp_api::status_bot::BotState;

/// What every reconcile shares.
struct Context {
    client: Client,
    config: Config,
    /// One lock per write-back mirror: writes to one branch are serialized in
    /// this process (other processes are handled by rebase-and-retry).
    mirrors: std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<std::sync::Mutex<()>>>>,
    /// The state this process last saved per session. The watch cache may
    /// still hold the object from before that save; this never does.
    saved: std::sync::Mutex<std::collections::HashMap<(String, String), BotState>>,
    /// GitHub for each source: its client, login and cached tokens.
    github: acp_github::Accounts,
    /// Events on sessions the bot will not act for.
    recorder: acp_kube::events::Publisher,
    /// Per-session backoff of reconcile failures.
    errors: Arc<acp_kube::reconcile::ErrorPolicy<AgenticSession>>,
}

/// Runs the status bot until `shutdown` completes.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let sessions: Api<AgenticSession> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    acp_kube::watch::detect(&sessions).await;
    let recorder = acp_kube::events::Publisher::new(
        client.clone(),
        kube::runtime::events::Reporter { controller: "acp-status-bot".into(), instance: None },
    );
    let github = acp_github::Accounts::new(client.clone(), &config.github_api_url);
    // The status bot has no metrics: its failures are only logged.
    let errors = Arc::new(acp_kube::reconcile::ErrorPolicy::new(None));
    let ctx = Arc::new(Context {
        client,
        config,
        github,
        recorder,
        errors: errors.clone(),
        mirrors: Default::default(),
        saved: Default::default(),
    });
    let sources: Api<SessionSource> = Api::all(ctx.client.clone());
    Controller::new(sessions, acp_kube::watch::all().labels(labels::SOURCE_NAME))
        .with_config(kube::runtime::controller::Config::default().concurrency(8))
        // A source's inventory vouches for its sessions: when it changes (a
        // session git-sync applied is now listed), look at them again.
        .watches(sources, acp_kube::watch::all(), |source: SessionSource| {
            source
                .status
                .map(|s| s.inventory)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.kind == "AgenticSession")
                .map(|e| ObjectRef::new(&e.name).within(&e.namespace))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            errors.observe(&result);
            async {}
        })
        .await;
}

/// Per-session exponential backoff (1 s doubling up to 5 minutes).
fn error_policy(session: Arc<AgenticSession>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.errors.failed(&session, error)
}

/// Observes the session, decides (purely) and carries the decision out.
#[instrument(skip_all, fields(session = %session.name_any(), namespace = session.namespace().as_deref().unwrap_or_default()))]
async fn reconcile(session: Arc<AgenticSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let observation = observe::observe(&ctx, &session).await?;
    match plan::decide(&observation) {
        Decision::Wait => Ok(Action::await_change()),
        Decision::Retry(after) => Ok(Action::requeue(after)),
        Decision::Refuse { source, why } => {
            act::refuse(&ctx, &session, &source, &why).await;
            Ok(Action::await_change())
        }
        Decision::Report(plan) => act::report(&ctx, &plan).await,
    }
}
