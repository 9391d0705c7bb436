//! Human-readable progress for `acp run` on a terminal: a spinner with the
//! current step, one line per notable event, and a result summary.

use std::path::Path;
use std::time::Duration;

use acp_api::session::{RunOutcome, SessionResult};
use acp_runner::progress::{Progress, Sink};
use indicatif::{ProgressBar, ProgressStyle};

/// Renders progress on stderr.
pub struct Terminal {
    bar: ProgressBar,
    tools: u64,
}

impl Terminal {
    /// A spinner for session `name`.
    pub fn new(name: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(name.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar, tools: 0 }
    }
}

impl Sink for Terminal {
    fn emit(&mut self, progress: &Progress) {
        match progress {
            Progress::Step { message, .. } => self.bar.set_message(message.clone()),
            Progress::Cloned { name, branch, commit } => {
                self.bar.println(format!("  cloned {name} ({branch} @ {})", &commit[..commit.len().min(8)]));
            }
            Progress::AgentStarted { model, .. } => self.bar.set_message(format!("agent running ({model})")),
            Progress::Text { text } => {
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
                self.bar.println(format!("  ▸ {first}"));
            }
            Progress::ToolUse { tool, summary } => {
                self.tools += 1;
                self.bar.set_message(format!("tool #{}: {tool} {summary}", self.tools));
                self.bar.println(format!("  ⚙ {tool} {summary}"));
            }
            Progress::Todos { todos } => {
                for todo in todos {
                    let mark = match todo.status.as_str() {
                        "completed" => "[x]",
                        "in_progress" => "[~]",
                        _ => "[ ]",
                    };
                    self.bar.println(format!("    {mark} {}", todo.content));
                }
            }
            Progress::Pushed { branch, commit, repo } => {
                self.bar.println(format!("  pushed {branch} @ {} to {repo}", &commit[..commit.len().min(8)]));
            }
            Progress::ToolResult { .. } | Progress::Log { .. } => {}
            Progress::Result { .. } => self.bar.finish_and_clear(),
        }
    }
}

/// Prints the final result.
pub fn print_result(result: &SessionResult, workspace: &Path) {
    let outcome = match result.outcome {
        Some(RunOutcome::Success) => "✔ completed",
        Some(RunOutcome::AgentError) => "✘ agent error",
        Some(RunOutcome::PrerequisiteFailed) => "✘ could not start",
        Some(RunOutcome::Stopped) => "■ stopped",
        None => "? unknown",
    };
    eprintln!("{outcome}");
    if let Some(summary) = &result.summary {
        eprintln!("\n{summary}\n");
    }
    if let Some(error) = &result.error {
        eprintln!("error: {error}");
    }
    let cost = result.total_cost_usd.map(|c| format!("${c:.4}")).unwrap_or_else(|| "-".into());
    let turns = result.num_turns.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    let secs = result.duration_ms.map(|d| format!("{:.1}s", d as f64 / 1000.0)).unwrap_or_else(|| "-".into());
    eprintln!("turns {turns} · cost {cost} · {secs}");
    for branch in &result.pushed_branches {
        eprintln!("pushed {} @ {} ({})", branch.branch, branch.commit, branch.repo);
    }
    eprintln!("workspace: {}", workspace.display());
}
