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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acp_api::constants::{
    DEFAULT_WRITE_BACK_BRANCH, DEFAULT_WRITE_BACK_PATH, annotations, field_managers, labels,
};
use acp_api::pull_requests::ThreadPath;
use acp_api::{AgenticSession, SessionPhase, SessionSchedule, SessionSource};
use acp_git::Credentials;
use futures_util::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{debug, info, instrument, warn};

use crate::provenance::{Provenance, provenance, schedule_vouches, scheduled_by};
use crate::render::{RenderError, Renderer, marker};
use crate::report::{Report, commit_status, report, status_file};
use crate::writeback::{WriteBack, WriteBackError, Written, status_file as status_path};
use acp_github::{GitHub, GitHubError};
use acp_kube::reconcile::{Categorized, KubeError, kube_err};

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

fn digest(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

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

/// The data of Secret `name` in `ns` (empty when it does not exist).
async fn secret_data(client: &Client, ns: &str, name: &str) -> Result<BTreeMap<String, ByteString>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get_opt(name).await.map_err(kube_err("read a secret"))?;
    Ok(secret.and_then(|s| s.data).unwrap_or_default())
}

#[instrument(skip_all, fields(session = %session.name_any(), namespace = session.namespace().as_deref().unwrap_or_default()))]
async fn reconcile(session: Arc<AgenticSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let Some((source_ns, source_name)) =
        session.annotations().get(annotations::SOURCE).and_then(|s| s.split_once('/'))
    else {
        return Ok(Action::await_change());
    };
    let sources: Api<SessionSource> = Api::namespaced(ctx.client.clone(), source_ns);
    let Some(source) = sources.get_opt(source_name).await.map_err(kube_err("read the session's source"))?
    else {
        return Ok(Action::await_change());
    };
    // The source annotation is only a claim (anyone who may edit the session
    // may set it): act for the session only if that source really applied it.
    let recent = session.metadata.creation_timestamp.as_ref().is_none_or(|t| {
        k8s_openapi::jiff::Timestamp::now().duration_since(t.0)
            < k8s_openapi::jiff::SignedDuration::from_secs(120)
    });
    let verdict = match scheduled_by(&session) {
        None => provenance(&source, &ns, "AgenticSession", &name, recent),
        // A schedule's run: the source must have applied the schedule, and the
        // schedule's status (written only by the scheduler) must list the run.
        Some(owner) => match provenance(&source, &ns, "SessionSchedule", &owner.name, recent) {
            Provenance::Confirmed => {
                let schedules: Api<SessionSchedule> = Api::namespaced(ctx.client.clone(), &ns);
                let schedule =
                    schedules.get_opt(&owner.name).await.map_err(kube_err("read the session's schedule"))?;
                schedule_vouches(schedule.as_ref(), &owner.uid, &name, recent)
            }
            other => other,
        },
    };
    match verdict {
        Provenance::Confirmed => {}
        Provenance::NotYet => return Ok(Action::requeue(Duration::from_secs(5))),
        Provenance::Refused(why) => {
            warn!(source = %format!("{source_ns}/{source_name}"), %why, "not acting for a session its source did not apply");
            let event = kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Warning,
                reason: "SourceNotVerified".into(),
                note: Some(format!(
                    "the status bot does not report for this session: source {source_ns}/{source_name} did not apply it ({why})"
                )),
                action: "Report".into(),
                secondary: None,
            };
            if let Err(error) = ctx.recorder.publish(&event, &session.object_ref(&())).await {
                warn!(%error, "failed to record an event");
            }
            return Ok(Action::await_change());
        }
    }
    if behind(&session) {
        // The spec changed (a new commit) and the operator has not taken it
        // up yet: the status still tells of the previous run, which must not
        // be reported against the new commit. The operator's next status
        // write brings the session back.
        return Ok(Action::await_change());
    }
    let revision = crate::report::source_commit(&session).unwrap_or_default();
    let run = session.status.as_ref().and_then(|s| s.run).unwrap_or(1).max(1);
    let mut report = report(&session, ctx.config.dashboard_url.as_deref());
    if let (Some(output), Some(SessionPhase::Running)) =
        (&ctx.config.output, session.status.as_ref().and_then(|s| s.phase))
    {
        report.todos = todos(output, &session).await;
    }
    let annotated: BotState = session
        .annotations()
        .get(annotations::STATUS_BOT_STATE)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let key = (ns.clone(), name.clone());
    let saved = match ctx.saved.lock() {
        Ok(mut saved) => match saved.get(&key) {
            // The watch cache caught up: forget it, keeping the map to sessions in flight.
            Some(remembered) if *remembered == annotated => {
                saved.remove(&key);
                annotated
            }
            Some(remembered) => remembered.clone(),
            None => annotated,
        },
        Err(_) => annotated,
    };
    // State is kept per (session, run, commit): a re-run, or the session
    // brought in again by another pull request, starts afresh.
    let state = saved.for_run(run, &revision);
    let mut next = state.clone();
    let mut requeue = Action::await_change();

    // Write-back: the final state of each run, once.
    let write_back = source.spec.write_back.clone().unwrap_or_default();
    if write_back.enabled.unwrap_or(true) && report.terminal {
        let content = status_file(&report);
        let wanted = digest(&content);
        if state.written.as_deref() != Some(wanted.as_str()) {
            let creds = match &source.spec.secret_ref {
                Some(r) => {
                    let data = secret_data(&ctx.client, source_ns, &r.name).await?;
                    Credentials::from_secret(|k| {
                        data.get(k).map(|v| String::from_utf8_lossy(&v.0).into_owned())
                    })
                }
                None => Credentials::default(),
            };
            let target = WriteBack {
                dir: ctx.config.cache_dir.join(source_ns).join(source_name),
                url: source.spec.url.clone(),
                branch: write_back.branch.clone().unwrap_or_else(|| DEFAULT_WRITE_BACK_BRANCH.into()),
                credentials: creds,
                author_name: ctx.config.author.0.clone(),
                author_email: ctx.config.author.1.clone(),
            };
            let path = status_path(write_back.path.as_deref().unwrap_or(DEFAULT_WRITE_BACK_PATH), &ns, &name);
            let message = format!("status: {ns}/{name} {}", report.phase);
            let lock = ctx
                .mirrors
                .lock()
                .map(|mut m| m.entry(target.dir.clone()).or_default().clone())
                .unwrap_or_default();
            let written = tokio::task::spawn_blocking(move || {
                let _serial = lock.lock();
                target.write(&[(path, content.into_bytes())], &message)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
            if let Written::Committed { commit, retries } = written {
                info!(%commit, retries, "status written back");
                acp_kube::failpoint::hit("statusbot.written-back");
            }
            next.written = Some(wanted);
        }
    }

    // GitHub: commit status and the pull request comment. A session a
    // pull-request comment asked for is reported on that pull request of the
    // code repository (its current head gets the status); any other on the
    // pull request of the sessions repository that brought its commit.
    let asked = source.pull_request_of(&ns, &name);
    let repository = asked.as_ref().map(|thread| thread.repository.clone());
    if let Some(github) = source.spec.github.as_ref().filter(|_| !revision.is_empty() || asked.is_some()) {
        let repository = repository.unwrap_or_else(|| github.repository.clone());
        // The source's Secret holds a token, or a GitHub App (appId, privateKey).
        if let Some(account) = ctx.github.for_source(&source, &repository).await? {
            let (commit, pull, comment) = match &asked {
                Some(asked) => {
                    let thread = thread(&ctx, &source, asked, &report).await?;
                    let body = ctx.config.renderer.thread(&thread)?;
                    let marker = crate::render::thread_marker(&asked.repository, asked.pull, &thread.source);
                    (None, Some(asked.pull), Some((marker, body)))
                }
                None => (Some(revision.as_str()), None, None),
            };
            let target = Target { commit, pull, comment };
            let posted = post(
                &account.github,
                &account.login,
                github,
                &report,
                target,
                &state,
                &mut next,
                &ctx.config,
            )
            .await;
            // Record what did happen before reporting what failed: a retry must
            // not post again what was already posted.
            save(&ctx, &ns, &name, &saved, &next).await?;
            requeue = posted?;
            return Ok(requeue);
        }
    }
    save(&ctx, &ns, &name, &saved, &next).await?;
    Ok(requeue)
}

/// The reports of `asked`'s sessions, oldest first, `current` (the session
/// being reconciled, with its todo list) in its place.
async fn thread(
    ctx: &Context,
    source: &SessionSource,
    asked: &ThreadPath,
    current: &Report,
) -> Result<crate::render::Thread, Error> {
    let sessions = acp_kube::threads::sessions(&ctx.client, source, asked)
        .await
        .map_err(kube_err("list the thread's sessions"))?;
    let dashboard = ctx.config.dashboard_url.as_deref();
    let turns = sessions
        .iter()
        .map(|s| if s.name_any() == current.name { current.clone() } else { report(s, dashboard) })
        .collect();
    let kept_by = format!("{}/{}", source.namespace().unwrap_or_default(), source.name_any());
    Ok(crate::render::Thread {
        repository: asked.repository.clone(),
        pull: asked.pull,
        source: kept_by,
        turns,
    })
}

/// True while the operator has not yet observed the session's latest spec
/// (a stop request is acted on whatever the spec).
fn behind(session: &AgenticSession) -> bool {
    let observed = session.status.as_ref().and_then(|s| s.observed_generation);
    let stopping = session.annotations().get(annotations::DESIRED_PHASE).map(String::as_str)
        == Some(SessionPhase::Stopped.as_str());
    matches!((observed, session.metadata.generation), (Some(seen), Some(now)) if seen < now) && !stopping
}

/// The agent's current todo list, from its runner's output (none when the
/// output cannot be read: the comment then simply has no list).
async fn todos(
    output: &acp_kube::output::LogSource,
    session: &AgenticSession,
) -> Vec<acp_api::progress::Todo> {
    let lines: Vec<String> = match output.lines(session, false).await {
        Ok(lines) => lines.filter_map(|l| async move { l.ok() }).collect().await,
        Err(e) => {
            debug!(error = %e, "no runner output for the todo list");
            return Vec::new();
        }
    };
    acp_api::progress::latest_todos(&lines).unwrap_or_default()
}

/// Persists `next` in the session's annotation when it differs from `state`.
async fn save(ctx: &Context, ns: &str, name: &str, state: &BotState, next: &BotState) -> Result<(), Error> {
    if next != state {
        let api: Api<AgenticSession> = Api::namespaced(ctx.client.clone(), ns);
        let value = serde_json::to_string(next).unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {annotations::STATUS_BOT_STATE: value}}});
        let params =
            PatchParams { field_manager: Some(field_managers::STATUS_BOT.into()), ..Default::default() };
        api.patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(kube_err("record the status bot's progress"))?;
        if let Ok(mut saved) = ctx.saved.lock() {
            saved.insert((ns.to_string(), name.to_string()), next.clone());
        }
    }
    Ok(())
}

/// Where a session is reported: the commit its status goes on, and the pull
/// request when it is known (else the one containing the commit).
struct Target<'a> {
    /// The commit; `None`: the pull request's head, read only when a status
    /// is to be set.
    commit: Option<&'a str>,
    pull: Option<u64>,
    /// The comment to keep (marker, body) instead of the session's own.
    comment: Option<(String, String)>,
}

/// Posts what changed on GitHub; returns when to look again (debounce).
#[allow(clippy::too_many_arguments, reason = "one call site; the pieces are unrelated")]
async fn post(
    gh: &GitHub,
    author: &str,
    settings: &acp_api::source::GitHubSettings,
    report: &Report,
    target: Target<'_>,
    state: &BotState,
    next: &mut BotState,
    config: &Config,
) -> Result<Action, Error> {
    if settings.commit_statuses.unwrap_or(true) {
        let (wanted, description) = commit_status(report);
        if state.status.as_deref() != Some(wanted) {
            let revision = &match (target.commit, target.pull) {
                (Some(commit), _) => commit.to_owned(),
                (None, Some(pull)) => gh.pull(pull).await?.head_sha,
                (None, None) => return Ok(Action::await_change()),
            };
            let context = format!("acp/{}", report.name);
            // A crash between posting and saving leaves the state behind
            // GitHub: GitHub's latest status for the context says whether
            // this one is already there.
            if gh.latest_status(revision, &context).await?.as_deref() != Some(wanted) {
                gh.set_status(revision, &context, wanted, &description, report.dashboard_url.as_deref())
                    .await?;
                acp_kube::failpoint::hit("statusbot.status-set");
            }
            next.status = Some(wanted.to_string());
        }
    }
    // The comment starts with the first progress, not while the session waits.
    let started = !matches!(report.phase.as_str(), "Pending" | "Creating");
    if !settings.comments.unwrap_or(true) || !started {
        return Ok(Action::await_change());
    }
    let pull = match state.pull.or(target.pull) {
        Some(pull) => pull,
        None => match target.commit {
            Some(commit) => gh.pull_for_commit(commit).await?.unwrap_or(0),
            None => 0,
        },
    };
    next.pull = Some(pull);
    if pull == 0 {
        return Ok(Action::await_change());
    }
    let (marker_text, body) = match target.comment {
        Some(comment) => comment,
        None => (marker(&report.namespace, &report.name), config.renderer.comment(report)?),
    };
    let wanted = digest(&body);
    if state.posted.as_deref() == Some(wanted.as_str()) {
        return Ok(Action::await_change());
    }
    let since = state.posted_at.map(|at| epoch().saturating_sub(at)).unwrap_or(u64::MAX);
    if !report.terminal && state.posted.is_some() && Duration::from_secs(since) < config.debounce {
        return Ok(Action::requeue(config.debounce - Duration::from_secs(since)));
    }
    // The recorded id is trusted only for a comment the bot wrote; otherwise
    // (or after a restart before the id was recorded) find it again by
    // marker and author.
    let recorded = match state.comment {
        Some(id) if gh.comment_author(id).await?.is_some_and(|a| a.eq_ignore_ascii_case(author)) => Some(id),
        _ => None,
    };
    let existing = match recorded {
        Some(id) => Some(id),
        None => gh.find_comment(pull, &marker_text, author).await?,
    };
    let id = match existing {
        Some(id) => {
            gh.update_comment(id, &body).await?;
            id
        }
        None => {
            let id = gh.create_comment(pull, &body).await?;
            acp_kube::failpoint::hit("statusbot.comment-created");
            id
        }
    };
    next.comment = Some(id);
    next.posted = Some(wanted);
    next.posted_at = Some(epoch());
    Ok(Action::await_change())
}
