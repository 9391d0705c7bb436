//! Child processes of tests and benchmarks: killed when dropped, so a failing
//! test leaves nothing behind; and a quiet `curl` for polling their endpoints.

use std::process::{Child, Command};

/// A child process killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Killed {
    /// The child, for signals and `try_wait`.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        // Already exited is fine: kill then fails and wait reaps.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of GET `url` with `headers` (`Name: value`), `None` on any failure.
pub fn curl(url: &str, headers: &[&str]) -> Option<String> {
    let mut cmd = Command::new("curl");
    cmd.arg("-fsS");
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd.arg(url).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
