//! What the status bot reports about a session, derived from the
//! AgenticSession alone (no I/O, no wall clock): the view rendered into the PR
//! comment, the status file written back to git, and the commit status.

use acp_api::AgenticSession;
use acp_api::constants::annotations;
use kube::ResourceExt as _;
use serde::Serialize;

/// A pushed branch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Branch {
    /// Repository URL.
    pub repo: String,
    /// Branch name.
    pub branch: String,
    /// Commit pushed.
    pub commit: String,
}

/// The end of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `success`, `agentError`, `prerequisiteFailed` or `stopped`.
    pub outcome: String,
    /// The agent's final answer (bounded by the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Turns taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<i64>,
    /// Model cost in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    /// Run duration in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Input plus output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<i64>,
    /// Branches pushed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushed_branches: Vec<Branch>,
    /// Pull requests opened.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull_requests: Vec<String>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything reported about one session.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Session name.
    pub name: String,
    /// Session namespace.
    pub namespace: String,
    /// Display name, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Phase (`Pending` … `Failed`).
    pub phase: String,
    /// Whether the phase is final for this run.
    pub terminal: bool,
    /// The run number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// File the session came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Commit that last changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the run started (from status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended (from status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// The operator's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The run's result, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    /// Link to the session on the dashboard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    /// The agent's todo list while it runs (from the runner's output).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub todos: Vec<acp_api::progress::Todo>,
}

/// The commit that brought this version of `session`: the one that last
/// changed its file (git-sync's `source-commit` label), else the revision
/// git-sync synced it at.
pub fn source_commit(session: &AgenticSession) -> Option<String> {
    session
        .labels()
        .get(acp_api::constants::labels::SOURCE_COMMIT)
        .or_else(|| session.annotations().get(annotations::SOURCE_REVISION))
        .cloned()
}

/// The report of `session`; `dashboard` is the dashboard's base URL.
pub fn report(session: &AgenticSession, dashboard: Option<&str>) -> Report {
    let status = session.status.clone().unwrap_or_default();
    let namespace = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let phase = status.phase.unwrap_or_default();
    let terminal = phase.is_terminal();
    let result = status.result.as_ref().filter(|_| terminal).map(|r| Outcome {
        outcome: r
            .outcome
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| if r.is_error { "agentError".into() } else { "success".into() }),
        summary: r.summary.clone(),
        num_turns: r.num_turns,
        total_cost_usd: r.total_cost_usd,
        duration_ms: r.duration_ms,
        tokens: r.usage.as_ref().map(|u| u.input_tokens + u.output_tokens),
        pushed_branches: r
            .pushed_branches
            .iter()
            .map(|b| Branch { repo: b.repo.clone(), branch: b.branch.clone(), commit: b.commit.clone() })
            .collect(),
        pull_requests: r.pull_requests.clone(),
        error: r.error.clone(),
    });
    let annotation = |key: &str| session.annotations().get(key).cloned();
    Report {
        dashboard_url: dashboard.map(|d| format!("{}/sessions/{namespace}/{name}", d.trim_end_matches('/'))),
        display_name: session.spec.display_name.clone(),
        run: status.run,
        path: annotation(annotations::SOURCE_PATH),
        revision: source_commit(session),
        started_at: status.start_time.as_ref().map(|t| t.0.to_string()),
        completed_at: status.completion_time.as_ref().map(|t| t.0.to_string()),
        message: status.message.clone(),
        result,
        phase: phase.as_str().to_string(),
        terminal,
        name,
        namespace,
        todos: Vec::new(),
    }
}

/// The GitHub commit status (`pending`, `success`, `failure`, `error`) and its description.
pub fn commit_status(report: &Report) -> (&'static str, String) {
    let outcome = report.result.as_ref().map(|r| r.outcome.as_str());
    match (report.phase.as_str(), outcome) {
        ("Completed", _) | (_, Some("success")) if report.terminal => {
            ("success", format!("{} completed", report.name))
        }
        ("Stopped", _) => ("error", format!("{} was stopped", report.name)),
        ("Failed", _) => {
            let why = report.message.clone().unwrap_or_else(|| "failed".into());
            ("failure", truncate(&format!("{}: {why}", report.name), 140))
        }
        (phase, _) => ("pending", format!("{} is {}", report.name, phase.to_ascii_lowercase())),
    }
}

/// The status file written back to git: YAML, stable for a stable session.
pub fn status_file(report: &Report) -> String {
    let mut out =
        String::from("# Written by the acp status bot. Do not edit: it is rewritten as the session runs.\n");
    out.push_str(&serde_saphyr::to_string(report).unwrap_or_default());
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
