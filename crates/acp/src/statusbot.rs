//! `acp statusbot`: results of git-synced sessions back to the pull request
//! and to git.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

/// Options of `acp statusbot`.
#[derive(Debug, clap::Args)]
pub struct StatusBotArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "ACP_NAMESPACE")]
    namespace: Option<String>,
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    github_api_url: String,
    /// Dashboard base URL, for links in comments and commit statuses.
    #[arg(long, env = "ACP_DASHBOARD_URL")]
    dashboard_url: Option<String>,
    /// Directory with template overrides (comment.md.j2); default: built in.
    #[arg(long, env = "ACP_TEMPLATES")]
    templates: Option<PathBuf>,
    /// Where write-back mirrors are kept.
    #[arg(long, env = "ACP_STATUSBOT_CACHE", default_value = "/var/cache/acp/statusbot")]
    cache_dir: PathBuf,
    /// Least seconds between two edits of a running session's comment (the
    /// end of a run is always posted at once). The default keeps a ten-minute
    /// session at four GitHub writes.
    #[arg(long, default_value_t = 900)]
    debounce_seconds: u64,
    /// Author name of write-back commits.
    #[arg(long, default_value = "acp status bot")]
    author_name: String,
    /// Author email of write-back commits.
    #[arg(long, default_value = "acp-status-bot@users.noreply.github.com")]
    author_email: String,
    /// Read runner output (for the agent's todo list in comments) from the
    /// `process` executor's run directory instead of pod logs.
    #[arg(long, env = "ACP_RUNS_DIR")]
    runs_dir: Option<PathBuf>,
    #[command(flatten)]
    leader: crate::leader::LeaderArgs,
}

/// Runs the status bot until SIGTERM or SIGINT.
pub fn run(args: &StatusBotArgs) -> anyhow::Result<ExitCode> {
    crate::operator::init_tracing();
    let renderer = acp_statusbot::render::Renderer::new(args.templates.as_deref())
        .context("failed to load the templates")?;
    let runtime = crate::operator::runtime()?;
    runtime.block_on(async {
        let (_, client) = crate::operator::kube_client().await?;
        let config = acp_statusbot::controller::Config {
            namespace: args.namespace.clone(),
            github_api_url: args.github_api_url.clone(),
            dashboard_url: args.dashboard_url.clone(),
            renderer: Arc::new(renderer),
            cache_dir: args.cache_dir.clone(),
            debounce: Duration::from_secs(args.debounce_seconds),
            author: (args.author_name.clone(), args.author_email.clone()),
            output: Some(match &args.runs_dir {
                Some(dir) => acp_kube::output::LogSource::Files(dir.clone()),
                None => acp_kube::output::LogSource::Pods(client.clone()),
            }),
        };
        tracing::info!(namespace = ?args.namespace, github = %args.github_api_url, "acp statusbot starting");
        let leadership = args.leader.lead(&client, "acp-statusbot").await;
        let work = crate::operator::until_signal(|stop| acp_statusbot::controller::run(client, config, stop));
        anyhow::Ok(crate::leader::while_leading(leadership, work).await)
    })
}
