//! `AgenticSession.status`: written only by the operator, via server-side apply.
//!
//! It keeps every field of the existing platform's status (so its tools keep
//! reading it) and adds `jobName`, `message` and the bounded `result` block.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// Observed state of an AgenticSession.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// Spec generation that the operator has fully reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Pending"))]
    pub phase: Option<SessionPhase>,
    /// When the session runner started executing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the session reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Current reconciliation state for each repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reconciled_repos: Vec<ReconciledRepo>,
    /// Current reconciliation state for the active workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_workflow: Option<ReconciledWorkflow>,
    /// Time of the last recorded agent activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<Time>,
    /// Reason the session was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<StoppedReason>,
    /// SDK session identifier captured for resume support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub sdk_session_id: Option<String>,
    /// Number of times the SDK has been restarted during this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_restart_count: Option<i64>,
    /// Detailed condition set describing reconciliation progress; see the
    /// operator documentation for the types and reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
    /// acp addition: number of the current run (1 for the first). A new run
    /// starts when a terminal session's spec changes, when a running session's
    /// spec changes (superseding the run), or on a restart request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// acp addition: the value of the `ambient-code.io/desired-phase`
    /// annotation the operator last acted on, so a restart request starts
    /// exactly one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub last_handled_desired_phase: Option<String>,
    /// acp addition: name of the runner Job of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub job_name: Option<String>,
    /// acp addition: one human-readable line about the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
    /// acp addition: outcome of the last finished run, from the runner's
    /// termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<SessionResult>,
}

/// Lifecycle phase of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SessionPhase {
    /// Accepted, waiting for prerequisites (secrets, workspace).
    #[default]
    Pending,
    /// Children (Secret, PVC, Job) are being created.
    Creating,
    /// The runner is working.
    Running,
    /// A stop was requested and the runner is being killed.
    Stopping,
    /// Stopped on request or for inactivity.
    Stopped,
    /// The run ended successfully.
    Completed,
    /// The run ended in failure.
    Failed,
}

impl SessionPhase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Creating,
        Self::Running,
        Self::Stopping,
        Self::Stopped,
        Self::Completed,
        Self::Failed,
    ];

    /// True for phases that end a run: Stopped, Completed, Failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::Completed | Self::Failed)
    }

    /// The phase as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Creating => "Creating",
            Self::Running => "Running",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for SessionPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoppedReason {
    /// A user requested the stop (`ambient-code.io/desired-phase: Stopped`).
    User,
    /// No agent activity for `spec.inactivityTimeout` seconds.
    Inactivity,
}

/// Clone state of one repository (existing platform field).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciledRepo {
    /// Repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Deprecated: use currentActiveBranch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// All local branches in this repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    /// Currently checked out branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_active_branch: Option<String>,
    /// Default branch of the remote repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// Directory name under /workspace/repos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Clone state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RepoCloneStatus>,
    /// When the clone finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned_at: Option<Time>,
}

/// Clone state of a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RepoCloneStatus {
    /// Clone in progress.
    Cloning,
    /// Cloned and checked out.
    Ready,
    /// Clone failed.
    Failed,
}

/// State of the active workflow (existing platform field).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciledWorkflow {
    /// Workflow repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_url: Option<String>,
    /// Workflow branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Optional path within the workflow repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Workflow state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkflowStatus>,
    /// When the workflow was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
}

/// State of a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WorkflowStatus {
    /// Clone in progress.
    Cloning,
    /// Cloned and in use.
    Active,
    /// Clone failed.
    Failed,
}

/// How a run ended, as the runner reports it. Maps one-to-one to the runner's
/// exit codes: success 0, agentError 1, prerequisiteFailed 2, stopped 143.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunOutcome {
    /// The agent finished its task.
    Success,
    /// The agent (or the model API) reported an error.
    AgentError,
    /// The run could not start: clone, credentials or spec problems.
    PrerequisiteFailed,
    /// Stopped by a signal, a stop request or inactivity.
    Stopped,
}

impl RunOutcome {
    /// The runner's exit code for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Success => 0,
            Self::AgentError => 1,
            Self::PrerequisiteFailed => 2,
            Self::Stopped => 143,
        }
    }
}

/// The result of a finished run: bounded so it always fits in status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResult {
    /// How the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunOutcome>,
    /// The agent's final message, cut to 4096 bytes on a UTF-8 boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub summary: Option<String>,
    /// True when the agent reported an error result.
    #[serde(default)]
    pub is_error: bool,
    /// Number of agent turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<i64>,
    /// Total model cost reported by the CLI, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    /// Wall-clock duration of the agent run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Token usage summed over the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Claude Code session id, for resuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub sdk_session_id: Option<String>,
    /// Branches pushed by the runner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub pushed_branches: Vec<PushedBranch>,
    /// URLs of pull requests the runner opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub pull_requests: Vec<String>,
    /// What went wrong, when the run failed; cut to 4096 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub error: Option<String>,
    /// With outcome `stopped`: whether a stop request or inactivity ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<StoppedReason>,
}

/// Token counts reported by the model API. Also reads the Claude Code CLI's
/// snake_case `usage` object, so the runner parses it straight into this type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Input tokens.
    #[serde(default, alias = "input_tokens")]
    pub input_tokens: i64,
    /// Output tokens.
    #[serde(default, alias = "output_tokens")]
    pub output_tokens: i64,
    /// Input tokens read from the prompt cache.
    #[serde(default, alias = "cache_read_input_tokens")]
    pub cache_read_input_tokens: i64,
    /// Input tokens written to the prompt cache.
    #[serde(default, alias = "cache_creation_input_tokens")]
    pub cache_creation_input_tokens: i64,
}

/// A branch the runner pushed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushedBranch {
    /// Repository URL.
    #[schemars(length(max = 2048))]
    pub repo: String,
    /// Branch name, `ambient/<session-name>`.
    #[schemars(length(max = 255))]
    pub branch: String,
    /// Commit SHA at the branch tip after the push.
    #[schemars(length(max = 64))]
    pub commit: String,
}
