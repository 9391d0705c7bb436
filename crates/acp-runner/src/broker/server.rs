//! The credentials sidecar: `acp runner credentials` in a runner pod.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::proxy::Upstream;
use super::{
    API_PREFIX, CloneRequest, ClonedReply, ErrorReply, PullRequestReply, PullRequestRequest, PushRequest,
    PushedReply, ReadyReply, ServeError, Target,
};
use acp_api::runner::Repo;

use crate::config::RunnerConfig;
use crate::git::Cloned;
use crate::ops::{Direct, OpError, Proposal};
use crate::redact::Redactor;
use crate::workspace::Layout;

struct Sidecar {
    config: RunnerConfig,
    direct: Direct,
    layout: Layout,
    redactor: Redactor,
    /// What was cloned, each target once; the lock also orders clones.
    cloned: Mutex<BTreeMap<Target, Cloned>>,
    upstream: Upstream,
}

type Shared = Arc<Sidecar>;

/// Serves the sidecar for `config` on `listener` (a loopback address) until
/// `shutdown` completes.
pub async fn serve(
    config: RunnerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    let upstream = Upstream::new(
        config.credentials.anthropic_base_url.as_deref(),
        config.credentials.anthropic_api_key.clone(),
    )?;
    let sidecar = Arc::new(Sidecar {
        direct: Direct::from_config(&config),
        layout: Layout::new(config.workspace()),
        redactor: Redactor::new(config.credentials.secrets()),
        cloned: Mutex::new(BTreeMap::new()),
        upstream,
        config,
    });
    info!(%addr, model = %sidecar.upstream.base(), "credentials sidecar listening");
    axum::serve(listener, router(sidecar)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

fn router(sidecar: Shared) -> Router {
    Router::new()
        .route(&format!("{API_PREFIX}/ready"), get(ready))
        .route(&format!("{API_PREFIX}/clone"), post(clone))
        .route(&format!("{API_PREFIX}/push"), post(push))
        .route(&format!("{API_PREFIX}/pull-request"), post(pull_request))
        .fallback(model)
        .with_state(sidecar)
}

/// A refusal or failure, as JSON, with every secret masked.
struct Failure(StatusCode, String);

impl Sidecar {
    fn fail(&self, status: StatusCode, error: impl std::fmt::Display) -> Failure {
        Failure(status, self.redactor.redact(&error.to_string()))
    }

    fn repo(&self, index: usize) -> Result<&Repo, Failure> {
        self.config
            .session
            .repos
            .get(index)
            .ok_or_else(|| self.fail(StatusCode::NOT_FOUND, format!("the session has no repository {index}")))
    }

    fn op_failed(&self, err: &OpError) -> Failure {
        self.fail(StatusCode::BAD_GATEWAY, err)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorReply { error: self.1 })).into_response()
    }
}

/// Everything that is not the sidecar's own API is for the model proxy,
/// which forwards the model API's inference endpoints and refuses the rest.
async fn model(State(sidecar): State<Shared>, request: axum::extract::Request) -> Response {
    sidecar.upstream.forward(request).await
}

async fn ready(State(sidecar): State<Shared>) -> Json<ReadyReply> {
    Json(ReadyReply { model_key: sidecar.upstream.has_key() })
}

async fn clone(
    State(sidecar): State<Shared>,
    Json(request): Json<CloneRequest>,
) -> Result<Json<ClonedReply>, Failure> {
    let (repo, dest) = match request.target {
        Target::Repo(index) => {
            let repo = sidecar.repo(index)?.clone();
            let dest = sidecar.layout.repos.join(repo.dir_name());
            (repo, dest)
        }
        Target::Workflow => {
            let Some(workflow) = &sidecar.config.session.workflow else {
                return Err(sidecar.fail(StatusCode::NOT_FOUND, "the session has no workflow"));
            };
            let repo =
                Repo { url: workflow.git_url.clone(), branch: workflow.branch.clone(), ..Repo::default() };
            let dest = sidecar.layout.workflows.join(repo.dir_name());
            (repo, dest)
        }
    };
    // Each target once: a later request (the agent's) gets the first answer
    // and writes nothing.
    let mut cloned = sidecar.cloned.lock().await;
    if let Some(done) = cloned.get(&request.target) {
        return Ok(Json(ClonedReply { branch: done.branch.clone(), commit: done.base.to_string() }));
    }
    let history = match request.target {
        Target::Repo(_) => sidecar.config.history(&repo),
        Target::Workflow => 0,
    };
    let done = sidecar.direct.clone_repo(&repo, history, &dest).await.map_err(|e| sidecar.op_failed(&e))?;
    info!(url = %repo.url, branch = %done.branch, commit = %done.base, "cloned");
    cloned.insert(request.target, done.clone());
    Ok(Json(ClonedReply { branch: done.branch, commit: done.base.to_string() }))
}

async fn push(
    State(sidecar): State<Shared>,
    Json(request): Json<PushRequest>,
) -> Result<Json<PushedReply>, Failure> {
    let repo = sidecar.repo(request.repo)?;
    if !repo.auto_push {
        return Err(sidecar.fail(StatusCode::FORBIDDEN, format!("{} does not have autoPush", repo.url)));
    }
    if !sidecar.cloned.lock().await.contains_key(&Target::Repo(request.repo)) {
        return Err(sidecar.fail(StatusCode::CONFLICT, format!("{} was not cloned", repo.url)));
    }
    let dir = sidecar.layout.repos.join(repo.dir_name());
    let target = sidecar.config.push_target(repo);
    let branch = target.shown().to_owned();
    match sidecar.direct.push(repo.push_url(), &dir, &target).await {
        Ok(pushed) => {
            info!(url = %repo.url, %branch, commit = %pushed.commit, "pushed");
            Ok(Json(PushedReply { commit: pushed.commit }))
        }
        Err(err) => {
            warn!(url = %repo.url, %branch, error = %sidecar.redactor.redact(&err.to_string()), "push failed");
            Err(sidecar.op_failed(&err))
        }
    }
}

async fn pull_request(
    State(sidecar): State<Shared>,
    Json(request): Json<PullRequestRequest>,
) -> Result<Json<PullRequestReply>, Failure> {
    let repo = sidecar.repo(request.repo)?;
    if !(repo.auto_push && repo.pull_request) {
        return Err(
            sidecar.fail(StatusCode::FORBIDDEN, format!("{} does not ask for a pull request", repo.url))
        );
    }
    let Some(base) = sidecar.cloned.lock().await.get(&Target::Repo(request.repo)).map(|c| c.branch.clone())
    else {
        return Err(sidecar.fail(StatusCode::CONFLICT, format!("{} was not cloned", repo.url)));
    };
    let head = sidecar.config.push_target(repo).branch;
    let proposal = Proposal { base: &base, head: &head, title: &request.title, body: &request.body };
    match sidecar.direct.pull_request(repo, proposal).await {
        None => Ok(Json(PullRequestReply { url: None })),
        Some(Ok(url)) => Ok(Json(PullRequestReply { url: Some(url) })),
        Some(Err(err)) => Err(sidecar.op_failed(&err)),
    }
}
