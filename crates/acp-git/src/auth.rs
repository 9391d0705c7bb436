//! Git credentials and the libgit2 callbacks that hand them out.
//!
//! Two shapes meet here: a SessionSource's secret (Flux's key names: `token`
//! or `username`/`password` for https, `identity` and `known_hosts` for ssh,
//! used for every host), and the runner's environment (`GIT_TOKEN`,
//! `GITHUB_TOKEN`, `GITLAB_TOKEN` picked by host; an ssh key and known_hosts
//! as files). Credentials never enter URLs: libgit2 asks, a callback answers
//! once (a second ask means the answer was rejected), and ssh host keys are
//! checked against known_hosts.
//!
//! Tokens are picked by exact host: `github.com` and its subdomains (and a
//! GitHub Enterprise host named as such) get `GITHUB_TOKEN`, `gitlab.com`
//! and its subdomains `GITLAB_TOKEN`, any other host only `GIT_TOKEN`.
//!
//! Redirects: libgit2 follows a redirect of its first request and then asks
//! for credentials for the URL it was redirected to. Every operation here
//! sets [`NO_REDIRECTS`] (libgit2 then refuses a redirect to another host)
//! and answers only for the URL it targets ([`callbacks_for`]) or that
//! URL's origin ([`callbacks_for_origin`]), which also covers a redirect to
//! another port or path of the same host, which libgit2 follows whatever
//! the policy.

use std::cell::Cell;
use std::path::PathBuf;

use acp_api::remote::Remote;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks, RemoteRedirect};

/// The redirect policy of every fetch and push: libgit2 refuses a redirect
/// to another host (it still follows one to the same host, whose
/// credentials the callbacks refuse when the URL or origin differs).
pub const NO_REDIRECTS: RemoteRedirect = RemoteRedirect::None;

/// A secret's content, or the file holding it.
#[derive(Clone, PartialEq, Eq)]
pub enum Material {
    /// The content itself.
    Text(String),
    /// A file to read when it is needed.
    File(PathBuf),
}

impl Material {
    /// The content, read from its file if it is one; the error says which.
    pub(crate) fn text(&self) -> Result<String, String> {
        match self {
            Material::Text(text) => Ok(text.clone()),
            Material::File(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    }

    fn read(&self) -> Result<String, git2::Error> {
        self.text().map_err(|message| git2::Error::from_str(&message))
    }
}

/// How a missing credential is named in errors, in the words of where it
/// would come from (a secret's key, or an environment variable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hints {
    /// No https credential for the host.
    pub https: &'static str,
    /// No ssh key.
    pub ssh_key: &'static str,
    /// No known_hosts.
    pub known_hosts: &'static str,
}

impl Default for Hints {
    fn default() -> Self {
        Self {
            https: "authentication required: no https credentials",
            ssh_key: "authentication required: no ssh key",
            known_hosts: "cannot verify the ssh host key: no known_hosts",
        }
    }
}

/// Credentials for git remotes. `Debug` never prints a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// https user and password (or token) offered to every host.
    pub basic: Option<(String, String)>,
    /// https token for any host, when `basic` is unset (`GIT_TOKEN`).
    pub git_token: Option<String>,
    /// https token for GitHub hosts (`GITHUB_TOKEN`).
    pub github_token: Option<String>,
    /// https token for GitLab hosts (`GITLAB_TOKEN`).
    pub gitlab_token: Option<String>,
    /// A GitHub Enterprise host (`GITHUB_HOST`) that gets `github_token`
    /// too, besides `github.com` and its subdomains.
    pub github_host: Option<String>,
    /// ssh private key.
    pub ssh_key: Option<Material>,
    /// ssh known_hosts, which every ssh server's key must be in.
    pub known_hosts: Option<Material>,
    /// Words for missing credentials.
    pub hints: Hints,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |present: bool| if present { "<set>" } else { "<unset>" };
        f.debug_struct("Credentials")
            .field("basic", &set(self.basic.is_some()))
            .field("git_token", &set(self.git_token.is_some()))
            .field("github_token", &set(self.github_token.is_some()))
            .field("gitlab_token", &set(self.gitlab_token.is_some()))
            .field("github_host", &self.github_host)
            .field("ssh_key", &set(self.ssh_key.is_some()))
            .field("known_hosts", &set(self.known_hosts.is_some()))
            .finish()
    }
}

impl Credentials {
    /// From a SessionSource's secret (`get` reads one key): `token` (user
    /// `x-access-token`) or `username` + `password`; `identity` and
    /// `known_hosts` for ssh.
    pub fn from_secret(get: impl Fn(&str) -> Option<String>) -> Self {
        let token = get("token");
        let user = get("username").or_else(|| token.as_ref().map(|_| "x-access-token".to_owned()));
        let password = get("password").or(token);
        Self {
            basic: password.map(|p| (user.unwrap_or_else(|| "git".into()), p)),
            ssh_key: get("identity").map(Material::Text),
            known_hosts: get("known_hosts").map(Material::Text),
            hints: Hints {
                https: "authentication required: set secretRef to a secret with 'token' or 'username'/'password'",
                ssh_key: "authentication required: the secret has no 'identity' key",
                known_hosts: "cannot verify the ssh host key: the secret has no 'known_hosts' key",
            },
            ..Self::default()
        }
    }

    /// The https user and password to offer `url`, if any: `basic` for
    /// every host; else the token for the URL's host, matched exactly
    /// (`evilgithub.com` is not GitHub, `gitlab.example.com` not GitLab).
    pub fn https_for(&self, url: &str) -> Option<(&str, &str)> {
        if let Some((user, password)) = &self.basic {
            return Some((user, password));
        }
        let host = acp_api::remote::host(url).unwrap_or_default();
        let generic = self.git_token.as_deref();
        let enterprise = self.github_host.as_deref().is_some_and(|h| same_host(&host, h));
        if enterprise || within(&host, "github.com") {
            self.github_token.as_deref().or(generic).map(|t| ("x-access-token", t))
        } else if within(&host, "gitlab.com") {
            self.gitlab_token.as_deref().or(generic).map(|t| ("oauth2", t))
        } else {
            generic.map(|t| ("x-access-token", t))
        }
    }
}

/// `host` without the trailing dot of a fully qualified name.
fn bare(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// Whether `host` and `other` are the same host name (case-insensitive).
fn same_host(host: &str, other: &str) -> bool {
    !host.is_empty() && bare(host).eq_ignore_ascii_case(bare(other.trim()))
}

/// Whether `host` is `domain` or a subdomain of it (case-insensitive).
fn within(host: &str, domain: &str) -> bool {
    let host = bare(host).to_ascii_lowercase();
    host == domain
        || host.strip_suffix(domain).and_then(|sub| sub.strip_suffix('.')).is_some_and(|sub| !sub.is_empty())
}

/// Whether two remote URLs have the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (Remote::parse(a), Remote::parse(b)) {
        (Some(a), Some(b)) => a.scheme == b.scheme && a.host == b.host && a.port == b.port,
        _ => a == b,
    }
}

/// libgit2's error in words that say more, where there are some: a refused
/// redirect becomes "the server redirected to another URL…".
pub fn explain(error: git2::Error) -> git2::Error {
    let message = error.message();
    let redirect = message.starts_with("cannot redirect from")
        || message == "unexpected redirect"
        || message.starts_with("too many redirects");
    if !redirect {
        return error;
    }
    git2::Error::new(
        error.code(),
        error.class(),
        format!(
            "the server redirected to another URL; acp does not follow redirects with credentials ({message})"
        ),
    )
}

/// Which URLs a callback answers for.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Any (the caller checks nothing).
    Any,
    /// Exactly this URL.
    Url(&'a str),
    /// This URL's scheme, host and port.
    Origin(&'a str),
}

/// Callbacks answering one credential question per operation (libgit2 asks
/// again after a rejection; a second ask fails) and checking ssh host keys
/// against `creds.known_hosts`. TLS certificates are left to libgit2, which
/// verifies them against the system's roots.
///
/// They answer whatever URL libgit2 names, a redirect's target included:
/// prefer [`callbacks_for`] or [`callbacks_for_origin`].
pub fn callbacks<'a>(creds: &'a Credentials, attempts: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    callbacks_inner(creds, attempts, Scope::Any)
}

/// [`callbacks`] that answer only for `url`: libgit2 asking on behalf of any
/// other URL (an `insteadOf` rewrite from a repository's configuration,
/// which someone else may have written, or a redirect) gets no credential.
pub fn callbacks_for<'a>(
    creds: &'a Credentials,
    attempts: &'a Cell<u32>,
    url: &'a str,
) -> RemoteCallbacks<'a> {
    callbacks_inner(creds, attempts, Scope::Url(url))
}

/// [`callbacks`] that answer only for `url`'s origin (scheme, host and
/// port): a redirect to another path of the same server still gets the
/// credentials (a renamed repository), one to another port or host does not.
pub fn callbacks_for_origin<'a>(
    creds: &'a Credentials,
    attempts: &'a Cell<u32>,
    url: &'a str,
) -> RemoteCallbacks<'a> {
    callbacks_inner(creds, attempts, Scope::Origin(url))
}

fn callbacks_inner<'a>(
    creds: &'a Credentials,
    attempts: &'a Cell<u32>,
    scope: Scope<'a>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| {
        let refused = match scope {
            Scope::Any => None,
            Scope::Url(expected) => (url != expected).then_some(expected),
            Scope::Origin(expected) => (!same_origin(url, expected)).then_some(expected),
        };
        if let Some(expected) = refused {
            return Err(git2::Error::from_str(&format!(
                "refusing credentials for {url}: this operation may only authenticate to {expected} \
                 (a redirect or a URL rewrite leads elsewhere)"
            )));
        }
        attempts.set(attempts.get() + 1);
        if attempts.get() > 1 {
            return Err(git2::Error::from_str("authentication failed: the credentials were rejected"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return match &creds.ssh_key {
                Some(Material::File(path)) => Cred::ssh_key(username.unwrap_or("git"), None, path, None),
                Some(Material::Text(key)) => {
                    Cred::ssh_key_from_memory(username.unwrap_or("git"), None, key, None)
                }
                None => Err(git2::Error::from_str(creds.hints.ssh_key)),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some((user, password)) = creds.https_for(url)
        {
            let user = if creds.basic.is_some() { user } else { username.unwrap_or(user) };
            return Cred::userpass_plaintext(user, password);
        }
        Err(git2::Error::from_str(creds.hints.https))
    });
    callbacks.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(known_hosts) = &creds.known_hosts else {
            return Err(git2::Error::from_str(creds.hints.known_hosts));
        };
        let text = known_hosts.read()?;
        match hostkey.hostkey() {
            Some(key) if crate::known_hosts::matches(&text, host, key) => {
                Ok(CertificateCheckStatus::CertificateOk)
            }
            _ => Err(git2::Error::from_str(&format!("ssh host key of {host} is not in known_hosts"))),
        }
    });
    callbacks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_token_by_host() {
        let creds = Credentials {
            git_token: Some("generic".into()),
            github_token: Some("gh".into()),
            gitlab_token: Some("gl".into()),
            ..Default::default()
        };
        for url in [
            "https://github.com/o/r.git",
            "https://GitHub.COM/o/r.git",
            "https://github.com./o/r.git",
            "https://api.github.com/o/r.git",
            "https://x-access-token@github.com/o/r.git",
            "https://github.com:443/o/r.git",
        ] {
            assert_eq!(creds.https_for(url), Some(("x-access-token", "gh")), "{url}");
        }
        for url in
            ["https://gitlab.com/g/r.git", "https://GitLab.com/g/r.git", "https://eu.gitlab.com/g/r.git"]
        {
            assert_eq!(creds.https_for(url), Some(("oauth2", "gl")), "{url}");
        }
        assert_eq!(creds.https_for("http://127.0.0.1:8080/r.git"), Some(("x-access-token", "generic")));
        assert_eq!(Credentials::default().https_for("https://github.com/o/r"), None);
    }

    #[test]
    fn look_alike_hosts_get_neither_the_github_nor_the_gitlab_token() {
        let all = Credentials {
            git_token: Some("generic".into()),
            github_token: Some("gh".into()),
            gitlab_token: Some("gl".into()),
            ..Default::default()
        };
        // A look-alike (or a self-hosted GitLab) is any other host: the
        // generic token, or nothing when there is none.
        let no_generic = Credentials { git_token: None, ..all.clone() };
        for url in [
            "https://evilgithub.com/o/r.git",
            "https://github.com.evil.com/o/r.git",
            "https://notgithub.com/o/r.git",
            "https://github.co/o/r.git",
            "https://evil.com/github.com/o/r.git",
            "https://github.com@evil.com/o/r.git",
            "https://gitlab.evil.com/o/r.git",
            "https://notgitlab.com/o/r.git",
            "https://evilgitlab.com/o/r.git",
            "https://gitlab.com.evil.com/o/r.git",
            "https://gitlab.example.com/o/r.git",
            "https://mygitlab/o/r.git",
        ] {
            assert_eq!(all.https_for(url), Some(("x-access-token", "generic")), "{url}");
            assert_eq!(no_generic.https_for(url), None, "{url}");
        }
        assert_eq!(no_generic.https_for("http://127.0.0.1:8080/r.git"), None);
    }

    #[test]
    fn a_github_enterprise_host_gets_the_github_token_when_named() {
        let creds = Credentials {
            github_token: Some("gh".into()),
            github_host: Some("GitHub.Example.com".into()),
            ..Default::default()
        };
        assert_eq!(creds.https_for("https://github.example.com/o/r"), Some(("x-access-token", "gh")));
        for url in ["https://github.example.com.evil.com/o/r", "https://evilgithub.example.com/o/r"] {
            assert_eq!(creds.https_for(url), None, "{url}");
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8080/a.git", "http://127.0.0.1:8080/b.git"));
        assert!(same_origin("https://GitHub.com/o/r", "https://github.com:443/o/r2"));
        assert!(same_origin("git@github.com:o/r.git", "git@github.com:o/r.git"));
        assert!(!same_origin("http://127.0.0.1:8080/a.git", "http://127.0.0.1:8081/a.git"));
        assert!(!same_origin("http://127.0.0.1/a.git", "http://127.0.0.2/a.git"));
        assert!(!same_origin("https://github.com/o/r", "http://github.com/o/r"));
        assert!(!same_origin("https://github.com/o/r", "https://github.com.evil.com/o/r"));
    }

    #[test]
    fn a_refused_redirect_is_explained() {
        let refused = git2::Error::new(
            git2::ErrorCode::GenericError,
            git2::ErrorClass::Net,
            "cannot redirect from '127.0.0.1' to '127.0.0.2'",
        );
        let explained = explain(refused);
        assert!(explained.message().starts_with("the server redirected to another URL"), "{explained}");
        assert!(explained.message().contains("'127.0.0.2'"), "{explained}");
        let other = explain(git2::Error::from_str("early EOF"));
        assert_eq!(other.message(), "early EOF");
    }

    #[test]
    fn a_secret_offers_the_same_credentials_to_every_host() {
        let data = |k: &str| (k == "token").then(|| "t0k".to_owned());
        let creds = Credentials::from_secret(data);
        assert_eq!(creds.https_for("https://gitlab.example.com/x"), Some(("x-access-token", "t0k")));
        let basic = Credentials::from_secret(|k: &str| match k {
            "username" => Some("me".into()),
            "password" => Some("pw".into()),
            _ => None,
        });
        assert_eq!(basic.https_for("https://github.com/x"), Some(("me", "pw")));
        assert!(!format!("{basic:?}").contains("pw"), "Debug hides secrets");
    }
}
