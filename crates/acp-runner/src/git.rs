//! git with git2: shallow clones with credentials, and commit + push of the
//! agent's changes on the session's branch.
//!
//! Credentials never enter URLs or the agent's environment: https tokens and
//! ssh keys are handed to libgit2 through callbacks, and an ssh server's key is
//! checked against `known_hosts`.

use std::cell::Cell;
use std::path::Path;

use git2::{
    CertificateCheckStatus, Cred, CredentialType, FetchOptions, IndexAddOption, PushOptions, RemoteCallbacks,
    Repository, Signature, Status, StatusOptions, build::RepoBuilder,
};

use crate::config::{Credentials, RepoConfig};

/// A git failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Cloning failed (unreachable, not found, bad credentials, bad branch).
    #[error("failed to clone {url}: {source}")]
    Clone {
        /// Repository URL.
        url: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// Reading or committing the working tree failed.
    #[error("failed to commit changes in {repo}: {source}")]
    Commit {
        /// Repository directory name.
        repo: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// Pushing failed or the remote rejected the update.
    #[error("failed to push {branch} to {url}: {message}")]
    Push {
        /// Repository URL.
        url: String,
        /// Branch.
        branch: String,
        /// What went wrong.
        message: String,
    },
}

/// A cloned repository.
#[derive(Clone, Debug)]
pub struct Cloned {
    /// Checked-out branch (the remote's default when none was asked for).
    pub branch: String,
    /// Commit checked out by the clone.
    pub base: git2::Oid,
}

fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/')
}

/// The token to offer for `url`, and the user name GitHub/GitLab expect with it.
fn https_token<'a>(creds: &'a Credentials, url: &str) -> Option<(&'static str, &'a str)> {
    let host = url.split("://").nth(1).and_then(|rest| rest.split(['/', ':']).next()).unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or(host);
    let generic = creds.git_token.as_deref();
    if host.ends_with("github.com") {
        creds.github_token.as_deref().or(generic).map(|t| ("x-access-token", t))
    } else if host.contains("gitlab") {
        creds.gitlab_token.as_deref().or(generic).map(|t| ("oauth2", t))
    } else {
        generic.or(creds.github_token.as_deref()).map(|t| ("x-access-token", t))
    }
}

/// Callbacks that answer credential and host-key questions once each (libgit2
/// asks again after a rejection; a second ask means the credential was wrong).
fn callbacks<'a>(creds: &'a Credentials, attempts: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| {
        attempts.set(attempts.get() + 1);
        if attempts.get() > 1 {
            return Err(git2::Error::from_str("authentication failed: the credentials were rejected"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if let Some(key) = &creds.ssh_key_file {
                return Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            return Err(git2::Error::from_str("authentication required: GIT_SSH_KEY_FILE is not set"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some((user, token)) = https_token(creds, url)
        {
            return Cred::userpass_plaintext(username.unwrap_or(user), token);
        }
        Err(git2::Error::from_str("authentication required: no git token for this host"))
    });
    callbacks.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS certificates: libgit2 already verified them against the system roots.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(known_hosts) = &creds.known_hosts_file else {
            return Err(git2::Error::from_str("cannot verify ssh host key: GIT_KNOWN_HOSTS_FILE is not set"));
        };
        let text = std::fs::read_to_string(known_hosts)
            .map_err(|e| git2::Error::from_str(&format!("cannot read {}: {e}", known_hosts.display())))?;
        match hostkey.hostkey() {
            Some(key) if crate::known_hosts::matches(&text, host, key) => {
                Ok(CertificateCheckStatus::CertificateOk)
            }
            _ => Err(git2::Error::from_str(&format!("ssh host key of {host} is not in known_hosts"))),
        }
    });
    callbacks
}

/// Clones `repo` into `dest`, shallow unless the URL is local.
pub fn clone(repo: &RepoConfig, dest: &Path, creds: &Credentials) -> Result<Cloned, GitError> {
    let err = |source| GitError::Clone { url: repo.url.clone(), source };
    let attempts = Cell::new(0);
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks(creds, &attempts));
    if !is_local(&repo.url) {
        fetch.depth(1);
    }
    let mut builder = RepoBuilder::new();
    builder.fetch_options(fetch);
    if let Some(branch) = &repo.branch {
        builder.branch(branch);
    }
    let cloned = builder.clone(&repo.url, dest).map_err(err)?;
    let head = cloned.head().map_err(err)?;
    let branch = head.shorthand().unwrap_or("HEAD").to_owned();
    let base = head.peel_to_commit().map_err(err)?.id();
    Ok(Cloned { branch, base })
}

/// Commits everything changed since `base` (worktree and any commits the agent
/// made) and points `branch` at it. Returns the commit, or `None` when nothing
/// changed.
pub fn commit_changes(
    dir: &Path,
    base: git2::Oid,
    branch: &str,
    author: &(String, String),
    message: &str,
) -> Result<Option<git2::Oid>, GitError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let err = |source| GitError::Commit { repo: name.clone(), source };
    let repo = Repository::open(dir).map_err(err)?;
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let dirty =
        repo.statuses(Some(&mut options)).map_err(err)?.iter().any(|entry| entry.status() != Status::CURRENT);
    let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(err)?;
    let mut tip = head.id();
    if dirty {
        let mut index = repo.index().map_err(err)?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None).map_err(err)?;
        index.update_all(["*"], None).map_err(err)?;
        index.write().map_err(err)?;
        let tree = repo.find_tree(index.write_tree().map_err(err)?).map_err(err)?;
        if tree.id() != head.tree_id() {
            let signature = Signature::now(&author.0, &author.1).map_err(err)?;
            tip = repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &[&head]).map_err(err)?;
        }
    }
    if tip == base {
        return Ok(None);
    }
    let commit = repo.find_commit(tip).map_err(err)?;
    repo.branch(branch, &commit, true).map_err(err)?;
    Ok(Some(tip))
}

/// Force-pushes local `branch` to `origin` (the branch belongs to the session;
/// a re-run replaces it).
pub fn push(dir: &Path, url: &str, branch: &str, creds: &Credentials) -> Result<(), GitError> {
    let fail = |message: String| GitError::Push { url: url.to_owned(), branch: branch.to_owned(), message };
    let repo = Repository::open(dir).map_err(|e| fail(e.message().to_owned()))?;
    let mut remote = repo.find_remote("origin").map_err(|e| fail(e.message().to_owned()))?;
    let attempts = Cell::new(0);
    let rejection: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
    let mut cbs = callbacks(creds, &attempts);
    cbs.push_update_reference(|_, status| {
        if let Some(status) = status {
            *rejection.borrow_mut() = Some(status.to_owned());
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(cbs);
    let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
    remote.push(&[refspec.as_str()], Some(&mut options)).map_err(|e| fail(e.message().to_owned()))?;
    drop(options);
    match rejection.into_inner() {
        Some(status) => Err(fail(format!("the remote rejected the update: {status}"))),
        None => Ok(()),
    }
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
        assert_eq!(https_token(&creds, "https://github.com/o/r.git"), Some(("x-access-token", "gh")));
        assert_eq!(https_token(&creds, "https://gitlab.example.com/o/r.git"), Some(("oauth2", "gl")));
        assert_eq!(https_token(&creds, "http://127.0.0.1:8080/r.git"), Some(("x-access-token", "generic")));
        assert_eq!(https_token(&Credentials::default(), "https://github.com/o/r"), None);
    }
}
