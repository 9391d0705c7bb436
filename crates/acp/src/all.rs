//! `acp all`: every controller in one process, for the local GitOps loop and
//! small installations: git-sync, the operator (runs as Jobs on the cluster's
//! nodes, or as `acp runner` processes on this host) with its scheduler of
//! SessionSchedules, the status bot and the dashboard; optionally a git server for local bare repositories and the
//! scripted replay model.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use acp_api::constants::{RUNNER_SECRETS, field_managers};
use acp_operator::children::ChildConfig;
use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

/// Options of `acp all`.
#[derive(Debug, clap::Args)]
pub struct AllArgs {
    /// Namespace of the sessions and sources (the loop's namespace).
    #[arg(long, env = "ACP_NAMESPACE", default_value = "acp-local")]
    pub namespace: String,
    /// Directory for git-sync's mirrors, the status bot's clones and the runs.
    #[arg(long, env = "ACP_STATE_DIR", default_value = ".acp/state")]
    pub state_dir: PathBuf,
    /// Address of the dashboard.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub dashboard_addr: SocketAddr,
    /// Address of git-sync's webhook (and /healthz).
    #[arg(long, default_value = "127.0.0.1:9292")]
    pub webhook_addr: SocketAddr,
    /// Address of /metrics (the operator's and git-sync's) and /healthz.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub metrics_addr: SocketAddr,
    /// Serve the bare repositories under this directory over `git http-backend`
    /// (no authentication: bind it to loopback).
    #[arg(long)]
    pub serve_git: Option<PathBuf>,
    /// Address of that git server (with `--executor job`, one the cluster's
    /// pods reach).
    #[arg(long, default_value = "127.0.0.1:9418")]
    pub git_addr: SocketAddr,
    /// Where runs execute: `job` (a Job per run on the cluster's nodes, from
    /// `--runner-image`) or `process` (an `acp runner` child process on this
    /// host, for clusters without nodes).
    #[arg(long, env = "ACP_EXECUTOR", default_value = "job", value_parser = ["job", "process"])]
    pub executor: String,
    /// With `--executor job`: the runner image (images/runner).
    #[arg(long, env = "ACP_RUNNER_IMAGE", default_value = acp_operator::children::DEFAULT_RUNNER_IMAGE)]
    pub runner_image: String,
    /// With `--executor job`: the runner image's pull policy.
    #[arg(long, env = "ACP_RUNNER_IMAGE_PULL_POLICY")]
    pub image_pull_policy: Option<String>,
    /// Address of the replay model (without ANTHROPIC_API_KEY); with
    /// `--executor job`, one the cluster's pods reach.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub replay_addr: SocketAddr,
    /// Policies directory for git-sync (default: the policies built into acp).
    #[arg(long, env = "ACP_POLICIES")]
    pub policies: Option<PathBuf>,
    /// With `--executor process`: the Claude Code CLI runners use (default:
    /// `claude` on PATH).
    #[arg(long, env = "CLAUDE_BIN")]
    pub claude_bin: Option<PathBuf>,
    /// With `--executor process`: extra environment for runners, `KEY=VALUE`
    /// (repeatable).
    #[arg(long = "runner-env", value_name = "KEY=VALUE")]
    pub runner_env: Vec<String>,
    /// Model credentials: with ANTHROPIC_API_KEY set, sessions use the real
    /// model API (ANTHROPIC_BASE_URL optional); without it, acp serves its
    /// scripted replay model on loopback, labelled as such on every page and
    /// in every result.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    /// Model API base URL (with ANTHROPIC_API_KEY).
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    pub anthropic_base_url: Option<String>,
    /// Seconds between two edits of a running session's PR comment.
    #[arg(long, default_value_t = 60)]
    pub debounce_seconds: u64,
}

const REPLAY_BANNER: &str = "Model: acp's scripted replay (ANTHROPIC_API_KEY is not set). Results on this \
dashboard come from a replay, not from a real model.";

/// The namespace's runner secret: the real key, or the replay model's URL.
async fn runner_secret(
    client: &kube::Client,
    namespace: &str,
    key: &str,
    base_url: Option<&str>,
) -> anyhow::Result<()> {
    let mut data = serde_json::json!({ "ANTHROPIC_API_KEY": key });
    if let Some(url) = base_url {
        data["ANTHROPIC_BASE_URL"] = url.into();
    }
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": RUNNER_SECRETS, "namespace": namespace},
        "stringData": data
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(RUNNER_SECRETS, &PatchParams::apply(field_managers::CLI).force(), &Patch::Apply(&secret))
        .await
        .with_context(|| format!("failed to write secret {namespace}/{RUNNER_SECRETS}"))?;
    Ok(())
}

/// The IP address a URL names literally, if it does.
fn ip_of_url(url: &str) -> Option<std::net::IpAddr> {
    acp_api::remote::host(url)?.trim_matches(['[', ']']).parse().ok()
}

/// The default runner egress, plus this machine's git server and model
/// (which runner pods reach on private addresses).
fn egress_with(local: &[std::net::IpAddr]) -> acp_operator::egress::Egress {
    use acp_operator::egress::{Addresses, Destination, Egress};
    let mut egress = Egress::default();
    if let Egress::Allow(allowed) = &mut egress {
        for ip in local.iter().filter(|ip| !ip.is_unspecified() && !ip.is_loopback()) {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            allowed.push(Destination { to: Addresses::Cidr(format!("{ip}/{bits}")), port: None });
        }
    }
    egress
}

/// Runs everything until SIGTERM or SIGINT.
pub fn run(args: &AllArgs) -> anyhow::Result<ExitCode> {
    crate::operator::init_tracing();
    let state = std::path::absolute(&args.state_dir).context("failed to resolve --state-dir")?;
    std::fs::create_dir_all(&state).with_context(|| format!("failed to create {}", state.display()))?;
    let runtime = crate::operator::runtime()?;
    runtime.block_on(serve(args, &state))?;
    Ok(ExitCode::SUCCESS)
}

/// `--runner-env` pairs, and `--claude-bin` as `CLAUDE_BIN`.
fn runner_env(args: &AllArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    for pair in &args.runner_env {
        let (k, v) =
            pair.split_once('=').with_context(|| format!("--runner-env {pair:?} is not KEY=VALUE"))?;
        env.push((k.to_owned(), v.to_owned()));
    }
    if let Some(bin) = &args.claude_bin {
        env.push(("CLAUDE_BIN".into(), bin.to_string_lossy().into_owned()));
    }
    Ok(env)
}

async fn ensure_namespace(client: &kube::Client, ns: &str) -> anyhow::Result<()> {
    let namespace: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )?;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(ns, &PatchParams::apply(field_managers::CLI), &Patch::Apply(&namespace))
        .await
        .with_context(|| format!("failed to create namespace {ns}"))?;
    Ok(())
}

/// The model: the real API, or the replay on loopback (then the dashboard's
/// banner says so). Private addresses runner pods must reach go to `local`.
async fn model(
    args: &AllArgs,
    client: &kube::Client,
    ns: &str,
    local: &mut Vec<std::net::IpAddr>,
) -> anyhow::Result<Option<String>> {
    if let Some(key) = &args.anthropic_api_key {
        local.extend(args.anthropic_base_url.as_deref().and_then(ip_of_url));
        runner_secret(client, ns, key, args.anthropic_base_url.as_deref()).await?;
        tracing::info!("sessions use the real model API (ANTHROPIC_API_KEY is set)");
        return Ok(None);
    }
    let listener = crate::operator::listen(args.replay_addr, "replay model").await?;
    let url = format!("http://{}", listener.local_addr()?);
    local.push(listener.local_addr()?.ip());
    tokio::spawn(async move { axum::serve(listener, acp_replay::replay_router()).await });
    runner_secret(client, ns, "replay-model-no-key", Some(&url)).await?;
    tracing::warn!(%url, "ANTHROPIC_API_KEY is not set: sessions use acp's scripted replay model");
    Ok(Some(REPLAY_BANNER.to_owned()))
}

/// The git server for `--serve-git`, if asked.
async fn serve_git(args: &AllArgs, local: &mut Vec<std::net::IpAddr>) -> anyhow::Result<()> {
    let Some(root) = &args.serve_git else { return Ok(()) };
    let listener = crate::operator::listen(args.git_addr, "git server").await?;
    let router = acp_git::serve::router(std::path::absolute(root)?, None);
    tokio::spawn(async move { axum::serve(listener, router).await });
    tracing::info!(addr = %args.git_addr, root = %root.display(), "serving git repositories");
    local.push(args.git_addr.ip());
    Ok(())
}

/// Every component's settings.
struct Components {
    gitsync: acp_gitsync::controller::Config,
    operator: acp_operator::controller::Config,
    statusbot: acp_statusbot::controller::Config,
    dashboard: acp_dashboard::Config,
}

/// The settings of the components of one loop in namespace `ns`.
fn components(
    args: &AllArgs,
    state: &std::path::Path,
    client: &kube::Client,
    process: Option<acp_operator::process::ProcessConfig>,
    gitsync_metrics: Arc<acp_gitsync::metrics::Metrics>,
    banner: Option<String>,
    local: &[std::net::IpAddr],
) -> anyhow::Result<Components> {
    let ns = &args.namespace;
    let checker = Arc::new(crate::policies::checker(args.policies.as_deref())?);
    let renderer =
        Arc::new(acp_statusbot::render::Renderer::new(None).context("failed to load the templates")?);
    // Runner output: the process runs' files, or the runner pods' logs.
    let output = match &process {
        Some(process) => acp_dashboard::logs::LogSource::Files(process.root.clone()),
        None => acp_dashboard::logs::LogSource::Pods(client.clone()),
    };
    let children = ChildConfig {
        runner_image: args.runner_image.clone(),
        image_pull_policy: args.image_pull_policy.clone(),
        // One loop on one machine: nothing to keep across runs, no storage class needed.
        workspace: acp_operator::children::Workspace::EmptyDir,
        egress: egress_with(local),
        ..ChildConfig::default()
    };
    let dashboard_url = format!("http://{}", args.dashboard_addr);
    Ok(Components {
        gitsync: acp_gitsync::controller::Config {
            namespace: Some(ns.clone()),
            cache_dir: state.join("git-sync"),
            checker,
            metrics: gitsync_metrics,
            shard: Default::default(),
        },
        operator: acp_operator::controller::Config {
            process,
            namespace: Some(ns.clone()),
            children,
            shard: Default::default(),
            concurrency: 0,
        },
        statusbot: acp_statusbot::controller::Config {
            namespace: Some(ns.clone()),
            github_api_url: "https://api.github.com".into(),
            dashboard_url: Some(dashboard_url),
            renderer,
            cache_dir: state.join("statusbot"),
            debounce: Duration::from_secs(args.debounce_seconds),
            author: ("acp status bot".into(), "acp-status-bot@users.noreply.github.com".into()),
            output: Some(output.clone()),
        },
        dashboard: acp_dashboard::Config {
            namespace: Some(ns.clone()),
            auth: acp_dashboard::auth::Mode::None,
            logs: output,
            banner,
        },
    })
}

/// Sets the loop up and runs it until a signal.
async fn serve(args: &AllArgs, state: &std::path::Path) -> anyhow::Result<()> {
    let runner_env = runner_env(args)?;
    let (kube_config, client) = crate::operator::kube_client().await?;
    let ns = args.namespace.clone();
    ensure_namespace(&client, &ns).await?;
    let mut local = Vec::new();
    let banner = model(args, &client, &ns, &mut local).await?;
    serve_git(args, &mut local).await?;
    let webhook = acp_gitsync::webhook::Config {
        namespace: Some(ns.clone()),
        max_body: acp_gitsync::webhook::DEFAULT_MAX_BODY,
        per_second: 50,
        commands: None,
    };
    let gitsync_metrics = crate::gitsync::serve_webhook(&client, webhook, args.webhook_addr, None).await?;
    let operator_metrics = Arc::new(acp_operator::metrics::Metrics::default());
    // One operations port for every controller of this process.
    let metrics_listener = crate::operator::listen(args.metrics_addr, "metrics").await?;
    let (operator_encode, gitsync_encode) = (operator_metrics.clone(), gitsync_metrics.clone());
    let ops = acp_kube::ops::router(move || {
        acp_kube::ops::join(&[operator_encode.encode(), gitsync_encode.encode()])
    });
    tokio::spawn(acp_kube::ops::serve(metrics_listener, ops));
    let dashboard_listener = crate::operator::listen(args.dashboard_addr, "dashboard").await?;
    let process = match args.executor.as_str() {
        "process" => Some(acp_operator::process::ProcessConfig {
            root: state.join("runs"),
            acp: std::env::current_exe().context("failed to locate the acp binary")?,
            env: runner_env,
        }),
        _ => None,
    };
    let parts = components(args, state, &client, process.clone(), gitsync_metrics, banner, &local)?;
    let dashboard_url = format!("http://{}", args.dashboard_addr);
    tracing::info!(namespace = %ns, dashboard = %dashboard_url, state = %state.display(), executor = %args.executor, "acp all: git-sync, operator, status bot and dashboard starting");
    eprintln!("acp: dashboard at {dashboard_url}  (Ctrl-C stops everything)");
    crate::operator::until_signal(|stop| {
        run_components(client, kube_config, parts, operator_metrics, dashboard_listener, stop)
    })
    .await;
    // Runner processes outlive an operator restart by design; here the
    // loop ends. (Runner Jobs stay with the cluster.)
    if let Some(process) = process {
        stop_runners(&process).await;
    }
    Ok(())
}

/// Every controller and the dashboard, until `stop`.
async fn run_components(
    client: kube::Client,
    kube_config: kube::Config,
    parts: Components,
    operator_metrics: Arc<acp_operator::metrics::Metrics>,
    dashboard_listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        tx.send_replace(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone: stopping too.
        let _ = rx.wait_for(|s| *s).await;
    };
    let Components { gitsync, operator, statusbot, dashboard } = parts;
    let scheduler = acp_operator::schedule::controller::run(
        client.clone(),
        operator.namespace.clone(),
        operator.shard.clone(),
        Arc::new(acp_operator::schedule::clock::SystemClock),
        operator_metrics.clone(),
        stopped(rx.clone()),
    );
    let (_, _, _, _, served) = tokio::join!(
        acp_gitsync::controller::run(client.clone(), kube_config, gitsync, stopped(rx.clone())),
        acp_operator::controller::run_with_metrics(
            client.clone(),
            operator,
            operator_metrics,
            stopped(rx.clone())
        ),
        scheduler,
        acp_statusbot::controller::run(client.clone(), statusbot, stopped(rx.clone())),
        acp_dashboard::run(client, dashboard, dashboard_listener, None, stopped(rx)),
    );
    if let Err(e) = served {
        tracing::error!(error = %e, "dashboard failed");
    }
}

/// Stops the loop's runner processes, waiting a grace period for them.
async fn stop_runners(process: &acp_operator::process::ProcessConfig) {
    let runners = acp_operator::process::stop_all(process);
    if runners.is_empty() {
        return;
    }
    eprintln!("acp: stopping {} runner(s)", runners.len());
    let deadline = std::time::Instant::now() + crate::operator::GRACE;
    while runners.iter().any(acp_operator::process::Identity::alive) && std::time::Instant::now() < deadline {
        // Waiting for other processes to exit: there is nothing to subscribe to.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
