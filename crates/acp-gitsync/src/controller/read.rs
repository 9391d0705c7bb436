//! A sync's look at git: fetch the source's ref (and its requests branch)
//! into the source's bare mirror and read the manifest files of the
//! revision, off the async runtime and within the fetch timeout. Every
//! failure here is `FetchFailed` (retryable).

use std::path::PathBuf;
use std::time::Duration;

use acp_api::constants::reasons;
use acp_api::source::GitRef;
use acp_git::Credentials;
use acp_git::mirror as fetch;

use crate::files::{self, Entry, Filter};
use crate::status::Failed;

/// What a sync read of git.
pub struct Read {
    /// The commit synced.
    pub revision: String,
    /// Its files, then the requests branch's (paths prefixed with the branch).
    pub entries: Vec<Entry>,
    /// Whether the requests branch exists.
    pub requests_present: bool,
}

/// Where and how to fetch.
pub struct Remote {
    /// The source's mirror.
    pub dir: PathBuf,
    /// `spec.url`.
    pub url: String,
    /// `spec.ref`.
    pub git_ref: Option<GitRef>,
    /// The source's credentials.
    pub creds: Credentials,
    /// The fetch timeout.
    pub timeout: Duration,
}

/// Fetches `remote` and reads the files `filter` selects (and, with
/// `requests`, every manifest of that branch); gives up a few seconds
/// after the fetch timeout.
pub async fn revision(remote: Remote, filter: Filter, requests: Option<String>) -> Result<Read, Failed> {
    let timeout = remote.timeout;
    let read = tokio::task::spawn_blocking(move || read_blocking(&remote, &filter, requests));
    match tokio::time::timeout(timeout + Duration::from_secs(5), read).await {
        Ok(Ok(Ok(read))) => Ok(read),
        Ok(Ok(Err(message))) => Err(fetch_failed(message)),
        Ok(Err(join)) => Err(fetch_failed(format!("fetch task failed: {join}"))),
        Err(_) => Err(fetch_failed(format!("fetch timed out after {timeout:?}"))),
    }
}

fn fetch_failed(message: String) -> Failed {
    Failed { reason: reasons::FETCH_FAILED, message, retryable: true }
}

fn read_blocking(remote: &Remote, filter: &Filter, requests: Option<String>) -> Result<Read, String> {
    let Remote { dir, url, git_ref, creds, timeout } = remote;
    let revision = fetch::fetch(dir, url, git_ref.as_ref(), creds, *timeout).map_err(|e| e.to_string())?;
    let repo = git2::Repository::open_bare(dir).map_err(|e| e.to_string())?;
    let tree = repo.find_commit(revision).and_then(|c| c.tree()).map_err(|e| e.to_string())?;
    let mut entries = files::from_tree(&repo, &tree, filter).map_err(|e| e.to_string())?;
    let mut requests_present = false;
    // Pull-request requests: every manifest of the requests branch, its
    // paths prefixed with the branch (`acp/requests:owner/repo/pr-7/…`).
    if let Some(branch) = requests {
        let tip =
            fetch::fetch_branch_if_present(dir, url, &branch, creds, *timeout).map_err(|e| e.to_string())?;
        requests_present = tip.is_some();
        if let Some(tip) = tip {
            entries.extend(requests_entries(&repo, tip, &branch)?);
        }
    }
    Ok(Read { revision: revision.to_string(), entries, requests_present })
}

/// The manifests of the requests branch at `tip`, their paths prefixed with `branch`.
fn requests_entries(repo: &git2::Repository, tip: git2::Oid, branch: &str) -> Result<Vec<Entry>, String> {
    let tree = repo.find_commit(tip).and_then(|c| c.tree()).map_err(|e| e.to_string())?;
    // Requests waiting for a maintainer's `/acp approve` are not
    // read: an approved one is the same session at its own place.
    let pending = [crate::commands::request::PENDING_PATTERN.to_owned()];
    let all = Filter::new("", &pending, &[]).map_err(|e| e.to_string())?;
    Ok(files::from_tree(repo, &tree, &all)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| e.within(branch))
        .collect())
}
