//! Test harness for acp: a real single-node Kubernetes cluster on this machine.
//!
//! [`TestEnv::get`] starts `scripts/testenv up` once per test process (or reuses
//! an environment that is already running) and registers the process as an
//! owner, so the cluster stops by itself shortly after the last test process
//! exits. Each test takes a fresh namespace from [`TestEnv::namespace`] and a
//! [`kube::Client`] bound to its own runtime. The node runs pods for real, from
//! the images built from `images/` ([`TestEnv::node`]); servers that pods talk
//! to listen on [`TestEnv::host_address`].
//!
//! Helpers panic with a descriptive message on failure: they exist for tests,
//! where a failed precondition should fail the test loudly.
#![forbid(unsafe_code)]

pub mod bench;
pub mod env;
pub mod githttp;
pub mod github;
pub mod model;
pub mod policies;
pub mod proc;
pub mod sshd;
mod wait;

pub use env::{Node, TestEnv, TestNamespace};
pub use wait::{DEFAULT_TIMEOUT, eventually};

/// The pinned Claude Code CLI installed by `scripts/setup`
/// (`$ACP_CLAUDE_BIN` overrides it).
pub fn claude_bin() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("ACP_CLAUDE_BIN") {
        return bin.into();
    }
    let repo = env::repo_root();
    let version =
        std::fs::read_to_string(repo.join("hack/claude-code-version")).expect("hack/claude-code-version");
    let cache = std::env::var_os("ACP_CACHE_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/acp")
    });
    let bin = cache.join(format!("npm/claude-code-{}/node_modules/.bin/claude", version.trim()));
    assert!(bin.exists(), "{} is missing: run scripts/setup", bin.display());
    bin
}
