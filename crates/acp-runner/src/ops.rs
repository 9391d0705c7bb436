//! The operations that need credentials (cloning a repository, pushing the
//! session's branch, opening its pull request), done with the credentials at
//! hand ([`Direct`]: `acp run`, the process executor, and the credentials
//! sidecar itself), and what they answer. The `access` module picks between
//! this and asking the sidecar.

use std::path::{Path, PathBuf};

use acp_api::runner::Repo;

use crate::config::{Credentials, PushTarget, RunnerConfig};
use crate::git::{Cloned, GitError};
use crate::pr::{PrError, PullRequest};

/// A failed operation.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The pull request could not be opened.
    #[error(transparent)]
    PullRequest(#[from] PrError),
    /// The sidecar did the operation and it failed (its message, redacted).
    #[error("{0}")]
    Sidecar(String),
    /// The sidecar could not be reached or answered nonsense.
    #[error("failed to reach the credentials sidecar at {url}: {reason}")]
    Unreachable {
        /// The sidecar's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The blocking task running git died.
    #[error("failed to run git: {0}")]
    Task(String),
}

/// A pushed session branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The commit now at the branch's tip on the remote.
    pub commit: String,
}

/// Credentials and settings for doing it all in this process.
#[derive(Clone, Debug)]
pub struct Direct {
    /// git and GitHub credentials.
    pub credentials: Credentials,
    /// Host whose repositories get pull requests.
    pub github_host: String,
    /// GitHub REST API base.
    pub github_api_url: String,
}

/// A pull request to open: the rest (repository, head) is the session's.
#[derive(Clone, Copy, Debug)]
pub struct Proposal<'a> {
    /// Branch the changes were made on (the clone's branch).
    pub base: &'a str,
    /// The session branch.
    pub head: &'a str,
    /// Title.
    pub title: &'a str,
    /// Body (Markdown).
    pub body: &'a str,
}

impl Direct {
    /// The credentials and GitHub settings of `config`.
    pub fn from_config(config: &RunnerConfig) -> Self {
        Self {
            credentials: config.credentials.clone(),
            github_host: config.github_host.clone(),
            github_api_url: config.github_api_url.clone(),
        }
    }

    /// Clones `repo` with `history` commits before its tip into `dest`
    /// (the git process dies with the future).
    pub async fn clone_repo(&self, repo: &Repo, history: u32, dest: &Path) -> Result<Cloned, OpError> {
        Ok(crate::git::clone(repo, history, dest, &self.credentials).await?)
    }

    /// Pushes the local branch of `target` of the repository at `dir` to
    /// its remote ref at `url`.
    pub async fn push(&self, url: &str, dir: &Path, target: &PushTarget) -> Result<Pushed, OpError> {
        let (url, dir, target, creds) =
            (url.to_owned(), PathBuf::from(dir), target.clone(), self.credentials.clone());
        blocking(move || {
            let commit = crate::git::branch_tip(&dir, &target.branch)?;
            crate::git::push(&dir, &url, &target, &creds)?;
            Ok(Pushed { commit: commit.to_string() })
        })
        .await
    }

    /// Opens the draft pull request for `repo`; `None` when it is not on GitHub.
    pub async fn pull_request(&self, repo: &Repo, pr: Proposal<'_>) -> Option<Result<String, OpError>> {
        let github = crate::pr::github_repo(&repo.url, &self.github_host)?;
        let token = self.credentials.github_token.as_deref().or(self.credentials.git_token.as_deref());
        let request =
            PullRequest { repo: &github, head: pr.head, base: pr.base, title: pr.title, body: pr.body };
        Some(crate::pr::open_draft(&self.github_api_url, token, &request).await.map_err(OpError::from))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, OpError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(OpError::from),
        Err(err) => Err(OpError::Task(err.to_string())),
    }
}
