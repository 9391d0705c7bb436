//! The runner's configuration: the session as the runner contract
//! ([`acp_api::runner`]) describes it, and the runner's own settings and
//! credentials from its environment.
//!
//! In a pod the operator passes everything as environment variables
//! ([`RunnerConfig::from_env`]). `acp run FILE.yaml` builds the same
//! configuration from a session manifest ([`RunnerConfig::from_spec`]).
//! Parsing is pure: it reads through a lookup function, never the process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use acp_api::runner::{InputError, Place, Repo, RunnerInput};
use acp_api::session::SessionSpec;

/// Default bound on agent turns when the spec sets none.
pub const DEFAULT_MAX_TURNS: u32 = 50;
/// Default commit author, as the existing platform's runner.
pub const DEFAULT_GIT_USER_NAME: &str = "Ambient Code Bot";
/// Default commit author email.
pub const DEFAULT_GIT_USER_EMAIL: &str = "bot@ambient-code.local";

/// Everything one run needs: the session as the contract says
/// ([`RunnerInput`]) and the runner's own settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerConfig {
    /// The session, as the operator (or `acp run`) describes it.
    pub session: RunnerInput,
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
    /// Host whose repositories get pull requests (`GITHUB_HOST`, default
    /// `github.com`; set it for GitHub Enterprise).
    pub github_host: String,
    /// GitHub REST API base (`GITHUB_API_URL`, default `https://api.github.com`).
    pub github_api_url: String,
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

fn non_empty(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.trim().is_empty())
}

impl RunnerConfig {
    /// Reads the configuration through `get` (normally `std::env::var`).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, InputError> {
        Ok(Self::new(RunnerInput::from_env(get)?, get))
    }

    /// Runs `session`, with the runner's own settings and credentials
    /// read through `get`.
    pub fn new(session: RunnerInput, get: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            session,
            credentials: Credentials::from_lookup(get),
            credentials_url: non_empty(get, acp_api::constants::runner_pod::CREDENTIALS_URL_ENV),
            git_author: (
                non_empty(get, "GIT_USER_NAME").unwrap_or_else(|| DEFAULT_GIT_USER_NAME.into()),
                non_empty(get, "GIT_USER_EMAIL").unwrap_or_else(|| DEFAULT_GIT_USER_EMAIL.into()),
            ),
            claude_bin: non_empty(get, "CLAUDE_BIN").unwrap_or_else(|| "claude".into()).into(),
            github_host: non_empty(get, "GITHUB_HOST").unwrap_or_else(|| "github.com".into()),
            github_api_url: non_empty(get, "GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".into()),
        }
    }

    /// Builds the configuration of session `name` from its spec, run in
    /// `workspace`; credentials and tool locations still come from `get`.
    pub fn from_spec(
        name: &str,
        spec: &SessionSpec,
        workspace: &Path,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, InputError> {
        let place = Place {
            workspace: workspace.to_string_lossy().into_owned(),
            termination_message_path: workspace
                .join(".acp/termination-message")
                .to_string_lossy()
                .into_owned(),
        };
        let session = RunnerInput::for_session(name, None, spec, place, None);
        session.validate()?;
        Ok(Self::new(session, get))
    }

    /// The workspace root.
    pub fn workspace(&self) -> &Path {
        Path::new(&self.session.workspace)
    }

    /// Where the short result goes.
    pub fn termination_message_path(&self) -> &Path {
        Path::new(&self.session.termination_message_path)
    }

    /// Bound on agent turns: the spec's, else [`DEFAULT_MAX_TURNS`].
    pub fn max_turns(&self) -> u32 {
        self.session.max_turns.unwrap_or(DEFAULT_MAX_TURNS)
    }

    /// How long the agent may stay silent; `None` disables the bound.
    pub fn inactivity_timeout(&self) -> Option<Duration> {
        self.session.inactivity_timeout.map(Duration::from_secs)
    }

    /// History to fetch beyond the tip of `repo` (shallow clones of remote
    /// URLs): deeper for a follow-up, to show the commits since its
    /// parent's turn.
    pub fn history(&self, repo: &Repo) -> u32 {
        let follows = self.session.resume.as_ref().is_some_and(|r| r.since.contains_key(&repo.url));
        if follows { FOLLOW_UP_HISTORY } else { 0 }
    }

    /// `ambient/<session-name>`.
    pub fn push_branch(&self) -> String {
        format!("{}{}", acp_api::constants::SESSION_BRANCH_PREFIX, self.session.session_name)
    }

    /// Where `repo`'s changes go: its `pushBranch` (fast-forward only),
    /// its `pushRef` (the session's own, forced), else
    /// `ambient/<session-name>` (the session's own, replaced by a re-run).
    pub fn push_target(&self, repo: &Repo) -> PushTarget {
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
    use std::collections::BTreeMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_contract_and_the_runners_own_settings() {
        let get = lookup(&[
            ("AGENTIC_SESSION_NAME", "fix-bug"),
            ("INITIAL_PROMPT", "fix it"),
            ("REPOS_JSON", r#"[{"url":"https://h/o/app.git","branch":"dev","autoPush":true}]"#),
            ("INACTIVITY_TIMEOUT", "0"),
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("CLAUDE_BIN", "/opt/claude"),
        ]);
        let config = RunnerConfig::from_env(&get).expect("valid");
        assert_eq!(config.max_turns(), DEFAULT_MAX_TURNS, "unset in the spec");
        assert_eq!(config.inactivity_timeout(), None);
        assert_eq!(config.push_branch(), "ambient/fix-bug");
        assert_eq!(config.workspace(), Path::new("/workspace"));
        assert_eq!(config.claude_bin, PathBuf::from("/opt/claude"));
        assert_eq!(config.git_author.0, DEFAULT_GIT_USER_NAME);
        assert_eq!(config.history(&config.session.repos[0]), 0, "not a follow-up");
        assert!(!format!("{config:?}").contains("sk-secret"));
    }

    #[test]
    fn a_follow_up_fetches_history_of_the_repositories_it_continues() {
        let resume = r#"{"parent":"first","since":{"https://h/o/app.git":"abc"}}"#;
        let get = lookup(&[
            ("AGENTIC_SESSION_NAME", "next"),
            ("INITIAL_PROMPT", "more"),
            ("REPOS_JSON", r#"[{"url":"https://h/o/app.git"},{"url":"https://h/o/lib.git"}]"#),
            ("RESUME_JSON", resume),
        ]);
        let config = RunnerConfig::from_env(&get).expect("valid");
        assert_eq!(config.history(&config.session.repos[0]), FOLLOW_UP_HISTORY);
        assert_eq!(config.history(&config.session.repos[1]), 0);
    }

    #[test]
    fn a_manifest_is_checked_as_the_contract_is() {
        let spec: SessionSpec = serde_json::from_value(serde_json::json!({
            "initialPrompt": "x",
            "repos": [{"url": "https://a/x/app"}, {"url": "https://b/y/app.git"}]
        }))
        .expect("spec");
        let err = RunnerConfig::from_spec("s", &spec, Path::new("/tmp/ws"), &|_| None).expect_err("clash");
        assert!(err.to_string().contains("both clone to repos/app"), "{err}");
    }
}
