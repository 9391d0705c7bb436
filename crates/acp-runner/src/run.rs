//! The pipeline of one run: workspace → clone → agent → push → result.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use acp_api::session::{PushedBranch, RunOutcome, SessionResult, StoppedReason};
use tokio::sync::watch;

use crate::access::Access;
use crate::agent::{AgentCommand, AgentOutcome, CommandInputs, LineHandler, StopCause};
use crate::broker::Target;
use acp_api::runner::Repo;

use crate::config::RunnerConfig;
use crate::events::{Block, Line, StreamEvent, result_text, todos};
use crate::ops::{OpError, Proposal};
use crate::progress::{PREVIEW_BYTES, Progress, Reporter, Sink};
use crate::redact::Redactor;
use crate::result::{TERMINATION_MESSAGE_LIMIT, bound, termination_message, truncate_utf8};
use crate::workspace::{Layout, compose_prompt, mcp_config, startup_prompt};

/// Runs one session. `stop` turning true (SIGTERM) stops it promptly. Returns
/// the result, already written to the workspace and the termination message
/// path; its outcome's exit code is the process's.
pub async fn run(config: &RunnerConfig, sink: &mut dyn Sink, stop: watch::Receiver<bool>) -> SessionResult {
    let redactor = Redactor::new(config.credentials.secrets());
    let mut reporter = Reporter::new(sink, redactor.clone());
    let layout = Layout::new(config.workspace());
    let started = std::time::Instant::now();
    let mut result = match pipeline(config, &layout, &mut reporter, stop).await {
        Ok(result) | Err(result) => result,
    };
    if result.duration_ms.is_none() {
        result.duration_ms = i64::try_from(started.elapsed().as_millis()).ok();
    }
    result.summary = result.summary.map(|s| redactor.redact(&s));
    result.error = result.error.map(|s| redactor.redact(&s));
    let result = bound(result);
    write_result(config, &layout, &result);
    reporter.emit(Progress::Result { result: result.clone() });
    result
}

fn failure(outcome: RunOutcome, error: impl Into<String>) -> SessionResult {
    SessionResult {
        outcome: Some(outcome),
        is_error: outcome != RunOutcome::Success,
        error: Some(error.into()),
        ..SessionResult::default()
    }
}

fn stopped(reason: StoppedReason, error: impl Into<String>) -> SessionResult {
    SessionResult { stopped_reason: Some(reason), ..failure(RunOutcome::Stopped, error) }
}

fn write_result(config: &RunnerConfig, layout: &Layout, result: &SessionResult) {
    // Failing to write is reported on stderr; the exit code still tells the outcome.
    if let Ok(json) = serde_json::to_string_pretty(result)
        && let Err(err) = std::fs::write(layout.result(), json)
    {
        eprintln!("acp runner: failed to write {}: {err}", layout.result().display());
    }
    let message = termination_message(result, TERMINATION_MESSAGE_LIMIT);
    if let Some(parent) = config.termination_message_path().parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(err) = std::fs::write(config.termination_message_path(), message) {
        eprintln!("acp runner: failed to write {}: {err}", config.termination_message_path().display());
    }
}

/// Awaits `work`, or gives up when a stop arrives first.
async fn or_stop<T>(
    stop: &mut watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Result<T, SessionResult> {
    tokio::select! {
        done = work => Ok(done),
        () = wait_for_stop(stop) => Err(stopped(StoppedReason::User, "stopped by a stop request")),
    }
}

async fn wait_for_stop(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: no stop will ever come.
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct ClonedRepo {
    index: usize,
    config: Repo,
    dir: PathBuf,
    base: git2::Oid,
    branch: String,
}

async fn pipeline(
    config: &RunnerConfig,
    layout: &Layout,
    reporter: &mut Reporter<'_>,
    mut stop: watch::Receiver<bool>,
) -> Result<SessionResult, SessionResult> {
    layout.create().map_err(|e| {
        failure(
            RunOutcome::PrerequisiteFailed,
            format!("failed to create workspace {}: {e}", layout.root.display()),
        )
    })?;
    let access = Access::for_config(config);
    let model_key = match &access {
        Access::Direct(_) => config.credentials.anthropic_api_key.is_some(),
        Access::Sidecar(sidecar) => {
            let ready = or_stop(&mut stop, sidecar.wait_ready(crate::broker::client::READY_TIMEOUT)).await?;
            ready.map_err(|e| failure(RunOutcome::PrerequisiteFailed, e.to_string()))?.model_key
        }
    };
    if !model_key
        && !["CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK"]
            .iter()
            .any(|k| config.session.agent_env.contains_key(*k))
    {
        return Err(failure(
            RunOutcome::PrerequisiteFailed,
            "ANTHROPIC_API_KEY is not set: put it in the namespace's ambient-runner-secrets Secret",
        ));
    }

    let mut cloned = Vec::new();
    for (index, repo) in config.session.repos.iter().enumerate() {
        let dir = layout.repos.join(repo.dir_name());
        reporter.emit(Progress::Step { step: "clone".into(), message: format!("cloning {}", repo.url) });
        let done =
            or_stop(&mut stop, access.clone_repo(Target::Repo(index), repo, config.history(repo), &dir))
                .await?;
        let info = done.map_err(|e| failure(RunOutcome::PrerequisiteFailed, e.to_string()))?;
        reporter.emit(Progress::Cloned {
            name: repo.dir_name().to_owned(),
            branch: info.branch.clone(),
            commit: info.base.to_string(),
        });
        cloned.push(ClonedRepo { index, config: repo.clone(), dir, base: info.base, branch: info.branch });
    }

    let mut cwd = cloned.first().map_or_else(|| layout.root.clone(), |r| r.dir.clone());
    let mut startup = None;
    if let Some(workflow) = &config.session.workflow {
        let repo =
            Repo { url: workflow.git_url.clone(), branch: workflow.branch.clone(), ..Default::default() };
        let dir = layout.workflows.join(repo.dir_name());
        reporter
            .emit(Progress::Step { step: "clone".into(), message: format!("cloning workflow {}", repo.url) });
        let done = or_stop(&mut stop, access.clone_repo(Target::Workflow, &repo, 0, &dir)).await?;
        let info = done.map_err(|e| failure(RunOutcome::PrerequisiteFailed, e.to_string()))?;
        reporter.emit(Progress::Cloned {
            name: repo.dir_name().to_owned(),
            branch: info.branch,
            commit: info.base.to_string(),
        });
        cwd = match &workflow.path {
            Some(path) => safe_join(&dir, path).ok_or_else(|| {
                failure(
                    RunOutcome::PrerequisiteFailed,
                    format!("activeWorkflow.path {path:?} is not inside the workflow repository"),
                )
            })?,
            None => dir,
        };
        if !cwd.is_dir() {
            return Err(failure(
                RunOutcome::PrerequisiteFailed,
                format!("activeWorkflow.path {:?} does not exist in {}", workflow.path, workflow.git_url),
            ));
        }
        startup = startup_prompt(&cwd);
    }

    let prompt = compose_prompt(startup.as_deref(), config.session.prompt.as_deref());
    if prompt.is_empty() {
        return Err(failure(
            RunOutcome::PrerequisiteFailed,
            "nothing to do: no initialPrompt and no workflow startupPrompt",
        ));
    }
    // A follow-up continues its parent's conversation, told what changed.
    let (prompt, resume) = match &config.session.resume {
        Some(resume) => {
            let checkouts: Vec<crate::resume::Checkout<'_>> = cloned
                .iter()
                .map(|r| crate::resume::Checkout { url: &r.config.url, branch: &r.branch, dir: &r.dir })
                .collect();
            let start = crate::resume::start(resume, &layout.state.join("home"), &cwd, &checkouts, &prompt);
            reporter.emit(Progress::Log { line: start.note });
            (start.prompt, start.session_id)
        }
        None => (prompt, None),
    };
    let mcp = match mcp_config(config.session.mcp_servers.as_ref()) {
        Some((document, names)) => {
            std::fs::write(layout.mcp_config(), document.to_string()).map_err(|e| {
                failure(RunOutcome::PrerequisiteFailed, format!("failed to write the MCP configuration: {e}"))
            })?;
            Some((layout.mcp_config(), names))
        }
        None => None,
    };
    let runner_env = |key: &str| std::env::var(key).ok();
    let command = AgentCommand::build(CommandInputs {
        program: &config.claude_bin,
        model: &config.session.model,
        max_turns: config.max_turns(),
        resume: resume.as_deref(),
        mcp: mcp.as_ref().map(|(path, names)| (path.as_path(), names.clone())),
        cwd: &cwd,
        workspace: &layout.root,
        state_dir: &layout.state,
        session_env: &config.session.agent_env,
        api_key: config.credentials.anthropic_api_key.as_deref(),
        base_url: config.credentials.anthropic_base_url.as_deref(),
        runner_env: &runner_env,
        prompt,
    });

    reporter.emit(Progress::Step {
        step: "agent".into(),
        message: format!("running Claude Code ({})", config.session.model),
    });
    let transcript = std::fs::File::create(layout.transcript()).map_err(|e| {
        failure(RunOutcome::PrerequisiteFailed, format!("failed to create the transcript: {e}"))
    })?;
    let mut handler = Handler { transcript, reporter, model: config.session.model.clone(), todos: None };
    let outcome = crate::agent::run(&command, config.inactivity_timeout(), stop.clone(), &mut handler).await;
    let mut result = agent_result(&outcome, config);
    if result.outcome == Some(RunOutcome::Stopped) || result.outcome == Some(RunOutcome::PrerequisiteFailed) {
        return Err(result);
    }

    for repo in cloned.iter().filter(|r| r.config.auto_push) {
        handler.reporter.emit(Progress::Step {
            step: "push".into(),
            message: format!("pushing {}", config.push_target(&repo.config).shown()),
        });
        match push_repo(config, &access, repo, &mut stop).await? {
            Ok(Some(pushed)) => {
                handler.reporter.emit(Progress::Pushed {
                    repo: pushed.repo.clone(),
                    branch: pushed.branch.clone(),
                    commit: pushed.commit.clone(),
                });
                result.pushed_branches.push(pushed);
                if repo.config.pull_request {
                    match open_pull_request(config, &access, repo, &result).await {
                        Some(Ok(url)) => result.pull_requests.push(url),
                        Some(Err(err)) => add_error(&mut result, &err.to_string()),
                        None => handler.reporter.emit(Progress::Log {
                            line: format!(
                                "{}: not a GitHub repository; no pull request opened",
                                repo.config.url
                            ),
                        }),
                    }
                }
            }
            Ok(None) => handler.reporter.emit(Progress::Step {
                step: "push".into(),
                message: format!("{}: no changes to push", repo.config.dir_name()),
            }),
            Err(err) => add_error(&mut result, &err.to_string()),
        }
    }
    Ok(result)
}

/// Marks the run failed with `error`, keeping any earlier error.
fn add_error(result: &mut SessionResult, error: &str) {
    result.outcome = Some(RunOutcome::AgentError);
    result.is_error = true;
    result.error = Some(match result.error.take() {
        Some(previous) => format!("{previous}; {error}"),
        None => error.to_owned(),
    });
}

/// Opens a draft pull request for a pushed repo; `None` when it is not on GitHub.
async fn open_pull_request(
    config: &RunnerConfig,
    access: &Access,
    repo: &ClonedRepo,
    result: &SessionResult,
) -> Option<Result<String, OpError>> {
    let title = commit_title(config);
    let session = session_ref(config);
    let summary = result.summary.as_deref().unwrap_or("(no summary)");
    let body = format!(
        "Opened by acp session `{session}`.\n\n### Agent summary\n\n{}\n",
        truncate_utf8(summary, 8000)
    );
    let head = config.push_target(&repo.config).branch;
    let proposal = Proposal { base: &repo.branch, head: &head, title: &title, body: &body };
    access.pull_request(repo.index, &repo.config, proposal).await
}

fn commit_title(config: &RunnerConfig) -> String {
    config
        .session
        .display_name
        .clone()
        .or_else(|| {
            config.session.prompt.as_deref().and_then(|p| p.lines().next()).map(|l| truncate_utf8(l, 72))
        })
        .unwrap_or_else(|| "agent changes".into())
}

fn session_ref(config: &RunnerConfig) -> String {
    match &config.session.namespace {
        Some(ns) => format!("{ns}/{}", config.session.session_name),
        None => config.session.session_name.clone(),
    }
}

async fn push_repo(
    config: &RunnerConfig,
    access: &Access,
    repo: &ClonedRepo,
    stop: &mut watch::Receiver<bool>,
) -> Result<Result<Option<PushedBranch>, OpError>, SessionResult> {
    let target = config.push_target(&repo.config);
    let title = commit_title(config);
    let session = session_ref(config);
    let message = format!(
        "{title}\n\nChanges made by the Claude Code agent in acp session {session}.\n\nSession: {session}\n"
    );
    let (dir, base, author, branch_c) =
        (repo.dir.clone(), repo.base, config.git_author.clone(), target.branch.clone());
    let commit = tokio::task::spawn_blocking(move || {
        crate::git::commit_changes(&dir, base, &branch_c, &author, &message)
    });
    let committed = match or_stop(stop, commit).await? {
        Ok(Ok(Some(commit))) => commit,
        Ok(Ok(None)) => return Ok(Ok(None)),
        Ok(Err(err)) => return Ok(Err(err.into())),
        Err(err) => return Ok(Err(OpError::Task(err.to_string()))),
    };
    let url = repo.config.push_url().to_owned();
    let pushed = or_stop(stop, access.push(repo.index, &url, &repo.dir, &target)).await?;
    Ok(pushed.map(|pushed| {
        if pushed.commit != committed.to_string() {
            tracing::warn!(committed = %committed, pushed = %pushed.commit, "the branch moved between commit and push");
        }
        Some(PushedBranch { repo: url, branch: target.shown().to_owned(), commit: pushed.commit })
    }))
}

fn agent_result(outcome: &AgentOutcome, config: &RunnerConfig) -> SessionResult {
    if let Some(error) = &outcome.spawn_error {
        return failure(
            RunOutcome::PrerequisiteFailed,
            format!("{error} (is the Claude Code CLI installed? set CLAUDE_BIN)"),
        );
    }
    let mut result = match outcome.stopped {
        Some(StopCause::Signal) => stopped(StoppedReason::User, "stopped by a stop request"),
        Some(StopCause::Inactivity) => stopped(
            StoppedReason::Inactivity,
            format!(
                "stopped after {}s without agent activity (inactivityTimeout)",
                config.inactivity_timeout().map_or(0, |d| d.as_secs())
            ),
        ),
        None => match &outcome.result {
            Some(event) if event.subtype == "success" && !event.is_error => SessionResult {
                outcome: Some(RunOutcome::Success),
                summary: event.result.clone(),
                ..SessionResult::default()
            },
            Some(event) => {
                let detail = event.result.clone().filter(|r| !r.trim().is_empty());
                let message = if event.subtype == "error_max_turns" {
                    format!("the agent reached maxTurns ({}) before finishing", config.max_turns())
                } else if let Some(status) = event.api_error_status {
                    format!("model API error (HTTP {status}): {}", detail.as_deref().unwrap_or("no details"))
                } else {
                    format!(
                        "the agent failed ({}): {}",
                        event.subtype,
                        detail.as_deref().unwrap_or("no details")
                    )
                };
                failure(RunOutcome::AgentError, message)
            }
            None => failure(
                RunOutcome::AgentError,
                format!(
                    "the Claude Code CLI exited (code {}) without a result: {}",
                    outcome.exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                    outcome.stderr_tail.trim()
                ),
            ),
        },
    };
    if let Some(event) = &outcome.result {
        result.num_turns = event.num_turns;
        result.total_cost_usd = event.total_cost_usd;
        result.duration_ms = event.duration_ms;
        result.usage.clone_from(&event.usage);
    }
    result.sdk_session_id =
        outcome.result.as_ref().and_then(|r| r.session_id.clone()).or_else(|| outcome.session_id.clone());
    result
}

/// `base/rel` when `rel` stays inside `base`.
fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
        .then(|| base.join(rel))
}

struct Handler<'r, 's> {
    transcript: std::fs::File,
    reporter: &'r mut Reporter<'s>,
    model: String,
    todos: Option<Vec<crate::events::Todo>>,
}

impl LineHandler for Handler<'_, '_> {
    fn line(&mut self, raw: &str, parsed: &Line, truncated: bool) {
        let mut record = self.reporter.redactor().redact(raw);
        if truncated {
            record.push_str(" [line truncated]");
        }
        // A full disk must not kill the run; the progress stream still has it.
        let _ = writeln!(self.transcript, "{record}");
        match parsed {
            Line::Text(text) => {
                self.reporter.emit(Progress::Log { line: truncate_utf8(text, PREVIEW_BYTES) })
            }
            Line::Event(event) => self.event(event),
        }
    }
}

impl Handler<'_, '_> {
    fn event(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::System(system) if system.subtype.as_deref() == Some("init") => {
                self.reporter.emit(Progress::AgentStarted {
                    session_id: system.session_id.clone().unwrap_or_default(),
                    model: system.model.clone().unwrap_or_else(|| self.model.clone()),
                });
            }
            StreamEvent::Assistant(message) => {
                for block in &message.message.content {
                    match block {
                        Block::Text { text } if !text.trim().is_empty() => {
                            self.reporter.emit(Progress::Text { text: truncate_utf8(text, PREVIEW_BYTES) });
                        }
                        Block::ToolUse { name, input, .. } => {
                            if let Some(list) = todos(name, input)
                                && self.todos.as_ref() != Some(&list)
                            {
                                self.todos = Some(list.clone());
                                self.reporter.emit(Progress::Todos { todos: list });
                            }
                            self.reporter.emit(Progress::ToolUse {
                                tool: name.clone(),
                                summary: tool_summary(name, input),
                            });
                        }
                        _ => {}
                    }
                }
            }
            StreamEvent::User(message) => {
                for block in &message.message.content {
                    if let Block::ToolResult { content, is_error, .. } = block {
                        let text = result_text(content);
                        self.reporter.emit(Progress::ToolResult {
                            is_error: *is_error,
                            bytes: text.len(),
                            preview: truncate_utf8(&text, 300),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// One line describing a tool call: the file it touches or the command it runs.
fn tool_summary(name: &str, input: &serde_json::Value) -> String {
    let field = |key: &str| input.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let summary = match name {
        "Bash" => field("command"),
        "Read" | "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
            field("file_path").or_else(|| field("notebook_path"))
        }
        "Glob" | "Grep" => field("pattern"),
        _ => field("description"),
    };
    truncate_utf8(&summary.unwrap_or_default(), 200)
}
