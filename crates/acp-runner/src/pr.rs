//! Draft pull requests for pushed session branches (GitHub, via octocrab).
//!
//! A repository is on GitHub when its URL's host is `github.com`, or the host
//! named by `GITHUB_HOST` (GitHub Enterprise; `GITHUB_API_URL` then points at
//! its API). A re-run finds the pull request it opened before instead of
//! failing on GitHub's "already exists".

use octocrab::Octocrab;

/// Owner and repository name of a GitHub URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHubRepo {
    /// Owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub name: String,
}

/// Parses `https://host/owner/name(.git)` or `git@host:owner/name(.git)` when
/// `host` is `github_host`.
pub fn github_repo(url: &str, github_host: &str) -> Option<GitHubRepo> {
    let remote = acp_api::remote::Remote::parse(url)?;
    // GITHUB_HOST may name a port (`host:port`) where a server listens on one.
    let authority = remote.port.map_or_else(|| remote.host.clone(), |p| format!("{}:{p}", remote.host));
    if !remote.host.eq_ignore_ascii_case(github_host) && !authority.eq_ignore_ascii_case(github_host) {
        return None;
    }
    let (owner, name) = remote.owner_and_name()?;
    Some(GitHubRepo { owner: owner.to_owned(), name: name.to_owned() })
}

/// A pull request failure.
#[derive(Debug, thiserror::Error)]
pub enum PrError {
    /// No token to call the API with.
    #[error("failed to open a pull request for {repo}: GITHUB_TOKEN is not set")]
    NoToken {
        /// `owner/name`.
        repo: String,
    },
    /// The API call failed.
    #[error("failed to open a pull request for {repo}: {source}")]
    Api {
        /// `owner/name`.
        repo: String,
        /// octocrab's error.
        source: octocrab::Error,
    },
}

/// What to open.
pub struct PullRequest<'a> {
    /// Repository.
    pub repo: &'a GitHubRepo,
    /// Branch with the changes.
    pub head: &'a str,
    /// Branch to merge into.
    pub base: &'a str,
    /// Title.
    pub title: &'a str,
    /// Body (Markdown).
    pub body: &'a str,
}

/// Opens a draft pull request, or returns the open one for the same head.
pub async fn open_draft(api_url: &str, token: Option<&str>, pr: &PullRequest<'_>) -> Result<String, PrError> {
    let full = format!("{}/{}", pr.repo.owner, pr.repo.name);
    let token = token.ok_or_else(|| PrError::NoToken { repo: full.clone() })?;
    let api = |source| PrError::Api { repo: full.clone(), source };
    let client = Octocrab::builder()
        .base_uri(api_url)
        .map_err(api)?
        .personal_token(token.to_owned())
        .build()
        .map_err(api)?;
    let pulls = client.pulls(&pr.repo.owner, &pr.repo.name);
    let created = pulls.create(pr.title, pr.head, pr.base).body(pr.body).draft(Some(true)).send().await;
    match created {
        Ok(created) => Ok(created.html_url.map(|u| u.to_string()).unwrap_or_default()),
        Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 422 => {
            let existing = pulls
                .list()
                .state(octocrab::params::State::Open)
                .head(format!("{}:{}", pr.repo.owner, pr.head))
                .send()
                .await
                .map_err(api)?;
            existing.items.into_iter().find_map(|p| p.html_url.map(|u| u.to_string())).ok_or_else(|| {
                api(octocrab::Error::Other {
                    source: "GitHub refused the pull request (422) and none is open for this branch".into(),
                    backtrace: std::backtrace::Backtrace::capture(),
                })
            })
        }
        Err(source) => Err(api(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_github_urls_only() {
        let repo = |o: &str, n: &str| Some(GitHubRepo { owner: o.into(), name: n.into() });
        assert_eq!(github_repo("https://github.com/acme/app.git", "github.com"), repo("acme", "app"));
        assert_eq!(
            github_repo("https://x-access-token@github.com/acme/app", "github.com"),
            repo("acme", "app")
        );
        assert_eq!(github_repo("git@github.com:acme/app.git", "github.com"), repo("acme", "app"));
        assert_eq!(github_repo("https://gitlab.com/acme/app.git", "github.com"), None);
        assert_eq!(github_repo("https://github.com/acme", "github.com"), None);
        assert_eq!(github_repo("http://127.0.0.1:9000/acme/app.git", "127.0.0.1:9000"), repo("acme", "app"));
    }
}
