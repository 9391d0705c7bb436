//! `acp plan`: what a sync of a directory would create, update, leave
//! unchanged or prune, offline against a git revision (`--base`) or against
//! a cluster (`--cluster`, with server-side dry-run).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

use acp_api::source::{FileError, InventoryEntry};
use acp_gitsync::files::{self, Filter};
use acp_gitsync::plan::{self, Desired, Kind, SourceRef};
use anyhow::{Context as _, bail};
use kube::api::{Patch, PatchParams, ValidationDirective};

use crate::validate::position;

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
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Sessions to create.
    pub create: Vec<String>,
    /// Sessions to update.
    pub update: Vec<String>,
    /// Sessions unchanged.
    pub unchanged: Vec<String>,
    /// Sessions to prune.
    pub prune: Vec<String>,
    /// Errors: invalid files and server-side refusals.
    pub errors: Vec<FileError>,
    /// Schedules in the plan, with their next due times.
    pub schedules: Vec<crate::validate::ScheduleRuns>,
}

/// `name (path:line)`, as plans list sessions (`schedule name (path:line)` for schedules).
fn label(desired: &Desired) -> String {
    let kind = if desired.kind == Kind::Schedule { "schedule " } else { "" };
    format!("{kind}{} ({}:{})", desired.name, desired.path, desired.line)
}

fn names(list: &[Desired]) -> Vec<String> {
    list.iter().map(label).collect()
}

fn offline(args: &PlanArgs, desired: Vec<Desired>, checker: &acp_policy::Checker) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let base: BTreeMap<(Kind, String), Desired> = match &args.base {
        None => BTreeMap::new(),
        Some(rev) => {
            let repo = git2::Repository::discover(&args.path)
                .with_context(|| format!("{} is not in a git repository", args.path.display()))?;
            let workdir = repo.workdir().context("the repository has no working tree")?;
            let absolute = std::fs::canonicalize(&args.path)?;
            let prefix = absolute.strip_prefix(std::fs::canonicalize(workdir)?).unwrap_or(&absolute);
            let tree = repo
                .revparse_single(rev)
                .and_then(|o| o.peel_to_tree())
                .with_context(|| format!("failed to resolve revision {rev}"))?;
            let filter = Filter::new(&prefix.to_string_lossy(), &[], &[])?;
            let entries = files::from_tree(&repo, &tree, &filter)?;
            let source = SourceRef::new("local", "plan");
            let old = plan::manifests(&entries, &source, Some(&args.namespace), checker);
            old.desired.into_iter().map(|d| ((d.kind, d.name.clone()), d)).collect()
        }
    };
    let mut seen = HashSet::new();
    for want in desired {
        let key = (want.kind, want.name.clone());
        seen.insert(key.clone());
        match base.get(&key) {
            None => summary.create.push(label(&want)),
            Some(old) if old.digest != want.digest => summary.update.push(label(&want)),
            Some(_) => summary.unchanged.push(label(&want)),
        }
    }
    summary.prune = base.iter().filter(|(k, _)| !seen.contains(*k)).map(|(_, d)| label(d)).collect();
    Ok(summary)
}

async fn against_cluster(args: &PlanArgs, desired: Vec<Desired>) -> anyhow::Result<Summary> {
    let client =
        kube::Client::try_default().await.context("failed to connect to the cluster (KUBECONFIG)")?;
    let mut summary = Summary::default();
    for kind in Kind::ALL {
        let desired: Vec<Desired> = desired.iter().filter(|d| d.kind == kind).cloned().collect();
        if desired.is_empty() && (kind != Kind::Session || args.source.is_none()) {
            continue;
        }
        let part = kind_against_cluster(args, client.clone(), kind, desired).await?;
        summary.create.extend(part.create);
        summary.update.extend(part.update);
        summary.unchanged.extend(part.unchanged);
        summary.prune.extend(part.prune);
        summary.errors.extend(part.errors);
    }
    Ok(summary)
}

async fn kind_against_cluster(
    args: &PlanArgs,
    client: kube::Client,
    kind: Kind,
    desired: Vec<Desired>,
) -> anyhow::Result<Summary> {
    let api = acp_gitsync::apply::objects(client, &args.namespace, kind);
    let live = acp_gitsync::apply::list(&api).await.with_context(|| format!("failed to list {kind}s"))?;
    let source = match &args.source {
        Some(s) => {
            let Some((namespace, name)) = s.split_once('/') else { bail!("--source must be namespace/name") };
            SourceRef::new(namespace, name)
        }
        None => plan_source(args),
    };
    let mut live = live;
    if args.source.is_none() {
        // Without a source, every session of the namespace is this plan's to compare.
        for object in &mut live {
            object["metadata"]["labels"][acp_api::constants::labels::SOURCE_NAMESPACE] =
                source.namespace.clone().into();
            object["metadata"]["labels"][acp_api::constants::labels::SOURCE_NAME] =
                source.name.clone().into();
        }
    }
    let inventory: Vec<InventoryEntry> = if args.source.is_some() {
        live.iter()
            .filter(|o| source.owns(o))
            .filter_map(|o| o["metadata"]["name"].as_str())
            .map(|name| InventoryEntry { name: name.into(), ..Default::default() })
            .collect()
    } else {
        Vec::new()
    };
    let plan = plan::diff(desired, &live, &inventory, &source, &HashSet::new());
    let mut params = PatchParams::apply(acp_api::constants::field_managers::GIT_SYNC).force();
    params.dry_run = true;
    params.field_validation = Some(ValidationDirective::Strict);
    let mut errors = plan.conflicts.clone();
    for want in plan.create.iter().chain(&plan.update) {
        if let Err(error) = api.patch(&want.name, &params, &Patch::Apply(&want.at_revision("plan"))).await {
            let message = match error {
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            };
            errors.push(FileError {
                path: want.path.clone(),
                line: Some(want.line.into()),
                column: Some(1),
                message,
            });
        }
    }
    Ok(Summary {
        create: names(&plan.create),
        update: names(&plan.update),
        unchanged: plan
            .unchanged
            .iter()
            .map(|(d, _)| format!("{} ({}:{})", d.name, d.path, d.line))
            .collect(),
        prune: plan.prune,
        errors,
        schedules: Vec::new(),
    })
}

/// The source the sessions are stamped with: `--source`, or a local stand-in.
fn plan_source(args: &PlanArgs) -> SourceRef {
    match args.source.as_deref().and_then(|s| s.split_once('/')) {
        Some((namespace, name)) => SourceRef::new(namespace, name),
        None => SourceRef::new("local", "plan"),
    }
}

/// Renders `summary` as Markdown (used for pull request comments).
pub fn markdown(summary: &Summary) -> String {
    let mut out = format!(
        "**Plan:** {} to create, {} to update, {} to prune, {} unchanged.\n",
        summary.create.len(),
        summary.update.len(),
        summary.prune.len(),
        summary.unchanged.len()
    );
    for (title, list) in [("Create", &summary.create), ("Update", &summary.update), ("Prune", &summary.prune)]
    {
        if !list.is_empty() {
            out.push_str(&format!("\n**{title}**\n"));
            for item in list {
                out.push_str(&format!("- `{item}`\n"));
            }
        }
    }
    if !summary.schedules.is_empty() {
        out.push_str("\n**Schedules**\n");
        for schedule in &summary.schedules {
            out.push_str(&format!(
                "- `{}` `{}` ({}): next runs {}\n",
                schedule.name,
                schedule.schedule,
                schedule.time_zone,
                schedule.next_runs.join(", ")
            ));
        }
    }
    if !summary.errors.is_empty() {
        out.push_str("\n**Findings**\n");
        for error in &summary.errors {
            out.push_str(&format!("- `{}`: {}\n", position(error), error.message));
        }
    }
    out
}

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
    let entries = crate::validate::entries(std::slice::from_ref(&args.path))?;
    let manifests = plan::manifests(&entries, &plan_source(args), Some(&args.namespace), &checker);
    let schedules = manifests.desired.iter().filter_map(|d| crate::validate::next_runs(d, 3)).collect();
    let mut summary = if args.cluster {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(against_cluster(args, manifests.desired))?
    } else {
        offline(args, manifests.desired, &checker)?
    };
    summary.schedules = schedules;
    summary.errors.splice(0..0, manifests.errors);
    Ok(summary)
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
                println!("{}: error: {}", position(error), error.message);
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
