//! Write-back commits: one YAML file per session under the status path of the
//! write-back branch (default `acp/status`).
//!
//! Each write fetches the branch tip, builds a new tree from the tip's tree
//! with only this writer's files replaced, commits on top of the tip only when
//! the tree changed, and pushes without force. When another writer moved the
//! branch meanwhile, the push is refused and the write starts again from the
//! new tip: a rebase of this writer's own change, nobody's history rewritten.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use acp_gitsync::fetch::{Credentials, callbacks};
use git2::build::TreeUpdateBuilder;
use git2::{FetchOptions, FileMode, Oid, PushOptions, Repository, Signature};

/// Attempts before giving up on a contended branch.
pub const ATTEMPTS: u32 = 8;

/// A write-back failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteBackError {
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

impl WriteBackError {
    /// A bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            WriteBackError::Git { .. } => "git",
            WriteBackError::Contended { .. } => "contended",
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

/// A write-back target.
#[derive(Clone, Debug)]
pub struct WriteBack {
    /// Local bare mirror used to build commits.
    pub dir: PathBuf,
    /// Repository URL.
    pub url: String,
    /// Branch written to.
    pub branch: String,
    /// Credentials (the source's).
    pub credentials: Credentials,
    /// Author and committer name.
    pub author_name: String,
    /// Author and committer email.
    pub author_email: String,
}

impl WriteBack {
    fn err(&self, action: &'static str) -> impl FnOnce(git2::Error) -> WriteBackError + '_ {
        move |source| WriteBackError::Git {
            action,
            url: self.url.clone(),
            branch: self.branch.clone(),
            source,
        }
    }

    fn open(&self) -> Result<Repository, WriteBackError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| self.err("create the mirror")(git2::Error::from_str(&e.to_string())))?;
        Repository::open_bare(&self.dir)
            .or_else(|_| Repository::init_bare(&self.dir))
            .map_err(self.err("open the mirror"))
    }

    /// The remote tip of the branch, if the branch exists.
    fn fetch_tip(&self, repo: &Repository) -> Result<Option<Oid>, WriteBackError> {
        let local = format!("refs/remotes/origin/{}", self.branch);
        let mut remote = repo.remote_anonymous(&self.url).map_err(self.err("fetch"))?;
        let attempts = Cell::new(0);
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials, &attempts));
        options.download_tags(git2::AutotagOption::None);
        let wanted = format!("refs/heads/{}", self.branch);
        // Forget the last tip, so that a branch gone from the remote reads as absent:
        // libgit2 leaves the local ref alone when the remote has no such branch.
        if let Ok(mut stale) = repo.find_reference(&local) {
            stale.delete().map_err(self.err("reset the tracking ref"))?;
        }
        remote.fetch(&[format!("+{wanted}:{local}")], Some(&mut options), None).map_err(self.err("fetch"))?;
        match repo.refname_to_id(&local) {
            Ok(tip) => Ok(Some(tip)),
            // The branch does not exist yet: the first write creates it.
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(self.err("read the fetched tip")(e)),
        }
    }

    /// Writes `files` (`(path in the repository, content)`) in one commit with
    /// `message`, unless the branch already holds exactly that content.
    pub fn write(&self, files: &[(String, Vec<u8>)], message: &str) -> Result<Written, WriteBackError> {
        self.write_with(files, message, |_| {})
    }

    /// [`write`](Self::write), calling `before_push(attempt)` between building
    /// a commit and pushing it (where another writer may win the race).
    pub fn write_with(
        &self,
        files: &[(String, Vec<u8>)],
        message: &str,
        mut before_push: impl FnMut(u32),
    ) -> Result<Written, WriteBackError> {
        let repo = self.open()?;
        let signature = Signature::now(&self.author_name, &self.author_email).map_err(self.err("sign"))?;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Writers refused together would retry in lockstep: back off, jittered.
                let millis = rand::random_range(10..60) * u64::from(attempt);
                std::thread::sleep(std::time::Duration::from_millis(millis));
            }
            let tip = self.fetch_tip(&repo)?;
            let parent = tip.map(|t| repo.find_commit(t)).transpose().map_err(self.err("read the tip"))?;
            let base = match &parent {
                Some(commit) => commit.tree().map_err(self.err("read the tip's tree"))?,
                None => {
                    let empty =
                        repo.treebuilder(None).and_then(|b| b.write()).map_err(self.err("build a tree"))?;
                    repo.find_tree(empty).map_err(self.err("build a tree"))?
                }
            };
            let mut update = TreeUpdateBuilder::new();
            for (path, content) in files {
                let blob = repo.blob(content).map_err(self.err("write a blob"))?;
                update.upsert(path.as_str(), blob, FileMode::Blob);
            }
            let tree_id = update.create_updated(&repo, &base).map_err(self.err("build the tree"))?;
            if parent.is_some() && tree_id == base.id() {
                return Ok(Written::Unchanged);
            }
            let tree = repo.find_tree(tree_id).map_err(self.err("build the tree"))?;
            let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
            let commit = repo
                .commit(None, &signature, &signature, message, &tree, &parents)
                .map_err(self.err("commit"))?;
            before_push(attempt);
            if self.push(&repo, commit)? {
                return Ok(Written::Committed { commit, retries: attempt });
            }
        }
        Err(WriteBackError::Contended {
            url: self.url.clone(),
            branch: self.branch.clone(),
            attempts: ATTEMPTS,
        })
    }

    /// Pushes `commit` to the branch without force; false when refused.
    fn push(&self, repo: &Repository, commit: Oid) -> Result<bool, WriteBackError> {
        let staging = "refs/heads/acp-write-back";
        repo.reference(staging, commit, true, "write-back").map_err(self.err("stage the commit"))?;
        let mut remote = repo.remote_anonymous(&self.url).map_err(self.err("push"))?;
        let attempts = Cell::new(0);
        let rejected = Cell::new(false);
        let mut cbs = callbacks(&self.credentials, &attempts);
        cbs.push_update_reference(|_, status| {
            if status.is_some() {
                rejected.set(true);
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(cbs);
        let result = remote.push(&[format!("{staging}:refs/heads/{}", self.branch)], Some(&mut options));
        match result {
            Ok(()) => Ok(!rejected.get()),
            // Local transports report a non-fast-forward as an error.
            Err(e) if e.code() == git2::ErrorCode::NotFastForward || e.message().contains("fast-forward") => {
                Ok(false)
            }
            Err(e) => Err(self.err("push")(e)),
        }
    }
}

/// The path of a session's status file: `<status path>/<namespace>/<name>.yaml`.
pub fn status_file(status_path: &str, namespace: &str, name: &str) -> String {
    let dir = status_path.trim_matches('/');
    if dir.is_empty() { format!("{namespace}/{name}.yaml") } else { format!("{dir}/{namespace}/{name}.yaml") }
}

/// Reads `path` at the tip of `branch` in the bare repository `repo` (tests and tools).
pub fn read(repo: &Path, branch: &str, path: &str) -> Option<Vec<u8>> {
    let repo = Repository::open(repo).ok()?;
    let commit = repo.revparse_single(&format!("refs/heads/{branch}")).ok()?.peel_to_commit().ok()?;
    let entry = commit.tree().ok()?.get_path(Path::new(path)).ok()?;
    Some(repo.find_blob(entry.id()).ok()?.content().to_vec())
}
