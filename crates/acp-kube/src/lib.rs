//! acp's Kubernetes plumbing, shared by its controllers (operator, git-sync,
//! status bot, dashboard) so that none of them depends on another:
//!
//! - [`output`]: reading a session's runner output (pod logs through the API
//!   server, or the process executor's run directories);
//! - [`ops`]: the `/metrics` and `/healthz` endpoints;
//! - [`client`]: a client that counts its API requests;
//! - [`leader`]: Lease-based leader election;
//! - [`backoff`]: per-object exponential backoff for reconcile errors;
//! - [`reconcile`]: the shell of every controller's reconcile: the failures
//!   they share, their categories, and the one error policy (backoff per
//!   object, a log line and a count per failure);
//! - [`failpoint`]: named crash points for crash tests (`ACP_FAILPOINTS`);
//! - [`threads`]: a pull request's thread of sessions;
//! - [`events`]: publishing Kubernetes Events;
//! - [`watch`]: how every controller lists and watches (selector, shard,
//!   streaming lists).
#![forbid(unsafe_code)]

pub mod backoff;
pub mod client;
pub mod events;
pub mod failpoint;
pub mod leader;
pub mod ops;
pub mod output;
pub mod reconcile;
pub mod threads;
pub mod watch;
