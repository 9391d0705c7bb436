//! GitHub's REST API through octocrab, for one repository: which pull
//! request brought a commit in, comments (the status bot's, found by a hidden
//! marker, created once, then edited), commit statuses, and for pull-request
//! commands: reactions, a user's role, a pull request. octocrab's
//! `HandleRateLimits` retry policy honours `x-ratelimit-*` and `retry-after`
//! (primary and secondary limits) and retries server errors.

use std::sync::Arc;

use octocrab::Octocrab;
use octocrab::service::middleware::retry::{NoOpRateLimitMetrics, RetryConfig};
use serde_json::{Value, json};

/// A GitHub API failure.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// The client could not be built (bad base URL).
    #[error("failed to set up the GitHub client for {api_url}: {source}")]
    Setup {
        /// API base URL.
        api_url: String,
        /// octocrab's error.
        source: octocrab::Error,
    },
    /// A request failed after retries.
    #[error("failed to {action}: {source}")]
    Request {
        /// What was being done.
        action: String,
        /// octocrab's error.
        source: octocrab::Error,
    },
    /// A response lacked what it should hold.
    #[error("failed to {action}: unexpected response")]
    Shape {
        /// What was being done.
        action: String,
    },
    /// A request another caller made failed (its error, shared).
    #[error(transparent)]
    Shared(Arc<GitHubError>),
    /// The source's credentials Secret could not be read.
    #[error("failed to read the source's GitHub credentials: {source}")]
    Secret {
        /// The Kubernetes client's error.
        source: kube::Error,
    },
    /// GitHub App authentication failed.
    #[error("failed to authenticate as the GitHub App: {0}")]
    App(crate::app::AppError),
}

impl GitHubError {
    /// A bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            GitHubError::Shared(inner) => inner.category(),
            GitHubError::Setup { .. } => "setup",
            GitHubError::Request { .. } => "request",
            GitHubError::Shape { .. } => "shape",
            GitHubError::Secret { .. } => "secret",
            GitHubError::App(_) => "github_app",
        }
    }
}

/// A pull request, as pull-request commands need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Open (not closed or merged).
    pub open: bool,
    /// The head commit.
    pub head_sha: String,
    /// The head branch.
    pub head_ref: String,
    /// The head repository (`owner/name`).
    pub head_repository: String,
    /// The head repository's clone URL.
    pub head_clone_url: String,
    /// The base repository (`owner/name`).
    pub base_repository: String,
    /// The base repository's clone URL (where a fork's request pushes).
    pub base_clone_url: String,
    /// The base repository's default branch, when GitHub says.
    pub default_branch: Option<String>,
    /// The head lives in another repository than the base.
    pub fork: bool,
}

/// A comment as GitHub holds it (read by id, never taken from a delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommentRecord {
    /// Its id.
    pub id: u64,
    /// The pull request (or issue) number it is on, when GitHub says.
    pub pull: Option<u64>,
    /// Who wrote it.
    pub login: String,
    /// Written by a bot account.
    pub bot: bool,
    /// The GitHub App it was made through, if any.
    pub app_id: Option<i64>,
    /// Its text now.
    pub body: String,
    /// Its page.
    pub url: String,
    /// When it was written (RFC 3339, GitHub's clock).
    pub created_at: String,
    /// When it was last written or edited (RFC 3339, GitHub's clock).
    pub updated_at: String,
}

/// A review comment on a pull request's diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewComment {
    /// Its id.
    pub id: u64,
    /// Who wrote it.
    pub login: String,
    /// Written by a bot account.
    pub bot: bool,
    /// The file it is on.
    pub path: String,
    /// The line it is on, when GitHub says.
    pub line: Option<u64>,
    /// Its text.
    pub body: String,
    /// GitHub's `author_association` (`OWNER`, `MEMBER`, `COLLABORATOR`,
    /// `CONTRIBUTOR`, `NONE`…), empty when GitHub does not say.
    pub association: String,
}

/// A repository on GitHub (or GitHub Enterprise).
#[derive(Clone)]
pub struct GitHub {
    client: Octocrab,
    repository: String,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").field("repository", &self.repository).finish_non_exhaustive()
    }
}

/// The pull request number a merge or squash commit message names
/// (`Merge pull request #12 from …`, `Title (#12)`).
pub fn pull_from_message(message: &str) -> Option<u64> {
    let first = message.lines().next().unwrap_or_default();
    if let Some(rest) = first.strip_prefix("Merge pull request #") {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let open = first.rfind("(#")?;
    first[open + 2..].strip_suffix(')')?.parse().ok()
}

impl GitHub {
    /// A client for `repository` (`owner/name`) at `api_url` with `token`.
    pub fn new(api_url: &str, token: &str, repository: &str) -> Result<Self, GitHubError> {
        let retry = RetryConfig::HandleRateLimits {
            metrics: Arc::new(NoOpRateLimitMetrics),
            max_retries: 5,
            min_wait_seconds: 1,
            retry_on_forbidden: false,
        };
        let client = Octocrab::builder()
            .base_uri(api_url)
            .and_then(|b| b.personal_token(token.to_string()).add_retry_config(retry).build())
            .map_err(|source| GitHubError::Setup { api_url: api_url.to_string(), source })?;
        Ok(Self { client, repository: repository.to_string() })
    }

    fn route(&self, tail: &str) -> String {
        format!("/repos/{}/{tail}", self.repository)
    }

    async fn get(&self, action: &str, route: String) -> Result<Value, GitHubError> {
        self.client
            .get::<Value, _, ()>(route, None)
            .await
            .map_err(|source| GitHubError::Request { action: action.to_string(), source })
    }

    /// Pull requests containing `sha` (GitHub's commit→pulls lookup), falling
    /// back to the number a merge commit's message names.
    pub async fn pull_for_commit(&self, sha: &str) -> Result<Option<u64>, GitHubError> {
        let pulls =
            self.get("list pull requests of a commit", self.route(&format!("commits/{sha}/pulls"))).await?;
        let numbers: Vec<u64> =
            pulls.as_array().into_iter().flatten().filter_map(|p| p["number"].as_u64()).collect();
        if let Some(first) = numbers.first() {
            return Ok(Some(*first));
        }
        let commit = self.get("read a commit", self.route(&format!("commits/{sha}"))).await?;
        Ok(commit["commit"]["message"].as_str().and_then(pull_from_message))
    }

    /// The login this client acts as, for a token (`GET /user`).
    pub async fn login(&self) -> Result<String, GitHubError> {
        let user = self.get("read the token's user", "/user".into()).await?;
        user["login"]
            .as_str()
            .map(str::to_owned)
            .ok_or(GitHubError::Shape { action: "read the token's user".into() })
    }

    /// The login that wrote comment `id`.
    pub async fn comment_author(&self, id: u64) -> Result<Option<String>, GitHubError> {
        let comment = self.get("read a comment", self.route(&format!("issues/comments/{id}"))).await?;
        Ok(comment["user"]["login"].as_str().map(str::to_owned))
    }

    /// The id of the comment on `pull` that `author` wrote and whose body
    /// contains `marker`. Comments by anyone else are never the bot's, even
    /// when they carry the marker (a person may paste it).
    pub async fn find_comment(
        &self,
        pull: u64,
        marker: &str,
        author: &str,
    ) -> Result<Option<u64>, GitHubError> {
        for page in 1..=20 {
            let route = self.route(&format!("issues/{pull}/comments?per_page=100&page={page}"));
            let comments = self.get("list pull request comments", route).await?;
            let Some(list) = comments.as_array() else { break };
            if let Some(found) = list.iter().find(|c| {
                c["body"].as_str().is_some_and(|b| b.contains(marker))
                    && c["user"]["login"].as_str().is_some_and(|l| l.eq_ignore_ascii_case(author))
            }) {
                return Ok(found["id"].as_u64());
            }
            if list.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// Creates a comment on `pull`; returns its id.
    pub async fn create_comment(&self, pull: u64, body: &str) -> Result<u64, GitHubError> {
        let action = "create the session comment";
        let created: Value = self
            .client
            .post(self.route(&format!("issues/{pull}/comments")), Some(&json!({"body": body})))
            .await
            .map_err(|source| GitHubError::Request { action: action.into(), source })?;
        created["id"].as_u64().ok_or(GitHubError::Shape { action: action.into() })
    }

    /// Replaces the body of comment `id`.
    pub async fn update_comment(&self, id: u64, body: &str) -> Result<(), GitHubError> {
        let _: Value = self
            .client
            .patch(self.route(&format!("issues/comments/{id}")), Some(&json!({"body": body})))
            .await
            .map_err(|source| GitHubError::Request { action: "edit the session comment".into(), source })?;
        Ok(())
    }

    /// Review comments on `pull`'s diff updated at or after `since` (RFC
    /// 3339), oldest first: one page of at most 100.
    pub async fn review_comments(&self, pull: u64, since: &str) -> Result<Vec<ReviewComment>, GitHubError> {
        let route = self.route(&format!("pulls/{pull}/comments?per_page=100&since={since}"));
        let list = self.get("list review comments", route).await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| ReviewComment {
                id: c["id"].as_u64().unwrap_or_default(),
                login: c["user"]["login"].as_str().unwrap_or_default().to_owned(),
                bot: c["user"]["type"] == "Bot",
                path: c["path"].as_str().unwrap_or_default().to_owned(),
                line: c["line"].as_u64().or_else(|| c["original_line"].as_u64()),
                body: c["body"].as_str().unwrap_or_default().to_owned(),
                association: c["author_association"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// The state of the latest status `context` has on `sha`, if any.
    pub async fn latest_status(&self, sha: &str, context: &str) -> Result<Option<String>, GitHubError> {
        // Newest first; a context's latest status is on the first page in
        // all but pathological cases (100 statuses since).
        let route = self.route(&format!("commits/{sha}/statuses?per_page=100"));
        let list = self.get("list commit statuses", route).await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["context"].as_str() == Some(context))
            .and_then(|s| s["state"].as_str().map(str::to_owned)))
    }

    /// Pull request `number`: its head (commit, branch, repository) and state.
    pub async fn pull(&self, number: u64) -> Result<PullRequest, GitHubError> {
        let action = "read the pull request";
        let pull = self.get(action, self.route(&format!("pulls/{number}"))).await?;
        let text =
            |v: &Value| v.as_str().map(str::to_owned).ok_or(GitHubError::Shape { action: action.into() });
        let head_repository = text(&pull["head"]["repo"]["full_name"])?;
        let base_repository = text(&pull["base"]["repo"]["full_name"])?;
        Ok(PullRequest {
            number,
            open: pull["state"].as_str() == Some("open"),
            head_sha: text(&pull["head"]["sha"])?,
            head_ref: text(&pull["head"]["ref"])?,
            head_clone_url: text(&pull["head"]["repo"]["clone_url"])?,
            base_clone_url: text(&pull["base"]["repo"]["clone_url"])?,
            default_branch: pull["base"]["repo"]["default_branch"].as_str().map(str::to_owned),
            fork: !head_repository.eq_ignore_ascii_case(&base_repository),
            head_repository,
            base_repository,
        })
    }

    /// The role of `login` on the repository, or `none` for someone who is
    /// not a collaborator. Two questions, because the permission endpoint
    /// alone cannot tell: on a public repository it answers `read` for any
    /// GitHub user. First `GET collaborators/{login}` (204 for a
    /// collaborator, 404 for anyone else: a stranger costs this one
    /// request), then the permission endpoint (`role_name`: admin, maintain,
    /// write, triage, read; a custom role falls back to its base
    /// `permission`).
    pub async fn role(&self, login: &str) -> Result<String, GitHubError> {
        let action = "read the commenter's permission";
        let check = self.route(&format!("collaborators/{login}"));
        let response = self
            .client
            ._get(check)
            .await
            .map_err(|source| GitHubError::Request { action: action.into(), source })?;
        match response.status().as_u16() {
            204 => {}
            404 => return Ok("none".into()),
            _ => {
                let source = octocrab::map_github_error(response).await.err();
                return Err(match source {
                    Some(source) => GitHubError::Request { action: action.into(), source },
                    None => GitHubError::Shape { action: action.into() },
                });
            }
        }
        let route = self.route(&format!("collaborators/{login}/permission"));
        match self.client.get::<Value, _, ()>(route, None).await {
            Ok(answer) => {
                let known = ["admin", "maintain", "write", "triage", "read", "none"];
                let role = answer["role_name"].as_str().filter(|r| known.contains(r));
                let role = role.or_else(|| answer["permission"].as_str().filter(|r| known.contains(r)));
                role.map(str::to_owned).ok_or(GitHubError::Shape { action: action.into() })
            }
            Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 404 => {
                Ok("none".into())
            }
            Err(source) => Err(GitHubError::Request { action: action.into(), source }),
        }
    }

    /// Comment `id` as GitHub holds it now (an issue comment, or with
    /// `review` a review comment on the diff), or `None` when it is gone.
    /// What a webhook delivery says about a comment is only a pointer: its
    /// author and text are read here before anything is done.
    pub async fn comment(&self, id: u64, review: bool) -> Result<Option<CommentRecord>, GitHubError> {
        let action = "read the comment";
        let kind = if review { "pulls" } else { "issues" };
        let route = self.route(&format!("{kind}/comments/{id}"));
        let c: Value = match self.client.get::<Value, _, ()>(route, None).await {
            Ok(c) => c,
            Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 404 => {
                return Ok(None);
            }
            Err(source) => return Err(GitHubError::Request { action: action.into(), source }),
        };
        let text =
            |v: &Value| v.as_str().map(str::to_owned).ok_or(GitHubError::Shape { action: action.into() });
        // The pull request it is on: `issue_url` ends in /issues/N, a review
        // comment's `pull_request_url` in /pulls/N.
        let on = if review { &c["pull_request_url"] } else { &c["issue_url"] };
        let pull = on.as_str().and_then(|u| u.rsplit('/').next()).and_then(|n| n.parse().ok());
        Ok(Some(CommentRecord {
            id: c["id"].as_u64().ok_or(GitHubError::Shape { action: action.into() })?,
            pull,
            login: text(&c["user"]["login"])?,
            bot: c["user"]["type"] == "Bot",
            app_id: c["performed_via_github_app"]["id"].as_i64(),
            body: c["body"].as_str().unwrap_or_default().to_owned(),
            url: c["html_url"].as_str().unwrap_or_default().to_owned(),
            created_at: text(&c["created_at"])?,
            updated_at: text(c.get("updated_at").unwrap_or(&c["created_at"]))?,
        }))
    }

    /// Adds reaction `content` (`eyes`, `+1`…) to comment `id`: an issue
    /// comment, or with `review` a pull request review comment.
    pub async fn react(&self, id: u64, review: bool, content: &str) -> Result<(), GitHubError> {
        let kind = if review { "pulls" } else { "issues" };
        let _: Value = self
            .client
            .post(self.route(&format!("{kind}/comments/{id}/reactions")), Some(&json!({"content": content})))
            .await
            .map_err(|source| GitHubError::Request { action: "react to the comment".into(), source })?;
        Ok(())
    }

    /// Sets commit status `context` on `sha`.
    pub async fn set_status(
        &self,
        sha: &str,
        context: &str,
        state: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), GitHubError> {
        let mut body = json!({"state": state, "context": context, "description": description});
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        let _: Value = self
            .client
            .post(self.route(&format!("statuses/{sha}")), Some(&body))
            .await
            .map_err(|source| GitHubError::Request { action: "set the commit status".into(), source })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_numbers_come_from_merge_and_squash_messages() {
        assert_eq!(pull_from_message("Merge pull request #42 from acme/fix\n\nFix"), Some(42));
        assert_eq!(pull_from_message("Fix the login (#7)\n\n* details"), Some(7));
        assert_eq!(pull_from_message("Plain commit"), None);
        assert_eq!(pull_from_message("Mentions (#x)"), None);
    }
}
