//! Progress the runner reports while it works, and where it goes.
//!
//! Every event is redacted before any sink sees it. In a pod the sink prints
//! JSON lines on stdout (the operator and `kubectl logs` read them); `acp run`
//! renders the same events for a terminal.

use acp_api::session::SessionResult;
use serde::{Deserialize, Serialize};

use crate::events::Todo;
use crate::redact::Redactor;

/// Longest text echoed per event; the transcript keeps everything.
pub const PREVIEW_BYTES: usize = 2000;

/// One progress event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A step of the run began: `clone`, `agent`, `push`.
    Step {
        /// Step name.
        step: String,
        /// What is happening.
        message: String,
    },
    /// A repository was cloned.
    Cloned {
        /// Directory name under `repos/` (or `workflows/`).
        name: String,
        /// Checked-out branch.
        branch: String,
        /// Commit.
        commit: String,
    },
    /// The agent started (Claude Code session id, model).
    AgentStarted {
        /// Claude Code session id.
        session_id: String,
        /// Model.
        model: String,
    },
    /// Text the agent wrote.
    Text {
        /// The text (cut to [`PREVIEW_BYTES`]).
        text: String,
    },
    /// The agent called a tool.
    ToolUse {
        /// Tool name.
        tool: String,
        /// Short description of the call.
        summary: String,
    },
    /// A tool returned.
    ToolResult {
        /// Whether the tool failed.
        is_error: bool,
        /// Size of the output in bytes.
        bytes: usize,
        /// Start of the output.
        preview: String,
    },
    /// The agent's todo list, whenever it changes.
    Todos {
        /// The list.
        todos: Vec<Todo>,
    },
    /// Output of the CLI that is not an event.
    Log {
        /// The line.
        line: String,
    },
    /// A branch was pushed.
    Pushed {
        /// Repository URL.
        repo: String,
        /// Branch.
        branch: String,
        /// Commit.
        commit: String,
    },
    /// The run ended.
    Result {
        /// The result.
        result: SessionResult,
    },
}

/// Where progress goes.
pub trait Sink: Send {
    /// Receives one (already redacted) event.
    fn emit(&mut self, progress: &Progress);
}

/// Prints each event as one JSON line on stdout.
pub struct JsonLines;

impl Sink for JsonLines {
    fn emit(&mut self, progress: &Progress) {
        if let Ok(line) = serde_json::to_string(progress) {
            println!("{line}");
        }
    }
}

/// Redacts events before passing them to the real sink.
pub struct Reporter<'a> {
    sink: &'a mut dyn Sink,
    redactor: Redactor,
}

impl<'a> Reporter<'a> {
    /// Wraps `sink`.
    pub fn new(sink: &'a mut dyn Sink, redactor: Redactor) -> Self {
        Self { sink, redactor }
    }

    /// The redactor in use.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Redacts and emits `progress`.
    pub fn emit(&mut self, progress: Progress) {
        // Redact the serialized form, so every string field is covered.
        let redacted = serde_json::to_string(&progress)
            .ok()
            .and_then(|json| serde_json::from_str::<Progress>(&self.redactor.redact(&json)).ok())
            .unwrap_or(Progress::Log { line: "[progress event withheld: could not be redacted]".into() });
        self.sink.emit(&redacted);
    }
}
