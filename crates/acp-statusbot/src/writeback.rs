//! Write-back: one YAML file per session under the status path of the
//! write-back branch (default `acp/status`), committed with
//! [`acp_git::push::BranchWriter`] (no-op on the same content, rebase and
//! retry when another writer moved the branch).

pub use acp_git::push::{ATTEMPTS, BranchWriter as WriteBack, WriteError as WriteBackError, Written, read};

/// The path of a session's status file: `<status path>/<namespace>/<name>.yaml`.
pub fn status_file(status_path: &str, namespace: &str, name: &str) -> String {
    let dir = status_path.trim_matches('/');
    if dir.is_empty() { format!("{namespace}/{name}.yaml") } else { format!("{dir}/{namespace}/{name}.yaml") }
}
