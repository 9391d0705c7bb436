//! Git credentials and the libgit2 callbacks that hand them out.
//!
//! Two shapes meet here: a SessionSource's secret (Flux's key names: `token`
//! or `username`/`password` for https, `identity` and `known_hosts` for ssh,
//! used for every host), and the runner's environment (`GIT_TOKEN`,
//! `GITHUB_TOKEN`, `GITLAB_TOKEN` picked by host; an ssh key and known_hosts
//! as files). Credentials never enter URLs: libgit2 asks, a callback answers
//! once (a second ask means the answer was rejected), and ssh host keys are
//! checked against known_hosts.

use std::cell::Cell;
use std::path::PathBuf;

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

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

    /// The https user and password to offer `url`, if any.
    pub fn https_for(&self, url: &str) -> Option<(&str, &str)> {
        if let Some((user, password)) = &self.basic {
            return Some((user, password));
        }
        let host = acp_api::remote::host(url).unwrap_or_default();
        let generic = self.git_token.as_deref();
        if host.ends_with("github.com") {
            self.github_token.as_deref().or(generic).map(|t| ("x-access-token", t))
        } else if host.contains("gitlab") {
            self.gitlab_token.as_deref().or(generic).map(|t| ("oauth2", t))
        } else {
            generic.or(self.github_token.as_deref()).map(|t| ("x-access-token", t))
        }
    }
}

/// Callbacks answering one credential question per operation (libgit2 asks
/// again after a rejection; a second ask fails) and checking ssh host keys
/// against `creds.known_hosts`. TLS certificates are left to libgit2, which
/// verifies them against the system's roots.
pub fn callbacks<'a>(creds: &'a Credentials, attempts: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    callbacks_inner(creds, attempts, None)
}

/// [`callbacks`] that answer only for `url`: libgit2 asking on behalf of any
/// other URL (an `insteadOf` rewrite or a redirect from a repository's
/// configuration, which someone else may have written) gets no credential.
pub fn callbacks_for<'a>(
    creds: &'a Credentials,
    attempts: &'a Cell<u32>,
    url: &'a str,
) -> RemoteCallbacks<'a> {
    callbacks_inner(creds, attempts, Some(url))
}

fn callbacks_inner<'a>(
    creds: &'a Credentials,
    attempts: &'a Cell<u32>,
    only: Option<&'a str>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| {
        if let Some(expected) = only
            && url != expected
        {
            return Err(git2::Error::from_str(&format!(
                "refusing credentials for {url}: this operation may only authenticate to {expected}"
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
        assert_eq!(creds.https_for("https://github.com/o/r.git"), Some(("x-access-token", "gh")));
        assert_eq!(creds.https_for("https://gitlab.example.com/o/r.git"), Some(("oauth2", "gl")));
        assert_eq!(creds.https_for("http://127.0.0.1:8080/r.git"), Some(("x-access-token", "generic")));
        assert_eq!(Credentials::default().https_for("https://github.com/o/r"), None);
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
