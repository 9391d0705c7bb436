//! The runner's progress events: the wire format between the runner (which
//! prints them as JSON lines on stdout, or in its run directory) and whoever
//! reads its output (the operator's result fallback, the dashboard's log view,
//! the status bot's todo checklist). Pure: parsing and rendering only.

use serde::{Deserialize, Serialize};

use crate::session::SessionResult;

/// One progress event, as one JSON line: `{"event":"<kind>", …}`.
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
    /// Text the agent wrote (a bounded preview).
    Text {
        /// The text.
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

/// One item of the agent's todo list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// What to do.
    pub content: String,
    /// `pending`, `in_progress` or `completed`.
    #[serde(default)]
    pub status: String,
}

/// The todo list of the last `todos` event among `lines` (lines that are not
/// events, or events of kinds this version does not know, are skipped).
pub fn latest_todos<S: AsRef<str>>(lines: &[S]) -> Option<Vec<Todo>> {
    lines.iter().rev().find_map(|line| {
        let event: serde_json::Value = serde_json::from_str(line.as_ref()).ok()?;
        if event.get("event")?.as_str()? != "todos" {
            return None;
        }
        serde_json::from_value(event.get("todos")?.clone()).ok()
    })
}

/// The result of the last `result` event among `lines`.
pub fn last_result<S: AsRef<str>>(lines: &[S]) -> Option<SessionResult> {
    lines.iter().rev().find_map(|line| match serde_json::from_str(line.as_ref()).ok()? {
        Progress::Result { result } => Some(result),
        _ => None,
    })
}

/// Fields shown first and without their name, in this order.
const MAIN_FIELDS: [&str; 4] = ["step", "message", "text", "summary"];

/// A progress line for people: `[step] clone cloning …`, `[text] …`; a line
/// that is not a JSON event is kept as it is.
pub fn render_line(line: &str) -> String {
    let Ok(serde_json::Value::Object(event)) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let Some(kind) = event.get("event").and_then(|e| e.as_str()) else {
        return line.to_owned();
    };
    let main = MAIN_FIELDS.iter().filter_map(|k| event.get(*k)?.as_str().map(str::to_owned));
    let rest = event
        .iter()
        .filter(|(k, _)| k.as_str() != "event" && !MAIN_FIELDS.contains(&k.as_str()))
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some(format!("{k}={s}")),
            serde_json::Value::Number(n) => Some(format!("{k}={n}")),
            serde_json::Value::Bool(b) => Some(format!("{k}={b}")),
            _ => None,
        });
    format!("[{kind}] {}", main.chain(rest).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_progress_events() {
        assert_eq!(
            render_line(r#"{"event":"step","step":"clone","message":"cloning 1 repository"}"#),
            "[step] clone cloning 1 repository"
        );
        assert_eq!(render_line(r#"{"event":"turn","turns":3}"#), "[turn] turns=3");
        assert_eq!(render_line("plain text"), "plain text");
        assert_eq!(render_line(r#"{"no":"event"}"#), r#"{"no":"event"}"#);
    }

    #[test]
    fn the_last_todo_list_wins() {
        let lines = [
            r#"{"event":"todos","todos":[{"content":"a","status":"pending"}]}"#,
            r#"{"event":"text","text":"working"}"#,
            r#"{"event":"todos","todos":[{"content":"a","status":"completed"},{"content":"b","status":"in_progress"}]}"#,
            "not json",
        ];
        let todos = latest_todos(&lines).expect("todos");
        assert_eq!(todos.len(), 2);
        assert_eq!(todos[0], Todo { content: "a".into(), status: "completed".into() });
        assert_eq!(latest_todos(&lines[1..2]), None);
    }

    #[test]
    fn events_round_trip_and_the_last_result_is_found() {
        let event = Progress::Todos { todos: vec![Todo { content: "a".into(), status: "pending".into() }] };
        let line = serde_json::to_string(&event).expect("json");
        assert_eq!(line, r#"{"event":"todos","todos":[{"content":"a","status":"pending"}]}"#);
        let lines = [
            r#"{"event":"result","result":{"outcome":"agentError","summary":"first"}}"#.to_owned(),
            r#"{"event":"result","result":{"outcome":"success","summary":"last"}}"#.to_owned(),
            r#"{"event":"future_kind","x":1}"#.to_owned(),
        ];
        assert_eq!(last_result(&lines).and_then(|r| r.summary).as_deref(), Some("last"));
    }
}
