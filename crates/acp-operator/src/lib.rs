//! The acp operator: every AgenticSession runs as a Job, with an honest status.
//!
//! - [`state`]: the pure state machine (observation in, status and actions out);
//! - [`children`], [`pod`], [`egress`]: the pure builders of the Secret, PVC,
//!   Job, runner pod and egress NetworkPolicy (typed `k8s-openapi` objects),
//!   named by [`names`];
//! - [`result`]: reading the runner's result from its termination message;
//! - [`controller`]: the kube-runtime shell: [`gather`] observes (caches
//!   first), [`state`] decides, [`act`] applies; [`context`] is what they
//!   share (settings, the one error type, the reconcilers' state);
//! - [`cache`]: its watch caches of Jobs, pods, secrets and the other children,
//!   and [`confirm`]: the reads they cannot answer (a missing recorded Job,
//!   a run that moved in from another shard);
//! - [`resume`]: what a follow-up continues, and whether its source vouches
//!   for its thread (pure); [`threads`]: the watch caches it reads;
//! - [`process`]: the `process` executor (runs as local `acp runner` processes);
//! - [`schedule`]: the scheduler, which runs SessionSchedules' sessions at
//!   their due times.
#![forbid(unsafe_code)]

pub mod act;
pub mod cache;
pub mod children;
pub mod confirm;
pub mod context;
pub mod controller;
pub mod egress;
pub mod gather;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod pod;
pub mod process;
pub mod result;
pub mod resume;
pub mod schedule;
pub mod state;
pub mod threads;
