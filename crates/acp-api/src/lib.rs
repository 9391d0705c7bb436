//! acp's API types: the `AgenticSession`, `SessionSource` and `SessionSchedule`
//! custom resources,
//! their conditions, the constants every component shares, and the wire
//! formats components exchange (the runner's progress events, the status
//! bot's state).
//!
//! This crate does no I/O. CRDs are generated from these types ([`crds`]);
//! the `crds/` directory of the repository is their output and a test keeps
//! them equal.
#![forbid(unsafe_code)]

pub mod condition;
pub mod constants;
pub mod crds;
pub mod inventory;
pub mod progress;
pub mod pull_requests;
pub mod remote;
pub mod resume;
pub mod runner;
pub mod schedule;
pub mod schema;
pub mod session;
pub mod shard;
pub mod source;
pub mod status_bot;

pub use condition::{Condition, ConditionStatus};
pub use schedule::{SessionSchedule, SessionScheduleSpec, SessionScheduleStatus};
pub use session::{AgenticSession, SessionPhase, SessionSpec, SessionStatus};
pub use source::{SessionSource, SessionSourceSpec, SessionSourceStatus};
