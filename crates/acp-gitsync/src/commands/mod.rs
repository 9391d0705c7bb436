//! Pull-request commands: `/acp …` and `@acp …` comments become commits of
//! session manifests on a SessionSource's requests branch, which git-sync
//! then applies like any manifest.
//!
//! - [`grammar`]: which lines of a comment are commands (pure);
//! - [`request`]: who may give them and the commit each becomes (pure);
//! - [`branch`]: what git-sync takes from the requests branch (pure);
//! - [`verdict`]: what a delivery claims, whether GitHub's record of the
//!   comment bears it out, and what each command gets (pure);
//! - [`handler`]: the webhook's side: de-duplication, the GitHub calls
//!   (role, pull request, reaction, replies) and the commit.

pub mod branch;
pub mod grammar;
pub mod handler;
pub mod request;
pub mod verdict;
