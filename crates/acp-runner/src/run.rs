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

/// A run's phases, each a step of [`pipeline`]: what they share.
struct Phases<'a, 'r, 's> {
    config: &'a RunnerConfig,
    layout: &'a Layout,
    reporter: &'r mut Reporter<'s>,
    stop: watch::Receiver<bool>,
    access: Access,
}

/// The agent's working directory and the workflow's startup prompt.
struct Workdir {
    cwd: PathBuf,
    startup: Option<String>,
}

fn prerequisite(error: impl Into<String>) -> SessionResult {
    failure(RunOutcome::PrerequisiteFailed, error)
}

async fn pipeline(
    config: &RunnerConfig,
    layout: &Layout,
    reporter: &mut Reporter<'_>,
    stop: watch::Receiver<bool>,
) -> Result<SessionResult, SessionResult> {
    layout
        .create()
        .map_err(|e| prerequisite(format!("failed to create workspace {}: {e}", layout.root.display())))?;
    let access = Access::for_config(config);
    let mut run = Phases { config, layout, reporter, stop, access };
    run.check_model_access().await?;
    let cloned = run.clone_repos().await?;
    let workdir = run.clone_workflow(&cloned).await?;
    let command = run.agent_command(&cloned, workdir).map_err(prerequisite)?;
    let result = run.run_agent(&command).await?;
    run.push(&cloned, result).await
}

impl Phases<'_, '_, '_> {
    /// The model can be reached: a key (here or in the sidecar), or a
    /// cloud provider the agent's environment selects.
    async fn check_model_access(&mut self) -> Result<(), SessionResult> {
        let model_key = match &self.access {
            Access::Direct(_) => self.config.credentials.anthropic_api_key.is_some(),
            Access::Sidecar(sidecar) => {
                let ready = sidecar.wait_ready(crate::broker::client::READY_TIMEOUT);
                let ready = or_stop(&mut self.stop, ready).await?;
                ready.map_err(|e| prerequisite(e.to_string()))?.model_key
            }
        };
        let cloud = ["CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK"];
        if model_key || cloud.iter().any(|k| self.config.session.agent_env.contains_key(*k)) {
            return Ok(());
        }
        Err(prerequisite(
            "ANTHROPIC_API_KEY is not set: put it in the namespace's ambient-runner-secrets Secret",
        ))
    }

    /// Clones `repo` (as `target`, with `history`) into `dir`, reporting it.
    async fn clone_one(
        &mut self,
        target: Target,
        repo: &Repo,
        history: u32,
        dir: &Path,
        what: &str,
    ) -> Result<crate::git::Cloned, SessionResult> {
        self.reporter
            .emit(Progress::Step { step: "clone".into(), message: format!("cloning {what}{}", repo.url) });
        let done = or_stop(&mut self.stop, self.access.clone_repo(target, repo, history, dir)).await?;
        let info = done.map_err(|e| prerequisite(e.to_string()))?;
        self.reporter.emit(Progress::Cloned {
            name: repo.dir_name().to_owned(),
            branch: info.branch.clone(),
            commit: info.base.to_string(),
        });
        Ok(info)
    }

    async fn clone_repos(&mut self) -> Result<Vec<ClonedRepo>, SessionResult> {
        let mut cloned = Vec::new();
        for (index, repo) in self.config.session.repos.iter().enumerate() {
            let dir = self.layout.repos.join(repo.dir_name());
            let history = self.config.history(repo);
            let info = self.clone_one(Target::Repo(index), repo, history, &dir, "").await?;
            cloned.push(ClonedRepo {
                index,
                config: repo.clone(),
                dir,
                base: info.base,
                branch: info.branch,
            });
        }
        Ok(cloned)
    }

    /// The workflow's checkout, when there is one: the agent works in its
    /// `path`, and its startup prompt comes first. Otherwise the first
    /// repository (or the workspace) is the working directory.
    async fn clone_workflow(&mut self, cloned: &[ClonedRepo]) -> Result<Workdir, SessionResult> {
        let first = cloned.first().map_or_else(|| self.layout.root.clone(), |r| r.dir.clone());
        let Some(workflow) = &self.config.session.workflow else {
            return Ok(Workdir { cwd: first, startup: None });
        };
        let repo =
            Repo { url: workflow.git_url.clone(), branch: workflow.branch.clone(), ..Default::default() };
        let dir = self.layout.workflows.join(repo.dir_name());
        self.clone_one(Target::Workflow, &repo, 0, &dir, "workflow ").await?;
        let cwd = match &workflow.path {
            Some(path) => safe_join(&dir, path).ok_or_else(|| {
                prerequisite(format!("activeWorkflow.path {path:?} is not inside the workflow repository"))
            })?,
            None => dir,
        };
        if !cwd.is_dir() {
            let why =
                format!("activeWorkflow.path {:?} does not exist in {}", workflow.path, workflow.git_url);
            return Err(prerequisite(why));
        }
        Ok(Workdir { startup: startup_prompt(&cwd), cwd })
    }

    /// The agent's command line: the prompt (a follow-up's told what
    /// changed), the model and limits, the MCP configuration; or why there
    /// is none.
    fn agent_command(&mut self, cloned: &[ClonedRepo], workdir: Workdir) -> Result<AgentCommand, String> {
        let (config, layout) = (self.config, self.layout);
        let prompt = compose_prompt(workdir.startup.as_deref(), config.session.prompt.as_deref());
        if prompt.is_empty() {
            return Err("nothing to do: no initialPrompt and no workflow startupPrompt".into());
        }
        let (prompt, resume) = match &config.session.resume {
            Some(resume) => {
                let checkouts: Vec<crate::resume::Checkout<'_>> = cloned
                    .iter()
                    .map(|r| crate::resume::Checkout { url: &r.config.url, branch: &r.branch, dir: &r.dir })
                    .collect();
                let home = layout.state.join("home");
                let start = crate::resume::start(resume, &home, &workdir.cwd, &checkouts, &prompt);
                self.reporter.emit(Progress::Log { line: start.note });
                (start.prompt, start.session_id)
            }
            None => (prompt, None),
        };
        let mcp = match mcp_config(config.session.mcp_servers.as_ref()) {
            Some((document, names)) => {
                std::fs::write(layout.mcp_config(), document.to_string())
                    .map_err(|e| format!("failed to write the MCP configuration: {e}"))?;
                Some((layout.mcp_config(), names))
            }
            None => None,
        };
        let runner_env = |key: &str| std::env::var(key).ok();
        Ok(AgentCommand::build(CommandInputs {
            program: &config.claude_bin,
            model: &config.session.model,
            max_turns: config.max_turns(),
            resume: resume.as_deref(),
            mcp: mcp.as_ref().map(|(path, names)| (path.as_path(), names.clone())),
            cwd: &workdir.cwd,
            workspace: &layout.root,
            state_dir: &layout.state,
            session_env: &config.session.agent_env,
            api_key: config.credentials.anthropic_api_key.as_deref(),
            base_url: config.credentials.anthropic_base_url.as_deref(),
            runner_env: &runner_env,
            prompt,
        }))
    }

    /// Runs the agent, its output going to the transcript and the progress
    /// stream; a stopped or unstartable agent ends the run.
    async fn run_agent(&mut self, command: &AgentCommand) -> Result<SessionResult, SessionResult> {
        let config = self.config;
        let message = format!("running Claude Code ({})", config.session.model);
        self.reporter.emit(Progress::Step { step: "agent".into(), message });
        let transcript = std::fs::File::create(self.layout.transcript())
            .map_err(|e| prerequisite(format!("failed to create the transcript: {e}")))?;
        let model = config.session.model.clone();
        let mut handler = Handler { transcript, reporter: &mut *self.reporter, model, todos: None };
        let timeout = config.inactivity_timeout();
        let outcome = crate::agent::run(command, timeout, self.stop.clone(), &mut handler).await;
        let result = agent_result(&outcome, config);
        match result.outcome {
            Some(RunOutcome::Stopped | RunOutcome::PrerequisiteFailed) => Err(result),
            _ => Ok(result),
        }
    }

    /// Commits and pushes each repository with autoPush, opening its pull
    /// request when asked; a failure is added to `result`.
    async fn push(
        &mut self,
        cloned: &[ClonedRepo],
        mut result: SessionResult,
    ) -> Result<SessionResult, SessionResult> {
        let config = self.config;
        for repo in cloned.iter().filter(|r| r.config.auto_push) {
            let message = format!("pushing {}", config.push_target(&repo.config).shown());
            self.reporter.emit(Progress::Step { step: "push".into(), message });
            let pushed = match push_repo(config, &self.access, repo, &mut self.stop).await? {
                Ok(Some(pushed)) => pushed,
                Ok(None) => {
                    let message = format!("{}: no changes to push", repo.config.dir_name());
                    self.reporter.emit(Progress::Step { step: "push".into(), message });
                    continue;
                }
                Err(err) => {
                    add_error(&mut result, &err.to_string());
                    continue;
                }
            };
            let (repo_url, branch, commit) =
                (pushed.repo.clone(), pushed.branch.clone(), pushed.commit.clone());
            self.reporter.emit(Progress::Pushed { repo: repo_url, branch, commit });
            result.pushed_branches.push(pushed);
            if !repo.config.pull_request {
                continue;
            }
            match open_pull_request(config, &self.access, repo, &result).await {
                Some(Ok(url)) => result.pull_requests.push(url),
                Some(Err(err)) => add_error(&mut result, &err.to_string()),
                None => {
                    let line =
                        format!("{}: not a GitHub repository; no pull request opened", repo.config.url);
                    self.reporter.emit(Progress::Log { line });
                }
            }
        }
        Ok(result)
    }
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
