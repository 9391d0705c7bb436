//! The acp operator: every AgenticSession runs as a Job, with an honest status.
//!
//! - [`state`]: the pure state machine (observation in, status and actions out);
//! - [`children`]: the pure builders of the Secret, PVC and Job;
//! - [`result`]: reading the runner's result from its termination message;
//! - [`controller`]: the kube-runtime shell that observes, decides and applies;
//! - [`output`]: reading a run's output (pod log or process run directory).
#![forbid(unsafe_code)]

pub mod children;
pub mod controller;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod output;
pub mod process;
pub mod result;
pub mod state;
