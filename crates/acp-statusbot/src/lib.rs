//! The status bot: results of git-synced sessions back to where the work was
//! asked for.
//!
//! [`report`] turns an AgenticSession into what is reported (pure);
//! [`render`] renders the pull request comment from minijinja templates kept
//! in the repository (users may override them); [`writeback`] commits one
//! status file per session to the write-back branch with git2, only when its
//! content changed, rebasing onto the remote tip when another writer got there
//! first and never rewriting anyone's history. [`provenance`] decides
//! whether a session's claimed source really applied it (a schedule's run:
//! applied its schedule). [`plan`] decides, purely, what to do for a session:
//! the effects [`controller`] then carries out. GitHub itself (comments,
//! statuses, App tokens) is reached through the shared `acp_github` crate.
#![forbid(unsafe_code)]

pub mod controller;
pub mod plan;
pub mod provenance;
pub mod render;
pub mod report;
pub mod writeback;
