//! Git remote URLs, parsed once: `https://host/owner/repo(.git)`,
//! `ssh://user@host:port/owner/repo`, the scp form `user@host:owner/repo`,
//! `file:///path` and plain paths. The scp form is rewritten to `ssh://` and
//! everything goes through the `url` crate (WHATWG parsing), so hosts, ports
//! and paths come out the same for every component: the runner (which token
//! for which host, which GitHub repository gets a pull request), git-sync
//! (does a webhook delivery concern this source) and the dashboard (links).

/// A parsed git remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// `https`, `http`, `ssh`, `git` or `file`.
    pub scheme: String,
    /// Host name, lowercased (empty for `file`).
    pub host: String,
    /// Port, when one is given.
    pub port: Option<u16>,
    /// Path without its leading `/`, a trailing `/` or `.git`.
    pub path: String,
}

impl Remote {
    /// Parses `url`; `None` when it is none of the forms above.
    pub fn parse(url: &str) -> Option<Self> {
        let url = url.trim();
        let normalized = if url.contains("://") {
            url.to_owned()
        } else if url.starts_with('/') {
            format!("file://{url}")
        } else {
            // scp form: [user@]host:path, where the host has no '/'.
            let (user_host, path) = url.split_once(':')?;
            if user_host.is_empty() || user_host.contains('/') || path.starts_with("//") {
                return None;
            }
            format!("ssh://{user_host}/{}", path.trim_start_matches('/'))
        };
        let parsed = url::Url::parse(&normalized).ok()?;
        let path = parsed.path().trim_start_matches('/').trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path).to_owned();
        Some(Self {
            scheme: parsed.scheme().to_owned(),
            host: parsed.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: parsed.port(),
            path,
        })
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }

    /// `owner/name` when the path is exactly two segments.
    pub fn owner_and_name(&self) -> Option<(&str, &str)> {
        let mut segments = self.segments();
        let (owner, name) = (segments.next()?, segments.next()?);
        segments.next().is_none().then_some((owner, name))
    }

    /// Whether `self` and `other` name the same repository (host and path,
    /// whatever the scheme, user, port or `.git` suffix; case-insensitive).
    pub fn same_repository(&self, other: &Remote) -> bool {
        self.host == other.host && self.path.eq_ignore_ascii_case(&other.path)
    }

    /// The repository's web page on a known forge (GitHub, GitHub
    /// Enterprise `github.*`, GitLab): `https://host/owner/repo`.
    pub fn web_url(&self) -> Option<String> {
        let known =
            self.host == "github.com" || self.host.starts_with("github.") || self.host.contains("gitlab");
        (known && self.segments().count() >= 2).then(|| format!("https://{}/{}", self.host, self.path))
    }
}

/// The host of a remote URL, lowercased.
pub fn host(url: &str) -> Option<String> {
    Remote::parse(url).map(|r| r.host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_to_host_and_path() {
        let cases = [
            ("https://github.com/acme/app.git", "https", "github.com", None, "acme/app"),
            ("https://GitHub.com/acme/app/", "https", "github.com", None, "acme/app"),
            ("git@github.com:acme/app.git", "ssh", "github.com", None, "acme/app"),
            ("ssh://git@git.example.com:2222/team/app", "ssh", "git.example.com", Some(2222), "team/app"),
            (
                "http://127.0.0.1:9418/github.com/acme/app.git",
                "http",
                "127.0.0.1",
                Some(9418),
                "github.com/acme/app",
            ),
            ("file:///srv/git/app.git", "file", "", None, "srv/git/app"),
            ("/srv/git/app.git", "file", "", None, "srv/git/app"),
        ];
        for (url, scheme, host, port, path) in cases {
            let remote = Remote::parse(url).unwrap_or_else(|| panic!("{url} parses"));
            assert_eq!(
                (remote.scheme.as_str(), remote.host.as_str(), remote.port, remote.path.as_str()),
                (scheme, host, port, path),
                "{url}"
            );
        }
        assert_eq!(Remote::parse("not a url"), None);
        assert_eq!(Remote::parse("git@:acme/app"), None);
    }

    #[test]
    fn the_same_repository_in_any_form() {
        let https = Remote::parse("https://github.com/Acme/App.git").expect("https");
        let scp = Remote::parse("git@github.com:acme/app").expect("scp");
        let other = Remote::parse("git@github.com:acme/app-2").expect("other");
        assert!(https.same_repository(&scp));
        assert!(!https.same_repository(&other));
        // A user name that looks like a host is not stripped from the path.
        let tricky = Remote::parse("https://example.com/git@github.com/acme/app").expect("tricky");
        assert!(!tricky.same_repository(&scp));
    }

    #[test]
    fn web_urls_only_for_known_forges() {
        let web = |u: &str| Remote::parse(u).and_then(|r| r.web_url());
        assert_eq!(web("git@github.com:acme/app.git").as_deref(), Some("https://github.com/acme/app"));
        assert_eq!(
            web("https://gitlab.example.com/g/sub/app").as_deref(),
            Some("https://gitlab.example.com/g/sub/app")
        );
        assert_eq!(web("https://git.example.com/acme/app"), None);
        assert_eq!(web("https://github.com/acme"), None);
    }
}
