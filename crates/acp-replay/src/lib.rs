//! A scripted stand-in for the Anthropic Messages API, for running acp
//! without a model API key (the local GitOps loop) and for tests.
//!
//! [`stream`] answers a request as the real API does: a `text/event-stream`
//! of `message_start`, `content_block_*`, `message_delta` and `message_stop`.
//! [`replay_router`] is the stateless replay model the local loop uses: the
//! agent's first turn writes `ACP_REPLAY.md` in its working directory with
//! the Write tool, the second turn answers with a text that says plainly that
//! this was a replay, not a model. Nothing it produces can be mistaken for a
//! real model's work: every text starts with [`LABEL`].
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How every replayed text begins.
pub const LABEL: &str = "[replay model]";
/// The file the replay writes in the agent's working directory.
pub const REPLAY_FILE: &str = "ACP_REPLAY.md";

/// A content block of a streamed message.
#[derive(Clone, Debug)]
pub enum Block {
    /// Text.
    Text(String),
    /// A tool call with its input.
    ToolUse {
        /// Tool name, such as `Write`.
        name: String,
        /// Tool input.
        input: Value,
    },
}

/// The server-sent events of one assistant message made of `blocks`.
pub fn events(model: &str, id: u64, blocks: &[Block]) -> Vec<(&'static str, Value)> {
    let stop_reason =
        if blocks.iter().any(|b| matches!(b, Block::ToolUse { .. })) { "tool_use" } else { "end_turn" };
    let mut out = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": format!("msg_{id:024}"), "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 100, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            }}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    let mut output_tokens = 1;
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                out.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                out.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})));
                output_tokens += text.split_whitespace().count().max(1);
            }
            Block::ToolUse { name, input } => {
                let tool_id = format!("toolu_{id:04}_{index:02}");
                out.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}})));
                let json = input.to_string();
                let mid = json.char_indices().nth(json.chars().count() / 2).map_or(0, |(i, _)| i);
                for part in [&json[..mid], &json[mid..]] {
                    out.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}})));
                }
                output_tokens += 20;
            }
        }
        out.push(("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    }
    out.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    out.push(("message_stop", json!({"type": "message_stop"})));
    out
}

/// The streamed response of one message, with `delay` between events.
pub fn stream(model: &str, id: u64, blocks: &[Block], delay: Duration) -> Response {
    let frames: Vec<Bytes> = events(model, id, blocks)
        .into_iter()
        .map(|(event, data)| Bytes::from(format!("event: {event}\ndata: {data}\n\n")))
        .collect();
    let body = futures_util::stream::unfold((frames.into_iter(), delay), |(mut frames, delay)| async move {
        let frame = frames.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, Infallible>(frame), (frames, delay)))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("request-id", format!("req_{id}"))
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `POST /v1/messages/count_tokens`: a fixed estimate.
pub async fn count_tokens() -> Response {
    axum::Json(json!({"input_tokens": 12})).into_response()
}

/// The text of a `system` or `content` value (a string or text blocks).
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().map(|p| p["text"].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// The working directory Claude Code states in its prompt (`Primary working
/// directory: /path`, in the system prompt or an environment reminder).
fn working_directory(body: &Value) -> Option<String> {
    let messages = body["messages"].as_array().into_iter().flatten().map(|m| text_of(&m["content"]));
    std::iter::once(text_of(&body["system"])).chain(messages).find_map(|text| {
        text.lines().find_map(|l| {
            let (_, dir) = l.split_once("orking directory:")?;
            Some(dir.trim().to_owned()).filter(|d| d.starts_with('/'))
        })
    })
}

fn tool_results(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .count()
}

/// The replay's answer to one request.
pub fn replay(body: &Value) -> Vec<Block> {
    let offers_write =
        body["tools"].as_array().is_some_and(|tools| tools.iter().any(|t| t["name"] == "Write"));
    if !offers_write {
        // Claude Code's side requests (titles, summaries) use no tools.
        return vec![Block::Text(format!("{LABEL} ok"))];
    }
    let dir = working_directory(body);
    match (tool_results(body), dir) {
        (0, Some(dir)) => vec![
            Block::Text(format!("{LABEL} Writing {REPLAY_FILE} to show the loop end to end.")),
            Block::ToolUse {
                name: "Write".into(),
                input: json!({
                    "file_path": format!("{}/{REPLAY_FILE}", dir.trim_end_matches('/')),
                    "content": format!("# Written by acp's replay model\n\nThis file was written by a scripted replay of the Messages API, \
                not by a real model. Set ANTHROPIC_API_KEY to run sessions with the real model API.\n"),
                }),
            },
        ],
        (_, dir) => vec![Block::Text(format!(
            "{LABEL} This session ran against acp's scripted replay model, not a real model{}. \
Set ANTHROPIC_API_KEY to run it with the real model API.",
            dir.map(|d| format!(": it wrote {REPLAY_FILE} in {d}")).unwrap_or_default()
        ))],
    }
}

async fn messages(body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or("replay").to_owned();
    stream(&model, tool_results(&body) as u64 + 1, &replay(&body), Duration::ZERO)
}

/// The replay model's routes: `POST /v1/messages` and `/v1/messages/count_tokens`.
pub fn replay_router() -> Router {
    Router::new().route("/v1/messages", post(messages)).route("/v1/messages/count_tokens", post(count_tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tool_results: usize) -> Value {
        let results: Vec<Value> = (0..tool_results)
            .map(|i| json!({"type": "tool_result", "tool_use_id": format!("t{i}"), "content": "ok"}))
            .collect();
        json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "You are Claude Code."}],
            "tools": [{"name": "Read"}, {"name": "Write"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "# Environment\n - Primary working directory: /work/repos/app\n - Is a git repository: true"},
                                                      {"type": "text", "text": "hi"}]},
                         {"role": "user", "content": results}]
        })
    }

    #[test]
    fn writes_then_says_it_was_a_replay() {
        let first = replay(&request(0));
        let Some(Block::ToolUse { name, input }) = first.last() else {
            panic!("a tool call first: {first:?}")
        };
        assert_eq!(name, "Write");
        assert_eq!(input["file_path"], "/work/repos/app/ACP_REPLAY.md");
        let second = replay(&request(1));
        let [Block::Text(text)] = second.as_slice() else { panic!("a text last: {second:?}") };
        assert!(text.starts_with(LABEL) && text.contains("not a real model"), "{text}");
    }

    #[test]
    fn side_requests_get_a_labelled_short_answer() {
        let answer = replay(&json!({"model": "claude-haiku-4-5", "messages": []}));
        let [Block::Text(text)] = answer.as_slice() else { panic!("one text: {answer:?}") };
        assert_eq!(*text, format!("{LABEL} ok"));
    }

    #[test]
    fn tool_calls_end_the_turn_with_tool_use() {
        let events = events("m", 1, &[Block::ToolUse { name: "Write".into(), input: json!({"a": 1}) }]);
        let delta = events.iter().find(|(e, _)| *e == "message_delta").map(|(_, d)| d.clone());
        assert_eq!(delta.map(|d| d["delta"]["stop_reason"].clone()), Some(json!("tool_use")));
        let partial: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(partial, r#"{"a":1}"#);
    }
}
