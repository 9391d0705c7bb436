//! `acp operator`: the AgenticSession controller.

use std::process::ExitCode;

use acp_operator::children::{ChildConfig, Workspace};
use acp_operator::controller::{self, Config};
use anyhow::Context as _;

/// Options of `acp operator`.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "ACP_NAMESPACE")]
    namespace: Option<String>,
    /// Runner image (images/runner): its entrypoint is `acp runner`; it holds
    /// git, node and the pinned claude CLI. Default: this release's image.
    #[arg(long, env = "ACP_RUNNER_IMAGE", default_value = acp_operator::children::DEFAULT_RUNNER_IMAGE)]
    runner_image: String,
    /// Image pull policy of runner pods (Always, IfNotPresent, Never).
    #[arg(long, env = "ACP_RUNNER_IMAGE_PULL_POLICY")]
    image_pull_policy: Option<String>,
    /// Workspace storage: `pvc` (one claim per session, kept across runs) or
    /// `emptydir` (per run).
    #[arg(long, env = "ACP_WORKSPACE", default_value = "pvc", value_parser = ["pvc", "emptydir"])]
    workspace: String,
    /// Size of workspace claims.
    #[arg(long, env = "ACP_WORKSPACE_SIZE", default_value = "5Gi")]
    workspace_size: String,
    /// Storage class of workspace claims (default: the cluster's default).
    #[arg(long, env = "ACP_STORAGE_CLASS")]
    storage_class: Option<String>,
    /// `ttlSecondsAfterFinished` of runner Jobs.
    #[arg(long, env = "ACP_JOB_TTL_SECONDS", default_value_t = 86_400)]
    job_ttl_seconds: i32,
    /// Where runs execute: `job` (a Kubernetes Job per run) or `process` (an
    /// `acp runner` child process on this host, for clusters without nodes).
    #[arg(long, env = "ACP_EXECUTOR", default_value = "job", value_parser = ["job", "process"])]
    executor: String,
    /// With `--executor process`: directory for runs' workspaces and logs.
    #[arg(long, env = "ACP_PROCESS_ROOT", default_value = "/var/lib/acp/runs")]
    process_root: std::path::PathBuf,
    /// With `--executor process`: the Claude Code CLI runners use.
    #[arg(long, env = "CLAUDE_BIN")]
    claude_bin: Option<std::path::PathBuf>,
    #[command(flatten)]
    leader: crate::leader::LeaderArgs,
    #[command(flatten)]
    shard: crate::shard::ShardArgs,
    /// Sessions reconciled at once. Each reconcile is a handful of requests;
    /// the API server, not the operator, is what more would load.
    #[arg(long, env = "ACP_MAX_CONCURRENT_RECONCILES", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// Address of the /metrics and /healthz endpoint.
    #[arg(long, env = "ACP_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Runner resources as JSON (a ResourceRequirements object), e.g.
    /// '{"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"memory":"4Gi"}}'.
    #[arg(long, env = "ACP_RUNNER_RESOURCES")]
    runner_resources: Option<String>,
    /// Where runner pods may connect besides DNS, as a NetworkPolicy
    /// (`acp-runner-egress`) in each namespace that runs sessions: `public`
    /// (every address outside the private, shared and link-local ranges, so
    /// no cloud metadata endpoint and nothing in the cluster) or a CIDR, each
    /// optionally `:PORT` (TCP); comma-separated or repeated. `off` creates
    /// no policy. Enforced only by network plugins that implement NetworkPolicy.
    #[arg(long, env = "ACP_RUNNER_EGRESS", value_delimiter = ',', default_values = acp_operator::egress::DEFAULT)]
    runner_egress: Vec<String>,
}

/// Logs to stderr, filtered by RUST_LOG (default `info,kube=warn`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
}

/// The multi-threaded runtime every long-running subcommand runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("failed to start the runtime")
}

/// Kubernetes credentials (KUBECONFIG or in-cluster) and a client.
pub async fn kube_client() -> anyhow::Result<(kube::Config, kube::Client)> {
    let config = kube::Config::infer()
        .await
        .context("failed to find Kubernetes credentials (KUBECONFIG or in-cluster)")?;
    let client = kube::Client::try_from(config.clone()).context("failed to build the Kubernetes client")?;
    Ok((config, client))
}

/// Binds `addr` for `what`, naming both on failure.
pub async fn listen(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("failed to listen on {addr} ({what})"))
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// How long a controller may take to finish its work after SIGTERM.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `controller` (given a future that completes on SIGTERM or SIGINT)
/// until it returns, or until [`GRACE`] after the signal if it does not.
pub async fn until_signal<F>(
    controller: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>) -> F,
) where
    F: std::future::Future<Output = ()>,
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    let mut signalled = rx.clone();
    let stop = Box::pin(async move {
        let _ = signalled.wait_for(|s| *s).await;
    });
    let mut late = rx;
    tokio::select! {
        () = controller(stop) => {}
        () = async move {
            let _ = late.wait_for(|s| *s).await;
            tokio::time::sleep(GRACE).await;
        } => tracing::warn!(grace = ?GRACE, "work still in flight after the grace period; exiting"),
    }
}

/// The operator's settings from its flags.
fn config(args: &OperatorArgs) -> anyhow::Result<Config> {
    let resources = args
        .runner_resources
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--runner-resources is not a valid ResourceRequirements JSON object")?;
    let workspace = match args.workspace.as_str() {
        "emptydir" => Workspace::EmptyDir,
        _ => Workspace::Pvc { size: args.workspace_size.clone(), storage_class: args.storage_class.clone() },
    };
    let egress = acp_operator::egress::Egress::parse(args.runner_egress.iter().map(String::as_str))?;
    let process = (args.executor == "process").then(|| -> anyhow::Result<_> {
        Ok(acp_operator::process::ProcessConfig {
            root: args.process_root.clone(),
            acp: std::env::current_exe().context("failed to locate the acp binary")?,
            env: args
                .claude_bin
                .iter()
                .map(|b| ("CLAUDE_BIN".to_owned(), b.to_string_lossy().into_owned()))
                .collect(),
        })
    });
    Ok(Config {
        process: process.transpose()?,
        namespace: args.namespace.clone(),
        children: ChildConfig {
            runner_image: args.runner_image.clone(),
            image_pull_policy: args.image_pull_policy.clone(),
            workspace,
            resources,
            ttl_seconds_after_finished: Some(args.job_ttl_seconds),
            egress,
            ..ChildConfig::default()
        },
        shard: args.shard.shard(),
        concurrency: args.max_concurrent_reconciles,
    })
}

/// Runs the operator until SIGTERM or SIGINT.
pub fn run(args: &OperatorArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = config(args)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let metrics = std::sync::Arc::new(acp_operator::metrics::Metrics::default());
        let kube_config = kube::Config::infer()
            .await
            .context("failed to find Kubernetes credentials (KUBECONFIG or in-cluster)")?;
        let client = acp_operator::metrics::counting_client(kube_config, &metrics)
            .context("failed to build the Kubernetes client")?;
        // Health and metrics first: a standby waiting for the lease is alive
        // and ready to take over, and its probes must say so.
        let listener = listen(args.metrics_addr, "metrics and health").await?;
        tokio::spawn(acp_operator::metrics::serve(listener, metrics.clone()));
        let leadership = args.leader.lead(&client, &config.shard.lease("acp-operator")).await;
        tracing::info!(namespace = ?config.namespace, shard = ?config.shard, metrics = %args.metrics_addr, "acp operator starting");
        let code = crate::leader::while_leading(
            leadership,
            until_signal(|stop| async move {
                // One lease, two controllers: sessions, and the scheduler
                // creating the sessions of SessionSchedules.
                let stop = futures_util::FutureExt::shared(stop);
                let clock = std::sync::Arc::new(acp_operator::schedule::clock::SystemClock);
                let scheduler = acp_operator::schedule::controller::run(
                    client.clone(),
                    config.namespace.clone(),
                    config.shard.clone(),
                    clock,
                    metrics.clone(),
                    stop.clone(),
                );
                futures_util::future::join(
                    controller::run_with_metrics(client, config, metrics, stop),
                    scheduler,
                )
                .await;
            }),
        )
        .await;
        anyhow::Ok(code)
    })
}
