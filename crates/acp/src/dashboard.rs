//! `acp dashboard`: the read-only dashboard and JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use acp_dashboard::auth::Mode;
use acp_dashboard::logs::LogSource;

/// Options of `acp dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// Address to serve the pages and the API on.
    #[arg(long, env = "ACP_DASHBOARD_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of `/metrics` (and `/healthz`), apart from the public port.
    #[arg(long, env = "ACP_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Who may see what: `token` (bearer token or X-Forwarded-Access-Token;
    /// a SubjectAccessReview per namespace: may the caller list
    /// agenticsessions there?) or `none` (everyone sees everything; local use).
    #[arg(long, env = "ACP_DASHBOARD_AUTH", default_value = "token", value_parser = ["token", "none"])]
    pub auth: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "ACP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Read runner output from the `process` executor's run directory (the
    /// operator's --runs-dir) instead of pod logs.
    #[arg(long, env = "ACP_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// A notice shown at the top of every page.
    #[arg(long, env = "ACP_DASHBOARD_BANNER")]
    pub banner: Option<String>,
}

impl DashboardArgs {
    /// The dashboard's configuration with `client` for pod logs.
    pub fn config(&self, client: &kube::Client) -> anyhow::Result<acp_dashboard::Config> {
        Ok(acp_dashboard::Config {
            namespace: self.namespace.clone(),
            auth: self.auth.parse::<Mode>().map_err(anyhow::Error::msg)?,
            logs: match &self.runs_dir {
                Some(dir) => LogSource::Files(dir.clone()),
                None => LogSource::Pods(client.clone()),
            },
            banner: self.banner.clone(),
        })
    }
}

/// Runs the dashboard until SIGTERM or SIGINT.
pub fn run(args: &DashboardArgs) -> anyhow::Result<ExitCode> {
    crate::operator::init_tracing();
    let runtime = crate::operator::runtime()?;
    runtime.block_on(async {
        let (_, client) = crate::operator::kube_client().await?;
        let config = args.config(&client)?;
        let listener = crate::operator::listen(args.listen, "dashboard").await?;
        let metrics = crate::operator::listen(args.metrics_addr, "dashboard metrics").await?;
        tracing::info!(addr = %args.listen, auth = %args.auth, namespace = ?args.namespace, "acp dashboard serving");
        crate::operator::until_signal(|stop| async move {
            if let Err(e) = acp_dashboard::run(client, config, listener, Some(metrics), stop).await {
                tracing::error!(error = %e, "dashboard failed");
            }
        })
        .await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
