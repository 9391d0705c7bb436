//! A SessionSource's binding to pull requests: which code repositories'
//! pull requests it serves with `/acp` commands and `@acp` follow-ups, the
//! session each request creates, how far a comment's flags may go, and the
//! repository role each command needs.
//!
//! The binding is read from the cluster (the SessionSource), never from the
//! pull request: a PR author cannot widen what a comment may do. Which
//! sessions a pull request asked for is read from the source's inventory
//! (git-sync's record of the files it applied), never from a session's own
//! labels or name.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schedule::SessionTemplate;

/// Default branch requests are committed to.
pub const DEFAULT_REQUESTS_BRANCH: &str = "acp/requests";
/// Default largest `--max-turns`.
pub const DEFAULT_MAX_TURNS: i64 = 50;
/// Default longest `--timeout`, in seconds.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: i64 = 3600;

/// Pull requests a SessionSource serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestBinding {
    /// Code repositories whose pull requests are served: `owner/name` or
    /// `owner/*`.
    #[schemars(length(min = 1, max = 64), extend("items" = {
        "type": "string",
        "pattern": r"^[A-Za-z0-9_.-]+/([A-Za-z0-9_.-]+|\*)$",
        "maxLength": 200
    }))]
    pub repositories: Vec<String>,
    /// Branch of this source's repository where each request is committed as
    /// a session manifest (git-sync applies it like the source's ref).
    /// Defaults to `acp/requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub requests_branch: Option<String>,
    /// The session a request creates. Its `repos` are set from the pull
    /// request (its head branch); everything else comes from here.
    pub template: SessionTemplate,
    /// Models `--model` may name. Empty: only the template's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed_models: Vec<String>,
    /// Largest `--max-turns`. Defaults to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_turns: Option<i64>,
    /// Longest `--timeout`, in seconds. Defaults to 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_timeout_seconds: Option<i64>,
    /// The least repository role each command needs.
    #[serde(default)]
    pub roles: CommandRoles,
    /// GitHub App ids whose bots may give commands; comments of other bots
    /// are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed_bot_app_ids: Vec<i64>,
}

impl PullRequestBinding {
    /// `requestsBranch` with its default.
    pub fn requests_branch(&self) -> &str {
        self.requests_branch.as_deref().unwrap_or(DEFAULT_REQUESTS_BRANCH)
    }

    /// Whether `repository` (`owner/name`) is one this binding serves.
    pub fn serves(&self, repository: &str) -> bool {
        let Some((owner, name)) = repository.split_once('/') else { return false };
        self.repositories.iter().any(|pattern| match pattern.split_once('/') {
            Some((o, "*")) => o.eq_ignore_ascii_case(owner),
            Some((o, n)) => o.eq_ignore_ascii_case(owner) && n.eq_ignore_ascii_case(name),
            None => false,
        })
    }
}

/// A repository role on GitHub, lowest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Anyone (not a collaborator).
    #[default]
    None,
    /// Read access.
    Read,
    /// Triage access.
    Triage,
    /// Write access.
    Write,
    /// Maintain access.
    Maintain,
    /// Admin access.
    Admin,
}

impl Role {
    /// The role GitHub names `name` (`role_name`), `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "read" => Self::Read,
            "triage" => Self::Triage,
            "write" => Self::Write,
            "maintain" => Self::Maintain,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    /// The role as GitHub writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Triage => "triage",
            Self::Write => "write",
            Self::Maintain => "maintain",
            Self::Admin => "admin",
        }
    }
}

/// The least role per command. Unset: `run`, `followUp`, `retry` and `stop`
/// need write, `approve` maintain, `status` and `help` read (any
/// collaborator). Someone who is not a collaborator gets no answer to any
/// command, whatever is set here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandRoles {
    /// `/acp run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Role>,
    /// `@acp …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<Role>,
    /// `/acp stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Role>,
    /// `/acp retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Role>,
    /// `/acp approve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<Role>,
    /// `/acp status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Role>,
    /// `/acp help`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Role>,
}

impl CommandRoles {
    /// The least role command `verb` needs.
    pub fn needed(&self, verb: &str) -> Role {
        let (set, default) = match verb {
            "run" => (self.run, Role::Write),
            "follow-up" => (self.follow_up, Role::Write),
            "stop" => (self.stop, Role::Write),
            "retry" => (self.retry, Role::Write),
            "approve" => (self.approve, Role::Maintain),
            "status" => (self.status, Role::Read),
            "help" => (self.help, Role::Read),
            _ => (None, Role::Admin),
        };
        set.unwrap_or(default)
    }
}

/// Whether `name` can be a GitHub repository's `owner/name`: two parts of
/// letters, digits, `_`, `.` and `-`, neither `.` nor `..`.
pub fn valid_repository(name: &str) -> bool {
    let part = |p: &str| {
        !matches!(p, "" | "." | "..") && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    name.split_once('/').is_some_and(|(owner, repo)| part(owner) && part(repo))
}

/// Whether `login` can be a GitHub login: letters, digits and `-` (a bot's
/// ends in `[bot]`).
pub fn valid_login(login: &str) -> bool {
    let name = login.strip_suffix("[bot]").unwrap_or(login);
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A pull request's thread: `owner/repo` and the pull request's number.
/// Its requests are files under `owner/repo/pr-N/` on the requests branch
/// ([`fmt::Display`]), its sessions are named `<repo>-prN-<comment id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadPath {
    /// `owner/repo`, lowercase (GitHub names are case-insensitive).
    pub repository: String,
    /// The pull request's number.
    pub pull: u64,
}

impl fmt::Display for ThreadPath {
    /// The thread's directory on the requests branch: `owner/repo/pr-N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/pr-{}", self.repository, self.pull)
    }
}

impl ThreadPath {
    /// The thread of pull request `pull` of `repository` (`owner/repo`).
    pub fn new(repository: &str, pull: u64) -> Self {
        Self { repository: repository.to_ascii_lowercase(), pull }
    }

    /// Reads `owner/repo/pr-N/<rest>`, giving the thread and `<rest>`
    /// (the file, or `pending/<file>`); `None` for any other path.
    /// Only the form [`fmt::Display`] writes is read (lowercase, the
    /// number without leading zeros): one thread has one directory.
    pub fn parse(path: &str) -> Option<(Self, &str)> {
        let mut parts = path.splitn(4, '/');
        let (owner, repo, pull) = (parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next().unwrap_or_default();
        let repository = format!("{owner}/{repo}");
        let number: u64 = pull.strip_prefix("pr-")?.parse().ok()?;
        let thread = Self::new(&repository, number);
        let canonical = valid_repository(&repository)
            && thread.repository == repository
            && pull == format!("pr-{number}");
        canonical.then_some((thread, rest))
    }

    /// The start of every session name of the thread (`webapp-pr7-`).
    pub fn name_prefix(&self) -> String {
        let name = self.repository.rsplit('/').next().unwrap_or(&self.repository);
        let clean: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(30).collect();
        format!("{}-pr{}-", clean.trim_matches('-'), self.pull)
    }

    /// The session asked for by comment `id`. Issue comments and review
    /// comments are numbered apart on GitHub, so a review comment's name
    /// carries an `r` (`webapp-pr7-r1234`).
    pub fn session_name(&self, id: u64, review: bool) -> String {
        format!("{}{}{id}", self.name_prefix(), if review { "r" } else { "" })
    }
}

/// The sessions of a thread in the order they were asked for, from each
/// one's parent link (`(name, parent)`): each request links the thread's
/// latest, so the links form one chain, whatever the comment ids (an edited
/// older comment gets an old id but joins at the end). Sessions outside the
/// chain (a broken link) follow, by name.
pub fn chain(links: &[(String, Option<String>)]) -> Vec<String> {
    let names: std::collections::HashSet<&str> = links.iter().map(|(n, _)| n.as_str()).collect();
    let child_of: std::collections::HashMap<&str, &str> = links
        .iter()
        .filter_map(|(name, parent)| {
            parent.as_deref().filter(|p| names.contains(p)).map(|p| (p, name.as_str()))
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let root = links.iter().find(|(_, parent)| parent.as_deref().is_none_or(|p| !names.contains(p)));
    let mut at = root.map(|(name, _)| name.as_str());
    while let Some(name) = at.filter(|n| !out.iter().any(|o| o == n)) {
        out.push(name.to_owned());
        at = child_of.get(name).copied();
    }
    let mut rest: Vec<String> = links.iter().map(|(n, _)| n.clone()).filter(|n| !out.contains(n)).collect();
    rest.sort();
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_match_by_name_or_owner_glob_and_roles_order() {
        let binding = PullRequestBinding {
            repositories: vec!["acme/webapp".into(), "tools/*".into()],
            ..Default::default()
        };
        assert!(binding.serves("acme/webapp") && binding.serves("ACME/WebApp"));
        assert!(binding.serves("tools/anything"));
        assert!(!binding.serves("acme/other") && !binding.serves("evil/webapp") && !binding.serves("tools"));
        assert!(Role::Write > Role::Triage && Role::Admin > Role::Maintain);
        assert_eq!(Role::parse("maintain"), Some(Role::Maintain));
        assert_eq!(Role::parse("custom-role"), None);
        let roles = CommandRoles { status: Some(Role::Read), ..Default::default() };
        assert_eq!(roles.needed("run"), Role::Write);
        assert_eq!(roles.needed("status"), Role::Read);
        assert_eq!(roles.needed("approve"), Role::Maintain);
        assert_eq!(roles.needed("anything else"), Role::Admin);
    }

    #[test]
    fn a_thread_path_reads_what_it_writes_and_nothing_else() {
        let thread = ThreadPath::new("Acme/WebApp", 7);
        assert_eq!(thread.to_string(), "acme/webapp/pr-7");
        assert_eq!(
            ThreadPath::parse("acme/webapp/pr-7/webapp-pr7-1.yaml"),
            Some((thread.clone(), "webapp-pr7-1.yaml"))
        );
        assert_eq!(
            ThreadPath::parse("acme/webapp/pr-7/pending/x.yaml").map(|(_, rest)| rest),
            Some("pending/x.yaml")
        );
        for other in [
            "acme/webapp/pr-007/x",
            "Acme/webapp/pr-7/x",
            "acme/webapp/pr-+7/x",
            "acme/../pr-7/x",
            "acme/webapp/7/x.yaml",
            "acme/webapp/pr-/x",
            "acme/webapp/pr-7x/y",
            "acme/pr-7",
            "../webapp/pr-7/x",
            "acme//pr-7/x",
        ] {
            assert_eq!(ThreadPath::parse(other), None, "{other}");
        }
        assert!(
            valid_repository("acme/.github") && !valid_repository("acme/x/y") && !valid_repository("acme/..")
        );
        assert!(
            valid_login("alice") && valid_login("acp-app[bot]") && !valid_login("a/b") && !valid_login("")
        );
        assert_eq!(thread.name_prefix(), "webapp-pr7-");
        assert_eq!(thread.session_name(1001, false), "webapp-pr7-1001");
        assert_eq!(thread.session_name(1001, true), "webapp-pr7-r1001");
        let odd = ThreadPath::new("acme/.My_Repo.", 3);
        assert_eq!(odd.name_prefix(), "my-repo-pr3-", "a DNS label: no dots, underscores or edge dashes");
    }
}
