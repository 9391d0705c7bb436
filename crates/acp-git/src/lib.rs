//! acp's git plumbing, shared by the components that talk to git: the runner
//! (clone, push its branch), git-sync (mirror fetch) and the status bot
//! (write-back commits).
//!
//! - [`auth`]: credentials (a SessionSource's secret, or the runner's tokens
//!   and key files) handed to libgit2 through callbacks, never in URLs;
//! - [`clone`]: cloning with the git CLI, credentials through the
//!   environment, never its arguments;
//! - [`history`]: which commit last changed a file;
//! - [`known_hosts`]: checking an ssh server's host key;
//! - [`mirror`]: fetching one ref into a bare mirror kept between fetches;
//! - [`push`]: committing files on a branch and pushing with rebase-and-retry,
//!   and force-pushing a branch;
//! - `serve` (feature `serve`): bare repositories over `git http-backend`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod clone;
pub mod history;
pub mod known_hosts;
pub mod mirror;
pub mod push;
#[cfg(feature = "serve")]
pub mod serve;

pub use auth::Credentials;

/// True for URLs of repositories on this machine (`file://`, absolute paths),
/// which are cloned and fetched in full (shallow transfers need a server).
pub fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/')
}
