//! The scheduler: runs each SessionSchedule's template as an AgenticSession
//! at its due times, with CronJob's semantics.
//!
//! - [`plan`]: the pure decision (what to create, stop, delete; the status);
//! - [`session`]: the pure builder of a run's AgenticSession;
//! - [`clock`]: the time source, injected so tests never wait for a minute;
//! - [`controller`]: the kube-runtime shell.

pub mod clock;
pub mod controller;
pub mod plan;
pub mod session;
