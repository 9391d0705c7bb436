//! `acp plan`: what a sync of a directory would create, update, leave
//! unchanged or prune, offline against a git revision (`--base`) or against
//! a cluster (`--cluster`, with server-side dry-run). The plan is
//! [`acp_gitsync::preview`]'s; this module reads the flags and prints it.

use std::path::PathBuf;
use std::process::ExitCode;

use acp_gitsync::plan::SourceRef;
use acp_gitsync::preview::{self, Against};
use anyhow::{Context as _, bail};

/// Output formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines and a summary.
    Text,
    /// One JSON document.
    Json,
    /// A Markdown section, as posted on pull requests.
    Markdown,
}

/// Options of `acp plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Directory of manifests (as a SessionSource's `path` would select).
    path: PathBuf,
    /// Compare with this git revision of the same directory (e.g. origin/main):
    /// what merging the working tree would change. Offline.
    #[arg(long, conflicts_with = "cluster")]
    base: Option<String>,
    /// Compare with the cluster (KUBECONFIG): list the namespace's sessions and
    /// dry-run every create and update on the API server.
    #[arg(long)]
    cluster: bool,
    /// Namespace the sessions are applied into.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// With --cluster: the SessionSource (`namespace/name`) whose sessions may
    /// be pruned; without it nothing is pruned.
    #[arg(long)]
    source: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Policies directory (default: built in).
    #[arg(long, env = "ACP_POLICIES")]
    policies: Option<PathBuf>,
}

/// A computed plan.
pub use acp_gitsync::preview::{Summary, markdown};

impl PlanArgs {
    /// An offline plan of `path` against `base` (none: everything is created).
    pub fn offline(
        path: PathBuf,
        base: Option<String>,
        namespace: String,
        policies: Option<PathBuf>,
    ) -> Self {
        Self { path, base, cluster: false, namespace, source: None, format: Format::Markdown, policies }
    }
}

/// Computes the plan `args` describe (findings included).
pub fn summarize(args: &PlanArgs) -> anyhow::Result<Summary> {
    let checker = crate::policies::checker(args.policies.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let against = match (&args.base, args.cluster) {
            (Some(rev), _) => Against::Revision(rev.clone()),
            (None, true) => {
                let client = kube::Client::try_default()
                    .await
                    .context("failed to connect to the cluster (KUBECONFIG)")?;
                let source = match &args.source {
                    None => None,
                    Some(s) => {
                        let Some((namespace, name)) = s.split_once('/') else {
                            bail!("--source must be namespace/name")
                        };
                        Some(SourceRef::new(namespace, name))
                    }
                };
                Against::Cluster { client, source }
            }
            (None, false) => Against::Nothing,
        };
        Ok(preview::plan(&args.path, &args.namespace, against, &checker).await?)
    })
}

/// Runs `acp plan`.
pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let summary = summarize(args)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        Format::Markdown => print!("{}", markdown(&summary)),
        Format::Text => {
            for (sign, list) in
                [("+ create", &summary.create), ("~ update", &summary.update), ("- prune ", &summary.prune)]
            {
                for item in list {
                    println!("{sign}  {item}");
                }
            }
            for error in &summary.errors {
                println!("{}: error: {}", preview::position(error), error.message);
            }
            for schedule in &summary.schedules {
                println!("{schedule}");
            }
            println!(
                "Plan: {} to create, {} to update, {} to prune, {} unchanged, {} errors.",
                summary.create.len(),
                summary.update.len(),
                summary.prune.len(),
                summary.unchanged.len(),
                summary.errors.len()
            );
        }
    }
    Ok(if summary.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
