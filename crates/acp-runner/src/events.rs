//! Claude Code's `stream-json` output, as typed events.
//!
//! Every stdout line of `claude -p --output-format stream-json --verbose` is one
//! JSON object with a `type`. Types and fields the runner does not use are
//! tolerated: unknown event types become [`StreamEvent::Unknown`], unknown
//! content blocks [`Block::Other`], and a line that is not JSON at all is kept
//! as text.

use acp_api::session::TokenUsage;
use serde::Deserialize;
use serde_json::Value;

/// One line of the CLI's output.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// Session start (`subtype: init`) and other system notices.
    System(SystemEvent),
    /// An assistant message: text, tool calls.
    Assistant(MessageEvent),
    /// A user message: tool results fed back to the model.
    User(MessageEvent),
    /// The final result of the run.
    Result(ResultEvent),
    /// Any other event type (newer CLIs add some).
    #[serde(other)]
    Unknown,
}

/// A `system` event.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SystemEvent {
    /// `init` at start.
    #[serde(default)]
    pub subtype: Option<String>,
    /// Claude Code session id.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Model in use.
    #[serde(default)]
    pub model: Option<String>,
}

/// An `assistant` or `user` event.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessageEvent {
    /// The message.
    #[serde(default)]
    pub message: Message,
    /// Set when the message belongs to a sub-agent's tool call.
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
}

/// A message with content blocks.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Message {
    /// Content: a list of blocks (a plain string is accepted too).
    #[serde(default, deserialize_with = "blocks")]
    pub content: Vec<Block>,
}

fn blocks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Block>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(text) => vec![Block::Text { text }],
        Value::Array(items) => {
            items.into_iter().map(|v| serde_json::from_value(v).unwrap_or(Block::Other)).collect()
        }
        _ => Vec::new(),
    })
}

/// A content block.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// Call id.
        #[serde(default)]
        id: String,
        /// Tool name.
        name: String,
        /// Tool input.
        #[serde(default)]
        input: Value,
    },
    /// A tool's result.
    ToolResult {
        /// The call it answers.
        #[serde(default)]
        tool_use_id: String,
        /// Output: a string or a list of text parts.
        #[serde(default)]
        content: Value,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
    },
    /// Thinking, images, and anything newer.
    #[serde(other)]
    Other,
}

/// The `result` event.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResultEvent {
    /// `success`, `error_max_turns`, `error_during_execution`, …
    #[serde(default)]
    pub subtype: String,
    /// Whether the run failed.
    #[serde(default)]
    pub is_error: bool,
    /// Agent turns.
    #[serde(default)]
    pub num_turns: Option<i64>,
    /// Cost in US dollars.
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    /// Duration in milliseconds.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<TokenUsage>,
    /// Claude Code session id.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The final text (or the error text).
    #[serde(default)]
    pub result: Option<String>,
    /// HTTP status of a model API error, when that ended the run.
    #[serde(default)]
    pub api_error_status: Option<i64>,
}

/// One line of output, parsed.
#[derive(Clone, Debug)]
pub enum Line {
    /// A JSON event.
    Event(Box<StreamEvent>),
    /// Anything else the CLI printed.
    Text(String),
}

/// Parses one stdout line.
pub fn parse_line(line: &str) -> Line {
    match serde_json::from_str::<StreamEvent>(line) {
        Ok(event) => Line::Event(Box::new(event)),
        Err(_) => Line::Text(line.to_owned()),
    }
}

pub use acp_api::progress::Todo;

/// The todo list in a `TodoWrite` tool call, if this is one.
pub fn todos(name: &str, input: &Value) -> Option<Vec<Todo>> {
    if name != "TodoWrite" {
        return None;
    }
    serde_json::from_value(input.get("todos")?.clone()).ok()
}

/// Text of a tool result's content.
pub fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_tolerates_unknown_events() {
        let init = r#"{"type":"system","subtype":"init","session_id":"s1","model":"m","tools":["Bash"]}"#;
        assert!(
            matches!(parse_line(init), Line::Event(e) if matches!(*e, StreamEvent::System(ref s) if s.session_id.as_deref() == Some("s1")))
        );
        let future = r#"{"type":"stream_event","event":{"x":1}}"#;
        assert!(matches!(parse_line(future), Line::Event(e) if matches!(*e, StreamEvent::Unknown)));
        assert!(matches!(parse_line("not json"), Line::Text(t) if t == "not json"));
    }

    #[test]
    fn parses_tool_use_and_results_with_unknown_blocks() {
        let line = r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"tool_use","id":"t1","name":"TodoWrite","input":{"todos":[{"content":"a","status":"pending","activeForm":"doing a"}]}}]}}"#;
        let Line::Event(event) = parse_line(line) else { panic!("event") };
        let StreamEvent::Assistant(msg) = *event else { panic!("assistant") };
        assert!(matches!(msg.message.content[0], Block::Other));
        let Block::ToolUse { name, input, .. } = &msg.message.content[1] else { panic!("tool use") };
        assert_eq!(todos(name, input), Some(vec![Todo { content: "a".into(), status: "pending".into() }]));

        let line = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"ok"}]}]}}"#;
        let Line::Event(event) = parse_line(line) else { panic!("event") };
        let StreamEvent::User(msg) = *event else { panic!("user") };
        let Block::ToolResult { content, .. } = &msg.message.content[0] else { panic!("result") };
        assert_eq!(result_text(content), "ok");
    }

    #[test]
    fn parses_the_result_event() {
        let line = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"total_cost_usd":0.01,"usage":{"input_tokens":5,"output_tokens":6},"session_id":"s","new_field":true}"#;
        let Line::Event(event) = parse_line(line) else { panic!("event") };
        let StreamEvent::Result(result) = *event else { panic!("result") };
        assert_eq!(result.subtype, "error_max_turns");
        assert_eq!(result.num_turns, Some(3));
        assert_eq!(result.usage.map(|u| u.output_tokens), Some(6));
    }
}
