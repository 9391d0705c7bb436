//! The webhook's side of pull-request commands. For a verified, first-seen
//! `issue_comment`, `pull_request_review_comment` or `pull_request` delivery
//! and each SessionSource whose binding serves the repository:
//! 1. a comment that claims no command costs nothing ([`verdict::claim`]);
//! 2. the commenter's role is asked of GitHub (collaborator check, then the
//!    permission endpoint; never `author_association`), cached for a minute
//!    and limited per source: someone who is not a collaborator ends here,
//!    with no write anywhere (no reply, reaction or commit);
//! 3. the comment is read again by id: its author, text and time are
//!    GitHub's, never the delivery's (a forged delivery gains nothing;
//!    [`verdict::verify`]);
//! 4. each command is gated ([`verdict::answer`], by [`request::gate`]),
//!    reacted to with `eyes` and recorded as a commit on the source's
//!    requests branch; then git-sync is asked to sync the source.
//!
//! A request's file is named by its comment id and is only ever created,
//! and approve and stop leave a record per comment id, so a replayed
//! delivery or a second webhook for the same comment writes nothing new,
//! even after a restart.

use std::path::PathBuf;

use acp_api::SessionSource;
use acp_api::pull_requests::{PullRequestBinding, Role, ThreadPath};
use acp_github::events::{CommentEvent, Delivery};
use acp_github::{Account, GitHub};
use acp_kube::reconcile::{Categorized, KubeError, kube_err};
use kube::{Client, ResourceExt as _};
use tracing::warn;

use super::grammar::{Command, Found};
use super::request::{self, Comment};
use super::verdict::{self, Answer, Verdict};
use writes::Which;

/// Comments remembered for de-duplication.
const REMEMBERED: usize = 4096;
/// `/acp status` and `/acp help` answers per person and source: a burst of
/// this many, then one a minute (anyone may ask, so nobody can make acp
/// flood a pull request).
const ANSWERS_BURST: u32 = 5;

/// Answers to open commands, limited per (source, login).
type AnswerLimiter = governor::DefaultKeyedRateLimiter<(String, String)>;
/// Whose role: (source, repository, login).
type RoleKey = (String, String, String);
/// How long a collaborator's role is remembered.
const ROLE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How long "not a collaborator" is remembered: a stranger's comments cost
/// one lookup per this long.
const STRANGER_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Role lookups of commenters not remembered, per source: a burst of this
/// many, then one a second (strangers' comments cannot drain the source's
/// GitHub quota).
const LOOKUPS_BURST: u32 = 60;

/// `/acp help`'s answer.
pub const HELP: &str = "acp commands (one per line):\n\
- `/acp run [--model M] [--max-turns N] [--timeout 20m] [-- prompt]`: run a session on this pull request's branch\n\
- `@acp <text>`: a follow-up to the latest session of this pull request\n\
- `/acp stop`: stop the running session\n\
- `/acp retry`: run the latest request again\n\
- `/acp approve <commit>`: run the requests waiting for approval (from a fork, or below the role) that were asked before it, at that commit (the pull request's head you reviewed)\n\
- `/acp status`: this pull request's sessions\n\
- `/acp help`: this text";

/// A failure to act on a command (logged and answered with 500, so GitHub
/// shows the delivery as failed and it can be redelivered).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A GitHub call failed (the source's credentials included).
    #[error(transparent)]
    GitHub(#[from] acp_github::GitHubError),
    /// A Kubernetes call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The commit to the requests branch failed.
    #[error(transparent)]
    Write(#[from] acp_git::push::WriteError),
    /// A blocking task failed.
    #[error("failed to run a git task: {0}")]
    Task(String),
    /// Too many role lookups for one source: the delivery fails (GitHub
    /// shows it, and it may be redelivered).
    #[error("failed to look up {login}'s role: too many lookups for source {scope}; retry later")]
    Limited {
        /// The source (`namespace/name`).
        scope: String,
        /// The commenter.
        login: String,
    },
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::GitHub(e) => e.category(),
            Self::Kube(e) => e.category(),
            Self::Write(e) => e.category(),
            Self::Task(_) => "task",
            Self::Limited { .. } => "limited",
        }
    }
}

/// Settings of the command handler.
#[derive(Clone, Debug)]
pub struct Config {
    /// GitHub API base URL.
    pub github_api_url: String,
    /// Where requests branches are checked out to commit.
    pub cache_dir: PathBuf,
    /// Author of request commits (name, email).
    pub author: (String, String),
}

/// The command handler.
pub struct Commands {
    client: Client,
    config: Config,
    /// GitHub for each source: its client, login and cached tokens.
    github: acp_github::Accounts,
    seen: crate::recent::Recent<(String, String, String)>,
    locks: std::sync::Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<std::sync::Mutex<()>>>>,
    answers: AnswerLimiter,
    /// Roles by (source, repository, login), for [`ROLE_TTL`].
    roles: std::sync::Mutex<std::collections::HashMap<RoleKey, (Role, std::time::Instant)>>,
    /// Role lookups per source.
    lookups: governor::DefaultKeyedRateLimiter<String>,
}

/// What a delivery led to, for the webhook's answer and the logs.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Requests committed (session names).
    pub recorded: Vec<String>,
    /// Requests committed to wait for a maintainer's `/acp approve`.
    pub pending: Vec<String>,
    /// One-line answers posted.
    pub replied: usize,
    /// Commands ignored (bots, strangers, repeats).
    pub ignored: usize,
}

impl Commands {
    /// A handler acting with `client`.
    pub fn new(client: Client, config: Config) -> Self {
        Self {
            github: acp_github::Accounts::new(client.clone(), &config.github_api_url),
            client,
            config,
            seen: crate::recent::Recent::new(REMEMBERED),
            locks: Default::default(),
            answers: governor::RateLimiter::hashmap(
                governor::Quota::per_minute(std::num::NonZeroU32::MIN).allow_burst(
                    std::num::NonZeroU32::new(ANSWERS_BURST).unwrap_or(std::num::NonZeroU32::MIN),
                ),
            ),
            roles: Default::default(),
            lookups: governor::RateLimiter::hashmap(
                governor::Quota::per_second(std::num::NonZeroU32::MIN).allow_burst(
                    std::num::NonZeroU32::new(LOOKUPS_BURST).unwrap_or(std::num::NonZeroU32::MIN),
                ),
            ),
        }
    }

    /// Whether `login` may get one more `status` or `help` answer from `source` now.
    fn may_answer(&self, source: &SessionSource, login: &str) -> bool {
        if self.answers.len() > REMEMBERED {
            self.answers.retain_recent();
        }
        self.answers.check_key(&(scope(source), login.to_ascii_lowercase())).is_ok()
    }

    /// Acts on `delivery` for each of `sources` whose binding serves its repository.
    pub async fn handle(&self, delivery: &Delivery, sources: &[&SessionSource]) -> Result<Outcome, Error> {
        let mut outcome = Outcome::default();
        let repository = delivery.repository();
        for source in sources {
            let Some(binding) = source.spec.pull_requests.as_ref().filter(|b| b.serves(repository)) else {
                continue;
            };
            match delivery {
                Delivery::IssueComment(event) => {
                    self.comment(source, binding, event, false, &mut outcome).await?;
                }
                Delivery::ReviewComment(event) => {
                    self.comment(source, binding, event, true, &mut outcome).await?;
                }
                Delivery::PullRequest(event) if event.action == "closed" => {
                    let pull = event.pull_request.number;
                    // A pull request without sessions costs no GitHub call.
                    if self.thread(source, repository, pull).await?.is_empty() {
                        outcome.ignored += 1;
                        continue;
                    }
                    // Closed as GitHub says, not as the delivery says.
                    let Some(Account { github, .. }) = self.github.for_source(source, repository).await?
                    else {
                        continue;
                    };
                    if github.pull(pull).await?.open {
                        outcome.ignored += 1;
                        continue;
                    }
                    let stopped =
                        self.stop(source, binding, repository, pull, None, Which::Unfinished).await?;
                    outcome.recorded.extend(stopped);
                }
                Delivery::PullRequest(event) if event.action == "synchronize" => {
                    let stopped = self.voided(source, binding, repository, event.pull_request.number).await?;
                    outcome.recorded.extend(stopped);
                }
                _ => outcome.ignored += 1,
            }
        }
        Ok(outcome)
    }

    async fn comment(
        &self,
        source: &SessionSource,
        binding: &PullRequestBinding,
        event: &CommentEvent,
        review: bool,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        // What the delivery claims is only a hint: a comment that claims no
        // command costs nothing more.
        let Some(claim) = verdict::claim(event, review) else { return Ok(()) };
        let repository = event.repository.full_name.as_str();
        // A stranger remembered as one costs nothing at all, not even the
        // read of the source's credentials.
        if !claim.bot && self.remembered(source, repository, claim.author) == Some(Role::None) {
            outcome.ignored += 1;
            return Ok(());
        }
        let Some(Account { github, login: me }) = self.github.for_source(source, repository).await? else {
            warn!(source = %source.name_any(), "pull request commands need spec.github.tokenSecretRef");
            return Ok(());
        };
        if claim.author.eq_ignore_ascii_case(&me) {
            // The bot's own comment (its login acts through a user token).
            return Ok(());
        }
        // A stranger ends here: one lookup, then nothing. A bot is no
        // collaborator: only an App the binding allows may speak, as write.
        let role = if claim.bot {
            Role::Write
        } else {
            self.role(source, &github, repository, claim.author).await?
        };
        if role == Role::None {
            outcome.ignored += 1;
            return Ok(());
        }
        // GitHub's comment, not the delivery's: its author, and its text
        // unchanged since the delivery was signed (someone with write access
        // may edit anyone's comment: a later edit is not the author's word).
        let Some(record) = github.comment(claim.id, review).await? else {
            outcome.ignored += 1;
            return Ok(());
        };
        let comment = match verdict::verify(&claim, &record, binding) {
            Verdict::Genuine(comment) => comment,
            Verdict::Mismatch => {
                warn!(source = %source.name_any(), id = claim.id, claimed = claim.author, author = %record.login,
                      "a delivery's comment does not match GitHub's (author, pull request, text, or a bot not allowed); ignored");
                outcome.ignored += 1;
                return Ok(());
            }
        };
        let found = claim.commands(&record.body);
        let pull_number = claim.pull_number;
        let asked = Asked { github: &github, binding, repository, pull_number, comment: &comment, role };
        self.act_once(source, &asked, found, outcome).await
    }

    /// Acts on the commands `found` in `asked`'s comment that were not
    /// acted on before; when acting fails, they are forgotten again.
    async fn act_once(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
        found: Vec<Found>,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let scope = scope(source);
        let comment = asked.comment;
        // Repeats are keyed by source, comment and command; help and status
        // answer once per comment whatever their spelling.
        let key = |f: &Found| match &f.command {
            Ok(c @ (Command::Help | Command::Status)) => {
                (scope.clone(), comment.api_ref(), c.verb().to_owned())
            }
            _ => (scope.clone(), comment.api_ref(), f.text.clone()),
        };
        let fresh: Vec<Found> = found.into_iter().filter(|f| self.seen.first(key(f))).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let keys: Vec<_> = fresh.iter().map(key).collect();
        let result = self.act(source, asked, fresh, outcome).await;
        if result.is_err() {
            // Not done: a redelivery may try again.
            for key in &keys {
                self.seen.forget(key);
            }
        }
        result
    }

    async fn act(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
        fresh: Vec<Found>,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let Asked { github, binding, repository, pull_number, comment, role } = *asked;
        let mut started = false;
        for found in fresh {
            let (command, waits) = match verdict::answer(binding, repository, comment, role, &found) {
                Answer::Unanswered => continue,
                Answer::Ignored => {
                    outcome.ignored += 1;
                    continue;
                }
                Answer::Reply(line) => {
                    say(github, pull_number, &line, outcome).await?;
                    continue;
                }
                Answer::Act { command, waits } => (command, waits),
            };
            if matches!(command, Command::Help | Command::Status)
                && !self.may_answer(source, &comment.commenter.login)
            {
                outcome.ignored += 1;
                continue;
            }
            github.react(comment.id, comment.review, "eyes").await?;
            // One session per comment: its file is named by the comment.
            if matches!(command, Command::Run(_) | Command::FollowUp(_) | Command::Retry)
                && std::mem::replace(&mut started, true)
            {
                let line = format!(
                    "@{}: one request per comment; {} was not recorded, post it as a comment of its own.",
                    comment.commenter.login,
                    acp_github::markdown::code_span(&found.text)
                );
                say(github, pull_number, &line, outcome).await?;
                continue;
            }
            self.perform(source, asked, (&command, waits), outcome).await?;
        }
        Ok(())
    }

    /// Carries out a command its gate let through (reacted to already),
    /// with why it waits for an approval, if it does.
    async fn perform(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
        (command, waits): (&Command, Option<String>),
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let Asked { github, binding, repository, pull_number, comment, .. } = *asked;
        match command {
            Command::Help => say(github, pull_number, HELP, outcome).await?,
            Command::Status => {
                let text = self.status(source, repository, pull_number).await?;
                say(github, pull_number, &text, outcome).await?;
            }
            Command::Stop => {
                let by = Which::Running;
                let stopped = self.stop(source, binding, repository, pull_number, Some(comment), by).await?;
                if stopped.is_empty() {
                    let line = "Nothing to stop: no session of this pull request is running.";
                    say(github, pull_number, line, outcome).await?;
                }
                outcome.recorded.extend(stopped);
            }
            Command::Approve(at) => {
                let approved = self.approve_command(source, asked, at.as_deref(), outcome).await?;
                outcome.recorded.extend(approved);
            }
            Command::Run(_) | Command::FollowUp(_) | Command::Retry => {
                self.request(source, asked, command, waits, outcome).await?;
            }
        }
        Ok(())
    }

    /// `/acp run`, `@acp` or `/acp retry`: records the request (waiting
    /// for approval when `waits` says why, or when it comes from a fork).
    async fn request(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
        command: &Command,
        waits: Option<String>,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let Asked { github, binding, repository, pull_number, comment, role } = *asked;
        let pull = github.pull(pull_number).await?;
        if !pull.open {
            github.create_comment(pull_number, "This pull request is closed: nothing is run on it.").await?;
            outcome.replied += 1;
            return Ok(());
        }
        // A fork's code, or a request below the role, runs only once a
        // maintainer approves it at a commit.
        let waits = waits.or_else(|| {
            pull.fork.then(|| format!("this pull request comes from a fork ({})", pull.head_repository))
        });
        let reviews = self.reviews(github, source, binding, repository, pull_number, comment).await?;
        let thread = request::Thread { parent: None, reviews };
        let ask = writes::Ask {
            binding: binding.clone(),
            repository: repository.to_owned(),
            pull: pull.clone(),
            comment: comment.clone(),
            role,
            command: command.clone(),
            pending: waits.is_some(),
            thread,
        };
        match self.record(source, ask).await? {
            Ok(Some(name)) => match &waits {
                Some(why) => {
                    let head = &pull.head_sha;
                    let line = format!(
                        "@{}: `{name}` waits for a maintainer's approval: {why}. A maintainer who reviewed the pull request at `{head}` approves it with `/acp approve {head}`.",
                        comment.commenter.login
                    );
                    github.create_comment(pull_number, &line).await?;
                    outcome.replied += 1;
                    outcome.pending.push(name);
                }
                None => outcome.recorded.push(name),
            },
            Ok(None) => outcome.ignored += 1,
            Err(line) => {
                github.create_comment(pull_number, &format!("@{}: {line}", comment.commenter.login)).await?;
                outcome.replied += 1;
            }
        }
        Ok(())
    }

    /// `/acp status`: the thread's sessions and their phases.
    async fn status(&self, source: &SessionSource, repository: &str, pull: u64) -> Result<String, Error> {
        let lines: Vec<String> = self
            .thread(source, repository, pull)
            .await?
            .iter()
            .map(|s| {
                let phase = s.status.as_ref().and_then(|st| st.phase).unwrap_or_default();
                format!("- `{}`: {phase}", s.name_any())
            })
            .collect();
        Ok(if lines.is_empty() {
            "No session on this pull request yet. `/acp run -- …` starts one.".into()
        } else {
            format!("Sessions of this pull request:\n{}", lines.join("\n"))
        })
    }

    /// The sessions of `pull`'s thread in the cluster, oldest first.
    async fn thread(
        &self,
        source: &SessionSource,
        repository: &str,
        pull: u64,
    ) -> Result<Vec<acp_api::AgenticSession>, Error> {
        let thread = ThreadPath::new(repository, pull);
        Ok(acp_kube::threads::sessions(&self.client, source, &thread)
            .await
            .map_err(kube_err("list the thread's sessions"))?)
    }

    /// Asks git-sync to sync `source` now (as a push webhook does).
    async fn sync(&self, source: &SessionSource) -> Result<(), Error> {
        let token = format!("{:?}", std::time::SystemTime::now());
        Ok(crate::apply::request_sync(&self.client, source, &token)
            .await
            .map_err(kube_err("trigger a sync"))?)
    }
}

/// A comment's whole context, as the handler's steps need it.
#[derive(Clone, Copy)]
pub(super) struct Asked<'a> {
    github: &'a GitHub,
    binding: &'a PullRequestBinding,
    repository: &'a str,
    pull_number: u64,
    comment: &'a Comment,
    role: Role,
}

/// Posts `line` on pull request `pull`, counted as a reply.
async fn say(github: &GitHub, pull: u64, line: &str, outcome: &mut Outcome) -> Result<(), Error> {
    github.create_comment(pull, line).await?;
    outcome.replied += 1;
    Ok(())
}

/// `namespace/name` of a source: what limits and caches are kept per.
fn scope(source: &SessionSource) -> String {
    format!("{}/{}", source.namespace().unwrap_or_default(), source.name_any())
}

mod access;
mod approve;
mod reviews;
mod writes;
