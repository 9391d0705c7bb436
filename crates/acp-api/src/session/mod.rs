//! The `AgenticSession` resource: one unit of coding-agent work.
//!
//! The spec is the existing Ambient Code Platform's, field for field, with the
//! same defaults and enums, so its manifests apply unchanged. acp's additions are
//! marked "acp addition" in their descriptions. Defaults live in the schema (the
//! API server applies them); the accessors here apply the same defaults for
//! manifests read straight from files, with no API server involved.

mod status;

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{GIT_URL_PATTERN, map_of_free_form_objects};
pub use status::{
    PushedBranch, ReconciledRepo, ReconciledWorkflow, RepoCloneStatus, RunOutcome, SessionPhase,
    SessionResult, SessionStatus, StoppedReason, TokenUsage, WorkflowStatus,
};

/// Default `repos[].branch` and `activeWorkflow.branch`.
pub const DEFAULT_BRANCH: &str = "main";
/// Default `llmSettings.model`.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";
/// Default `llmSettings.temperature`.
pub const DEFAULT_TEMPERATURE: f64 = 0.7;
/// Default `llmSettings.maxTokens`.
pub const DEFAULT_MAX_TOKENS: i64 = 4000;
/// Default `timeout`, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;

/// Desired state of an AgenticSession: which repositories to work on, what to
/// ask the agent, with which model and limits.
#[allow(clippy::duplicated_attributes, reason = "each printcolumn(...) repeats type_ by design")]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vteam.ambient-code",
    version = "v1alpha1",
    kind = "AgenticSession",
    plural = "agenticsessions",
    singular = "agenticsession",
    shortname = "as",
    category = "acp",
    namespaced,
    status = "SessionStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An AgenticSession is one run of a coding agent (the Claude Code CLI) over a set of git repositories. The operator runs it as a Job and reports progress and the result in status.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.llmSettings.model"),
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName", priority = "1"),
    printcolumn(name = "Job", type_ = "string", json_path = ".status.jobName", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    /// List of Git repositories to clone and work with. Each is cloned to
    /// `/workspace/repos/<name>`, where name is the last path segment of the URL
    /// without `.git`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub repos: Vec<RepoSpec>,
    /// Initial prompt used only on first SDK invocation for brand new sessions
    /// (ignored on continuations or workflow restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100000))]
    pub initial_prompt: Option<String>,
    /// A descriptive display name for the agentic session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// Authenticated caller identity captured at creation time (used for
    /// authorization and audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_context: Option<UserContext>,
    /// LLM configuration settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_settings: Option<LlmSettings>,
    /// Hard limit in seconds for the whole session; becomes the runner Job's
    /// `activeDeadlineSeconds`. Exceeding it ends the session as Failed with
    /// reason Timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 300))]
    pub timeout: Option<i64>,
    /// Seconds without any agent event before the runner stops the session.
    /// 0 disables the inactivity stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub inactivity_timeout: Option<i64>,
    /// When true, stop the session when the agent completes its run. acp runs
    /// are one-shot, so a finished run always ends the session; the field is
    /// accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_on_run_finished: Option<bool>,
    /// Key-value pairs injected as environment variables into the runner
    /// container. Names reserved by the runner contract cannot be overridden.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub environment_variables: BTreeMap<String, String>,
    /// Custom MCP server configuration for this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<McpServers>,
    /// Active workflow: a git repository of agent instructions cloned to
    /// `/workspace/workflows/<name>`; its startup prompt comes before
    /// `initialPrompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_workflow: Option<ActiveWorkflow>,
    /// acp addition: upper bound on agent turns (`claude --max-turns`). When
    /// omitted the runner uses its own default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_turns: Option<i64>,
    /// acp addition: name of a Secret in the session's namespace whose keys
    /// override the namespace's `ambient-runner-secrets` for this session
    /// (another model key, another git token). Refused unless the platform's
    /// policy allows it in this namespace (policy `acp-session-runner-secret`,
    /// parameter `runnerSecretNamespaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub runner_secret: Option<String>,
}

/// A repository the agent works on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoSpec {
    /// Git repository URL: `https://`, `ssh://`, `git@host:path` or `file://`.
    #[schemars(length(min = 1, max = 2048), pattern(GIT_URL_PATTERN))]
    pub url: String,
    /// Branch to check out. The API server defaults it to `main`; empty (as
    /// the existing platform's scheduler writes it), or absent from a file
    /// read without the API server, means the remote's default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), extend("default" = "main"))]
    pub branch: Option<String>,
    /// When true, commit the agent's changes to `ambient/<session-name>` and
    /// push them after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub auto_push: Option<bool>,
    /// acp addition: with `autoPush` on a GitHub repository, also open a draft
    /// pull request from the pushed branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<bool>,
    /// acp addition: with `autoPush`, push the agent's commit to this branch
    /// (usually `branch`, a pull request's head) instead of
    /// `ambient/<session-name>`, as a fast-forward only: a branch that moved
    /// since the clone is never overwritten (the push fails and says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub push_branch: Option<String>,
    /// acp addition: with `autoPush`, push to this repository instead of
    /// `url` (a session on a fork's pull request works on the fork's branch
    /// and pushes its commit to a branch of the base repository). The same
    /// URL policies apply as to `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), pattern(GIT_URL_PATTERN))]
    pub push_url: Option<String>,
    /// acp addition: with `autoPush`, push the agent's commit (forced: the
    /// session's own) to this ref of `pushUrl` (else `url`) instead of a
    /// branch: `refs/acp/…`, outside refs/heads and refs/tags, so no CI
    /// that runs on pushes sees it and nothing is merged by it. A request
    /// on a fork's pull request pushes here. Not with `pushBranch` or
    /// `pullRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 10, max = 255), pattern(r"^refs/acp/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"))]
    pub push_ref: Option<String>,
    /// acp addition: the commit `branch` must be at. The run fails before
    /// the agent starts when the branch has moved, so a request approved
    /// for one commit (a fork's pull request) never runs code pushed after
    /// the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 40, max = 64), pattern(r"^[0-9a-f]+$"))]
    pub commit: Option<String>,
}

/// Authenticated caller identity captured at creation time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserContext {
    /// Stable user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub user_id: Option<String>,
    /// Human-readable display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// Group memberships of the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub groups: Vec<String>,
}

/// LLM configuration settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmSettings {
    /// Model name passed to the Claude Code CLI (`--model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), extend("default" = "claude-sonnet-4-6"))]
    pub model: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0), extend("default" = 0.7))]
    pub temperature: Option<f64>,
    /// Maximum output tokens per model response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 4000))]
    pub max_tokens: Option<i64>,
}

/// Custom MCP server configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServers {
    /// Map of server name to server configuration (stdio, http or sse servers),
    /// in Claude Code's `mcpServers` format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "map_of_free_form_objects")]
    pub custom: BTreeMap<String, serde_json::Value>,
    /// Names of default MCP servers to disable for this session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<String>,
}

/// A workflow repository whose instructions drive the session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveWorkflow {
    /// Git repository URL for the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub git_url: Option<String>,
    /// Branch to clone; empty means the remote's default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), extend("default" = "main"))]
    pub branch: Option<String>,
    /// Optional path within the repository (for repositories with several
    /// workflows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
}

impl SessionSpec {
    /// The model, with the CRD default applied.
    pub fn model(&self) -> &str {
        self.llm_settings.as_ref().and_then(|l| l.model.as_deref()).unwrap_or(DEFAULT_MODEL)
    }

    /// `timeout` in seconds, with the CRD default applied.
    pub fn timeout_seconds(&self) -> i64 {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT_SECONDS)
    }
}

impl RepoSpec {
    /// Directory name under `/workspace/repos/`: the URL's last path segment
    /// without a trailing `.git`.
    pub fn name(&self) -> &str {
        repo_dir_name(&self.url)
    }

    /// Whether changes are pushed after the run.
    pub fn auto_push(&self) -> bool {
        self.auto_push.unwrap_or(false)
    }
}

/// The directory name a repository URL clones to: its last path segment
/// without `.git` (`https://github.com/org/app.git` → `app`).
pub fn repo_dir_name(url: &str) -> &str {
    let trimmed = url.trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':']).next().unwrap_or(trimmed);
    last.strip_suffix(".git").unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_dir_names() {
        assert_eq!(repo_dir_name("https://github.com/org/app.git"), "app");
        assert_eq!(repo_dir_name("https://github.com/org/app/"), "app");
        assert_eq!(repo_dir_name("git@github.com:org/tool.git"), "tool");
        assert_eq!(repo_dir_name("git@github.com:tool"), "tool");
        assert_eq!(repo_dir_name("file:///srv/git/lib"), "lib");
    }

    #[test]
    fn accessors_apply_crd_defaults() {
        let spec = SessionSpec::default();
        assert_eq!(spec.model(), DEFAULT_MODEL);
        assert_eq!(spec.timeout_seconds(), 300);
        assert!(!RepoSpec::default().auto_push());
    }
}
