//! The credentials sidecar of a runner pod, and its loopback protocol.
//!
//! In a pod the agent runs in the `runner` container with no credential at
//! all: no model key and no git token in its environment, its files or any
//! process it can see. The `credentials` container runs [`server::serve`] on
//! a loopback port. It holds the credentials and does for the runner the few
//! things that need them, each fixed by the session's configuration (which
//! the operator wrote), never by the request:
//! - clone each of the session's repositories and its workflow, once, into
//!   the shared workspace ([`CloneRequest`]);
//! - force-push `ambient/<session>` of a repository with `autoPush` to that
//!   repository's URL ([`PushRequest`]) and open its draft pull request
//!   ([`PullRequestRequest`]);
//! - forward the agent's model calls to the model API, replacing whatever
//!   key they carry with the real one: only the provider's inference
//!   endpoints (`POST /v1/messages` and `/v1/messages/count_tokens`), never
//!   another route of the gateway ([`endpoints`]).
//!
//! The agent can reach the port too (the pod's containers share a network):
//! it can do what the runner does anyway, and no more. No answer carries a
//! credential: error messages are redacted.

pub mod client;
mod endpoints;
mod proxy;
pub mod server;

use serde::{Deserialize, Serialize};

/// The sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// It would listen where more than this pod could reach it.
    #[error("failed to start: {0} is not a loopback address; the sidecar serves this pod only")]
    NotLoopback(std::net::SocketAddr),
    /// The model API's address is unusable.
    #[error("failed to read ANTHROPIC_BASE_URL {url:?}: {reason}")]
    BadUpstream {
        /// The configured URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Serving failed.
    #[error("failed to serve: {0}")]
    Io(#[from] std::io::Error),
}

/// Path prefix of the sidecar's own API; everything else is for the model
/// proxy, which forwards only the model API's inference endpoints.
pub const API_PREFIX: &str = "/acp/v1";

/// What to clone: the session's repository at an index, or its workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// `spec.repos[i]`.
    Repo(usize),
    /// `spec.activeWorkflow`.
    Workflow,
}

/// `POST /acp/v1/clone`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// What to clone.
    pub target: Target,
}

/// The answer to a clone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClonedReply {
    /// Checked-out branch.
    pub branch: String,
    /// Checked-out commit.
    pub commit: String,
}

/// `POST /acp/v1/push`: push the session branch of `spec.repos[repo]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Index in `spec.repos`.
    pub repo: usize,
}

/// The answer to a push.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PushedReply {
    /// The commit pushed.
    pub commit: String,
}

/// `POST /acp/v1/pull-request`: open the draft pull request of `spec.repos[repo]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequestRequest {
    /// Index in `spec.repos`.
    pub repo: usize,
    /// Title.
    pub title: String,
    /// Body (Markdown).
    pub body: String,
}

/// The answer to a pull request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PullRequestReply {
    /// The pull request's page; `None` when the repository is not on GitHub.
    pub url: Option<String>,
}

/// `GET /acp/v1/ready`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyReply {
    /// Whether the sidecar holds a model API key to add.
    pub model_key: bool,
}

/// Any failed request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong (redacted).
    pub error: String,
}
