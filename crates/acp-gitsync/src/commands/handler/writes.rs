//! The handler's writes to a source's requests branch: recording a request
//! (a new session manifest, or one waiting for approval under `pending/`),
//! approving the waiting ones (see [`super::approve`]), and stopping
//! sessions (an annotation on theirs: on `/acp stop`, when the pull request
//! closes, or when a push voids an approval), each a read-modify-write of
//! the branch's tree, serialised per mirror. Approve and stop comments
//! leave a record under `pending/done/` in the same commit, so a replay of
//! the same comment does nothing.

use acp_api::SessionSource;
use acp_api::pull_requests::{PullRequestBinding, Role, ThreadPath};
use acp_git::Credentials;
use acp_git::push::{BranchWriter, Written};
use acp_github::PullRequest;
use kube::ResourceExt as _;
use serde_json::Value;
use tracing::info;

use super::super::grammar::Command;
use super::super::request::{self, Comment, Record};
use super::{Commands, Error};

impl Commands {
    /// The lock serialising writes through the mirror at `dir`: concurrent
    /// deliveries must not build commits in one repository at once.
    pub(super) fn lock(&self, dir: &std::path::Path) -> std::sync::Arc<std::sync::Mutex<()>> {
        self.locks
            .lock()
            .map(|mut locks| locks.entry(dir.to_owned()).or_default().clone())
            .unwrap_or_default()
    }

    /// The writer of the source's requests branch.
    pub(super) async fn writer(
        &self,
        source: &SessionSource,
        binding: &PullRequestBinding,
    ) -> Result<BranchWriter, Error> {
        let ns = source.namespace().unwrap_or_default();
        let credentials = match &source.spec.secret_ref {
            Some(r) => crate::apply::secret_credentials(&self.secret(source, &r.name).await?),
            None => Credentials::default(),
        };
        Ok(BranchWriter {
            dir: self.config.cache_dir.join("requests").join(&ns).join(source.name_any()),
            url: source.spec.url.clone(),
            branch: binding.requests_branch().to_owned(),
            credentials,
            author_name: self.config.author.0.clone(),
            author_email: self.config.author.1.clone(),
        })
    }

    /// Records `ask` on the requests branch (a new session manifest, or one
    /// waiting for approval) and asks for a sync; the session recorded,
    /// `None` when it was recorded before, or the line refusing it.
    pub(super) async fn record(
        &self,
        source: &SessionSource,
        ask: Ask,
    ) -> Result<Result<Option<String>, String>, Error> {
        let writer = self.writer(source, &ask.binding).await?;
        let dir = ThreadPath::new(&ask.repository, ask.pull.number).to_string();
        let lock = self.lock(&writer.dir);
        let written = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut refused = None;
            let mut made: Option<Record> = None;
            let written = writer.edit(|repo, tree| match ask.edit(repo, tree, &dir) {
                Edit::Write(record) => {
                    let edit = (
                        vec![(record.path.clone(), record.content.clone().into_bytes())],
                        record.message.clone(),
                    );
                    made = Some(record);
                    Some(edit)
                }
                Edit::Refused(line) => {
                    refused = Some(line);
                    None
                }
                Edit::Nothing => None,
            });
            (written, made, refused)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        let (written, made, refused) = written;
        if let Some(line) = refused {
            return Ok(Err(line));
        }
        match (written?, made) {
            (Written::Committed { commit, .. }, Some(record)) => {
                info!(session = %record.session, %commit, "request recorded");
                self.sync(source).await?;
                Ok(Ok(Some(record.session)))
            }
            _ => Ok(Ok(None)),
        }
    }

    /// A push to pull request `pull` (`pull_request` `synchronize`) voids the approval of the
    /// thread's unfinished sessions pinned to another commit: they are
    /// stopped, and the pull request is told. (A run that starts anyway
    /// fails: its branch is not at the pinned commit.)
    pub(super) async fn voided(
        &self,
        source: &SessionSource,
        binding: &PullRequestBinding,
        repository: &str,
        pull: u64,
    ) -> Result<Vec<String>, Error> {
        // A pull request without sessions costs no GitHub call.
        if self.thread(source, repository, pull).await?.is_empty() {
            return Ok(Vec::new());
        }
        // The head as GitHub holds it, not as the delivery says.
        let Some(acp_github::Account { github, .. }) = self.github.for_source(source, repository).await?
        else {
            return Ok(Vec::new());
        };
        let head = github.pull(pull).await?.head_sha;
        let stopped =
            self.stop(source, binding, repository, pull, None, Which::PinnedElsewhere(head)).await?;
        if !stopped.is_empty() {
            let names: Vec<String> = stopped.iter().map(|n| format!("`{n}`")).collect();
            let line = format!(
                "A push to this pull request voided the approval of {}: approved requests run only on the commit they were approved at. Ask again to run on the new commits.",
                names.join(", ")
            );
            github.create_comment(pull, &line).await?;
        }
        Ok(stopped)
    }

    /// Stops the thread's sessions that `which` selects by committing
    /// `desired-phase: Stopped` on their manifests, with a record of the
    /// stop comment `by` when a person asked (a replay of that comment
    /// stops nothing more); returns the sessions stopped.
    pub(super) async fn stop(
        &self,
        source: &SessionSource,
        binding: &PullRequestBinding,
        repository: &str,
        pull: u64,
        by: Option<&Comment>,
        which: Which,
    ) -> Result<Vec<String>, Error> {
        let targets = targets(&self.thread(source, repository, pull).await?, &which);
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let writer = self.writer(source, binding).await?;
        let dir = ThreadPath::new(repository, pull).to_string();
        let message = stop_message(repository, pull, by, &which, &targets);
        let done = by.map(|comment| request::done_path(repository, pull, comment));
        let lock = self.lock(&writer.dir);
        let result = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut changed = Vec::new();
            let written = writer.edit(|repo, tree| {
                changed.clear();
                let files = stop_edit(repo, tree, &dir, &targets, done.as_deref(), &mut changed)?;
                Some((files, message.clone()))
            });
            (written, changed)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        let (written, changed) = result;
        match written? {
            Written::Committed { .. } => {
                self.sync(source).await?;
                Ok(changed)
            }
            Written::Unchanged => Ok(Vec::new()),
        }
    }
}

/// A request to record, with everything the edit of the branch reads.
pub(super) struct Ask {
    /// The source's binding.
    pub binding: PullRequestBinding,
    /// The repository commented on.
    pub repository: String,
    /// The pull request, as GitHub holds it.
    pub pull: PullRequest,
    /// The comment that asks.
    pub comment: Comment,
    /// Its author's role.
    pub role: Role,
    /// `/acp run`, `@acp` or `/acp retry`.
    pub command: Command,
    /// Whether it waits for a maintainer's approval.
    pub pending: bool,
    /// What a follow-up continues (its parent is the branch's to say).
    pub thread: request::Thread,
}

/// What a request does to the branch's tree.
enum Edit {
    /// Commit this record.
    Write(Record),
    /// Nothing (recorded before, or nothing to read).
    Nothing,
    /// Refuse, with this line.
    Refused(String),
}

impl Ask {
    /// The edit of the thread's directory `dir` of `tree`: the request's
    /// record, linked to the thread's latest request unless it waits.
    fn edit(&self, repo: &git2::Repository, tree: &git2::Tree<'_>, dir: &str) -> Edit {
        let names = files_in(repo, tree, dir);
        let parent = latest(repo, tree, dir, &names);
        let command = match (&self.command, &parent) {
            // A retry runs the latest request's text again.
            (Command::Retry, Some(parent)) => match read(repo, tree, &format!("{dir}/{parent}.yaml")) {
                Some(text) => Command::FollowUp(prompt_of(&text)),
                None => return Edit::Nothing,
            },
            (Command::Retry, None) => {
                return Edit::Refused("nothing to retry: this pull request has no session yet".to_owned());
            }
            (other, _) => other.clone(),
        };
        // A waiting request is linked into the thread when approved.
        let thread = request::Thread {
            parent: if self.pending { None } else { parent.clone() },
            ..self.thread.clone()
        };
        let (repository, number) = (self.repository.as_str(), self.pull.number);
        let record = match request::run(
            &self.binding,
            repository,
            &self.pull,
            &self.comment,
            self.role,
            &command,
            &thread,
        ) {
            Ok(record) => record,
            Err(line) => return Edit::Refused(line),
        };
        // Recorded before (a replay, another webhook): nothing new.
        if names.iter().any(|n| *n == format!("{}.yaml", record.session))
            || read(repo, tree, &request::pending_path(repository, number, &record.session)).is_some()
        {
            return Edit::Nothing;
        }
        if !self.pending {
            return Edit::Write(record);
        }
        match request::waiting(record, repository, number, &self.comment) {
            Some(record) => Edit::Write(record),
            None => Edit::Nothing,
        }
    }
}

/// The sessions of a thread (`sessions`, in the cluster) that `which`
/// selects among the unfinished ones of its chain.
fn targets(sessions: &[acp_api::AgenticSession], which: &Which) -> Vec<String> {
    let links: Vec<(String, Option<String>)> = sessions
        .iter()
        .map(|s| (s.name_any(), s.annotations().get(request::PARENT_SESSION).cloned()))
        .collect();
    let unfinished: Vec<&acp_api::AgenticSession> = request::chain(&links)
        .into_iter()
        .filter_map(|name| {
            sessions.iter().find(|s| {
                s.name_any() == name
                    && !s.status.as_ref().and_then(|st| st.phase).is_some_and(|p| p.is_terminal())
            })
        })
        .collect();
    match which {
        // The earliest unfinished session in the chain is the one running; the others wait.
        Which::Running => unfinished.into_iter().take(1).map(|s| s.name_any()).collect(),
        Which::Unfinished => unfinished.into_iter().map(|s| s.name_any()).collect(),
        Which::PinnedElsewhere(head) => unfinished
            .into_iter()
            .filter(|s| s.spec.repos.iter().any(|r| r.commit.as_ref().is_some_and(|c| c != head)))
            .map(|s| s.name_any())
            .collect(),
    }
}

/// The message of a stop commit: who or what asked, and which sessions.
fn stop_message(
    repository: &str,
    pull: u64,
    by: Option<&Comment>,
    which: &Which,
    targets: &[String],
) -> String {
    let who = match (by, which) {
        (Some(comment), _) => comment.commenter.login.clone(),
        (None, Which::PinnedElsewhere(_)) => "a push".to_owned(),
        (None, _) => "closed".to_owned(),
    };
    format!(
        "acp: stop request on {repository}#{pull} by {who}\n\nAcp-Command: stop\nAcp-Commenter: {who}\nAcp-Stopped: {}",
        targets.join(", ")
    )
}

/// The files a stop writes on `tree`: each of `targets` not stopped yet
/// (`changed`) with the stop annotation, and the record `done` of the stop
/// comment; `None` when that comment's stop was done before.
fn stop_edit(
    repo: &git2::Repository,
    tree: &git2::Tree<'_>,
    dir: &str,
    targets: &[String],
    done: Option<&str>,
    changed: &mut Vec<String>,
) -> Option<Vec<(String, Vec<u8>)>> {
    if done.is_some_and(|path| read(repo, tree, path).is_some()) {
        // This comment's stop was done before (a replay).
        return None;
    }
    let mut files: Vec<(String, Vec<u8>)> = targets
        .iter()
        .filter_map(|name| {
            let path = format!("{dir}/{name}.yaml");
            let text = request::stopped(&read(repo, tree, &path)?)?;
            changed.push(name.clone());
            Some((path, text.into_bytes()))
        })
        .collect();
    if let (Some(path), false) = (done, changed.is_empty()) {
        files.push((path.to_owned(), format!("stop: {}\n", changed.join(", ")).into_bytes()));
    }
    Some(files)
}

/// Which of a thread's sessions a stop is for.
pub(super) enum Which {
    /// The one running (`/acp stop`).
    Running,
    /// Every unfinished one, queued ones included (the pull request closed).
    Unfinished,
    /// The unfinished ones pinned to another commit than this new head.
    PinnedElsewhere(String),
}

/// The thread's latest request among `files` of `dir`: the end of the
/// chain of their parent links.
pub(super) fn latest(
    repo: &git2::Repository,
    tree: &git2::Tree<'_>,
    dir: &str,
    files: &[String],
) -> Option<String> {
    let links: Vec<(String, Option<String>)> = files
        .iter()
        .filter_map(|file| file.strip_suffix(".yaml"))
        .map(|name| {
            (name.to_owned(), read(repo, tree, &format!("{dir}/{name}.yaml")).and_then(|t| parent_of(&t)))
        })
        .collect();
    request::chain(&links).pop()
}

/// Names of the files directly in `dir` of `tree`.
pub(super) fn files_in(repo: &git2::Repository, tree: &git2::Tree<'_>, dir: &str) -> Vec<String> {
    let Ok(entry) = tree.get_path(std::path::Path::new(dir)) else { return Vec::new() };
    let Ok(sub) = repo.find_tree(entry.id()) else { return Vec::new() };
    sub.iter().filter_map(|e| e.name().ok().map(str::to_owned)).collect()
}

pub(super) fn read(repo: &git2::Repository, tree: &git2::Tree<'_>, path: &str) -> Option<String> {
    let entry = tree.get_path(std::path::Path::new(path)).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    String::from_utf8(blob.content().to_vec()).ok()
}

/// The parent link of a recorded request manifest.
fn parent_of(manifest: &str) -> Option<String> {
    let value: Value = serde_saphyr::from_str(manifest).ok()?;
    value["metadata"]["annotations"][request::PARENT_SESSION].as_str().map(str::to_owned)
}

/// The request text of a recorded session (after the "Request from" line).
fn prompt_of(manifest: &str) -> String {
    let value: Value = serde_saphyr::from_str(manifest).unwrap_or_default();
    let prompt = value["spec"]["initialPrompt"].as_str().unwrap_or_default();
    prompt.split_once("):\n\n").map_or(prompt, |(_, text)| text).to_owned()
}

#[cfg(test)]
mod tests {
    use acp_api::AgenticSession;
    use serde_json::json;

    use super::*;
    use crate::commands::request::Commenter;

    /// A session of the thread: its parent, phase (`None`: not started) and pinned commit.
    fn session(
        name: &str,
        parent: Option<&str>,
        phase: Option<&str>,
        commit: Option<&str>,
    ) -> AgenticSession {
        let mut value = json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"repos": [{"url": "https://github.com/acme/webapp.git", "branch": "fix"}]}
        });
        if let Some(parent) = parent {
            value["metadata"]["annotations"] = json!({request::PARENT_SESSION: parent});
        }
        if let Some(phase) = phase {
            value["status"] = json!({"phase": phase});
        }
        if let Some(commit) = commit {
            value["spec"]["repos"][0]["commit"] = json!(commit);
        }
        serde_json::from_value(value).expect("session")
    }

    #[test]
    fn a_stop_is_for_the_running_session_or_every_unfinished_one_or_those_a_push_voided() {
        // Listed out of order: the chain of parent links decides.
        let sessions = [
            session("c", Some("b"), None, Some("old")),
            session("a", None, Some("Completed"), None),
            session("d", Some("c"), Some("Pending"), Some("new")),
            session("b", Some("a"), Some("Running"), None),
        ];
        assert_eq!(targets(&sessions, &Which::Running), ["b"]);
        assert_eq!(targets(&sessions, &Which::Unfinished), ["b", "c", "d"]);
        assert_eq!(targets(&sessions, &Which::PinnedElsewhere("new".into())), ["c"]);
        let finished =
            [session("a", None, Some("Completed"), None), session("b", Some("a"), Some("Stopped"), None)];
        assert!(targets(&finished, &Which::Running).is_empty());
    }

    #[test]
    fn a_stop_commit_names_who_asked_and_what_it_stops() {
        let targets = ["b".to_owned(), "c".to_owned()];
        let by = Comment {
            commenter: Commenter { login: "alice".into(), ..Commenter::default() },
            ..Comment::default()
        };
        let message = stop_message("acme/webapp", 7, Some(&by), &Which::Running, &targets);
        assert_eq!(
            message,
            "acp: stop request on acme/webapp#7 by alice\n\nAcp-Command: stop\nAcp-Commenter: alice\nAcp-Stopped: b, c"
        );
        let pushed = stop_message("acme/webapp", 7, None, &Which::PinnedElsewhere("x".into()), &targets);
        assert!(pushed.starts_with("acp: stop request on acme/webapp#7 by a push\n"), "{pushed}");
        let closed = stop_message("acme/webapp", 7, None, &Which::Unfinished, &targets);
        assert!(closed.contains("Acp-Commenter: closed\n"), "{closed}");
    }
}
