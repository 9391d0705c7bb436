//! git-sync: the SessionSource controller.
//!
//! A sync is a pipeline: fetch the revision into a mirror (`acp_git::mirror`) → select the
//! manifest files ([`files`]) → parse them with positions ([`manifest`]) →
//! check each against the schema and policies and diff against the cluster
//! ([`plan`], pure) → server-side apply and prune, kind by kind ([`kinds`],
//! [`apply`]) → status
//! ([`status`], pure; written by [`controller`]). [`webhook`] turns GitHub push
//! deliveries into immediate syncs, and pull-request comments into requests
//! committed to a source's requests branch ([`commands`]). [`preview`] is
//! what a sync would do, before it happens (`acp validate`, `acp plan`, the
//! GitHub Action).
#![forbid(unsafe_code)]

pub mod apply;
pub mod commands;
pub mod controller;
pub mod files;
pub mod keys;
pub mod kinds;
pub mod live;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod preview;
pub mod recent;
pub mod status;
pub mod webhook;
