//! `acp git-sync`: the SessionSource controller and its push webhook.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

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
    /// Webhook deliveries accepted per second.
    #[arg(long, default_value_t = 50)]
    webhook_rate: u32,
}

/// Runs git-sync until SIGTERM or SIGINT.
pub fn run(args: &GitSyncArgs) -> anyhow::Result<ExitCode> {
    crate::operator::init_tracing();
    let checker = Arc::new(crate::policies::checker(args.policies.as_deref())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?;
    runtime.block_on(async {
        let kube_config =
            kube::Config::infer().await.context("failed to find Kubernetes credentials (KUBECONFIG or in-cluster)")?;
        let client = kube::Client::try_from(kube_config.clone()).context("failed to build the Kubernetes client")?;
        let receiver = acp_gitsync::webhook::Receiver::new(
            client.clone(),
            acp_gitsync::webhook::Config {
                namespace: args.namespace.clone(),
                max_body: args.webhook_max_body,
                per_second: args.webhook_rate,
            },
        );
        let metrics = Arc::new(acp_gitsync::metrics::Metrics::default());
        let app = receiver.router().merge(metrics.clone().router());
        let listener = tokio::net::TcpListener::bind(args.webhook_addr)
            .await
            .with_context(|| format!("failed to listen on {}", args.webhook_addr))?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        tracing::info!(namespace = ?args.namespace, webhook = %args.webhook_addr, policies = ?checker.policies(), "acp git-sync starting");
        let config = acp_gitsync::controller::Config {
            namespace: args.namespace.clone(),
            cache_dir: args.cache_dir.clone(),
            checker,
            metrics,
        };
        crate::operator::until_signal(|stop| acp_gitsync::controller::run(client, kube_config, config, stop)).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
