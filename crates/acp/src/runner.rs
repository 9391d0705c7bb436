//! `acp runner` (the runner container's entrypoint) and `acp run FILE` (one
//! session on this machine, no cluster).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::session::{RunOutcome, SessionResult};
use acp_runner::config::RunnerConfig;
use acp_runner::progress::{JsonLines, Progress, Sink};
use anyhow::Context as _;
use tokio::sync::watch;

/// Options of `acp runner`.
#[derive(Debug, clap::Args)]
pub struct RunnerArgs {
    #[command(subcommand)]
    command: Option<RunnerCommand>,
}

/// What `acp runner` runs besides the runner itself.
#[derive(Debug, clap::Subcommand)]
enum RunnerCommand {
    /// The credentials sidecar of a runner pod: holds the model key and git
    /// credentials (the same environment variables as the runner), clones,
    /// pushes and opens pull requests for the runner, and forwards model
    /// requests adding the key, on a loopback address only. SIGTERM stops it.
    Credentials {
        /// Loopback address to listen on.
        #[arg(long, env = "ACP_CREDENTIALS_LISTEN", default_value = acp_api::constants::runner_pod::CREDENTIALS_ADDR)]
        listen: std::net::SocketAddr,
    },
    /// The operator's process executor starts runs through this: it records
    /// its identity in DIR, runs `acp runner` with the same environment and
    /// writes the exit code to DIR/exit, outliving the operator.
    #[command(hide = true)]
    Supervise {
        /// The run's directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Options of `acp run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The AgenticSession manifest to run (YAML).
    file: PathBuf,
    /// Workspace directory (repos are cloned to <workspace>/repos/<name>).
    /// Defaults to a new directory under the system temp dir, kept afterwards.
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Print progress as JSON lines even on a terminal.
    #[arg(long)]
    json: bool,
}

fn exit_code(result: &SessionResult) -> ExitCode {
    let code = result.outcome.unwrap_or(RunOutcome::AgentError).exit_code();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A stop signal: true once SIGTERM or SIGINT arrives.
fn stop_on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// `acp runner`: configuration from the environment, JSON lines on stdout.
pub fn runner(args: &RunnerArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(RunnerCommand::Credentials { listen }) => return credentials(*listen),
        Some(RunnerCommand::Supervise { dir }) => return supervise(dir),
        None => {}
    }
    let get = |key: &str| std::env::var(key).ok();
    let config = match RunnerConfig::from_env(&get) {
        Ok(config) => config,
        Err(err) => {
            // Still honour the contract: a result on the termination message path.
            let result = SessionResult {
                outcome: Some(RunOutcome::PrerequisiteFailed),
                is_error: true,
                error: Some(err.to_string()),
                ..SessionResult::default()
            };
            let path = get(acp_api::runner::env::TERMINATION_MESSAGE_PATH)
                .unwrap_or_else(|| acp_api::runner::DEFAULT_TERMINATION_MESSAGE_PATH.into());
            let message = acp_runner::result::termination_message(
                &result,
                acp_runner::result::TERMINATION_MESSAGE_LIMIT,
            );
            let _ = std::fs::write(path, message);
            JsonLines.emit(&Progress::Result { result: result.clone() });
            eprintln!("acp runner: {err}");
            return Ok(exit_code(&result));
        }
    };
    acp_runner::process::become_subreaper();
    let rt = runtime()?;
    let result = rt.block_on(async {
        let stop = stop_on_signals()?;
        anyhow::Ok(acp_runner::run(&config, &mut JsonLines, stop).await)
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(exit_code(&result))
}

/// `acp runner supervise --dir DIR`: exits with the runner's code.
fn supervise(dir: &Path) -> anyhow::Result<ExitCode> {
    let acp = std::env::current_exe().context("failed to locate the acp binary")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let code = rt
        .block_on(acp_operator::process::supervise(dir, &acp))
        .with_context(|| format!("failed to supervise the run in {}", dir.display()))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `acp runner credentials`: the sidecar, until SIGTERM or SIGINT.
fn credentials(listen: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    crate::operator::init_tracing();
    let get = |key: &str| std::env::var(key).ok();
    let config = RunnerConfig::from_env(&get).context("failed to read the session's configuration")?;
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "--listen {listen} is not a loopback address: the sidecar holds credentials and serves its pod only"
    );
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("failed to listen on {listen}"))?;
        let mut stop = stop_on_signals()?;
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        acp_runner::broker::server::serve(config, listener, shutdown).await?;
        anyhow::Ok(())
    })?;
    // Stopped by the kubelet once the runner is done: a clean exit.
    Ok(ExitCode::SUCCESS)
}

/// Reads and checks a session manifest.
fn load(file: &Path) -> anyhow::Result<AgenticSession> {
    let text = std::fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    anyhow::ensure!(
        value["apiVersion"] == acp_api::constants::API_VERSION && value["kind"] == "AgenticSession",
        "{}: expected apiVersion {} and kind AgenticSession, found {} {}",
        file.display(),
        acp_api::constants::API_VERSION,
        value["apiVersion"],
        value["kind"]
    );
    let session: AgenticSession = serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{}: invalid session: {e}", file.display()))?;
    anyhow::ensure!(session.metadata.name.is_some(), "{}: metadata.name is required", file.display());
    Ok(session)
}

/// `acp run FILE`.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let session = match load(&args.file) {
        Ok(session) => session,
        Err(err) => {
            // A bad manifest is a prerequisite failure (exit 2), like in a pod.
            eprintln!("acp: error: {err:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let name = session.metadata.name.clone().unwrap_or_default();
    let workspace = match &args.workspace {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("acp-run-{name}-{}", std::process::id())),
    };
    let get = |key: &str| std::env::var(key).ok();
    let config = match RunnerConfig::from_spec(&name, &session.spec, &workspace, &get) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("acp: error: {}: {err}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    acp_runner::process::become_subreaper();
    let rt = runtime()?;
    let interactive = !args.json && std::io::stderr().is_terminal();
    let result = rt.block_on(async {
        let stop = stop_on_signals()?;
        let result = if interactive {
            let mut sink = crate::tty::Terminal::new(&name);
            acp_runner::run(&config, &mut sink, stop).await
        } else {
            acp_runner::run(&config, &mut JsonLines, stop).await
        };
        anyhow::Ok(result)
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    if interactive {
        crate::tty::print_result(&result, &workspace);
    }
    Ok(exit_code(&result))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// The help's list of inputs is prose: it must name every variable of
    /// the runner contract.
    #[test]
    fn the_runner_help_names_every_contract_variable() {
        let mut cli = crate::Cli::command();
        let help = cli.find_subcommand_mut("runner").expect("runner").render_long_help().to_string();
        let missing: Vec<&str> =
            acp_api::runner::env::ALL.iter().copied().filter(|name| !help.contains(name)).collect();
        assert!(missing.is_empty(), "`acp runner --help` does not name {missing:?}");
    }
}
