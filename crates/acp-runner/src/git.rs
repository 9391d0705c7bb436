//! git for a session: shallow clones with the git CLI ([`acp_git::clone`]:
//! protocol v2, half libgit2's time), and commit + push of the agent's
//! changes on the session's branch with git2.
//!
//! Credentials never enter URLs, arguments or the agent's environment: the
//! clone gets them through git's own environment, the push through
//! [`acp_git::auth`]'s callbacks, and an ssh server's key is checked against
//! `known_hosts` either way.

use std::path::Path;

use acp_git::clone::{CloneError, CloneSpec};
use acp_git::is_local;
use git2::{IndexAddOption, Repository, Signature, Status, StatusOptions};

use acp_api::runner::Repo;

use crate::config::{Credentials, PushTarget};

/// A git failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Cloning failed (unreachable, not found, bad credentials, bad branch).
    #[error("failed to clone {url}: {source}")]
    Clone {
        /// Repository URL.
        url: String,
        /// What git said.
        source: CloneError,
    },
    /// The clone is not a readable repository.
    #[error("failed to read the clone of {url}: {source}")]
    Open {
        /// Repository URL.
        url: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// The branch is not at the commit the session is pinned to.
    #[error(
        "failed to check out {url}: {branch} is at {head}, not at {pinned}, the commit this session is pinned to (it was pushed after the request was approved)"
    )]
    Moved {
        /// Repository URL.
        url: String,
        /// Branch.
        branch: String,
        /// Where the branch is.
        head: String,
        /// Where it had to be.
        pinned: String,
    },
    /// Reading or committing the working tree failed.
    #[error("failed to commit changes in {repo}: {source}")]
    Commit {
        /// Repository directory name.
        repo: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// Pushing failed or the remote rejected the update.
    #[error("failed to push {branch} to {url}: {message}")]
    Push {
        /// Repository URL.
        url: String,
        /// Branch.
        branch: String,
        /// What went wrong.
        message: String,
    },
}

/// A cloned repository.
#[derive(Clone, Debug)]
pub struct Cloned {
    /// Checked-out branch (the remote's default when none was asked for).
    pub branch: String,
    /// Commit checked out by the clone.
    pub base: git2::Oid,
}

/// Clones `repo` into `dest`, shallow (the tip and `history` commits
/// before it) unless the URL is local.
pub async fn clone(repo: &Repo, history: u32, dest: &Path, creds: &Credentials) -> Result<Cloned, GitError> {
    let depth = (!is_local(&repo.url)).then(|| history.saturating_add(1));
    // A run pinned to a commit pushing elsewhere (a fork's pull request)
    // fetches only the branch it was approved on.
    let single_branch = repo.commit.is_some() && repo.push_url.as_ref().is_some_and(|u| *u != repo.url);
    let spec = CloneSpec { url: &repo.url, dest, branch: repo.branch.as_deref(), depth, single_branch };
    let failed = |source| GitError::Clone { url: repo.url.clone(), source };
    acp_git::clone::clone(spec, &creds.git()).await.map_err(failed)?;
    let err = |source| GitError::Open { url: repo.url.clone(), source };
    let cloned = Repository::open(dest).map_err(err)?;
    let head = cloned.head().map_err(err)?;
    if !head.is_branch() {
        // `--branch` also takes a tag, leaving no branch to work on.
        let asked = repo.branch.as_deref().unwrap_or("HEAD");
        return Err(failed(CloneError::Git(format!(
            "{asked} is a tag, not a branch: a session works on a branch"
        ))));
    }
    let branch = head.shorthand().unwrap_or("HEAD").to_owned();
    let base = head.peel_to_commit().map_err(err)?.id();
    if let Some(pinned) = repo.commit.as_deref().filter(|c| !c.eq_ignore_ascii_case(&base.to_string())) {
        return Err(GitError::Moved {
            url: repo.url.clone(),
            branch,
            head: base.to_string(),
            pinned: pinned.to_owned(),
        });
    }
    Ok(Cloned { branch, base })
}

/// Commits everything changed since `base` (worktree and any commits the agent
/// made) and points `branch` at it. Returns the commit, or `None` when nothing
/// changed.
pub fn commit_changes(
    dir: &Path,
    base: git2::Oid,
    branch: &str,
    author: &(String, String),
    message: &str,
) -> Result<Option<git2::Oid>, GitError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let err = |source| GitError::Commit { repo: name.clone(), source };
    let repo = Repository::open(dir).map_err(err)?;
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let dirty =
        repo.statuses(Some(&mut options)).map_err(err)?.iter().any(|entry| entry.status() != Status::CURRENT);
    let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(err)?;
    let mut tip = head.id();
    if dirty {
        let mut index = repo.index().map_err(err)?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None).map_err(err)?;
        index.update_all(["*"], None).map_err(err)?;
        index.write().map_err(err)?;
        let tree = repo.find_tree(index.write_tree().map_err(err)?).map_err(err)?;
        if tree.id() != head.tree_id() {
            let signature = Signature::now(&author.0, &author.1).map_err(err)?;
            tip = repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &[&head]).map_err(err)?;
        }
    }
    if tip == base {
        return Ok(None);
    }
    let commit = repo.find_commit(tip).map_err(err)?;
    // The checked-out branch (a pull request's head pushed back to) already
    // points at the new commit; libgit2 refuses to force-update it.
    let current = repo.head().ok().and_then(|h| h.shorthand().ok().map(str::to_owned));
    if current.as_deref() != Some(branch) {
        repo.branch(branch, &commit, true).map_err(err)?;
    }
    Ok(Some(tip))
}

/// The commit local `branch` of the repository at `dir` points at.
pub fn branch_tip(dir: &Path, branch: &str) -> Result<git2::Oid, GitError> {
    let fail = |message: String| GitError::Push {
        url: dir.display().to_string(),
        branch: branch.to_owned(),
        message,
    };
    let repo = Repository::open(dir).map_err(|e| fail(e.message().to_owned()))?;
    repo.refname_to_id(&format!("refs/heads/{branch}"))
        .map_err(|e| fail(format!("no such branch in the workspace: {}", e.message())))
}

/// Pushes local `target.branch` to `target.remote` at `url`: forced for the session's own ref (a
/// re-run replaces it), fast-forward only for a branch it shares (a pull
/// request's head). The repository's own remotes and URL rewrites are
/// ignored: the agent may have written its configuration.
pub fn push(dir: &Path, url: &str, target: &PushTarget, creds: &Credentials) -> Result<(), GitError> {
    let (branch, remote) = (target.branch.as_str(), target.remote.as_str());
    acp_git::push::push_ref(dir, url, branch, remote, &creds.git(), target.force)
        .map_err(|e| GitError::Push { url: e.url, branch: e.branch, message: e.message })
}
