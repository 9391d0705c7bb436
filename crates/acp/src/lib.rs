//! The `acp` command line: one binary for every acp component.
//!
//! `main` only parses arguments; [`run`] dispatches to the subcommand. Each
//! component lives in its own crate; this crate wires them to the command line.
#![forbid(unsafe_code)]

mod action;
mod all;
mod crds;
mod dashboard;
mod gitsync;
mod leader;
mod operator;
mod plan;
mod policies;
mod runner;
mod shard;
mod statusbot;
mod tty;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// GitOps for AI coding-agent sessions on Kubernetes.
///
/// Teams commit AgenticSession manifests to git; acp applies them to a cluster,
/// runs each as a Job driving the Claude Code CLI, and writes results back to git
/// and to the pull request that asked for the work.
#[derive(Debug, Parser)]
#[command(name = "acp", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// acp's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print acp's CustomResourceDefinitions (AgenticSession, SessionSource, SessionSchedule).
    ///
    /// Without options, prints every CRD as one multi-document YAML stream, ready
    /// for `kubectl apply --server-side -f -`. With `--out DIR`, writes one file
    /// per CRD (`<plural>.<group>.yaml`) instead; the repository's `crds/` is made
    /// this way. With `--check DIR`, exits 1 if DIR differs from the generated CRDs.
    Crds(crds::CrdsArgs),
    /// Run one AgenticSession manifest on this machine, without a cluster.
    ///
    /// Clones the session's repositories into a workspace, runs the Claude Code
    /// CLI (`claude` on PATH, or CLAUDE_BIN) with the session's prompt, model and
    /// limits, pushes `ambient/<name>` for repos with autoPush, and prints the
    /// result. Credentials come from the environment: ANTHROPIC_API_KEY (and
    /// ANTHROPIC_BASE_URL), GIT_TOKEN / GITHUB_TOKEN / GITLAB_TOKEN for https,
    /// GIT_SSH_KEY_FILE and GIT_KNOWN_HOSTS_FILE for ssh. Exit code: 0 success,
    /// 1 agent error, 2 prerequisite failure, 143 stopped (Ctrl-C or SIGTERM).
    Run(runner::RunArgs),
    /// The runner container's entrypoint (configured by environment variables).
    ///
    /// Inputs, as the operator sets them: AGENTIC_SESSION_NAME,
    /// AGENTIC_SESSION_NAMESPACE, WORKSPACE_PATH (/workspace), INITIAL_PROMPT,
    /// DISPLAY_NAME, REPOS_JSON ([{url, branch, name, autoPush, pullRequest,
    /// pushBranch, pushUrl, pushRef, commit}]), RESUME_JSON (a follow-up's parent
    /// conversation, workspace, commits and earlier turns),
    /// ACTIVE_WORKFLOW_GIT_URL, ACTIVE_WORKFLOW_BRANCH, ACTIVE_WORKFLOW_PATH,
    /// LLM_MODEL, MAX_TURNS (50), INACTIVITY_TIMEOUT (seconds, 0 = off),
    /// TIMEOUT (the session's deadline, seconds), USER_ID and USER_NAME
    /// (spec.userContext), CUSTOM_MCP_SERVERS (JSON of spec.mcpServers),
    /// SESSION_ENV_JSON (JSON of spec.environmentVariables),
    /// ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, GIT_TOKEN, GITHUB_TOKEN,
    /// GITLAB_TOKEN, GIT_SSH_KEY_FILE, GIT_KNOWN_HOSTS_FILE, GIT_USER_NAME,
    /// GIT_USER_EMAIL, CLAUDE_BIN (claude), TERMINATION_MESSAGE_PATH
    /// (/dev/termination-log). Progress: JSON lines on stdout. Result: JSON on
    /// the termination message path (≤ 4 KiB) and in <workspace>/.acp/result.json.
    ///
    /// In a pod the credentials are not the runner's: ACP_CREDENTIALS_URL
    /// names the `acp runner credentials` sidecar, which clones, pushes and
    /// opens pull requests for it, and ANTHROPIC_BASE_URL points at the same
    /// sidecar, which adds the model key.
    Runner(runner::RunnerArgs),
    /// Run the operator: every AgenticSession becomes a Job with an honest status.
    ///
    /// For each session it applies (server-side, field manager acp-operator) a
    /// Secret `<session>-runner` with the runner's credentials (copied from the
    /// namespace's `ambient-runner-secrets`: ANTHROPIC_API_KEY required;
    /// ANTHROPIC_BASE_URL, GIT_TOKEN, GITHUB_TOKEN, GITLAB_TOKEN, GIT_SSH_KEY,
    /// GIT_KNOWN_HOSTS, GIT_USER_NAME, GIT_USER_EMAIL optional; a session's
    /// `spec.runnerSecret`, where policy allows it, names a Secret overriding them),
    /// a PVC `<session>-workspace`, and a Job `<session>-<run>`, all owned by
    /// the session, and keeps the session's status. Uses KUBECONFIG or the
    /// in-cluster service account.
    Operator(Box<operator::OperatorArgs>),
    /// Run git-sync: apply the AgenticSessions of every SessionSource's repository.
    ///
    /// For each SessionSource it fetches the configured ref (https with a token,
    /// ssh with a key and known_hosts, or file://) into a mirror under
    /// --cache-dir, selects `*.yaml`/`*.yml` under `spec.path` (minus `ignore`
    /// globs and the write-back path), checks every document against the
    /// AgenticSession schema and the policies, and server-side applies the valid
    /// ones (field manager acp-git-sync, as `spec.serviceAccountName` when set).
    /// Bad files are reported in status and as Warning events; the others still
    /// apply. With `prune`, sessions whose file left git are deleted. GitHub push
    /// deliveries to `POST /hooks/github` trigger a sync at once.
    GitSync(gitsync::GitSyncArgs),
    /// Check manifests against the AgenticSession schema and the policies, offline.
    ///
    /// Reports every problem with file:line:col and what to change: invalid YAML,
    /// other kinds, unknown fields, schema bounds, policy violations, duplicate
    /// names, oversized files and symlinks. Exit code 1 when there is any finding.
    /// `--format github` prints workflow commands that annotate a pull request.
    Validate(validate::ValidateArgs),
    /// Show what a sync would create, update, leave unchanged or prune.
    ///
    /// Offline, compares the directory with a git revision (`--base origin/main`:
    /// what merging changes) or, without --base, lists every valid session as a
    /// create. With `--cluster`, compares with the namespace's sessions and
    /// dry-runs each create and update on the API server (server-side policies
    /// included). Exit code 1 when there are findings.
    Plan(plan::PlanArgs),
    /// Run the status bot: results of git-synced sessions back to GitHub and git.
    ///
    /// For each session git-sync applied, it sets a commit status `acp/<session>`
    /// on the source revision (pending, then success or failure, linking to the
    /// dashboard), keeps one comment per session on the pull request that
    /// brought it in (found by a hidden marker; created on first progress,
    /// edited in place, debounced), and commits a status file
    /// `<writeBack.path>/<namespace>/<session>.yaml` to the write-back branch
    /// when a run ends. The GitHub token comes from the source's
    /// `github.tokenSecretRef`; progress is kept in the session's
    /// `ambient-code.io/status-bot` annotation, so a restart resumes.
    Statusbot(statusbot::StatusBotArgs),
    /// Run the read-only dashboard and its JSON API.
    ///
    /// Pages: /sessions (filter by namespace, phase and source; search, sort,
    /// pages), /sessions/NS/NAME (spec, conditions, result, links, live runner
    /// output), /sources and /sources/NS/NAME. API under /api/v1 (list, get and
    /// server-sent-event watch of sessions and sources; a session's log);
    /// its OpenAPI document at /api/v1/openapi.json. Operations: /healthz,
    /// /readyz (caches loaded), /metrics. Everything is served from watch
    /// caches. The dashboard's own service account needs list/watch on
    /// agenticsessions and sessionsources, create on tokenreviews and
    /// subjectaccessreviews (token auth), and get on pods/log.
    Dashboard(dashboard::DashboardArgs),
    /// Run every controller in one process: the local GitOps loop.
    ///
    /// git-sync, the operator with the `process` executor (runners are child
    /// processes of this one; their workspaces and logs live under
    /// --state-dir), the status bot writing back to the sources' repositories,
    /// and the dashboard (no auth: bind it to loopback). With --serve-git it
    /// also serves local bare repositories over `git http-backend`. Without
    /// ANTHROPIC_API_KEY, sessions use acp's scripted replay model, labelled as
    /// such on every page and in every result. `scripts/quickstart` sets all of
    /// this up. Ctrl-C stops everything, runners included.
    All(Box<all::AllArgs>),
    /// The GitHub Action's entrypoint (action.yml): validate, plan, submit, wait.
    ///
    /// Inputs are INPUT_* environment variables (INPUT_COMMAND, INPUT_PATH,
    /// INPUT_GITHUB_TOKEN, INPUT_PROMPT, INPUT_REPOS, INPUT_DASHBOARD_URL, …;
    /// each also a --flag), the workflow context GITHUB_*; outputs go to
    /// GITHUB_OUTPUT and a report to GITHUB_STEP_SUMMARY.
    Action(Box<action::ActionArgs>),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Crds(args) => crds::run(&args),
        Command::Run(args) => runner::run(&args),
        Command::Runner(args) => runner::runner(&args),
        Command::Operator(args) => operator::run(&args),
        Command::GitSync(args) => gitsync::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Statusbot(args) => statusbot::run(&args),
        Command::Dashboard(args) => dashboard::run(&args),
        Command::All(args) => all::run(&args),
        Command::Action(args) => action::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("acp: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
