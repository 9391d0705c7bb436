//! Fetching one ref with git2 into a bare mirror kept between fetches:
//! incremental (only new objects travel), with the ref's whole history (so
//! the commit that last changed each file is known, from the first sync on),
//! force-pushes followed (`+` refspecs), and only the ref asked for (git-sync
//! never even downloads its write-back branch). A redirect to another host
//! fails, and only the URL's origin gets credentials.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acp_api::source::GitRef;
use git2::{FetchOptions, Repository};

use crate::auth::{Credentials, NO_REDIRECTS, callbacks_for_origin, explain};

/// Branch fetched when no ref is named.
pub const DEFAULT_BRANCH: &str = "main";

/// A fetch failure.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// libgit2 failed (network, auth, missing ref…).
    #[error("failed to fetch {url} ({what}): {source}")]
    Git {
        /// Repository URL.
        url: String,
        /// What was asked for.
        what: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// The fetch took longer than the source's timeout.
    #[error("failed to fetch {url}: timed out after {timeout:?}")]
    Timeout {
        /// Repository URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The mirror directory could not be prepared.
    #[error("failed to prepare the mirror at {path}: {source}")]
    Mirror {
        /// Directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl FetchError {
    /// A bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            FetchError::Git { source, .. } if source.class() == git2::ErrorClass::Ssh => "ssh",
            FetchError::Git { source, .. } if source.code() == git2::ErrorCode::Auth => "auth",
            FetchError::Git { .. } => "git",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Mirror { .. } => "mirror",
        }
    }
}

/// What was asked for, resolved to refspecs and a ref to read.
fn wanted(git_ref: Option<&GitRef>) -> (Vec<String>, Option<String>, String) {
    let git_ref = git_ref.cloned().unwrap_or_default();
    if let Some(commit) = git_ref.commit {
        // Servers rarely allow fetching an unadvertised commit: fetch every branch.
        return (vec!["+refs/heads/*:refs/remotes/origin/*".into()], None, commit);
    }
    if let Some(tag) = git_ref.tag {
        let local = format!("refs/tags/{tag}");
        return (vec![format!("+{local}:{local}")], Some(local), format!("tag {tag}"));
    }
    let branch = git_ref.branch.unwrap_or_else(|| DEFAULT_BRANCH.into());
    let local = format!("refs/remotes/origin/{branch}");
    (vec![format!("+refs/heads/{branch}:{local}")], Some(local), format!("branch {branch}"))
}

/// Fetches `git_ref` of `url` into the bare mirror `dir` and returns the commit.
pub fn fetch(
    dir: &Path,
    url: &str,
    git_ref: Option<&GitRef>,
    creds: &Credentials,
    timeout: Duration,
) -> Result<git2::Oid, FetchError> {
    let (refspecs, local_ref, what) = wanted(git_ref);
    let err = |source| FetchError::Git { url: url.to_string(), what: what.clone(), source };
    std::fs::create_dir_all(dir).map_err(|source| FetchError::Mirror { path: dir.to_path_buf(), source })?;
    let repo = match Repository::open_bare(dir) {
        Ok(repo) => repo,
        Err(_) => Repository::init_bare(dir).map_err(err)?,
    };
    let mut remote = repo.remote_anonymous(url).map_err(err)?;
    // Where the machine's configuration (a trusted `insteadOf`) leads `url`:
    // the one origin that gets credentials (a redirect elsewhere gets none).
    let target = remote.url().unwrap_or(url).to_owned();
    let deadline = Instant::now() + timeout;
    let attempts = Cell::new(0);
    let timed_out = Cell::new(false);
    let mut callbacks = callbacks_for_origin(creds, &attempts, &target);
    callbacks.transfer_progress(|_| {
        let on_time = Instant::now() < deadline;
        timed_out.set(!on_time);
        on_time
    });
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks);
    options.download_tags(git2::AutotagOption::None);
    options.follow_redirects(NO_REDIRECTS);
    // Never shallow: the history says which commit last changed each file
    // (a shallow first fetch would credit the tip with every file).
    if let Err(source) = remote.fetch(&refspecs, Some(&mut options), None) {
        if timed_out.get() {
            return Err(FetchError::Timeout { url: url.to_string(), timeout });
        }
        return Err(err(explain(source)));
    }
    drop(remote);
    let commit = match local_ref {
        Some(name) => repo.revparse_single(&name).and_then(|o| o.peel_to_commit()).map_err(err)?,
        None => git2::Oid::from_str(&what).and_then(|oid| repo.find_commit(oid)).map_err(err)?,
    };
    Ok(commit.id())
}

/// Fetches `branch` of `url` into the mirror `dir`, if the remote has it:
/// `None` when it does not (a branch nobody wrote to yet), never a stale tip
/// of a branch since deleted.
pub fn fetch_branch_if_present(
    dir: &Path,
    url: &str,
    branch: &str,
    creds: &Credentials,
    timeout: Duration,
) -> Result<Option<git2::Oid>, FetchError> {
    if let Ok(repo) = Repository::open_bare(dir)
        && let Ok(mut stale) = repo.find_reference(&format!("refs/remotes/origin/{branch}"))
    {
        stale.delete().map_err(|source| FetchError::Git {
            url: url.to_string(),
            what: format!("branch {branch}"),
            source,
        })?;
    }
    let git_ref = GitRef { branch: Some(branch.to_owned()), ..GitRef::default() };
    match fetch(dir, url, Some(&git_ref), creds, timeout) {
        Ok(commit) => Ok(Some(commit)),
        Err(FetchError::Git { source, .. }) if source.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_resolve_to_narrow_refspecs() {
        let (specs, local, _) = wanted(None);
        assert_eq!(specs, ["+refs/heads/main:refs/remotes/origin/main"]);
        assert_eq!(local.as_deref(), Some("refs/remotes/origin/main"));
        let tag = GitRef { tag: Some("v1".into()), ..Default::default() };
        assert_eq!(wanted(Some(&tag)).0, ["+refs/tags/v1:refs/tags/v1"]);
        let commit = GitRef { commit: Some("a".repeat(40)), ..Default::default() };
        assert_eq!(wanted(Some(&commit)).1, None);
    }
}
