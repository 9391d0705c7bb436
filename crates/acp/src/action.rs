//! `acp action`: the entrypoint of the GitHub Action (`action.yml`). Inputs
//! come as `INPUT_*` environment variables (action.yml maps them), the
//! workflow's context as `GITHUB_*`; outputs go to `$GITHUB_OUTPUT`, a report
//! to `$GITHUB_STEP_SUMMARY`, annotations to stdout.
//!
//! - `validate`: schema and policy findings as annotations on the files.
//! - `plan`: what merging creates, updates and prunes, with the findings, as
//!   one pull request comment updated in place (marker `<!-- acp:plan -->`).
//! - `submit`: writes a session manifest from inputs and commits it.
//! - `wait`: polls the dashboard API until a session, or the sessions of a
//!   commit, end; outputs `session-name`, `session-phase`, `session-result`.

mod submit;
mod wait;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

/// The marker that identifies the plan comment on a pull request.
pub const PLAN_MARKER: &str = "<!-- acp:plan -->";

/// Inputs of the Action (see action.yml).
#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// validate, plan, submit or wait.
    #[arg(long, env = "INPUT_COMMAND", value_parser = ["validate", "plan", "submit", "wait"])]
    pub command: String,
    /// Directory of session manifests, relative to the workspace.
    #[arg(long, env = "INPUT_PATH", default_value = ".")]
    pub path: PathBuf,
    /// Namespace the sessions are applied into.
    #[arg(long, env = "INPUT_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Token for pull request comments (plan).
    #[arg(long, env = "INPUT_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// submit: session name (default: from the prompt and the run id).
    #[arg(long, env = "INPUT_NAME")]
    pub name: Option<String>,
    /// submit: the prompt.
    #[arg(long, env = "INPUT_PROMPT")]
    pub prompt: Option<String>,
    /// submit: repositories, one per line or comma-separated: `URL`,
    /// `URL@branch`; a trailing ` push` sets autoPush.
    #[arg(long, env = "INPUT_REPOS")]
    pub repos: Option<String>,
    /// submit: model.
    #[arg(long, env = "INPUT_MODEL")]
    pub model: Option<String>,
    /// submit: timeout in seconds.
    #[arg(long, env = "INPUT_TIMEOUT")]
    pub timeout: Option<String>,
    /// submit: display name.
    #[arg(long, env = "INPUT_DISPLAY_NAME")]
    pub display_name: Option<String>,
    /// submit: branch to push the commit to (default: the workflow's branch).
    #[arg(long, env = "INPUT_BRANCH")]
    pub branch: Option<String>,
    /// wait: the dashboard's base URL.
    #[arg(long, env = "INPUT_DASHBOARD_URL")]
    pub dashboard_url: Option<String>,
    /// wait: bearer token for the dashboard (--auth token).
    #[arg(long, env = "INPUT_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// wait: the session, `name` or `namespace/name` (default: the sessions
    /// applied from `commit`).
    #[arg(long, env = "INPUT_SESSION")]
    pub session: Option<String>,
    /// wait: the commit whose sessions to wait for (default: GITHUB_SHA).
    #[arg(long, env = "INPUT_COMMIT")]
    pub commit: Option<String>,
    /// wait: give up after this many seconds.
    #[arg(long, env = "INPUT_WAIT_TIMEOUT", default_value_t = 3600)]
    pub wait_timeout: u64,
    /// wait: seconds between two polls.
    #[arg(long, env = "INPUT_POLL_SECONDS", default_value_t = 10)]
    pub poll_seconds: u64,
    /// wait: fail the step unless every session Completed.
    #[arg(long, env = "INPUT_FAIL_ON_ERROR", default_value = "true")]
    pub fail_on_error: String,
}

/// The workflow run's context, from `GITHUB_*`.
#[derive(Debug, Default)]
pub struct Context {
    /// `GITHUB_WORKSPACE` (default: the current directory).
    pub workspace: PathBuf,
    /// `GITHUB_EVENT_NAME`.
    pub event_name: String,
    /// The event payload (`GITHUB_EVENT_PATH`).
    pub event: serde_json::Value,
    /// `GITHUB_REPOSITORY`.
    pub repository: String,
    /// `GITHUB_API_URL`.
    pub api_url: String,
    /// `GITHUB_SHA`.
    pub sha: String,
    /// `GITHUB_REF_NAME`.
    pub ref_name: String,
    /// `GITHUB_RUN_ID`.
    pub run_id: String,
}

impl Context {
    /// Reads the context from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let event = match std::env::var_os("GITHUB_EVENT_PATH") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("failed to read GITHUB_EVENT_PATH {}", Path::new(&path).display())
                })?;
                serde_json::from_str(&text).context("failed to parse the event payload")?
            }
            None => serde_json::Value::Null,
        };
        let workspace = std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from);
        Ok(Self {
            workspace: workspace.unwrap_or(std::env::current_dir()?),
            event_name: var("GITHUB_EVENT_NAME"),
            event,
            repository: var("GITHUB_REPOSITORY"),
            api_url: Some(var("GITHUB_API_URL"))
                .filter(|u| !u.is_empty())
                .unwrap_or("https://api.github.com".into()),
            sha: var("GITHUB_SHA"),
            ref_name: var("GITHUB_REF_NAME"),
            run_id: var("GITHUB_RUN_ID"),
        })
    }

    /// The pull request of a `pull_request` or `pull_request_target` event.
    pub fn pull_request(&self) -> Option<u64> {
        self.event["pull_request"]["number"].as_u64()
    }
}

/// Sets step output `name` (multi-line safe).
pub fn output(name: &str, value: &str) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else {
        println!("{name}={value}");
        return Ok(());
    };
    let delimiter = format!("ACP_EOF_{:x}", unused_suffix(value));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .context("failed to open GITHUB_OUTPUT")?;
    writeln!(file, "{name}<<{delimiter}\n{value}\n{delimiter}").context("failed to write GITHUB_OUTPUT")?;
    Ok(())
}

/// A delimiter suffix that does not occur in `value`.
fn unused_suffix(value: &str) -> u64 {
    let mut n = value.len() as u64 ^ 0x5eed;
    while value.contains(&format!("{n:x}")) {
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    n
}

/// Appends `markdown` to the job summary.
pub fn summary(markdown: &str) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .context("failed to open GITHUB_STEP_SUMMARY")?;
    writeln!(file, "{markdown}").context("failed to write GITHUB_STEP_SUMMARY")?;
    Ok(())
}

fn validate(args: &ActionArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let dir = ctx.workspace.join(&args.path);
    let (files, mut manifests) =
        crate::validate::check(std::slice::from_ref(&dir), None, Some(&args.namespace))?;
    annotate(&ctx.workspace, &dir, &mut manifests.errors);
    let line = format!(
        "{files} files, {} sessions valid, {} errors",
        manifests.desired.len(),
        manifests.errors.len()
    );
    println!("{line}");
    summary(&format!("### acp validate\n\n{line}\n"))?;
    output("errors", &manifests.errors.len().to_string())?;
    Ok(if manifests.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Prints `errors` (found under `dir`) as annotations on files named
/// relative to the repository root, as GitHub wants them.
fn annotate(workspace: &Path, dir: &Path, errors: &mut [acp_api::source::FileError]) {
    for error in errors {
        error.path = rel(workspace, &dir.join(&error.path));
        println!("{}", crate::validate::github_annotation(error));
    }
}

fn rel(root: &Path, path: &Path) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned()
}

/// Makes sure `sha` is in the checkout (actions/checkout fetches one commit).
fn ensure_commit(workspace: &Path, sha: &str) {
    let have = std::process::Command::new("git")
        .current_dir(workspace)
        .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        // A failure surfaces as "failed to resolve revision" in the plan.
        let _ = std::process::Command::new("git")
            .current_dir(workspace)
            .args(["fetch", "--no-tags", "--depth=1", "origin", sha])
            .status();
    }
}

fn plan(args: &ActionArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    // Pull requests: against their base; pushes: against the commit before.
    let base = match ctx.event_name.as_str() {
        "pull_request" | "pull_request_target" => ctx.event["pull_request"]["base"]["sha"].as_str(),
        "push" => ctx.event["before"].as_str().filter(|b| !b.trim_start_matches('0').is_empty()),
        _ => None,
    }
    .map(str::to_owned);
    if let Some(base) = &base {
        ensure_commit(&ctx.workspace, base);
    }
    let dir = ctx.workspace.join(&args.path);
    let plan_args = crate::plan::PlanArgs::offline(dir.clone(), base.clone(), args.namespace.clone(), None);
    let mut plan = crate::plan::summarize(&plan_args)?;
    annotate(&ctx.workspace, &dir, &mut plan.errors);
    let against =
        base.as_deref().map(|b| format!(" against `{}`", &b[..b.len().min(12)])).unwrap_or_default();
    let body = format!(
        "{PLAN_MARKER}\n### acp plan for `{}`{against}\n\n{}",
        rel(&ctx.workspace, &dir).trim_start_matches("./"),
        crate::plan::markdown(&plan)
    );
    print!("{body}");
    summary(&body)?;
    output("create", &plan.create.len().to_string())?;
    output("update", &plan.update.len().to_string())?;
    output("prune", &plan.prune.len().to_string())?;
    if let Some(pull) = ctx.pull_request() {
        let token = args
            .github_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .context("the plan comment needs a token: set the github-token input")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let github = acp_github::GitHub::new(&ctx.api_url, token, &ctx.repository)?;
            // The plan comment is the one this token's user wrote: the
            // workflow's GITHUB_TOKEN (which may not read /user) writes as
            // github-actions[bot]. A pasted marker in someone else's comment
            // is never edited.
            let author = github.login().await.unwrap_or_else(|_| "github-actions[bot]".to_owned());
            match github.find_comment(pull, PLAN_MARKER, &author).await? {
                Some(id) => github.update_comment(id, &body).await?,
                None => {
                    github.create_comment(pull, &body).await?;
                }
            }
            anyhow::Ok(())
        })?;
    }
    Ok(if plan.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs the Action's command.
pub fn run(args: &ActionArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    match args.command.as_str() {
        "validate" => validate(args, &ctx),
        "plan" => plan(args, &ctx),
        "submit" => submit::run(args, &ctx),
        _ => wait::run(args, &ctx),
    }
}
