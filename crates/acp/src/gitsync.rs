//! `acp git-sync`: the SessionSource controller and its push webhook.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Options of `acp git-sync`.
#[derive(Debug, clap::Args)]
pub struct GitSyncArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "ACP_NAMESPACE")]
    namespace: Option<String>,
    /// Where bare mirrors of the repositories are kept between syncs.
    #[arg(long, env = "ACP_GIT_SYNC_CACHE", default_value = "/var/cache/acp/git-sync")]
    cache_dir: PathBuf,
    /// Policies directory (default: the policies built into acp).
    #[arg(long, env = "ACP_POLICIES")]
    policies: Option<PathBuf>,
    /// Address of the webhook receiver (`POST /hooks/github`), `/metrics` and `/healthz`.
    #[arg(long, env = "ACP_WEBHOOK_ADDR", default_value = "0.0.0.0:9292")]
    webhook_addr: std::net::SocketAddr,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, default_value_t = acp_gitsync::webhook::DEFAULT_MAX_BODY)]
    webhook_max_body: usize,
    /// Webhook deliveries accepted per second and SessionSource, counted
    /// after the signature is checked (an unsigned flood uses up nothing).
    #[arg(long, default_value_t = 50)]
    webhook_rate: u32,
    /// GitHub API base URL, for pull-request commands (`/acp …` comments).
    #[arg(long, env = "ACP_GITHUB_API_URL", default_value = "https://api.github.com")]
    github_api_url: String,
    /// Author name of the request commits pull-request commands make.
    #[arg(long, env = "ACP_REQUESTS_AUTHOR_NAME", default_value = "acp")]
    requests_author_name: String,
    /// Author email of the request commits.
    #[arg(long, env = "ACP_REQUESTS_AUTHOR_EMAIL", default_value = "acp@localhost")]
    requests_author_email: String,
    /// Address of `/metrics` (and `/healthz`), apart from the webhook's port.
    #[arg(long, env = "ACP_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: std::net::SocketAddr,
    #[command(flatten)]
    leader: crate::leader::LeaderArgs,
    #[command(flatten)]
    shard: crate::shard::ShardArgs,
}

/// Serves git-sync's webhook receiver (and `/healthz`) on `addr`, and
/// `/metrics` (and `/healthz`) on `metrics_addr`, a port apart from the
/// internet-facing webhook; returns the metrics the controller records into.
pub async fn serve_webhook(
    client: &kube::Client,
    config: acp_gitsync::webhook::Config,
    addr: std::net::SocketAddr,
    metrics_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Arc<acp_gitsync::metrics::Metrics>> {
    let receiver = acp_gitsync::webhook::Receiver::new(client.clone(), config);
    let metrics = Arc::new(acp_gitsync::metrics::Metrics::default());
    let app = receiver.router().route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = crate::operator::listen(addr, "git-sync webhook").await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    if let Some(metrics_addr) = metrics_addr {
        let ops = crate::operator::listen(metrics_addr, "git-sync metrics").await?;
        let ops_router = metrics.clone().router();
        tokio::spawn(async move { axum::serve(ops, ops_router).await });
    }
    Ok(metrics)
}

/// Runs git-sync until SIGTERM or SIGINT.
pub fn run(args: &GitSyncArgs) -> anyhow::Result<ExitCode> {
    crate::operator::init_tracing();
    let checker = Arc::new(crate::policies::checker(args.policies.as_deref())?);
    let runtime = crate::operator::runtime()?;
    runtime.block_on(async {
        let (kube_config, client) = crate::operator::kube_client().await?;
        let webhook = acp_gitsync::webhook::Config {
            namespace: args.namespace.clone(),
            max_body: args.webhook_max_body,
            per_second: args.webhook_rate,
            commands: Some(acp_gitsync::commands::handler::Config {
                github_api_url: args.github_api_url.clone(),
                cache_dir: args.cache_dir.clone(),
                author: (args.requests_author_name.clone(), args.requests_author_email.clone()),
            }),
        };
        let metrics = serve_webhook(&client, webhook, args.webhook_addr, Some(args.metrics_addr)).await?;
        tracing::info!(namespace = ?args.namespace, webhook = %args.webhook_addr, policies = ?checker.policies(), "acp git-sync starting");
        let config = acp_gitsync::controller::Config {
            namespace: args.namespace.clone(),
            cache_dir: args.cache_dir.clone(),
            checker,
            metrics,
            shard: args.shard.shard(),
        };
        // Every replica serves the webhook (it only marks sources to sync);
        // the leader syncs.
        let leadership = args.leader.lead(&client, &config.shard.lease("acp-git-sync")).await;
        let work = crate::operator::until_signal(|stop| acp_gitsync::controller::run(client, kube_config, config, stop));
        anyhow::Ok(crate::leader::while_leading(leadership, work).await)
    })
}
