//! Running the Claude Code CLI: the command line, its environment, and the
//! supervised child process (event stream, inactivity, stop, process-tree kill).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::events::{Line, ResultEvent, StreamEvent, parse_line};

/// Tools the agent may use without asking. Everything else is denied in
/// non-interactive mode. Web access is not on the list.
pub const ALLOWED_TOOLS: &[&str] = &[
    "Read",
    "Write",
    "Edit",
    "MultiEdit",
    "NotebookEdit",
    "Glob",
    "Grep",
    "LS",
    "Bash",
    "TodoWrite",
    "TaskCreate",
    "TaskUpdate",
    "TaskList",
    "TaskGet",
    "Task",
    "Agent",
];

/// Environment variables of the runner passed through to the agent (proxy and
/// TLS settings); everything else is set explicitly.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
];

/// Variables the session's `environmentVariables` may not override.
pub const RESERVED_ENV: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CONFIG_DIR",
    "HOME",
    "PATH",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER",
];

/// Longest stdout line kept; the rest of a longer line is dropped (and noted).
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// The fully-resolved CLI invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCommand {
    /// Executable.
    pub program: PathBuf,
    /// Arguments (the prompt goes to stdin).
    pub args: Vec<String>,
    /// Complete environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The prompt, written to stdin.
    pub prompt: String,
}

/// Inputs for [`AgentCommand::build`].
pub struct CommandInputs<'a> {
    /// The CLI.
    pub program: &'a Path,
    /// Model.
    pub model: &'a str,
    /// Turn bound.
    pub max_turns: u32,
    /// The conversation to continue (`--resume`), already in the agent's home.
    pub resume: Option<&'a str>,
    /// MCP config file, with the server names it defines.
    pub mcp: Option<(&'a Path, Vec<String>)>,
    /// Working directory.
    pub cwd: &'a Path,
    /// Workspace root (added with `--add-dir`).
    pub workspace: &'a Path,
    /// Runner-private state directory (`HOME` and `CLAUDE_CONFIG_DIR` go here).
    pub state_dir: &'a Path,
    /// The session's environment variables.
    pub session_env: &'a BTreeMap<String, String>,
    /// Model API key and base URL.
    pub api_key: Option<&'a str>,
    /// Base URL of the Messages API.
    pub base_url: Option<&'a str>,
    /// The runner's own environment, for pass-through.
    pub runner_env: &'a dyn Fn(&str) -> Option<String>,
    /// The prompt.
    pub prompt: String,
}

impl AgentCommand {
    /// Builds the invocation (pure).
    pub fn build(inputs: CommandInputs<'_>) -> Self {
        Self {
            program: inputs.program.to_owned(),
            args: Self::args(&inputs),
            env: Self::env(&inputs),
            cwd: inputs.cwd.to_owned(),
            prompt: inputs.prompt,
        }
    }

    /// The CLI's flags: headless, streaming JSON, the model and limits, the
    /// workspace, the conversation to resume, the MCP servers and the tools.
    fn args(inputs: &CommandInputs<'_>) -> Vec<String> {
        let mut allowed: Vec<String> = ALLOWED_TOOLS.iter().map(|t| (*t).to_owned()).collect();
        let mut args = vec![
            "-p".to_owned(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
            "--model".into(),
            inputs.model.to_owned(),
            "--max-turns".into(),
            inputs.max_turns.to_string(),
            "--permission-mode".into(),
            "acceptEdits".into(),
            "--add-dir".into(),
            inputs.workspace.to_string_lossy().into_owned(),
        ];
        if let Some(id) = inputs.resume {
            args.extend(["--resume".into(), id.to_owned()]);
        }
        if let Some((file, servers)) = &inputs.mcp {
            args.extend([
                "--mcp-config".into(),
                file.to_string_lossy().into_owned(),
                "--strict-mcp-config".into(),
            ]);
            allowed.extend(servers.iter().map(|s| format!("mcp__{s}")));
        }
        args.extend(["--allowedTools".into(), allowed.join(",")]);
        args
    }

    /// The CLI's whole environment: a few of the runner's variables, the
    /// session's (never a reserved one), its own HOME, no telemetry, and
    /// the model's key and URL.
    fn env(inputs: &CommandInputs<'_>) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = PASSTHROUGH_ENV
            .iter()
            .filter_map(|k| (inputs.runner_env)(k).map(|v| ((*k).to_owned(), v)))
            .collect();
        env.entry("PATH".into()).or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
        env.entry("LANG".into()).or_insert_with(|| "C.UTF-8".into());
        for (key, value) in inputs.session_env {
            if !RESERVED_ENV.contains(&key.as_str()) {
                env.insert(key.clone(), value.clone());
            }
        }
        let home = inputs.state_dir.join("home");
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
        env.insert("CLAUDE_CONFIG_DIR".into(), home.join(".claude").to_string_lossy().into_owned());
        for flag in [
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "DISABLE_AUTOUPDATER",
            "DISABLE_TELEMETRY",
            "DISABLE_ERROR_REPORTING",
        ] {
            env.insert(flag.into(), "1".into());
        }
        if let Some(key) = inputs.api_key {
            env.insert("ANTHROPIC_API_KEY".into(), key.to_owned());
        }
        if let Some(url) = inputs.base_url {
            env.insert("ANTHROPIC_BASE_URL".into(), url.to_owned());
        }
        env
    }
}

/// Why the agent was stopped before it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// A stop request (SIGTERM).
    Signal,
    /// No event for the inactivity timeout.
    Inactivity,
}

/// What happened while the agent ran.
#[derive(Debug, Default)]
pub struct AgentOutcome {
    /// The CLI's result event, if it got that far.
    pub result: Option<ResultEvent>,
    /// Session id from the init event.
    pub session_id: Option<String>,
    /// Set when the run was cut short.
    pub stopped: Option<StopCause>,
    /// The CLI's exit code (None when killed by a signal).
    pub exit_code: Option<i32>,
    /// The end of the CLI's stderr, for error messages.
    pub stderr_tail: String,
    /// Why the CLI could not be started.
    pub spawn_error: Option<String>,
}

/// Receives each parsed line as it arrives (for progress and the transcript).
pub trait LineHandler {
    /// One line, its raw text (possibly cut to [`MAX_LINE_BYTES`]) and whether it was cut.
    fn line(&mut self, raw: &str, parsed: &Line, truncated: bool);
}

/// Runs the CLI until it exits, `stop` turns true, or it is inactive for
/// `inactivity`; a stopped CLI and all its descendants are killed.
pub async fn run(
    command: &AgentCommand,
    inactivity: Option<Duration>,
    stop: watch::Receiver<bool>,
    handler: &mut dyn LineHandler,
) -> AgentOutcome {
    let mut outcome = AgentOutcome::default();
    let mut child = match spawn(command) {
        Ok(child) => child,
        Err(err) => {
            outcome.spawn_error = Some(format!("failed to start {}: {err}", command.program.display()));
            return outcome;
        }
    };
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = command.prompt.clone();
        tokio::spawn(async move {
            // The CLI reads the whole prompt before starting; a write error
            // means it already exited, which the exit status reports.
            let _ = stdin.write_all(prompt.as_bytes()).await;
        });
    }
    let stderr_task = child.stderr.take().map(|stderr| tokio::spawn(tail(stderr, 4096)));
    let Some(stdout) = child.stdout.take() else {
        outcome.spawn_error = Some("failed to capture the CLI's output".into());
        return outcome;
    };
    read_events(BufReader::new(stdout), inactivity, stop, handler, &mut outcome).await;
    let mut descendants = std::collections::BTreeSet::new();
    if let (Some(pid), Some(_)) = (pid, outcome.stopped) {
        descendants = crate::process::kill_tree(pid, Duration::from_millis(500)).await;
    }
    outcome.exit_code = child.wait().await.ok().and_then(|s| s.code());
    if let Some(pid) = pid {
        crate::process::clean_up(pid, &descendants);
    }
    if let Some(task) = stderr_task {
        // The stderr pipe may be held open by an orphan; do not wait for it long.
        outcome.stderr_tail = tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
    }
    outcome
}

/// Starts the CLI in a process group of its own, with only its environment.
fn spawn(command: &AgentCommand) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(&command.program)
        .args(&command.args)
        .env_clear()
        .envs(&command.env)
        .current_dir(&command.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Hands each line of the CLI's output to `handler`, noting its session
/// id and result in `outcome`, until the output ends, `stop` turns true
/// or nothing arrives for `inactivity`.
async fn read_events<R: AsyncBufRead + Unpin>(
    mut reader: R,
    inactivity: Option<Duration>,
    mut stop: watch::Receiver<bool>,
    handler: &mut dyn LineHandler,
    outcome: &mut AgentOutcome,
) {
    let mut buf = Vec::new();
    let idle = inactivity.unwrap_or(Duration::from_secs(u64::MAX / 4));
    loop {
        buf.clear();
        tokio::select! {
            read = read_line_capped(&mut reader, &mut buf, MAX_LINE_BYTES) => match read {
                Ok(Some(truncated)) => {
                    let raw = String::from_utf8_lossy(&buf);
                    let raw = raw.trim_end_matches(['\n', '\r']);
                    if raw.is_empty() { continue; }
                    let parsed = parse_line(raw);
                    if let Line::Event(event) = &parsed {
                        match event.as_ref() {
                            StreamEvent::System(system) if outcome.session_id.is_none() => {
                                outcome.session_id.clone_from(&system.session_id);
                            }
                            StreamEvent::Result(result) => outcome.result = Some(result.clone()),
                            _ => {}
                        }
                    }
                    handler.line(raw, &parsed, truncated);
                }
                Ok(None) | Err(_) => return,
            },
            () = tokio::time::sleep(idle) => {
                outcome.stopped = Some(StopCause::Inactivity);
                return;
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    outcome.stopped = Some(StopCause::Signal);
                    return;
                }
            }
        }
    }
}

/// Reads one line into `buf`, keeping at most `cap` bytes of it. Returns
/// `Some(truncated)` for a line, `None` at end of input.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    let mut truncated = false;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any.then_some(truncated));
        }
        read_any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(Some(truncated));
        }
    }
}

async fn tail(mut stream: impl tokio::io::AsyncRead + Unpin, keep: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > keep * 2 {
            kept.drain(..kept.len() - keep);
        }
    }
    let start = kept.len().saturating_sub(keep);
    String::from_utf8_lossy(&kept[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_capped_and_flagged() {
        let input = format!("{}\nshort\n", "x".repeat(100));
        let mut reader = BufReader::with_capacity(16, input.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut reader, &mut buf, 10).await.expect("read"), Some(true));
        assert_eq!(buf, b"xxxxxxxxxx");
        buf.clear();
        assert_eq!(read_line_capped(&mut reader, &mut buf, 10).await.expect("read"), Some(false));
        assert_eq!(buf, b"short\n");
        buf.clear();
        assert_eq!(read_line_capped(&mut reader, &mut buf, 10).await.expect("read"), None);
    }

    #[test]
    fn command_keeps_secrets_out_of_args_and_reserved_env_untouchable() {
        let session_env: BTreeMap<String, String> =
            [("HOME".to_owned(), "/evil".to_owned()), ("LOG_LEVEL".to_owned(), "debug".to_owned())].into();
        let cmd = AgentCommand::build(CommandInputs {
            program: Path::new("claude"),
            model: "m",
            max_turns: 3,
            resume: Some("conv-1"),
            mcp: Some((Path::new("/ws/.acp/mcp.json"), vec!["docs".into()])),
            cwd: Path::new("/ws/repos/app"),
            workspace: Path::new("/ws"),
            state_dir: Path::new("/ws/.acp"),
            session_env: &session_env,
            api_key: Some("sk-secret"),
            base_url: None,
            runner_env: &|k| (k == "GITHUB_TOKEN" || k == "PATH").then(|| format!("runner-{k}")),
            prompt: "do it".into(),
        });
        assert!(!cmd.args.iter().any(|a| a.contains("sk-secret") || a.contains("do it")));
        assert!(cmd.args.windows(2).any(|w| w == ["--max-turns", "3"]));
        assert!(cmd.args.windows(2).any(|w| w == ["--resume", "conv-1"]));
        assert!(cmd.args.iter().any(|a| a.contains("mcp__docs")));
        assert_eq!(cmd.env["HOME"], "/ws/.acp/home");
        assert_eq!(cmd.env["LOG_LEVEL"], "debug");
        assert_eq!(cmd.env["PATH"], "runner-PATH");
        assert!(!cmd.env.contains_key("GITHUB_TOKEN"), "git tokens stay with the runner");
    }
}
