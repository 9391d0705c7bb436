//! `acp validate`: schema and policy checks of manifests, offline, with
//! errors as text, JSON or GitHub annotations.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acp_api::source::FileError;
use acp_gitsync::files::{self, Entry, Filter};
use acp_gitsync::plan::{self, Desired, Kind, Manifests, SourceRef};
use anyhow::Context as _;

/// Output formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// `path:line:col: error: message` lines and a summary.
    Text,
    /// One JSON document: files, sessions, errors.
    Json,
    /// GitHub workflow commands (`::error file=…,line=…::…`): annotations on the PR.
    Github,
}

/// Options of `acp validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Manifest files or directories (searched for *.yaml and *.yml).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Directory of ValidatingAdmissionPolicy files, bindings and params
    /// (default: the policies built into acp, i.e. the repository's policies/).
    #[arg(long, env = "ACP_POLICIES")]
    policies: Option<PathBuf>,
    /// Namespace the sessions will be applied into (default: each manifest's
    /// own, or `default`).
    #[arg(long)]
    namespace: Option<String>,
}

/// Reads `paths` as manifest entries, each path as given on the command line.
pub fn entries(paths: &[PathBuf]) -> anyhow::Result<Vec<Entry>> {
    let all = Filter::new("", &[], &[]).context("filter")?;
    let mut out = Vec::new();
    for path in paths {
        let meta =
            std::fs::symlink_metadata(path).with_context(|| format!("failed to read {}", path.display()))?;
        if meta.is_dir() {
            for entry in
                files::from_dir(path, &all).with_context(|| format!("failed to read {}", path.display()))?
            {
                out.push(rebase(path, entry));
            }
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path)?.to_string_lossy().into_owned();
            out.push(Entry::Symlink { path: path.display().to_string(), target });
        } else if meta.len() > files::MAX_FILE_BYTES {
            out.push(Entry::TooLarge { path: path.display().to_string(), size: meta.len() });
        } else {
            let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
            out.push(Entry::File { path: path.display().to_string(), bytes });
        }
    }
    Ok(out)
}

fn rebase(dir: &Path, entry: Entry) -> Entry {
    entry.with_path(|path| dir.join(path).display().to_string())
}

/// `path:line:col`.
pub fn position(error: &FileError) -> String {
    match (error.line, error.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", error.path),
        (Some(line), None) => format!("{}:{line}", error.path),
        _ => error.path.clone(),
    }
}

/// A GitHub workflow `::error` command for `error`.
pub fn github_annotation(error: &FileError) -> String {
    let escape = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let property = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    let mut props = format!("file={}", property(&error.path));
    if let Some(line) = error.line {
        props.push_str(&format!(",line={line}"));
    }
    if let Some(column) = error.column {
        props.push_str(&format!(",col={column}"));
    }
    format!("::error {props},title=acp validate::{}", escape(&error.message))
}

/// A valid schedule's cron, zone and next `n` due times after now, as text
/// (`None` for a session).
pub fn next_runs(desired: &Desired, n: usize) -> Option<ScheduleRuns> {
    if desired.kind != Kind::Schedule {
        return None;
    }
    let spec = &desired.object["spec"];
    let schedule = spec["schedule"].as_str().unwrap_or_default().to_string();
    let zone = spec["timeZone"].as_str().map(str::to_owned);
    // The checker parsed it already; a failure here cannot happen for a valid manifest.
    let cron = acp_api::schedule::cron::Cron::parse(&schedule, zone.as_deref()).ok()?;
    let now = k8s_openapi::jiff::Timestamp::now();
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

/// Checks the manifests of `paths`.
pub fn check(
    paths: &[PathBuf],
    policies: Option<&Path>,
    namespace: Option<&str>,
) -> anyhow::Result<(usize, Manifests)> {
    let checker = crate::policies::checker(policies)?;
    let entries = entries(paths)?;
    let source = SourceRef::new("local", "validate");
    Ok((entries.len(), plan::manifests(&entries, &source, namespace, &checker)))
}

/// Runs `acp validate`.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let (files, manifests) = check(&args.paths, args.policies.as_deref(), args.namespace.as_deref())?;
    let schedules: Vec<ScheduleRuns> = manifests.desired.iter().filter_map(|d| next_runs(d, 3)).collect();
    let sessions = manifests.desired.len() - schedules.len();
    match args.format {
        Format::Text => {
            for error in &manifests.errors {
                println!("{}: error: {}", position(error), error.message);
            }
            for schedule in &schedules {
                println!("{schedule}");
            }
            let schedules = match schedules.len() {
                0 => String::new(),
                n => format!("{n} schedules valid, "),
            };
            println!(
                "{files} files, {schedules}{sessions} sessions valid, {} errors",
                manifests.errors.len()
            );
        }
        Format::Json => {
            let sessions: Vec<_> = manifests
                .desired
                .iter()
                .filter(|d| d.kind == Kind::Session)
                .map(|d| serde_json::json!({"name": d.name, "path": d.path, "line": d.line}))
                .collect();
            let out = serde_json::json!({"files": files, "sessions": sessions, "schedules": schedules, "errors": manifests.errors});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Github => {
            for error in &manifests.errors {
                println!("{}", github_annotation(error));
            }
            if manifests.errors.is_empty() {
                println!("::notice title=acp validate::{files} files, {sessions} sessions valid");
                for schedule in &schedules {
                    println!("::notice title=acp validate::{schedule}");
                }
            }
        }
    }
    Ok(if manifests.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
