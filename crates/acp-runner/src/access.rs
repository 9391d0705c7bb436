//! How the runner reaches what needs credentials: with them at hand
//! ([`Access::Direct`]: `acp run`, the process executor), or by asking the
//! credentials sidecar ([`Access::Sidecar`]: the runner in a pod, whose
//! process tree, the agent's included, holds no credential). What is cloned,
//! pushed and where is the session's configuration, never the caller's choice.

use std::path::Path;

use crate::broker::{self, Target};
use acp_api::runner::Repo;

use crate::config::RunnerConfig;
use crate::git::Cloned;
use crate::ops::{Direct, OpError, Proposal, Pushed};

/// How the runner reaches what needs credentials.
pub enum Access {
    /// Credentials in this process.
    Direct(Direct),
    /// The credentials sidecar on loopback.
    Sidecar(broker::client::Client),
}

impl Access {
    /// The sidecar when the configuration names one, else this process's credentials.
    pub fn for_config(config: &RunnerConfig) -> Self {
        match &config.credentials_url {
            Some(url) => Access::Sidecar(broker::client::Client::new(url)),
            None => Access::Direct(Direct::from_config(config)),
        }
    }

    /// Clones `target` (`repo` with `history` commits before its tip, into
    /// `dest`).
    pub async fn clone_repo(
        &self,
        target: Target,
        repo: &Repo,
        history: u32,
        dest: &Path,
    ) -> Result<Cloned, OpError> {
        match self {
            Access::Direct(direct) => direct.clone_repo(repo, history, dest).await,
            Access::Sidecar(client) => client.clone_target(target).await,
        }
    }

    /// Pushes `branch` of repository `index` (at `dir`, URL `url`); `force`
    /// for the session's own branch.
    pub async fn push(
        &self,
        index: usize,
        url: &str,
        dir: &Path,
        target: &crate::config::PushTarget,
    ) -> Result<Pushed, OpError> {
        match self {
            Access::Direct(direct) => direct.push(url, dir, target).await,
            Access::Sidecar(client) => client.push(index).await,
        }
    }

    /// Opens the draft pull request of repository `index`; `None` when it is
    /// not on GitHub.
    pub async fn pull_request(
        &self,
        index: usize,
        repo: &Repo,
        pr: Proposal<'_>,
    ) -> Option<Result<String, OpError>> {
        match self {
            Access::Direct(direct) => direct.pull_request(repo, pr).await,
            Access::Sidecar(client) => client.pull_request(index, pr).await.transpose(),
        }
    }
}
