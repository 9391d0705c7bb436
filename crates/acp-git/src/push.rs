//! Committing files on a branch of a remote without rewriting anyone's
//! history (the status bot's write-back), and force-pushing a branch that
//! belongs to its writer (the runner's `ambient/<session>`).
//!
//! A write fetches the branch tip, builds a new tree from the tip's tree with
//! only this writer's files replaced, commits on top of the tip only when the
//! tree changed, and pushes without force. When another writer moved the
//! branch meanwhile, the push is refused and the write starts again from the
//! new tip (a rebase of this writer's own change), with jittered exponential
//! backoff (`backon`) between attempts.
//!
//! No push or fetch here follows a redirect to another host, and the
//! credentials go only to the URL (a write-back: the origin) pushed to.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BlockingRetryable as _, ExponentialBuilder};
use git2::build::TreeUpdateBuilder;
use git2::{ConfigLevel, FileMode, Oid, PushOptions, Repository, Signature};

use crate::auth::{Credentials, NO_REDIRECTS, callbacks_for, callbacks_for_origin, explain};

/// Attempts before giving up on a contended branch.
pub const ATTEMPTS: u32 = 8;

/// A write-back failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// libgit2 failed.
    #[error("failed to {action} ({url} {branch}): {source}")]
    Git {
        /// What was being done.
        action: &'static str,
        /// Repository URL.
        url: String,
        /// Branch.
        branch: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// Other writers kept winning.
    #[error("failed to push to {url} {branch}: the branch moved on every one of {attempts} attempts")]
    Contended {
        /// Repository URL.
        url: String,
        /// Branch.
        branch: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl WriteError {
    /// A bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            WriteError::Git { .. } => "git",
            WriteError::Contended { .. } => "contended",
        }
    }
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// A commit was pushed.
    Committed {
        /// The new commit.
        commit: Oid,
        /// Pushes refused before this one succeeded.
        retries: u32,
    },
    /// The branch already held this content.
    Unchanged,
}

/// How long one fetch of the branch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Commits files on one branch of a remote, never rewriting its history.
#[derive(Clone, Debug)]
pub struct BranchWriter {
    /// Local bare mirror used to build commits.
    pub dir: PathBuf,
    /// Repository URL.
    pub url: String,
    /// Branch written to.
    pub branch: String,
    /// Credentials.
    pub credentials: Credentials,
    /// Author and committer name.
    pub author_name: String,
    /// Author and committer email.
    pub author_email: String,
}

impl BranchWriter {
    fn err(&self, action: &'static str) -> impl FnOnce(git2::Error) -> WriteError + '_ {
        move |source| WriteError::Git { action, url: self.url.clone(), branch: self.branch.clone(), source }
    }

    fn open(&self) -> Result<Repository, WriteError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| self.err("create the mirror")(git2::Error::from_str(&e.to_string())))?;
        Repository::open_bare(&self.dir)
            .or_else(|_| Repository::init_bare(&self.dir))
            .map_err(self.err("open the mirror"))
    }

    /// The remote tip of the branch, if the branch exists (the mirror's
    /// fetch of one branch: a branch gone from the remote reads as absent).
    fn fetch_tip(&self) -> Result<Option<Oid>, WriteError> {
        crate::mirror::fetch_branch_if_present(
            &self.dir,
            &self.url,
            &self.branch,
            &self.credentials,
            FETCH_TIMEOUT,
        )
        .map_err(|error| match error {
            crate::mirror::FetchError::Git { source, .. } => self.err("fetch")(source),
            other => self.err("fetch")(git2::Error::from_str(&other.to_string())),
        })
    }

    /// Writes `files` (`(path in the repository, content)`) in one commit with
    /// `message`, unless the branch already holds exactly that content.
    pub fn write(&self, files: &[(String, Vec<u8>)], message: &str) -> Result<Written, WriteError> {
        self.write_with(files, message, |_| {})
    }

    /// [`write`](Self::write), calling `before_push(attempt)` between building
    /// a commit and pushing it (where another writer may win the race).
    pub fn write_with(
        &self,
        files: &[(String, Vec<u8>)],
        message: &str,
        before_push: impl FnMut(u32),
    ) -> Result<Written, WriteError> {
        self.commit_loop(before_push, |_, _| Some((files.to_vec(), message.to_owned())))
    }

    /// Read-modify-write: `change` sees the branch's tree at its current tip
    /// (empty for a new branch) and returns the files to write with the
    /// commit message; it runs again on the new tip when another writer got
    /// there first. `None` (or no file) writes nothing.
    pub fn edit(
        &self,
        change: impl FnMut(&Repository, &git2::Tree<'_>) -> Option<(Vec<(String, Vec<u8>)>, String)>,
    ) -> Result<Written, WriteError> {
        self.commit_loop(|_| {}, change)
    }

    fn commit_loop(
        &self,
        mut before_push: impl FnMut(u32),
        mut files_for: impl FnMut(&Repository, &git2::Tree<'_>) -> Option<(Vec<(String, Vec<u8>)>, String)>,
    ) -> Result<Written, WriteError> {
        let repo = self.open()?;
        let signature = Signature::now(&self.author_name, &self.author_email).map_err(self.err("sign"))?;
        let attempt = Cell::new(0u32);
        let once = || -> Result<Written, Refused> {
            let n = attempt.get();
            attempt.set(n + 1);
            let tip = self.fetch_tip()?;
            let parent = tip.map(|t| repo.find_commit(t)).transpose().map_err(self.err("read the tip"))?;
            let base = self.tree_of(&repo, parent.as_ref())?;
            let Some((files, message)) = files_for(&repo, &base).filter(|(files, _)| !files.is_empty())
            else {
                return Ok(Written::Unchanged);
            };
            let tree_id = self.updated(&repo, &base, &files)?;
            if parent.is_some() && tree_id == base.id() {
                return Ok(Written::Unchanged);
            }
            let tree = repo.find_tree(tree_id).map_err(self.err("build the tree"))?;
            let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
            let commit = repo
                .commit(None, &signature, &signature, &message, &tree, &parents)
                .map_err(self.err("commit"))?;
            before_push(n);
            if self.push(&repo, commit)? {
                Ok(Written::Committed { commit, retries: n })
            } else {
                Err(Refused::Moved)
            }
        };
        // Writers refused together would retry in lockstep: back off
        // exponentially, jittered, and only when the branch moved.
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(500))
            .with_jitter()
            .with_max_times(ATTEMPTS as usize - 1);
        once.retry(backoff).sleep(std::thread::sleep).when(|e| matches!(e, Refused::Moved)).call().map_err(
            |e| match e {
                Refused::Moved => WriteError::Contended {
                    url: self.url.clone(),
                    branch: self.branch.clone(),
                    attempts: attempt.get(),
                },
                Refused::Failed(e) => e,
            },
        )
    }

    /// The tree of `parent`, or an empty one for a new branch.
    fn tree_of<'r>(
        &self,
        repo: &'r Repository,
        parent: Option<&git2::Commit<'r>>,
    ) -> Result<git2::Tree<'r>, WriteError> {
        match parent {
            Some(commit) => commit.tree().map_err(self.err("read the tip's tree")),
            None => {
                let empty =
                    repo.treebuilder(None).and_then(|b| b.write()).map_err(self.err("build a tree"))?;
                repo.find_tree(empty).map_err(self.err("build a tree"))
            }
        }
    }

    /// `base` with `files` written into it (the new tree's id).
    fn updated(
        &self,
        repo: &Repository,
        base: &git2::Tree<'_>,
        files: &[(String, Vec<u8>)],
    ) -> Result<Oid, WriteError> {
        let mut update = TreeUpdateBuilder::new();
        for (path, content) in files {
            let blob = repo.blob(content).map_err(self.err("write a blob"))?;
            update.upsert(path.as_str(), blob, FileMode::Blob);
        }
        update.create_updated(repo, base).map_err(self.err("build the tree"))
    }

    /// Pushes `commit` to the branch without force; false when refused.
    fn push(&self, repo: &Repository, commit: Oid) -> Result<bool, WriteError> {
        let staging = "refs/heads/acp-write-back";
        repo.reference(staging, commit, true, "write-back").map_err(self.err("stage the commit"))?;
        let mut remote = repo.remote_anonymous(&self.url).map_err(self.err("push"))?;
        let target = push_target(&remote, &self.url);
        let attempts = Cell::new(0);
        let rejected = Cell::new(false);
        let mut cbs = callbacks_for_origin(&self.credentials, &attempts, &target);
        cbs.push_update_reference(|_, status| {
            if status.is_some() {
                rejected.set(true);
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(cbs);
        options.follow_redirects(NO_REDIRECTS);
        let result = remote.push(&[format!("{staging}:refs/heads/{}", self.branch)], Some(&mut options));
        match result {
            Ok(()) => Ok(!rejected.get()),
            // Local transports report a non-fast-forward as an error.
            Err(e) if e.code() == git2::ErrorCode::NotFastForward || e.message().contains("fast-forward") => {
                Ok(false)
            }
            Err(e) => Err(self.err("push")(explain(e))),
        }
    }
}

/// Why one attempt did not land: the branch moved (retry), or a failure.
enum Refused {
    Moved,
    Failed(WriteError),
}

impl From<WriteError> for Refused {
    fn from(e: WriteError) -> Self {
        Refused::Failed(e)
    }
}

/// A force-push failure.
#[derive(Debug, thiserror::Error)]
#[error("failed to push {branch} to {url}: {message}")]
pub struct PushError {
    /// Repository URL.
    pub url: String,
    /// Branch.
    pub branch: String,
    /// What went wrong.
    pub message: String,
}

/// Force-pushes local `branch` of the repository at `dir` to `url`: for a
/// branch that belongs to its writer, which a new run replaces.
///
/// The repository may have been written by someone untrusted (the agent):
/// its remotes are not used; a URL rewrite (`url.*.insteadOf`) in its own
/// configuration refuses the push, and credentials go only to where `url`
/// leads by the machine's configuration (a redirect elsewhere fails); no
/// proxy is configured, and libgit2 runs no hooks.
pub fn force_push(dir: &Path, url: &str, branch: &str, creds: &Credentials) -> Result<(), PushError> {
    push_branch(dir, url, branch, creds, true)
}

/// Pushes local `branch` of the repository at `dir` to `url`: forced (see
/// [`force_push`]), or with `force` false as a fast-forward only, which the
/// remote refuses when the branch moved (someone else's commits are never
/// overwritten). The same precautions as [`force_push`] apply.
pub fn push_branch(
    dir: &Path,
    url: &str,
    branch: &str,
    creds: &Credentials,
    force: bool,
) -> Result<(), PushError> {
    push_ref(dir, url, branch, &format!("refs/heads/{branch}"), creds, force)
}

/// [`push_branch`] of local `branch` to the remote ref `remote_ref` (a
/// branch `refs/heads/…`, or a ref that is no branch, `refs/acp/…`).
pub fn push_ref(
    dir: &Path,
    url: &str,
    branch: &str,
    remote_ref: &str,
    creds: &Credentials,
    force: bool,
) -> Result<(), PushError> {
    let shown = remote_ref.strip_prefix("refs/heads/").unwrap_or(remote_ref);
    let fail = |message: String| PushError { url: url.to_owned(), branch: shown.to_owned(), message };
    let repo = Repository::open(dir).map_err(|e| fail(e.message().to_owned()))?;
    if let Some(key) = untrusted_rewrite(&repo).map_err(|e| fail(e.message().to_owned()))? {
        return Err(fail(format!(
            "refusing to push with credentials: the repository's own configuration rewrites remote URLs ({key})"
        )));
    }
    let mut remote = repo.remote_anonymous(url).map_err(|e| fail(e.message().to_owned()))?;
    let target = push_target(&remote, url);
    let attempts = Cell::new(0);
    let rejection: RefCell<Option<String>> = RefCell::new(None);
    let mut cbs = callbacks_for(creds, &attempts, &target);
    cbs.push_update_reference(|_, status| {
        if let Some(status) = status {
            *rejection.borrow_mut() = Some(status.to_owned());
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(cbs);
    options.follow_redirects(NO_REDIRECTS);
    let plus = if force { "+" } else { "" };
    let refspec = format!("{plus}refs/heads/{branch}:{remote_ref}");
    remote.push(&[refspec.as_str()], Some(&mut options)).map_err(|e| {
        if e.code() == git2::ErrorCode::NotFastForward || e.message().contains("fast-forward") {
            fail(format!(
                "the branch moved on the remote since the clone; not overwriting it ({})",
                e.message()
            ))
        } else {
            fail(explain(e).message().to_owned())
        }
    })?;
    drop(options);
    match rejection.into_inner() {
        Some(status) => Err(fail(format!("the remote rejected the update: {status}"))),
        None => Ok(()),
    }
}

/// Where the machine's configuration (a trusted `pushInsteadOf` or
/// `insteadOf`) leads a push to `url`: the one URL that gets credentials.
fn push_target(remote: &git2::Remote<'_>, url: &str) -> String {
    match remote.pushurl() {
        Ok(Some(push)) => push.to_owned(),
        _ => remote.url().unwrap_or(url).to_owned(),
    }
}

/// A `url.<base>.insteadOf` or `pushInsteadOf` set by the repository itself
/// (its config file, worktree config or what they include) rather than by
/// the machine (system, global, XDG).
fn untrusted_rewrite(repo: &Repository) -> Result<Option<String>, git2::Error> {
    let config = repo.config()?;
    let mut found = None;
    config.entries(Some(r"^url\..*\.(insteadof|pushinsteadof)$"))?.for_each(|entry| {
        let machine = matches!(
            entry.level(),
            ConfigLevel::System | ConfigLevel::XDG | ConfigLevel::Global | ConfigLevel::ProgramData
        );
        if !machine && found.is_none() {
            found = entry.name().ok().map(str::to_owned);
        }
    })?;
    Ok(found)
}

/// Reads `path` at the tip of `branch` in the bare repository `repo` (tests and tools).
pub fn read(repo: &Path, branch: &str, path: &str) -> Option<Vec<u8>> {
    let repo = Repository::open(repo).ok()?;
    let commit = repo.revparse_single(&format!("refs/heads/{branch}")).ok()?.peel_to_commit().ok()?;
    let entry = commit.tree().ok()?.get_path(Path::new(path)).ok()?;
    Some(repo.find_blob(entry.id()).ok()?.content().to_vec())
}
