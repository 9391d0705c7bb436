//! `acp validate`: schema and policy checks of manifests, offline
//! ([`acp_gitsync::preview::check`], what a sync would refuse), with errors
//! as text, JSON or GitHub annotations.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acp_api::source::FileError;
use acp_gitsync::plan::{Kind, Manifests};

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

pub use acp_gitsync::preview::{ScheduleRuns, position};

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

/// A valid schedule's cron, zone and next `n` due times after now.
fn next_runs(desired: &acp_gitsync::plan::Desired, n: usize) -> Option<ScheduleRuns> {
    acp_gitsync::preview::next_runs(desired, n, k8s_openapi::jiff::Timestamp::now())
}

/// Checks the manifests of `paths`.
pub fn check(
    paths: &[PathBuf],
    policies: Option<&Path>,
    namespace: Option<&str>,
) -> anyhow::Result<(usize, Manifests)> {
    let checker = crate::policies::checker(policies)?;
    Ok(acp_gitsync::preview::check(paths, &checker, namespace)?)
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
