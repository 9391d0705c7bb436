//! The `process` executor: each run is an `acp runner` child process on the
//! operator's host, with the same contract as the Job (environment in, exit
//! code and termination message out). For clusters without nodes; the local
//! GitOps loop uses it.
//!
//! Each run lives in `<root>/<namespace>/<job-name>/`: `workspace/`,
//! `termination-log`, `runner.log`, `pid`, and `exit` once it ended. State is
//! read back from those files, so an operator restart loses nothing: a run
//! whose process is gone without an `exit` file is reported as exited with
//! code -1.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use acp_api::AgenticSession;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::state::{Progress, RunState, job_name};

/// Settings of the process executor.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// Directory holding every run's files.
    pub root: PathBuf,
    /// The `acp` binary to run as `acp runner`.
    pub acp: PathBuf,
    /// Extra environment for runners (for example CLAUDE_BIN).
    pub env: Vec<(String, String)>,
}

fn run_dir(config: &ProcessConfig, ns: &str, job: &str) -> PathBuf {
    config.root.join(ns).join(job)
}

fn file_time(path: &Path) -> Option<Time> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Timestamp::try_from(modified).ok().map(Time)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| !s[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()
}

/// What run `run` of `session` is doing.
pub fn observe(config: &ProcessConfig, ns: &str, session: &str, run: i64) -> Option<RunState> {
    if run == 0 {
        return None;
    }
    let name = job_name(session, run);
    let dir = run_dir(config, ns, &name);
    let pid = read_pid(&dir)?;
    let started = file_time(&dir.join("pid"));
    let progress = if let Ok(code) = std::fs::read_to_string(dir.join(acp_kube::output::RUN_EXIT)) {
        Progress::Exited {
            code: code.trim().parse().unwrap_or(-1),
            message: std::fs::read_to_string(dir.join("termination-log")).ok().filter(|m| !m.is_empty()),
            started,
            finished: file_time(&dir.join(acp_kube::output::RUN_EXIT)),
        }
    } else if alive(pid) {
        Progress::Running { started }
    } else {
        Progress::Exited {
            code: -1,
            message: std::fs::read_to_string(dir.join("termination-log")).ok().filter(|m| !m.is_empty()),
            started,
            finished: None,
        }
    };
    Some(RunState { run, name, progress })
}

/// Starts run `run` unless it already started.
pub fn ensure(
    config: &ProcessConfig,
    session: &AgenticSession,
    run: i64,
    secrets: &[(String, ByteString)],
) -> std::io::Result<()> {
    let ns = session.metadata.namespace.as_deref().unwrap_or("default");
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let name = job_name(session_name, run);
    let dir = run_dir(config, ns, &name);
    if read_pid(&dir).is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(dir.join("workspace"))?;
    let log = std::fs::File::create(dir.join(acp_kube::output::RUN_LOG))?;
    let mut command = tokio::process::Command::new(&config.acp);
    command.arg("runner").env_clear().current_dir(&dir);
    for key in ["PATH", "LANG", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    for entry in crate::pod::session_env(session) {
        if let Some(value) = entry.value {
            command.env(entry.name, value);
        }
    }
    for (key, value) in secrets {
        let value = String::from_utf8_lossy(&value.0).into_owned();
        match key.as_str() {
            "GIT_SSH_KEY" | "GIT_KNOWN_HOSTS" => {
                let file = dir.join(key.to_ascii_lowercase());
                std::fs::write(&file, value)?;
                command.env(format!("{key}_FILE"), file);
            }
            _ => {
                command.env(key, value);
            }
        }
    }
    command
        .env("WORKSPACE_PATH", dir.join("workspace"))
        .env("TERMINATION_MESSAGE_PATH", dir.join("termination-log"))
        .env("HOME", dir.join("workspace/.acp/home"))
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let mut child = command.spawn()?;
    let pid = child.id().unwrap_or_default();
    std::fs::write(dir.join("pid"), pid.to_string())?;
    tokio::spawn(async move {
        let code = match child.wait().await {
            Ok(status) => status.code().unwrap_or(143),
            Err(_) => -1,
        };
        // The exit file is the run's verdict; if it cannot be written the
        // run is reported as exited with code -1 instead.
        let _ = std::fs::write(dir.join(acp_kube::output::RUN_EXIT), code.to_string());
    });
    Ok(())
}

/// Stops every run still alive under the root (when the process that owns
/// them shuts down for good, as `acp all` does on Ctrl-C); returns how many
/// were signalled.
pub fn stop_all(config: &ProcessConfig) -> Vec<i32> {
    let mut signalled = Vec::new();
    let dirs = std::fs::read_dir(&config.root).into_iter().flatten().flatten();
    for ns in dirs.filter(|d| d.path().is_dir()) {
        for run in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if let Some(pid) = read_pid(&run.path()).filter(|p| alive(*p)) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                signalled.push(pid);
            }
        }
    }
    signalled
}

/// True while process `pid` runs.
pub fn is_alive(pid: i32) -> bool {
    alive(pid)
}

/// Stops a run: SIGTERM to its process group (the runner kills the agent).
pub fn stop(config: &ProcessConfig, ns: &str, job: &str) {
    if let Some(pid) = read_pid(&run_dir(config, ns, job)).filter(|p| alive(*p)) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    }
}
