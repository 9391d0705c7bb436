//! What the status bot does for a session, decided purely: an
//! [`Observation`] in (the session, the source it claims and the verdict on
//! that claim, the state saved so far, the agent's todo list), a
//! [`Decision`] out: wait, look again, refuse, or report by a [`Plan`] of
//! effects (a write-back commit, a commit status, a pull request comment)
//! that the controller carries out in order. No I/O, no clock: the last step
//! of the comment, which needs its rendered body (a thread's tracking comment
//! shows sessions read after the write-back) and the time, is [`comment_now`],
//! pure too.
//!
//! What was done is kept per (session, run, commit) in [`BotState`]: an
//! effect already in the state is not planned again, so an unchanged session
//! plans nothing, and a new run or commit starts afresh.

use std::time::Duration;

use acp_api::constants::{DEFAULT_WRITE_BACK_BRANCH, DEFAULT_WRITE_BACK_PATH, annotations};
use acp_api::progress::Todo;
use acp_api::pull_requests::ThreadPath;
use acp_api::status_bot::BotState;
use acp_api::{AgenticSession, SessionPhase, SessionSource};
use kube::ResourceExt as _;
use sha2::{Digest as _, Sha256};

use crate::provenance::Provenance;
use crate::render::{marker, thread_marker};
use crate::report::{Report, commit_status, report, source_commit, status_file};
use crate::writeback::status_file as status_path;

/// How soon a session its source has not recorded yet is looked at again.
pub const NOT_YET: Duration = Duration::from_secs(5);

/// A session's claim to come from a source (its `ambient-code.io/source`
/// annotation), and whether the source really applied it.
#[derive(Debug, PartialEq)]
pub struct Claim {
    /// The claimed source's namespace, as the annotation names it.
    pub namespace: String,
    /// The claimed source's name.
    pub name: String,
    /// The source.
    pub source: SessionSource,
    /// Whether it applied the session.
    pub verdict: Provenance,
}

/// What the status bot knows of a session before deciding.
#[derive(Debug)]
pub struct Observation<'a> {
    /// The session.
    pub session: &'a AgenticSession,
    /// Its claim; `None` when it names no source or the source does not exist.
    pub claim: Option<Claim>,
    /// The state last saved (the annotation, or this process's newer save).
    pub saved: BotState,
    /// The agent's current todo list (read only while the session runs).
    pub todos: Vec<Todo>,
    /// The dashboard's base URL, for links.
    pub dashboard: Option<&'a str>,
}

/// What to do for a session.
#[derive(Debug, PartialEq)]
pub enum Decision<'a> {
    /// Nothing until the session (or its source) changes.
    Wait,
    /// The source has not recorded the session yet: look again after this.
    Retry(Duration),
    /// The source did not apply the session: record a warning event on it
    /// and act for nothing else.
    Refuse {
        /// The claimed source, `namespace/name`.
        source: String,
        /// Why the claim fails.
        why: String,
    },
    /// Report the session.
    Report(Box<Plan<'a>>),
}

/// The effects of reporting a session, in the order they are carried out:
/// the write-back commit, then GitHub (commit status, then comment), then
/// the state saved if it changed.
#[derive(Debug, PartialEq)]
pub struct Plan<'a> {
    /// The verified claim: the source whose credentials, repository and
    /// settings the effects use.
    pub claim: &'a Claim,
    /// Session namespace.
    pub namespace: String,
    /// Session name.
    pub name: String,
    /// What is reported.
    pub report: Report,
    /// The state as saved: the new state is saved only if it differs.
    pub saved: BotState,
    /// The state of this run and commit before acting; each effect that
    /// happens is recorded on top of it.
    pub state: BotState,
    /// The status file to commit, if its content is not written yet.
    pub write_back: Option<Commit>,
    /// What to report on GitHub, if the source has GitHub settings and the
    /// session a commit (or pull request) to report on.
    pub github: Option<Post>,
}

/// A status file for the write-back branch.
#[derive(Debug, PartialEq)]
pub struct Commit {
    /// The branch.
    pub branch: String,
    /// The file's path.
    pub path: String,
    /// The file's content.
    pub content: String,
    /// The commit message.
    pub message: String,
    /// The content's digest, recorded once written.
    pub digest: String,
}

/// What to report on GitHub, acting on one repository with the source's
/// account (none: nothing is reported).
#[derive(Debug, PartialEq)]
pub struct Post {
    /// The repository (`owner/name`).
    pub repository: String,
    /// The pull request whose comment asked for the session: its thread's
    /// tracking comment (the thread's sessions are read first) is kept
    /// instead of the session's own.
    pub thread: Option<ThreadPath>,
    /// The commit status to set, if it changed.
    pub status: Option<Status>,
    /// The comment to keep, once the session has started.
    pub comment: Option<Comment>,
}

/// The commit a status goes on.
#[derive(Debug, PartialEq)]
pub enum Revision {
    /// This commit.
    Commit(String),
    /// The current head of this pull request.
    Head(u64),
}

/// A commit status, set unless GitHub's latest for the context is already it.
#[derive(Debug, PartialEq)]
pub struct Status {
    /// Where.
    pub on: Revision,
    /// Its context (`acp/<session>`).
    pub context: String,
    /// `pending`, `success`, `failure` or `error`; recorded once set.
    pub state: &'static str,
    /// Its description.
    pub description: String,
    /// Its link.
    pub target_url: Option<String>,
}

/// The pull request a comment goes on.
#[derive(Debug, PartialEq)]
pub enum Pull {
    /// This one (0: the commit came without one; no comment).
    Known(u64),
    /// The one containing this commit, if any (recorded as 0 when none).
    OfCommit(String),
}

/// The comment kept for the session: created, or edited when its body changed.
#[derive(Debug, PartialEq)]
pub struct Comment {
    /// Where.
    pub pull: Pull,
    /// The hidden marker that finds it again (with the bot's login).
    pub marker: String,
}

/// Whether to post a comment's body now.
#[derive(Debug, PartialEq, Eq)]
pub enum CommentStep {
    /// It is what was last posted.
    Unchanged,
    /// A running session's comment changed too recently: look again after this.
    Later(Duration),
    /// Post it (create or edit).
    Post,
}

/// Decides what to do for the observed session.
pub fn decide<'a>(obs: &'a Observation<'_>) -> Decision<'a> {
    let Some(claim) = &obs.claim else { return Decision::Wait };
    match &claim.verdict {
        Provenance::Confirmed => {}
        Provenance::NotYet => return Decision::Retry(NOT_YET),
        Provenance::Refused(why) => {
            let source = format!("{}/{}", claim.namespace, claim.name);
            return Decision::Refuse { source, why: why.clone() };
        }
    }
    if behind(obs.session) {
        // The spec changed (a new commit) and the operator has not taken it
        // up yet: the status still tells of the previous run, which must not
        // be reported against the new commit. The operator's next status
        // write brings the session back.
        return Decision::Wait;
    }
    let session = obs.session;
    let revision = source_commit(session).unwrap_or_default();
    let run = session.status.as_ref().and_then(|s| s.run).unwrap_or(1).max(1);
    let mut report = report(session, obs.dashboard);
    report.todos = obs.todos.clone();
    // State is kept per (session, run, commit): a re-run, or the session
    // brought in again by another pull request, starts afresh.
    let state = obs.saved.for_run(run, &revision);
    Decision::Report(Box::new(Plan {
        claim,
        namespace: report.namespace.clone(),
        name: report.name.clone(),
        write_back: write_back(&claim.source, &report, &state),
        github: github(&claim.source, &report, &state, &revision),
        report,
        saved: obs.saved.clone(),
        state,
    }))
}

/// When to post a comment whose body has digest `digest`, at `now` (seconds
/// since the epoch): a running session's comment is edited at most once per
/// `debounce`; a final one at once.
pub fn comment_now(
    state: &BotState,
    digest: &str,
    terminal: bool,
    now: u64,
    debounce: Duration,
) -> CommentStep {
    if state.posted.as_deref() == Some(digest) {
        return CommentStep::Unchanged;
    }
    let since = Duration::from_secs(state.posted_at.map(|at| now.saturating_sub(at)).unwrap_or(u64::MAX));
    if !terminal && state.posted.is_some() && since < debounce {
        return CommentStep::Later(debounce - since);
    }
    CommentStep::Post
}

/// True while the operator has not yet observed the session's latest spec
/// (a stop request is acted on whatever the spec).
pub fn behind(session: &AgenticSession) -> bool {
    let observed = session.status.as_ref().and_then(|s| s.observed_generation);
    let stopping = session.annotations().get(annotations::DESIRED_PHASE).map(String::as_str)
        == Some(SessionPhase::Stopped.as_str());
    matches!((observed, session.metadata.generation), (Some(seen), Some(now)) if seen < now) && !stopping
}

/// The short digest of a text, as the state records it.
pub fn digest(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The SessionSource keeping a thread, `namespace/name`.
pub fn kept_by(source: &SessionSource) -> String {
    format!("{}/{}", source.namespace().unwrap_or_default(), source.name_any())
}

/// Write-back: the final state of each run, once.
fn write_back(source: &SessionSource, report: &Report, state: &BotState) -> Option<Commit> {
    let settings = source.spec.write_back.clone().unwrap_or_default();
    if !settings.enabled.unwrap_or(true) || !report.terminal {
        return None;
    }
    let content = status_file(report);
    let digest = digest(&content);
    if state.written.as_deref() == Some(digest.as_str()) {
        return None;
    }
    let dir = settings.path.as_deref().unwrap_or(DEFAULT_WRITE_BACK_PATH);
    Some(Commit {
        branch: settings.branch.unwrap_or_else(|| DEFAULT_WRITE_BACK_BRANCH.into()),
        path: status_path(dir, &report.namespace, &report.name),
        message: format!("status: {}/{} {}", report.namespace, report.name, report.phase),
        content,
        digest,
    })
}

/// GitHub: commit status and the pull request comment. A session a
/// pull-request comment asked for is reported on that pull request of the
/// code repository (its current head gets the status); any other on the
/// pull request of the sessions repository that brought its commit.
fn github(source: &SessionSource, report: &Report, state: &BotState, revision: &str) -> Option<Post> {
    let asked = source.pull_request_of(&report.namespace, &report.name);
    let settings = source.spec.github.as_ref().filter(|_| !revision.is_empty() || asked.is_some())?;
    let (wanted, description) = commit_status(report);
    let status =
        (settings.commit_statuses.unwrap_or(true) && state.status.as_deref() != Some(wanted)).then(|| {
            Status {
                on: asked
                    .as_ref()
                    .map_or_else(|| Revision::Commit(revision.to_owned()), |t| Revision::Head(t.pull)),
                context: format!("acp/{}", report.name),
                state: wanted,
                description,
                target_url: report.dashboard_url.clone(),
            }
        });
    // The comment starts with the first progress, not while the session waits.
    let started = !matches!(report.phase.as_str(), "Pending" | "Creating");
    let comment = (settings.comments.unwrap_or(true) && started).then(|| Comment {
        pull: match state.pull.or(asked.as_ref().map(|t| t.pull)) {
            Some(pull) => Pull::Known(pull),
            None => Pull::OfCommit(revision.to_owned()),
        },
        marker: match &asked {
            Some(t) => thread_marker(&t.repository, t.pull, &kept_by(source)),
            None => marker(&report.namespace, &report.name),
        },
    });
    let repository = asked.as_ref().map_or_else(|| settings.repository.clone(), |t| t.repository.clone());
    Some(Post { repository, thread: asked, status, comment })
}

#[cfg(test)]
mod tests;
