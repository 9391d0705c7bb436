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
    /// Runner image: holds acp, git, node and the pinned claude CLI.
    #[arg(long, env = "ACP_RUNNER_IMAGE", default_value = "ghcr.io/acp-dev/acp-runner:latest")]
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
    /// Runner resources as JSON (a ResourceRequirements object), e.g.
    /// '{"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"memory":"4Gi"}}'.
    #[arg(long, env = "ACP_RUNNER_RESOURCES")]
    runner_resources: Option<String>,
}

/// Runs the operator until SIGTERM or SIGINT.
pub fn run(args: &OperatorArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
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
    let config = Config {
        namespace: args.namespace.clone(),
        children: ChildConfig {
            runner_image: args.runner_image.clone(),
            image_pull_policy: args.image_pull_policy.clone(),
            workspace,
            resources,
            ttl_seconds_after_finished: Some(args.job_ttl_seconds),
            ..ChildConfig::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("failed to connect to Kubernetes (KUBECONFIG or in-cluster)")?;
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        tracing::info!(namespace = ?config.namespace, "acp operator starting");
        controller::run(client, config, shutdown).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
