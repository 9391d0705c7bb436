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

    #[allow(clippy::too_many_arguments, reason = "one request's whole context")]
    pub(super) async fn record(
        &self,
        source: &SessionSource,
        binding: &PullRequestBinding,
        repository: &str,
        pull: &PullRequest,
        comment: &Comment,
        role: Role,
        command: &Command,
        pending: bool,
        thread: request::Thread,
    ) -> Result<Result<Option<String>, String>, Error> {
        let writer = self.writer(source, binding).await?;
        let dir = ThreadPath::new(repository, pull.number).to_string();
        let (binding, repository, pull, comment, command) =
            (binding.clone(), repository.to_owned(), pull.clone(), comment.clone(), command.clone());
        let lock = self.lock(&writer.dir);
        let written = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut refused = None;
            let mut made: Option<Record> = None;
            let written = writer.edit(|repo, tree| {
                let names = files_in(repo, tree, &dir);
                let parent = latest(repo, tree, &dir, &names);
                let command = match (&command, &parent) {
                    // A retry runs the latest request's text again.
                    (Command::Retry, Some(parent)) => match read(repo, tree, &format!("{dir}/{parent}.yaml"))
                    {
                        Some(text) => Command::FollowUp(prompt_of(&text)),
                        None => return None,
                    },
                    (Command::Retry, None) => {
                        refused = Some("nothing to retry: this pull request has no session yet".to_owned());
                        return None;
                    }
                    (other, _) => other.clone(),
                };
                // A waiting request is linked into the thread when approved.
                let thread =
                    request::Thread { parent: if pending { None } else { parent.clone() }, ..thread.clone() };
                match request::run(&binding, &repository, &pull, &comment, role, &command, &thread) {
                    // Recorded before (a replay, another webhook): nothing new.
                    Ok(record)
                        if names.iter().any(|n| *n == format!("{}.yaml", record.session))
                            || read(
                                repo,
                                tree,
                                &request::pending_path(&repository, pull.number, &record.session),
                            )
                            .is_some() =>
                    {
                        None
                    }
                    Ok(record) => {
                        let record = if pending {
                            request::waiting(record, &repository, pull.number, &comment)?
                        } else {
                            record
                        };
                        let edit = (
                            vec![(record.path.clone(), record.content.clone().into_bytes())],
                            record.message.clone(),
                        );
                        made = Some(record);
                        Some(edit)
                    }
                    Err(line) => {
                        refused = Some(line);
                        None
                    }
                }
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
        let sessions = self.thread(source, repository, pull).await?;
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
        let targets: Vec<String> = match &which {
            // The earliest unfinished session in the chain is the one running; the others wait.
            Which::Running => unfinished.into_iter().take(1).map(|s| s.name_any()).collect(),
            Which::Unfinished => unfinished.into_iter().map(|s| s.name_any()).collect(),
            Which::PinnedElsewhere(head) => unfinished
                .into_iter()
                .filter(|s| s.spec.repos.iter().any(|r| r.commit.as_ref().is_some_and(|c| c != head)))
                .map(|s| s.name_any())
                .collect(),
        };
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let writer = self.writer(source, binding).await?;
        let dir = ThreadPath::new(repository, pull).to_string();
        let who = match (by, &which) {
            (Some(comment), _) => comment.commenter.login.clone(),
            (None, Which::PinnedElsewhere(_)) => "a push".to_owned(),
            (None, _) => "closed".to_owned(),
        };
        let message = format!(
            "acp: stop request on {repository}#{pull} by {who}\n\nAcp-Command: stop\nAcp-Commenter: {who}\nAcp-Stopped: {}",
            targets.join(", ")
        );
        let done = by.map(|comment| request::done_path(repository, pull, comment));
        let lock = self.lock(&writer.dir);
        let result = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut changed = Vec::new();
            let written = writer.edit(|repo, tree| {
                changed.clear();
                if done.as_ref().is_some_and(|path| read(repo, tree, path).is_some()) {
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
                if let (Some(path), false) = (&done, changed.is_empty()) {
                    files.push((path.clone(), format!("stop: {}\n", changed.join(", ")).into_bytes()));
                }
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
