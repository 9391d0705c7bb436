//! Test harness for acp: a real Kubernetes control plane on loopback.
//!
//! [`TestEnv::get`] starts `scripts/testenv up` once per test process (or reuses
//! an environment that is already running) and registers the process as an
//! owner, so the control plane stops by itself shortly after the last test
//! process exits. Each test takes a fresh namespace from [`TestEnv::namespace`]
//! and a [`kube::Client`] bound to its own runtime.
//!
//! There is no kubelet; [`Kubelet`] plays one by writing pod status.
//!
//! Helpers panic with a descriptive message on failure: they exist for tests,
//! where a failed precondition should fail the test loudly.
#![forbid(unsafe_code)]

mod env;
mod kubelet;
mod wait;

pub use env::{TestEnv, TestNamespace};
pub use kubelet::Kubelet;
pub use wait::{DEFAULT_TIMEOUT, eventually};
