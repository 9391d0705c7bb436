//! The runner contract: what a runner is told about its session, defined
//! once.
//!
//! The operator writes it as environment variables ([`RunnerInput::to_env`]),
//! named as the Ambient Code Platform's runner names them where it has one
//! ([`env`]); the runner reads them back ([`RunnerInput::from_env`]); `acp
//! run FILE` builds it from a manifest ([`RunnerInput::for_session`]).
//! Credentials and tool locations are not part of it: the credentials
//! sidecar gets the session Secret, and the runner's own settings (where
//! the agent CLI is, the sidecar's address) are read by the runner.
//!
//! Reading is pure: it goes through a lookup function, never the process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resume::Resume;
use crate::session::{DEFAULT_MODEL, McpServers, SessionSpec, repo_dir_name};

/// The variables of the contract.
pub mod env {
    /// The session's name; names the push branch.
    pub const SESSION_NAME: &str = "AGENTIC_SESSION_NAME";
    /// The platform's older name for [`SESSION_NAME`], still read.
    pub const SESSION_ID: &str = "SESSION_ID";
    /// The session's namespace.
    pub const NAMESPACE: &str = "AGENTIC_SESSION_NAMESPACE";
    /// The workspace root.
    pub const WORKSPACE: &str = "WORKSPACE_PATH";
    /// Where the short result goes.
    pub const TERMINATION_MESSAGE_PATH: &str = "TERMINATION_MESSAGE_PATH";
    /// `spec.initialPrompt`.
    pub const PROMPT: &str = "INITIAL_PROMPT";
    /// `spec.displayName`.
    pub const DISPLAY_NAME: &str = "DISPLAY_NAME";
    /// `spec.repos`, as JSON.
    pub const REPOS: &str = "REPOS_JSON";
    /// The model.
    pub const MODEL: &str = "LLM_MODEL";
    /// `spec.maxTurns`.
    pub const MAX_TURNS: &str = "MAX_TURNS";
    /// `spec.inactivityTimeout` (seconds; 0 disables it).
    pub const INACTIVITY_TIMEOUT: &str = "INACTIVITY_TIMEOUT";
    /// The session's deadline (seconds), as the Job's.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// `spec.mcpServers`, as JSON.
    pub const MCP_SERVERS: &str = "CUSTOM_MCP_SERVERS";
    /// `spec.environmentVariables`, as JSON.
    pub const AGENT_ENV: &str = "SESSION_ENV_JSON";
    /// `spec.userContext.userId`.
    pub const USER_ID: &str = "USER_ID";
    /// `spec.userContext.displayName`.
    pub const USER_NAME: &str = "USER_NAME";
    /// `spec.activeWorkflow.gitUrl`.
    pub const WORKFLOW_GIT_URL: &str = "ACTIVE_WORKFLOW_GIT_URL";
    /// `spec.activeWorkflow.branch`.
    pub const WORKFLOW_BRANCH: &str = "ACTIVE_WORKFLOW_BRANCH";
    /// `spec.activeWorkflow.path`.
    pub const WORKFLOW_PATH: &str = "ACTIVE_WORKFLOW_PATH";
    /// What a follow-up continues ([`crate::resume::Resume`], as JSON).
    pub const RESUME: &str = crate::resume::RESUME_ENV;

    /// Every variable of the contract, for help texts and checks.
    pub const ALL: &[&str] = &[
        SESSION_NAME,
        NAMESPACE,
        WORKSPACE,
        TERMINATION_MESSAGE_PATH,
        PROMPT,
        DISPLAY_NAME,
        REPOS,
        MODEL,
        MAX_TURNS,
        INACTIVITY_TIMEOUT,
        TIMEOUT,
        MCP_SERVERS,
        AGENT_ENV,
        USER_ID,
        USER_NAME,
        WORKFLOW_GIT_URL,
        WORKFLOW_BRANCH,
        WORKFLOW_PATH,
        RESUME,
    ];
}

/// Workspace root when none is given.
pub const DEFAULT_WORKSPACE: &str = "/workspace";
/// Kubernetes' default termination message path.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// What a runner is told about its session.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerInput {
    /// The session's name ([`env::SESSION_NAME`]).
    pub session_name: String,
    /// Its namespace, for messages ([`env::NAMESPACE`]).
    pub namespace: Option<String>,
    /// Workspace root ([`env::WORKSPACE`]).
    pub workspace: String,
    /// Where the short result goes ([`env::TERMINATION_MESSAGE_PATH`]).
    pub termination_message_path: String,
    /// The user's prompt ([`env::PROMPT`]).
    pub prompt: Option<String>,
    /// Display name, used in commit messages ([`env::DISPLAY_NAME`]).
    pub display_name: Option<String>,
    /// Repositories ([`env::REPOS`]).
    pub repos: Vec<Repo>,
    /// The active workflow ([`env::WORKFLOW_GIT_URL`] and the two after it).
    pub workflow: Option<Workflow>,
    /// Model ([`env::MODEL`]).
    pub model: String,
    /// Bound on agent turns, when the spec sets one ([`env::MAX_TURNS`]).
    pub max_turns: Option<u32>,
    /// Seconds without an agent event before the run stops; `None`
    /// disables it ([`env::INACTIVITY_TIMEOUT`]).
    pub inactivity_timeout: Option<u64>,
    /// The session's deadline in seconds ([`env::TIMEOUT`]).
    pub timeout: Option<u64>,
    /// MCP servers ([`env::MCP_SERVERS`]).
    pub mcp_servers: Option<McpServers>,
    /// Variables passed to the agent ([`env::AGENT_ENV`]).
    pub agent_env: BTreeMap<String, String>,
    /// Who asked ([`env::USER_ID`]).
    pub user_id: Option<String>,
    /// Their display name ([`env::USER_NAME`]).
    pub user_name: Option<String>,
    /// What a follow-up continues ([`env::RESUME`]).
    pub resume: Option<Resume>,
}

/// One repository to clone, as [`env::REPOS`] lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// Clone URL.
    pub url: String,
    /// Branch; the remote's default branch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Directory name under `repos/`; derived from the URL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Commit and push changes to `ambient/<session>`.
    #[serde(default)]
    pub auto_push: bool,
    /// Also open a draft pull request (GitHub).
    #[serde(default)]
    pub pull_request: bool,
    /// Push to this branch, fast-forward only, instead of `ambient/<session>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_branch: Option<String>,
    /// Push to this repository instead of `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
    /// Push to this ref (`refs/acp/…`, no branch) instead of a branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_ref: Option<String>,
    /// The commit `branch` must be at (a pinned request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Repo {
    /// Where the agent's commit is pushed: `pushUrl`, else `url`.
    pub fn push_url(&self) -> &str {
        self.push_url.as_deref().filter(|u| !u.is_empty()).unwrap_or(&self.url)
    }

    /// Directory name under `repos/`.
    pub fn dir_name(&self) -> &str {
        self.name.as_deref().filter(|n| !n.is_empty()).unwrap_or_else(|| repo_dir_name(&self.url))
    }
}

/// The active workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workflow {
    /// Clone URL.
    pub git_url: String,
    /// Branch; the remote's default branch when absent.
    pub branch: Option<String>,
    /// Subdirectory holding the workflow.
    pub path: Option<String>,
}

/// A problem with the runner's inputs.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A required variable is missing.
    #[error("failed to read configuration: {0} is not set")]
    Missing(&'static str),
    /// A variable holds something unusable.
    #[error("failed to read configuration: {name} is invalid: {reason}")]
    Invalid {
        /// Variable name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Where a run happens: what differs between a pod, a local process and
/// `acp run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// Workspace root.
    pub workspace: String,
    /// Where the short result goes.
    pub termination_message_path: String,
}

impl Default for Place {
    /// A runner pod's.
    fn default() -> Self {
        Self {
            workspace: DEFAULT_WORKSPACE.into(),
            termination_message_path: DEFAULT_TERMINATION_MESSAGE_PATH.into(),
        }
    }
}

/// An empty string is absent (the existing platform's scheduler writes
/// empty branches).
fn present(value: Option<&String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty()).cloned()
}

impl RunnerInput {
    /// What the runner of session `name` (in `namespace`, if any) with
    /// `spec` is told, run at `place`, continuing `resume`.
    pub fn for_session(
        name: &str,
        namespace: Option<&str>,
        spec: &SessionSpec,
        place: Place,
        resume: Option<Resume>,
    ) -> Self {
        let repos = spec
            .repos
            .iter()
            .map(|r| Repo {
                url: r.url.clone(),
                branch: present(r.branch.as_ref()),
                name: None,
                auto_push: r.auto_push(),
                pull_request: r.pull_request.unwrap_or(false),
                push_branch: present(r.push_branch.as_ref()),
                push_url: r.push_url.clone(),
                push_ref: present(r.push_ref.as_ref()),
                commit: r.commit.clone(),
            })
            .collect();
        let workflow = spec.active_workflow.as_ref().and_then(|w| {
            w.git_url.clone().map(|git_url| Workflow {
                git_url,
                branch: present(w.branch.as_ref()),
                path: w.path.clone(),
            })
        });
        let user = spec.user_context.as_ref();
        Self {
            session_name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            workspace: place.workspace,
            termination_message_path: place.termination_message_path,
            prompt: spec.initial_prompt.clone(),
            display_name: spec.display_name.clone(),
            repos,
            workflow,
            model: spec.model().to_owned(),
            max_turns: spec.max_turns.and_then(|t| u32::try_from(t).ok()),
            inactivity_timeout: spec
                .inactivity_timeout
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0),
            timeout: u64::try_from(spec.timeout_seconds()).ok(),
            mcp_servers: spec.mcp_servers.clone(),
            agent_env: spec.environment_variables.clone(),
            user_id: user.and_then(|u| u.user_id.clone()),
            user_name: user.and_then(|u| u.display_name.clone()),
            resume,
        }
    }

    /// The contract's variables, in a stable order; unset values are left
    /// out.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let json = |v: serde_json::Result<String>| v.unwrap_or_default();
        let workflow = self.workflow.as_ref();
        let vars: [(&'static str, Option<String>); 19] = [
            (env::SESSION_NAME, Some(self.session_name.clone())),
            (env::NAMESPACE, self.namespace.clone()),
            (env::WORKSPACE, Some(self.workspace.clone())),
            (env::TERMINATION_MESSAGE_PATH, Some(self.termination_message_path.clone())),
            (env::PROMPT, self.prompt.clone()),
            (env::DISPLAY_NAME, self.display_name.clone()),
            (env::REPOS, Some(json(serde_json::to_string(&self.repos)))),
            (env::MODEL, Some(self.model.clone())),
            (env::MAX_TURNS, self.max_turns.map(|t| t.to_string())),
            (env::INACTIVITY_TIMEOUT, self.inactivity_timeout.map(|t| t.to_string())),
            (env::TIMEOUT, self.timeout.map(|t| t.to_string())),
            (env::MCP_SERVERS, self.mcp_servers.as_ref().map(|m| json(serde_json::to_string(m)))),
            (
                env::AGENT_ENV,
                (!self.agent_env.is_empty()).then(|| json(serde_json::to_string(&self.agent_env))),
            ),
            (env::USER_ID, self.user_id.clone()),
            (env::USER_NAME, self.user_name.clone()),
            (env::WORKFLOW_GIT_URL, workflow.map(|w| w.git_url.clone())),
            (env::WORKFLOW_BRANCH, workflow.and_then(|w| w.branch.clone())),
            (env::WORKFLOW_PATH, workflow.and_then(|w| w.path.clone())),
            (env::RESUME, self.resume.as_ref().map(|r| json(serde_json::to_string(r)))),
        ];
        vars.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()
    }

    /// Reads the contract through `get` (normally `std::env::var`), and
    /// checks it ([`RunnerInput::validate`]).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, InputError> {
        let text = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let session_name = text(env::SESSION_NAME)
            .or_else(|| text(env::SESSION_ID))
            .ok_or(InputError::Missing(env::SESSION_NAME))?;
        let mut repos: Vec<Repo> = json(&text, env::REPOS)?.unwrap_or_default();
        for repo in &mut repos {
            repo.branch = present(repo.branch.as_ref());
            repo.push_branch = present(repo.push_branch.as_ref());
            repo.push_ref = present(repo.push_ref.as_ref());
        }
        let max_turns = number(&text, env::MAX_TURNS)?
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(InputError::Invalid { name: env::MAX_TURNS, reason: "must be 1 or more".into() })
            })
            .transpose()?;
        let input = Self {
            session_name,
            namespace: text(env::NAMESPACE),
            workspace: text(env::WORKSPACE).unwrap_or_else(|| DEFAULT_WORKSPACE.into()),
            termination_message_path: text(env::TERMINATION_MESSAGE_PATH)
                .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into()),
            prompt: text(env::PROMPT),
            display_name: text(env::DISPLAY_NAME),
            repos,
            workflow: text(env::WORKFLOW_GIT_URL).map(|git_url| Workflow {
                git_url,
                branch: text(env::WORKFLOW_BRANCH),
                path: text(env::WORKFLOW_PATH),
            }),
            model: text(env::MODEL).unwrap_or_else(|| DEFAULT_MODEL.into()),
            max_turns,
            inactivity_timeout: number(&text, env::INACTIVITY_TIMEOUT)?.filter(|s| *s > 0),
            timeout: number(&text, env::TIMEOUT)?,
            mcp_servers: json(&text, env::MCP_SERVERS)?,
            agent_env: json(&text, env::AGENT_ENV)?.unwrap_or_default(),
            user_id: text(env::USER_ID),
            user_name: text(env::USER_NAME),
            resume: json(&text, env::RESUME)?,
        };
        input.validate()?;
        Ok(input)
    }

    /// Whether a runner can run it: something to do, one directory per
    /// repository, and push refs it may write.
    pub fn validate(&self) -> Result<(), InputError> {
        if self.prompt.is_none() && self.workflow.is_none() {
            return Err(InputError::Invalid {
                name: env::PROMPT,
                reason: "a session needs an initialPrompt or an activeWorkflow".into(),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for repo in &self.repos {
            let invalid = |reason: String| InputError::Invalid { name: env::REPOS, reason };
            let name = repo.dir_name();
            if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
                return Err(invalid(format!("cannot derive a directory name from {:?}", repo.url)));
            }
            if let Some(reason) = push_ref_problem(repo) {
                return Err(invalid(reason));
            }
            if !seen.insert(name.to_owned()) {
                return Err(invalid(format!("two repositories would both clone to repos/{name}")));
            }
        }
        Ok(())
    }
}

/// What is wrong with `repo`'s `pushRef`, if anything.
fn push_ref_problem(repo: &Repo) -> Option<String> {
    let to = repo.push_ref.as_ref()?;
    if !to.starts_with("refs/acp/") || to.split('/').any(|p| p.is_empty() || p.starts_with('.')) {
        Some(format!("pushRef {to:?} is not a ref under refs/acp/"))
    } else if repo.push_branch.is_some() {
        Some(format!("{} has both pushRef and pushBranch; give one", repo.url))
    } else if repo.pull_request {
        Some(format!("{} pushes to a ref ({to}), which cannot head a pull request", repo.url))
    } else {
        None
    }
}

fn json<T: serde::de::DeserializeOwned>(
    text: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, InputError> {
    text(name)
        .map(|raw| serde_json::from_str(&raw))
        .transpose()
        .map_err(|e| InputError::Invalid { name, reason: e.to_string() })
}

fn number(text: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u64>, InputError> {
    text(name)
        .map(|raw| raw.trim().parse::<u64>())
        .transpose()
        .map_err(|e| InputError::Invalid { name, reason: format!("not a non-negative integer ({e})") })
}

#[cfg(test)]
mod tests;
