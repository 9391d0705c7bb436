//! What a sync would do, before it happens: the one implementation behind
//! `acp validate`, `acp plan` and the GitHub Action's checks.
//!
//! Files on disk are read as a sync reads a revision ([`read`]) and checked
//! with the same [`crate::plan`] a sync uses ([`check`]). A plan compares
//! them ([`plan`]) with nothing (everything is created), with another git
//! revision of the same directory (offline), or with the cluster: the
//! namespace's objects listed and diffed as a sync diffs them, then every
//! create and update dry-run on the API server under git-sync's own field
//! manager, so that what the server would refuse is found before a merge.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use acp_api::source::{FileError, InventoryEntry};
use kube::api::{Patch, PatchParams, ValidationDirective};

use crate::files::{self, Entry, Filter};
use crate::plan::{self, Desired, Kind, Manifests, SourceRef};

/// A preview that could not be made (a finding in a file is not one: it is
/// reported in the result).
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// A path could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The git repository or revision to compare with could not be read.
    #[error("failed to {action}: {source}")]
    Git {
        /// What was being done.
        action: String,
        /// git's error.
        source: git2::Error,
    },
    /// A file pattern did not compile.
    #[error(transparent)]
    Pattern(#[from] files::PatternError),
    /// The cluster could not be read.
    #[error("failed to list {kind}s: {source}")]
    List {
        /// The kind listed.
        kind: Kind,
        /// The client's error.
        source: kube::Error,
    },
}

/// Reads `paths` (files or directories of manifests) as a sync reads a
/// revision, each entry named by its path as given.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Entry>, PreviewError> {
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| PreviewError::Read { path, source }
    };
    let all = Filter::new("", &[], &[])?;
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(failed(path))?;
        if meta.is_dir() {
            let found = files::from_dir(path, &all).map_err(failed(path))?;
            out.extend(found.into_iter().map(|e| e.with_path(|p| path.join(p).display().to_string())));
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).map_err(failed(path))?.to_string_lossy().into_owned();
            out.push(Entry::Symlink { path: path.display().to_string(), target });
        } else if meta.len() > files::MAX_FILE_BYTES {
            out.push(Entry::TooLarge { path: path.display().to_string(), size: meta.len() });
        } else {
            let bytes = std::fs::read(path).map_err(failed(path))?;
            out.push(Entry::File { path: path.display().to_string(), bytes });
        }
    }
    Ok(out)
}

/// Checks the manifests of `paths` for `namespace` (none: each manifest's
/// own, or `default`): how many files were read, and what a sync would
/// apply and refuse.
pub fn check(
    paths: &[PathBuf],
    checker: &acp_policy::Checker,
    namespace: Option<&str>,
) -> Result<(usize, Manifests), PreviewError> {
    let entries = read(paths)?;
    let source = SourceRef::new("local", "validate");
    Ok((entries.len(), plan::manifests(&entries, &source, namespace, checker)))
}

/// `path:line:col`, as findings are shown.
pub fn position(error: &FileError) -> String {
    match (error.line, error.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", error.path),
        (Some(line), None) => format!("{}:{line}", error.path),
        _ => error.path.clone(),
    }
}

/// A schedule and its next due times, as `validate` and `plan` show them.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRuns {
    /// Schedule name.
    pub name: String,
    /// File.
    pub path: String,
    /// Line of its document.
    pub line: u32,
    /// The cron expression.
    pub schedule: String,
    /// The zone it is read in.
    pub time_zone: String,
    /// The next due times, in that zone.
    pub next_runs: Vec<String>,
}

impl std::fmt::Display for ScheduleRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schedule {} ({}:{}) {:?} in {}: next runs {}",
            self.name,
            self.path,
            self.line,
            self.schedule,
            self.time_zone,
            self.next_runs.join(", ")
        )
    }
}

/// A valid schedule's cron, zone and next `n` due times after `now`, as
/// text (`None` for a session).
pub fn next_runs(desired: &Desired, n: usize, now: k8s_openapi::jiff::Timestamp) -> Option<ScheduleRuns> {
    if desired.kind != Kind::Schedule {
        return None;
    }
    let spec = &desired.object["spec"];
    let schedule = spec["schedule"].as_str().unwrap_or_default().to_string();
    let zone = spec["timeZone"].as_str().map(str::to_owned);
    // The checker parsed it already; a failure here cannot happen for a valid manifest.
    let cron = acp_api::schedule::cron::Cron::parse(&schedule, zone.as_deref()).ok()?;
    let next = cron.upcoming(now, n).into_iter().map(|t| cron.display(t)).collect();
    Some(ScheduleRuns {
        name: desired.name.clone(),
        path: desired.path.clone(),
        line: desired.line,
        schedule,
        time_zone: cron.zone().to_string(),
        next_runs: next,
    })
}

/// What a sync would do.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Objects to create.
    pub create: Vec<String>,
    /// Objects to update.
    pub update: Vec<String>,
    /// Objects unchanged.
    pub unchanged: Vec<String>,
    /// Objects to prune.
    pub prune: Vec<String>,
    /// Errors: invalid files and server-side refusals.
    pub errors: Vec<FileError>,
    /// Schedules in the plan, with their next due times.
    pub schedules: Vec<ScheduleRuns>,
}

/// What a plan compares the directory with.
pub enum Against {
    /// Nothing: everything is created.
    Nothing,
    /// The same directory at git revision `.0` (e.g. `origin/main`): what
    /// merging the working tree would change. Offline.
    Revision(String),
    /// The cluster: its objects in the namespace, and a dry-run of every
    /// change. With a source, what it applied and git no longer has is
    /// pruned; without one nothing is.
    Cluster {
        /// The client.
        client: kube::Client,
        /// The SessionSource whose objects may be pruned.
        source: Option<SourceRef>,
    },
}

/// A plan of the manifests under `path` applied into `namespace`.
pub async fn plan(
    path: &Path,
    namespace: &str,
    against: Against,
    checker: &acp_policy::Checker,
) -> Result<Summary, PreviewError> {
    let entries = read(&[path.to_owned()])?;
    let source = match &against {
        Against::Cluster { source: Some(source), .. } => source.clone(),
        _ => SourceRef::new("local", "plan"),
    };
    let manifests = plan::manifests(&entries, &source, Some(namespace), checker);
    let now = k8s_openapi::jiff::Timestamp::now();
    let schedules = manifests.desired.iter().filter_map(|d| next_runs(d, 3, now)).collect();
    let mut summary = match against {
        Against::Nothing => against_revision(path, None, namespace, manifests.desired, checker)?,
        Against::Revision(rev) => against_revision(path, Some(&rev), namespace, manifests.desired, checker)?,
        Against::Cluster { client, source } => {
            against_cluster(client, namespace, source, manifests.desired).await?
        }
    };
    summary.schedules = schedules;
    summary.errors.splice(0..0, manifests.errors);
    Ok(summary)
}

/// `name (path:line)`, as plans list objects (`schedule name (path:line)`
/// for schedules).
fn label(desired: &Desired) -> String {
    let kind = if desired.kind == Kind::Schedule { "schedule " } else { "" };
    format!("{kind}{} ({}:{})", desired.name, desired.path, desired.line)
}

/// `desired` against what the directory held at `rev` (nothing when `None`).
fn against_revision(
    path: &Path,
    rev: Option<&str>,
    namespace: &str,
    desired: Vec<Desired>,
    checker: &acp_policy::Checker,
) -> Result<Summary, PreviewError> {
    let base = match rev {
        None => BTreeMap::new(),
        Some(rev) => at_revision(path, rev, namespace, checker)?,
    };
    let mut summary = Summary::default();
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

/// The valid objects of directory `path` at git revision `rev`, by kind and name.
fn at_revision(
    path: &Path,
    rev: &str,
    namespace: &str,
    checker: &acp_policy::Checker,
) -> Result<BTreeMap<(Kind, String), Desired>, PreviewError> {
    let git = |action: String| move |source| PreviewError::Git { action, source };
    let repo = git2::Repository::discover(path)
        .map_err(git(format!("find the git repository of {}", path.display())))?;
    let not_bare = || git2::Error::from_str("the repository has no working tree");
    let workdir = repo.workdir().ok_or_else(not_bare).map_err(git("read the working tree".into()))?;
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|source| PreviewError::Read { path: p.display().to_string(), source })
    };
    let absolute = canonical(path)?;
    let workdir = canonical(workdir)?;
    let prefix = absolute.strip_prefix(&workdir).unwrap_or(&absolute);
    let tree = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_tree())
        .map_err(git(format!("resolve revision {rev}")))?;
    let filter = Filter::new(&prefix.to_string_lossy(), &[], &[])?;
    let entries = files::from_tree(&repo, &tree, &filter).map_err(git(format!("read revision {rev}")))?;
    let old = plan::manifests(&entries, &SourceRef::new("local", "plan"), Some(namespace), checker);
    Ok(old.desired.into_iter().map(|d| ((d.kind, d.name.clone()), d)).collect())
}

/// `desired` against the cluster, kind by kind.
async fn against_cluster(
    client: kube::Client,
    namespace: &str,
    source: Option<SourceRef>,
    desired: Vec<Desired>,
) -> Result<Summary, PreviewError> {
    let mut summary = Summary::default();
    for kind in Kind::ALL {
        let desired: Vec<Desired> = desired.iter().filter(|d| d.kind == kind).cloned().collect();
        if desired.is_empty() && (kind != Kind::Session || source.is_none()) {
            continue;
        }
        let part = kind_against_cluster(client.clone(), namespace, source.as_ref(), kind, desired).await?;
        summary.create.extend(part.create);
        summary.update.extend(part.update);
        summary.unchanged.extend(part.unchanged);
        summary.prune.extend(part.prune);
        summary.errors.extend(part.errors);
    }
    Ok(summary)
}

/// One kind's plan against the cluster: the diff a sync would make, then
/// a strict server-side dry-run of each create and update.
async fn kind_against_cluster(
    client: kube::Client,
    namespace: &str,
    source: Option<&SourceRef>,
    kind: Kind,
    desired: Vec<Desired>,
) -> Result<Summary, PreviewError> {
    let api = crate::apply::objects(client, namespace, kind);
    let live = crate::apply::list(&api).await.map_err(|source| PreviewError::List { kind, source })?;
    let (owner, inventory) = match source {
        Some(source) => (source.clone(), inventory_of(source, &live)),
        // Without a source, every object of the namespace is this plan's to
        // compare (and none is pruned: the inventory is empty).
        None => (SourceRef::new("local", "plan"), Vec::new()),
    };
    let live: Vec<_> = match source {
        Some(_) => live,
        None => live.into_iter().map(|o| owned_by(o, &owner)).collect(),
    };
    let plan = plan::diff(desired, &live, &inventory, &owner, &HashSet::new());
    let mut errors = plan.conflicts.clone();
    errors.extend(dry_run(&api, plan.create.iter().chain(&plan.update)).await);
    Ok(Summary {
        create: plan.create.iter().map(label).collect(),
        update: plan.update.iter().map(label).collect(),
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

/// What `source` applied among `live`, as its inventory would list it.
fn inventory_of(source: &SourceRef, live: &[serde_json::Value]) -> Vec<InventoryEntry> {
    live.iter()
        .filter(|o| source.owns(o))
        .filter_map(|o| o["metadata"]["name"].as_str())
        .map(|name| InventoryEntry { name: name.into(), ..Default::default() })
        .collect()
}

/// `object` as if `source` had applied it (its labels), so that the diff
/// compares it rather than calling it a conflict.
fn owned_by(mut object: serde_json::Value, source: &SourceRef) -> serde_json::Value {
    use acp_api::constants::labels;
    object["metadata"]["labels"][labels::SOURCE_NAMESPACE] = source.namespace.clone().into();
    object["metadata"]["labels"][labels::SOURCE_NAME] = source.name.clone().into();
    object
}

/// A strict server-side dry-run of each of `changes` under git-sync's
/// field manager: what the API server would refuse, at its file.
async fn dry_run<'a>(
    api: &kube::Api<kube::api::DynamicObject>,
    changes: impl Iterator<Item = &'a Desired>,
) -> Vec<FileError> {
    let mut params = PatchParams::apply(acp_api::constants::field_managers::GIT_SYNC).force();
    params.dry_run = true;
    params.field_validation = Some(ValidationDirective::Strict);
    let mut errors = Vec::new();
    for want in changes {
        if let Err(error) = api.patch(&want.name, &params, &Patch::Apply(&want.at_revision("plan"))).await {
            errors.push(FileError {
                path: want.path.clone(),
                line: Some(want.line.into()),
                column: Some(1),
                message: crate::apply::api_message(&error),
            });
        }
    }
    errors
}

/// `summary` as Markdown, as posted on pull requests. Every name, path
/// and message comes from the files of a pull request: each is shown as a
/// code span on one line, so none can add a mention, a link or a line of
/// its own (a workflow command, where the text is also printed).
pub fn markdown(summary: &Summary) -> String {
    use acp_github::markdown::code_span;
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
                out.push_str(&format!("- {}\n", code_span(item)));
            }
        }
    }
    if !summary.schedules.is_empty() {
        out.push_str("\n**Schedules**\n");
        for s in &summary.schedules {
            let (name, schedule, zone) =
                (code_span(&s.name), code_span(&s.schedule), code_span(&s.time_zone));
            let next = code_span(&s.next_runs.join(", "));
            out.push_str(&format!("- {name} {schedule} ({zone}): next runs {next}\n"));
        }
    }
    if !summary.errors.is_empty() {
        out.push_str("\n**Findings**\n");
        for error in &summary.errors {
            out.push_str(&format!("- {}: {}\n", code_span(&position(error)), code_span(&error.message)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_markdown_shows_what_files_say_only_as_code_on_one_line() {
        let hostile = "x`\n::error file=a::pwned @acme/admins [login](https://evil)\r\n::warning::y";
        let summary = Summary {
            create: vec![format!("{hostile} (sessions/x.yaml:1)")],
            errors: vec![FileError {
                path: format!("sessions/{hostile}.yaml"),
                line: Some(1),
                column: None,
                message: hostile.into(),
            }],
            ..Summary::default()
        };
        let text = markdown(&summary);
        for line in text.lines() {
            assert!(!line.trim_start().starts_with("::"), "a line of its own: {line:?}");
        }
        for line in text.lines().filter(|l| l.contains("pwned")) {
            assert!(line.starts_with("- `"), "only inside a code span: {line:?}");
        }
        assert_eq!(text.lines().filter(|l| l.contains("pwned")).count(), 2, "{text}");
    }
}
