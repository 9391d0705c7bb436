//! The `process` executor: each run is an `acp runner` child process on the
//! operator's host, with the same contract as the Job (environment in, exit
//! code and termination message out). For clusters without nodes; the local
//! GitOps loop uses it.
//!
//! Each run lives in `<root>/<namespace>/<job-name>/` (mode 0700):
//! `workspace/`, `termination-log`, `runner.log`, `pid` and, once it ended,
//! `exit`. The operator only claims the directory (an atomic `mkdir`: a run is
//! started at most once) and starts `acp runner supervise`, which records its
//! own identity (PID and kernel start time, so a reused PID is not mistaken
//! for the run), runs `acp runner`, and writes the verdict. The supervisor is
//! in a process group of its own and outlives the operator, so an operator
//! restart or crash loses no verdict. Files are written 0600, atomically.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::resume::Resume;
use acp_api::runner::{Place, RunnerInput};
use acp_kube::output::{RUN_EXIT, RUN_LOG};
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::state::{Progress, RunState, job_name};

/// The run directory's identity file: `<pid> <start time>` of the supervisor.
pub const RUN_PID: &str = "pid";
/// The run directory's termination message, written by the runner.
pub const RUN_TERMINATION: &str = "termination-log";
/// A claimed run whose supervisor has not recorded itself after this long
/// never started (the operator died between claiming and starting it).
const START_GRACE: Duration = Duration::from_secs(30);

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

/// A process, told apart from a later one that reuses its PID by its start
/// time (clock ticks since boot, `/proc/<pid>/stat` field 22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Process id.
    pub pid: i32,
    /// Start time in clock ticks since boot.
    pub start: u64,
}

impl Identity {
    /// The identity of live process `pid`, if it runs (zombies do not).
    pub fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Format: pid (comm) state ppid … ; comm may contain spaces and ')'.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return None;
        }
        Some(Self { pid, start: fields.get(19)?.parse().ok()? })
    }

    /// True while this very process runs.
    pub fn alive(&self) -> bool {
        Self::of(self.pid).as_ref() == Some(self)
    }

    fn parse(text: &str) -> Option<Self> {
        let (pid, start) = text.trim().split_once(' ')?;
        Some(Self { pid: pid.parse().ok()?, start: start.parse().ok()? })
    }
}

/// Writes `content` to `path` atomically (a temporary file renamed over it),
/// readable by this user only.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

fn run_dir(config: &ProcessConfig, ns: &str, job: &str) -> PathBuf {
    config.root.join(ns).join(job)
}

fn file_time(path: &Path) -> Option<Time> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Timestamp::try_from(modified).ok().map(Time)
}

/// True while any process of the group `pgid` leads runs (the runner and
/// the agent outlive a supervisor killed alone).
fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

fn read_identity(dir: &Path) -> Option<Identity> {
    Identity::parse(&std::fs::read_to_string(dir.join(RUN_PID)).ok()?)
}

fn termination(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(RUN_TERMINATION)).ok().filter(|m| !m.is_empty())
}

/// The run's end, once its supervisor wrote the exit code.
fn verdict(dir: &Path, started: Option<Time>) -> Option<Progress> {
    let code = std::fs::read_to_string(dir.join(RUN_EXIT)).ok()?;
    Some(Progress::Exited {
        code: code.trim().parse().unwrap_or(-1),
        message: termination(dir),
        started,
        finished: file_time(&dir.join(RUN_EXIT)),
    })
}

/// What run `run` of `session` is doing.
pub fn observe(config: &ProcessConfig, ns: &str, session: &str, run: i64) -> Option<RunState> {
    if run == 0 {
        return None;
    }
    let name = job_name(session, run);
    let dir = run_dir(config, ns, &name);
    let claimed = std::fs::metadata(&dir).ok()?;
    let started = file_time(&dir.join(RUN_PID));
    let progress = if let Some(exited) = verdict(&dir, started.clone()) {
        exited
    } else if let Some(identity) = read_identity(&dir) {
        if identity.alive() || group_alive(identity.pid) {
            Progress::Running { started }
        } else if let Some(exited) = verdict(&dir, started.clone()) {
            // The verdict was written between the two looks.
            exited
        } else {
            // The supervisor and every process of its group are gone without
            // a verdict (killed with the host's processes, say): report what
            // the runner left.
            Progress::Exited { code: -1, message: termination(&dir), started, finished: None }
        }
    } else if claimed.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > START_GRACE) {
        Progress::Exited {
            code: -1,
            message: Some("the runner process never started (the operator stopped while starting it)".into()),
            started: None,
            finished: None,
        }
    } else {
        Progress::Waiting { reason: None, message: Some("starting the runner process".into()) }
    };
    Some(RunState { run, name, progress })
}

/// The agent's home in run `job` of `namespace` (where a follow-up finds
/// its parent's conversation), when that run's workspace is still there.
pub fn home_of(config: &ProcessConfig, namespace: &str, job: &str) -> Option<PathBuf> {
    let home = run_dir(config, namespace, job).join("workspace/.acp/home");
    home.is_dir().then_some(home)
}

/// Starts run `run` unless it was already started: the run directory is
/// claimed with an atomic `mkdir`, so a run starts at most once, whatever
/// crashes in between.
pub fn ensure(
    config: &ProcessConfig,
    session: &AgenticSession,
    run: i64,
    secrets: &[(String, ByteString)],
    resume: Option<&Resume>,
) -> std::io::Result<()> {
    let ns = session.metadata.namespace.as_deref().unwrap_or("default");
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let name = job_name(session_name, run);
    let dir = run_dir(config, ns, &name);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(config.root.join(ns))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let started = start(config, session, &dir, secrets, resume);
    if started.is_err() {
        // Nothing runs: release the claim so that a retry can start it.
        let _ = std::fs::remove_dir_all(&dir);
    }
    started
}

fn start(
    config: &ProcessConfig,
    session: &AgenticSession,
    dir: &Path,
    secrets: &[(String, ByteString)],
    resume: Option<&Resume>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("workspace"))?;
    let log = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(RUN_LOG))?;
    let mut command = tokio::process::Command::new(&config.acp);
    command.args(["runner", "supervise", "--dir"]).arg(dir).env_clear().current_dir(dir);
    for key in ["PATH", "LANG", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    let place = Place {
        workspace: dir.join("workspace").to_string_lossy().into_owned(),
        termination_message_path: dir.join(RUN_TERMINATION).to_string_lossy().into_owned(),
    };
    let input = RunnerInput::for_session(
        session.metadata.name.as_deref().unwrap_or_default(),
        session.metadata.namespace.as_deref(),
        &session.spec,
        place,
        resume.cloned(),
    );
    for (key, value) in secrets {
        match key.as_str() {
            "GIT_SSH_KEY" | "GIT_KNOWN_HOSTS" => {
                let file = dir.join(key.to_ascii_lowercase());
                write_private(&file, &value.0)?;
                command.env(format!("{key}_FILE"), file);
            }
            _ => {
                command.env(key, String::from_utf8_lossy(&value.0).into_owned());
            }
        }
    }
    // The contract after the Secret: a key of it cannot replace a variable.
    command
        .envs(input.to_env())
        .env("HOME", dir.join("workspace/.acp/home"))
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // A group of its own: the operator's end (or its signals) is not the run's.
        .process_group(0);
    // Not waited for here: the supervisor outlives this process and writes the
    // verdict itself (tokio reaps it if it ends while we still run).
    command.spawn()?;
    Ok(())
}

/// `acp runner supervise`: the runner side of the process executor. Records
/// this process's identity in `dir`, runs `acp` as `acp runner` (same
/// environment, working directory and output), and writes its exit code to
/// `dir/exit` when it ends: 128 + the signal if it was killed by one. SIGTERM
/// and SIGINT are passed on to the runner and do not end the supervisor
/// before its verdict is written.
pub async fn supervise(dir: &Path, acp: &Path) -> std::io::Result<i32> {
    use std::os::unix::process::ExitStatusExt as _;
    use tokio::signal::unix::{SignalKind, signal};
    let me = Identity::of(i32::try_from(std::process::id()).unwrap_or(i32::MAX))
        .ok_or_else(|| std::io::Error::other("failed to read this process's start time"))?;
    write_private(&dir.join(RUN_PID), format!("{} {}", me.pid, me.start).as_bytes())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut child = tokio::process::Command::new(acp).arg("runner").spawn()?;
    let child_pid = child.id().and_then(|p| i32::try_from(p).ok());
    let status = loop {
        let forward = tokio::select! {
            status = child.wait() => break status?,
            _ = term.recv() => Signal::SIGTERM,
            _ = int.recv() => Signal::SIGINT,
        };
        if let Some(pid) = child_pid {
            let _ = kill(Pid::from_raw(pid), forward);
        }
    };
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1);
    write_private(&dir.join(RUN_EXIT), code.to_string().as_bytes())?;
    Ok(code)
}

/// Stops every run still alive under the root (when the process that owns
/// them shuts down for good, as `acp all` does on Ctrl-C); returns the
/// supervisors signalled.
pub fn stop_all(config: &ProcessConfig) -> Vec<Identity> {
    let mut signalled = Vec::new();
    let dirs = std::fs::read_dir(&config.root).into_iter().flatten().flatten();
    for ns in dirs.filter(|d| d.path().is_dir()) {
        for run in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if let Some(identity) = read_identity(&run.path()).filter(Identity::alive) {
                let _ = killpg(Pid::from_raw(identity.pid), Signal::SIGTERM);
                signalled.push(identity);
            }
        }
    }
    signalled
}

/// Stops a run: SIGTERM to its process group (the runner kills the agent).
pub fn stop(config: &ProcessConfig, ns: &str, job: &str) {
    if let Some(identity) =
        read_identity(&run_dir(config, ns, job)).filter(|i| i.alive() || group_alive(i.pid))
    {
        let _ = killpg(Pid::from_raw(identity.pid), Signal::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_a_pid_and_its_start_time_so_a_reused_pid_is_not_alive() {
        let me = Identity::of(i32::try_from(std::process::id()).expect("pid")).expect("this process");
        assert!(me.alive());
        let reused = Identity { start: me.start + 1, ..me };
        assert!(!reused.alive(), "same pid, another start time: another process");
        assert_eq!(Identity::parse(&format!("{} {}\n", me.pid, me.start)), Some(me));
        assert_eq!(Identity::parse("12345"), None, "an old pid-only file identifies nothing");
    }

    #[test]
    fn private_files_are_0600_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("exit");
        write_private(&path, b"1").expect("write");
        write_private(&path, b"0").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "0");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join("exit.tmp").exists());
    }
}
