//! The acp runner: prepares a workspace, drives the real Claude Code CLI, pushes
//! the agent's changes and reports a bounded result.
//!
//! [`run`] is the whole pipeline; `acp runner` (in a pod) and `acp run FILE`
//! (on this machine) both call it. The contract with the operator:
//! - inputs: [`config::RunnerConfig`] (environment variables);
//! - progress: [`progress::Progress`] events, JSON lines on stdout in a pod;
//! - result: `SessionResult` JSON on the termination message path (≤ 4 KiB)
//!   and in full at `<workspace>/.acp/result.json`;
//! - exit code: 0 success, 1 agent error, 2 prerequisite failure, 143 stopped.
//!
//! In a pod the runner holds no credential: [`broker`] is the sidecar that
//! does, and [`access::Access`] is how the pipeline reaches it.
#![forbid(unsafe_code)]

pub mod access;
pub mod agent;
pub mod broker;
pub mod config;
pub mod events;
pub mod git;
pub mod ops;
pub mod pr;
pub mod process;
pub mod progress;
pub mod redact;
pub mod result;
pub mod resume;
mod run;
pub mod workspace;

pub use run::run;
