//! acp's GitHub client, shared by the status bot (comments, commit statuses)
//! and git-sync's pull-request commands (reactions, permissions, pull
//! requests): [`client`] makes the REST calls through octocrab (rate limits
//! and retries handled), [`app`] authenticates as a GitHub App when a
//! Secret holds one; [`markdown`] makes someone else's text inert in a
//! comment.
#![forbid(unsafe_code)]

pub mod app;
pub mod client;
pub mod markdown;

pub use client::{CommentRecord, GitHub, GitHubError, PullRequest, ReviewComment};
