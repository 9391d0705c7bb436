//! The runner's inputs: where they come from and how they are validated.
//!
//! In a pod the operator passes everything as environment variables, named as
//! the Ambient Code Platform's runner names them where it has one
//! ([`RunnerConfig::from_env`]). `acp run FILE.yaml` builds the same
//! configuration from a session manifest ([`RunnerConfig::from_spec`]).
//! Parsing is pure: it reads through a lookup function, never the process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use acp_api::session::{McpServers, SessionSpec, repo_dir_name};
use serde::Deserialize;

/// Default bound on agent turns when the spec sets none.
pub const DEFAULT_MAX_TURNS: u32 = 50;
/// Default commit author, as the existing platform's runner.
pub const DEFAULT_GIT_USER_NAME: &str = "Ambient Code Bot";
/// Default commit author email.
pub const DEFAULT_GIT_USER_EMAIL: &str = "bot@ambient-code.local";
/// Kubernetes' default termination message path.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// Everything one run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerConfig {
    /// Session name (`AGENTIC_SESSION_NAME`); names the push branch.
    pub session_name: String,
    /// Session namespace (`AGENTIC_SESSION_NAMESPACE`), for messages.
    pub namespace: Option<String>,
    /// Workspace root (`WORKSPACE_PATH`, default `/workspace`).
    pub workspace: PathBuf,
    /// The user's prompt (`INITIAL_PROMPT`).
    pub prompt: Option<String>,
    /// Display name (`DISPLAY_NAME`), used in commit messages.
    pub display_name: Option<String>,
    /// Repositories (`REPOS_JSON`).
    pub repos: Vec<RepoConfig>,
    /// The active workflow (`ACTIVE_WORKFLOW_GIT_URL`, `_BRANCH`, `_PATH`).
    pub workflow: Option<WorkflowConfig>,
    /// Model (`LLM_MODEL`).
    pub model: String,
    /// Bound on agent turns (`MAX_TURNS`).
    pub max_turns: u32,
    /// Stop after this long without an agent event (`INACTIVITY_TIMEOUT`
    /// seconds; 0 or unset disables it).
    pub inactivity_timeout: Option<Duration>,
    /// MCP servers (`CUSTOM_MCP_SERVERS`, the JSON of `spec.mcpServers`).
    pub mcp_servers: Option<McpServers>,
    /// `spec.environmentVariables` (`SESSION_ENV_JSON`), passed to the agent.
    pub agent_env: BTreeMap<String, String>,
    /// Credentials; never logged. In a pod the runner holds none (the
    /// sidecar does) and these are empty but for the placeholder key.
    pub credentials: Credentials,
    /// The credentials sidecar (`ACP_CREDENTIALS_URL`): when set, cloning,
    /// pushing and pull requests are asked of it.
    pub credentials_url: Option<String>,
    /// Commit author (`GIT_USER_NAME`, `GIT_USER_EMAIL`).
    pub git_author: (String, String),
    /// The Claude Code CLI to run (`CLAUDE_BIN`, default `claude` on PATH).
    pub claude_bin: PathBuf,
    /// Where the short result goes (`TERMINATION_MESSAGE_PATH`).
    pub termination_message_path: PathBuf,
    /// Host whose repositories get pull requests (`GITHUB_HOST`, default
    /// `github.com`; set it for GitHub Enterprise).
    pub github_host: String,
    /// GitHub REST API base (`GITHUB_API_URL`, default `https://api.github.com`).
    pub github_api_url: String,
    /// What a follow-up continues (`RESUME_JSON`).
    pub resume: Option<acp_api::resume::Resume>,
}

/// One repository to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoConfig {
    /// Clone URL.
    pub url: String,
    /// Branch; the remote's default branch when absent.
    #[serde(default)]
    pub branch: Option<String>,
    /// Directory name under `repos/`; derived from the URL when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Commit and push changes to `ambient/<session>`.
    #[serde(default)]
    pub auto_push: bool,
    /// Also open a draft pull request (GitHub).
    #[serde(default)]
    pub pull_request: bool,
    /// Push to this branch, fast-forward only, instead of `ambient/<session>`.
    #[serde(default)]
    pub push_branch: Option<String>,
    /// Push to this repository instead of `url`.
    #[serde(default)]
    pub push_url: Option<String>,
    /// Push to this ref (`refs/acp/…`, no branch) instead of a branch.
    #[serde(default)]
    pub push_ref: Option<String>,
    /// The commit `branch` must be at (a pinned request).
    #[serde(default)]
    pub commit: Option<String>,
    /// History to fetch beyond the tip (shallow clones of remote URLs):
    /// deeper for a follow-up, to show the commits since its parent's turn.
    #[serde(skip)]
    pub history: u32,
}

/// Where a repository's changes are pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushTarget {
    /// The local branch the agent's changes are committed on.
    pub branch: String,
    /// The remote ref it is pushed to (`refs/heads/…`, or `refs/acp/…`).
    pub remote: String,
    /// Whether the push may replace what is there (the session's own ref).
    pub force: bool,
}

impl PushTarget {
    /// How the remote ref is shown and recorded: a branch by its name,
    /// another ref in full.
    pub fn shown(&self) -> &str {
        self.remote.strip_prefix("refs/heads/").unwrap_or(&self.remote)
    }
}

/// History a follow-up fetches, so that the commits since its parent's turn
/// can be listed (a longer gap is reported as such).
pub const FOLLOW_UP_HISTORY: u32 = 100;

impl RepoConfig {
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
pub struct WorkflowConfig {
    /// Clone URL.
    pub git_url: String,
    /// Branch; the remote's default branch when absent.
    pub branch: Option<String>,
    /// Subdirectory holding the workflow.
    pub path: Option<String>,
}

/// Credentials the operator provides. `Debug` never prints them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `ANTHROPIC_API_KEY`.
    pub anthropic_api_key: Option<String>,
    /// `ANTHROPIC_BASE_URL` (a proxy, a gateway, or a test server).
    pub anthropic_base_url: Option<String>,
    /// `GIT_TOKEN`: https token for any host.
    pub git_token: Option<String>,
    /// `GITHUB_TOKEN`: https token for GitHub, and for pull requests.
    pub github_token: Option<String>,
    /// `GITLAB_TOKEN`: https token for GitLab.
    pub gitlab_token: Option<String>,
    /// `GITHUB_HOST`: a GitHub Enterprise host that gets `GITHUB_TOKEN` too.
    pub github_host: Option<String>,
    /// `GIT_SSH_KEY_FILE`: private key for ssh URLs.
    pub ssh_key_file: Option<PathBuf>,
    /// `GIT_KNOWN_HOSTS_FILE`: known_hosts used to verify ssh servers.
    pub known_hosts_file: Option<PathBuf>,
}

impl Credentials {
    /// The git part, for libgit2's callbacks (tokens by host, key files).
    pub fn git(&self) -> acp_git::Credentials {
        acp_git::Credentials {
            git_token: self.git_token.clone(),
            github_token: self.github_token.clone(),
            gitlab_token: self.gitlab_token.clone(),
            github_host: self.github_host.clone(),
            ssh_key: self.ssh_key_file.clone().map(acp_git::auth::Material::File),
            known_hosts: self.known_hosts_file.clone().map(acp_git::auth::Material::File),
            hints: acp_git::auth::Hints {
                https: "authentication required: no git token for this host",
                ssh_key: "authentication required: GIT_SSH_KEY_FILE is not set",
                known_hosts: "cannot verify ssh host key: GIT_KNOWN_HOSTS_FILE is not set",
            },
            ..acp_git::Credentials::default()
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Credentials")
            .field("anthropic_api_key", &set(&self.anthropic_api_key))
            .field("anthropic_base_url", &self.anthropic_base_url)
            .field("git_token", &set(&self.git_token))
            .field("github_token", &set(&self.github_token))
            .field("gitlab_token", &set(&self.gitlab_token))
            .field("ssh_key_file", &self.ssh_key_file)
            .field("known_hosts_file", &self.known_hosts_file)
            .finish()
    }
}

impl Credentials {
    /// Every secret value, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        [&self.anthropic_api_key, &self.git_token, &self.github_token, &self.gitlab_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Reads credentials from the environment variables named above.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            anthropic_api_key: get("ANTHROPIC_API_KEY"),
            anthropic_base_url: get("ANTHROPIC_BASE_URL"),
            git_token: get("GIT_TOKEN"),
            github_token: get("GITHUB_TOKEN"),
            gitlab_token: get("GITLAB_TOKEN"),
            github_host: get("GITHUB_HOST").filter(|h| !h.trim().is_empty()),
            ssh_key_file: get("GIT_SSH_KEY_FILE").map(PathBuf::from),
            known_hosts_file: get("GIT_KNOWN_HOSTS_FILE").map(PathBuf::from),
        }
    }
}

/// A problem with the runner's inputs (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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

fn non_empty(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.trim().is_empty())
}

fn parse_json<T: serde::de::DeserializeOwned>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ConfigError> {
    non_empty(get, name)
        .map(|raw| serde_json::from_str(&raw))
        .transpose()
        .map_err(|e| ConfigError::Invalid { name, reason: e.to_string() })
}

fn parse_number(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<u64>, ConfigError> {
    non_empty(get, name)
        .map(|raw| raw.trim().parse::<u64>())
        .transpose()
        .map_err(|e| ConfigError::Invalid { name, reason: format!("not a non-negative integer ({e})") })
}

impl RunnerConfig {
    /// Reads the configuration through `get` (normally `std::env::var`).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self::read(get)?;
        config.validate()?;
        Ok(config)
    }

    fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let session_name = non_empty(get, "AGENTIC_SESSION_NAME")
            .or_else(|| non_empty(get, "SESSION_ID"))
            .ok_or(ConfigError::Missing("AGENTIC_SESSION_NAME"))?;
        let mut repos: Vec<RepoConfig> = parse_json(get, "REPOS_JSON")?.unwrap_or_default();
        for repo in &mut repos {
            // An empty branch (the existing platform's scheduler writes one) is the default branch.
            repo.branch = repo.branch.take().filter(|b| !b.trim().is_empty());
        }
        let resume: Option<acp_api::resume::Resume> = parse_json(get, acp_api::resume::RESUME_ENV)?;
        for repo in &mut repos {
            let follows = resume.as_ref().is_some_and(|r| r.since.contains_key(&repo.url));
            repo.history = if follows { FOLLOW_UP_HISTORY } else { 0 };
        }
        let workflow = non_empty(get, "ACTIVE_WORKFLOW_GIT_URL").map(|git_url| WorkflowConfig {
            git_url,
            branch: non_empty(get, "ACTIVE_WORKFLOW_BRANCH"),
            path: non_empty(get, "ACTIVE_WORKFLOW_PATH"),
        });
        let max_turns = match parse_number(get, "MAX_TURNS")? {
            None => DEFAULT_MAX_TURNS,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError::Invalid { name: "MAX_TURNS", reason: "must be 1 or more".into() })?,
        };
        let config = Self {
            session_name,
            namespace: non_empty(get, "AGENTIC_SESSION_NAMESPACE"),
            workspace: non_empty(get, "WORKSPACE_PATH").unwrap_or_else(|| "/workspace".into()).into(),
            prompt: non_empty(get, "INITIAL_PROMPT"),
            display_name: non_empty(get, "DISPLAY_NAME"),
            repos,
            workflow,
            model: non_empty(get, "LLM_MODEL").unwrap_or_else(|| acp_api::session::DEFAULT_MODEL.into()),
            max_turns,
            inactivity_timeout: parse_number(get, "INACTIVITY_TIMEOUT")?
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            mcp_servers: parse_json(get, "CUSTOM_MCP_SERVERS")?,
            agent_env: parse_json(get, "SESSION_ENV_JSON")?.unwrap_or_default(),
            credentials: Credentials::from_lookup(get),
            credentials_url: non_empty(get, acp_api::constants::runner_pod::CREDENTIALS_URL_ENV),
            git_author: (
                non_empty(get, "GIT_USER_NAME").unwrap_or_else(|| DEFAULT_GIT_USER_NAME.into()),
                non_empty(get, "GIT_USER_EMAIL").unwrap_or_else(|| DEFAULT_GIT_USER_EMAIL.into()),
            ),
            claude_bin: non_empty(get, "CLAUDE_BIN").unwrap_or_else(|| "claude".into()).into(),
            termination_message_path: non_empty(get, "TERMINATION_MESSAGE_PATH")
                .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into())
                .into(),
            github_host: non_empty(get, "GITHUB_HOST").unwrap_or_else(|| "github.com".into()),
            github_api_url: non_empty(get, "GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".into()),
            resume,
        };
        Ok(config)
    }

    /// Builds the configuration of session `name` from its spec; credentials
    /// and tool locations still come from `get`.
    pub fn from_spec(
        name: &str,
        spec: &SessionSpec,
        workspace: PathBuf,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::read(&|key| match key {
            "AGENTIC_SESSION_NAME" => Some(name.to_owned()),
            "WORKSPACE_PATH" => Some(workspace.to_string_lossy().into_owned()),
            "TERMINATION_MESSAGE_PATH" => {
                Some(workspace.join(".acp/termination-message").to_string_lossy().into_owned())
            }
            _ => get(key),
        })?;
        config.prompt = spec.initial_prompt.clone();
        config.display_name = spec.display_name.clone();
        config.repos = spec
            .repos
            .iter()
            .map(|r| RepoConfig {
                url: r.url.clone(),
                branch: r.branch.clone().filter(|b| !b.trim().is_empty()),
                name: None,
                auto_push: r.auto_push(),
                pull_request: r.pull_request.unwrap_or(false),
                push_branch: r.push_branch.clone().filter(|b| !b.trim().is_empty()),
                push_url: r.push_url.clone(),
                push_ref: r.push_ref.clone().filter(|b| !b.trim().is_empty()),
                commit: r.commit.clone(),
                history: 0,
            })
            .collect();
        config.workflow = spec.active_workflow.as_ref().and_then(|w| {
            w.git_url.clone().map(|git_url| WorkflowConfig {
                git_url,
                branch: w.branch.clone().filter(|b| !b.trim().is_empty()),
                path: w.path.clone(),
            })
        });
        config.model = spec.model().to_owned();
        config.max_turns = spec.max_turns.and_then(|t| u32::try_from(t).ok()).unwrap_or(DEFAULT_MAX_TURNS);
        config.inactivity_timeout = spec
            .inactivity_timeout
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        config.mcp_servers = spec.mcp_servers.clone();
        config.agent_env = spec.environment_variables.clone();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.prompt.is_none() && self.workflow.is_none() {
            return Err(ConfigError::Invalid {
                name: "INITIAL_PROMPT",
                reason: "a session needs an initialPrompt or an activeWorkflow".into(),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for repo in &self.repos {
            let name = repo.dir_name();
            if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
                return Err(ConfigError::Invalid {
                    name: "REPOS_JSON",
                    reason: format!("cannot derive a directory name from {:?}", repo.url),
                });
            }
            if let Some(to) = &repo.push_ref {
                let why = if !to.starts_with("refs/acp/")
                    || to.split('/').any(|p| p.is_empty() || p.starts_with('.'))
                {
                    Some(format!("pushRef {to:?} is not a ref under refs/acp/"))
                } else if repo.push_branch.is_some() {
                    Some(format!("{} has both pushRef and pushBranch; give one", repo.url))
                } else if repo.pull_request {
                    Some(format!("{} pushes to a ref ({to}), which cannot head a pull request", repo.url))
                } else {
                    None
                };
                if let Some(reason) = why {
                    return Err(ConfigError::Invalid { name: "REPOS_JSON", reason });
                }
            }
            if !seen.insert(name.to_owned()) {
                return Err(ConfigError::Invalid {
                    name: "REPOS_JSON",
                    reason: format!("two repositories would both clone to repos/{name}"),
                });
            }
        }
        Ok(())
    }

    /// `ambient/<session-name>`.
    pub fn push_branch(&self) -> String {
        format!("{}{}", acp_api::constants::SESSION_BRANCH_PREFIX, self.session_name)
    }

    /// Where `repo`'s changes go: its `pushBranch` (fast-forward only),
    /// its `pushRef` (the session's own, forced), else
    /// `ambient/<session-name>` (the session's own, replaced by a re-run).
    pub fn push_target(&self, repo: &RepoConfig) -> PushTarget {
        match (&repo.push_branch, &repo.push_ref) {
            (Some(branch), _) => {
                PushTarget { branch: branch.clone(), remote: format!("refs/heads/{branch}"), force: false }
            }
            (None, Some(to)) => PushTarget { branch: self.push_branch(), remote: to.clone(), force: true },
            (None, None) => {
                let branch = self.push_branch();
                PushTarget { remote: format!("refs/heads/{branch}"), branch, force: true }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_the_platforms_variables() {
        let get = lookup(&[
            ("AGENTIC_SESSION_NAME", "fix-bug"),
            ("INITIAL_PROMPT", "fix it"),
            (
                "REPOS_JSON",
                r#"[{"url":"https://h/o/app.git","branch":"dev","autoPush":true},{"url":"https://h/o/lib.git","branch":""}]"#,
            ),
            ("LLM_MODEL", "claude-opus-4-1"),
            ("MAX_TURNS", "7"),
            ("INACTIVITY_TIMEOUT", "0"),
            ("ANTHROPIC_API_KEY", "sk-secret"),
        ]);
        let config = RunnerConfig::from_env(&get).expect("valid");
        assert_eq!(config.repos[0].dir_name(), "app");
        assert_eq!(config.repos[1].branch, None, "an empty branch is the remote's default");
        assert!(config.repos[0].auto_push);
        assert_eq!(config.model, "claude-opus-4-1");
        assert_eq!(config.max_turns, 7);
        assert_eq!(config.inactivity_timeout, None);
        assert_eq!(config.push_branch(), "ambient/fix-bug");
        assert_eq!(config.workspace, PathBuf::from("/workspace"));
        assert!(!format!("{config:?}").contains("sk-secret"));
    }

    #[test]
    fn rejects_bad_input_with_the_variable_name() {
        let err = RunnerConfig::from_env(&lookup(&[("INITIAL_PROMPT", "x")])).expect_err("no name");
        assert_eq!(err.to_string(), "failed to read configuration: AGENTIC_SESSION_NAME is not set");
        let err = RunnerConfig::from_env(&lookup(&[
            ("AGENTIC_SESSION_NAME", "s"),
            ("INITIAL_PROMPT", "x"),
            ("REPOS_JSON", "[{"),
        ]))
        .expect_err("bad json");
        assert!(err.to_string().contains("REPOS_JSON is invalid"), "{err}");
        let err = RunnerConfig::from_env(&lookup(&[
            ("AGENTIC_SESSION_NAME", "s"),
            ("INITIAL_PROMPT", "x"),
            ("REPOS_JSON", r#"[{"url":"https://a/x/app"},{"url":"https://b/y/app.git"}]"#),
        ]))
        .expect_err("clash");
        assert!(err.to_string().contains("both clone to repos/app"), "{err}");
        let err =
            RunnerConfig::from_env(&lookup(&[("AGENTIC_SESSION_NAME", "s")])).expect_err("nothing to do");
        assert!(err.to_string().contains("initialPrompt or an activeWorkflow"), "{err}");
    }
}
