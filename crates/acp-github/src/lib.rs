//! acp's GitHub client, shared by the status bot (comments, commit statuses)
//! and git-sync's pull-request commands (reactions, permissions, pull
//! requests): [`client`] makes the REST calls through octocrab (rate limits
//! and retries handled), [`app`] authenticates as a GitHub App when a
//! Secret holds one, [`account`] is GitHub for a SessionSource (its
//! Secret, token or App, login, caches), [`events`] types the webhook
//! deliveries acp acts on; [`markdown`] makes someone else's text inert in
//! a comment.
#![forbid(unsafe_code)]

pub mod account;
pub mod app;
pub mod client;
pub mod events;
pub mod markdown;

pub use account::{Account, Accounts};
pub use client::{CommentRecord, GitHub, GitHubError, PullRequest, ReviewComment};
