//! A scripted Anthropic Messages API on loopback.
//!
//! The real Claude Code CLI talks to it through `ANTHROPIC_BASE_URL`. Each
//! request to `POST /v1/messages` for the scripted model consumes the next
//! [`Step`] of the script and is answered as the real API answers: a
//! `text/event-stream` of `message_start`, `content_block_*`, `message_delta`
//! and `message_stop` events, or an error JSON with its HTTP status. Requests
//! for other models (the CLI's small background model) get a short reply and
//! do not consume the script. Every request is recorded for assertions.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted model response.
#[derive(Clone, Debug)]
pub enum Step {
    /// A streamed assistant message made of `blocks`.
    Message {
        /// Content blocks, in order.
        blocks: Vec<Block>,
        /// Pause between streamed events (a slow stream when non-zero).
        delay: Duration,
    },
    /// An HTTP error in the API's error shape, e.g. 400 `invalid_request_error`
    /// or 529 `overloaded_error`.
    Error {
        /// HTTP status.
        status: u16,
        /// Error type, such as `overloaded_error`.
        kind: String,
        /// Error message.
        message: String,
    },
    /// Accept the request and never answer (for inactivity and stop tests).
    Hang,
}

/// A content block of a scripted message (text or a tool call).
pub use acp_replay::Block;

impl Step {
    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Message { blocks: vec![Block::Text(text.into())], delay: Duration::ZERO }
    }

    /// A single tool call.
    pub fn tool(name: &str, input: Value) -> Self {
        Self::Message { blocks: vec![Block::ToolUse { name: name.to_owned(), input }], delay: Duration::ZERO }
    }

    /// A message with several blocks.
    pub fn blocks(blocks: Vec<Block>) -> Self {
        Self::Message { blocks, delay: Duration::ZERO }
    }

    /// A text answer streamed in `chunks` with `delay` between events.
    pub fn slow_text(chunks: &[&str], delay: Duration) -> Self {
        Self::Message { blocks: chunks.iter().map(|c| Block::Text((*c).to_owned())).collect(), delay }
    }

    /// An API error response.
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Self::Error { status, kind: kind.to_owned(), message: message.to_owned() }
    }

    /// HTTP 529 `overloaded_error`, as the API sends under load.
    pub fn overloaded() -> Self {
        Self::error(529, "overloaded_error", "Overloaded")
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Path and query.
    pub path: String,
    /// The `x-api-key` header, if any.
    pub api_key: Option<String>,
    /// Parsed JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Recorded {
    /// The `tool_result` blocks of the last user message, as (tool_use_id, text).
    pub fn tool_results(&self) -> Vec<(String, String)> {
        let Some(last) = self.body["messages"].as_array().and_then(|m| m.last()) else {
            return Vec::new();
        };
        last["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| {
                        (
                            b["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                            content_text(&b["content"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

/// Picks the answer to a request from its body (for many concurrent agents,
/// each recognisable by its prompt).
pub type Responder = Arc<dyn Fn(&Value) -> Step + Send + Sync>;

#[derive(Default)]
struct Inner {
    steps: VecDeque<Step>,
    requests: Vec<Recorded>,
    next_id: u64,
}

#[derive(Clone)]
struct Shared {
    model: String,
    inner: Arc<Mutex<Inner>>,
    responder: Option<Responder>,
}

/// A running scripted model server. Stops when dropped.
pub struct ScriptedModel {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedModel {
    /// Starts a server on loopback that answers requests for `model` with
    /// `steps`, in order.
    pub async fn start(model: &str, steps: Vec<Step>) -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), model, steps).await
    }

    /// Like [`ScriptedModel::start`], listening on `ip` (for pods:
    /// [`crate::TestEnv::host_address`]).
    pub async fn start_on(ip: std::net::IpAddr, model: &str, steps: Vec<Step>) -> Self {
        Self::serve(ip, model, steps, None).await
    }

    /// A server on `ip` whose every answer for `model` is `responder(body)`
    /// instead of the next step of a script.
    pub async fn start_responding(ip: std::net::IpAddr, model: &str, responder: Responder) -> Self {
        Self::serve(ip, model, Vec::new(), Some(responder)).await
    }

    async fn serve(
        ip: std::net::IpAddr,
        model: &str,
        steps: Vec<Step>,
        responder: Option<Responder>,
    ) -> Self {
        let shared = Shared {
            model: model.to_owned(),
            inner: Arc::new(Mutex::new(Inner { steps: steps.into(), ..Inner::default() })),
            responder,
        };
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind the scripted model");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("scripted model server");
        });
        Self { addr, shared, task }
    }

    /// Base URL for `ANTHROPIC_BASE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for the scripted model, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Steps not consumed yet.
    pub fn remaining(&self) -> usize {
        self.lock().steps.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn count_tokens() -> Response {
    acp_replay::count_tokens().await
}

async fn messages(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if model != shared.model {
        return stream_message(&model, 0, vec![Block::Text("ok".into())], Duration::ZERO);
    }
    let (step, id) = {
        let mut inner = shared.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.requests.push(Recorded {
            path: "/v1/messages".into(),
            api_key: headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
            body,
            at: std::time::Instant::now(),
        });
        inner.next_id += 1;
        let step = match &shared.responder {
            Some(respond) => {
                inner.requests.last().map_or_else(|| Step::text("(no request)"), |r| respond(&r.body))
            }
            None => inner.steps.pop_front().unwrap_or_else(|| Step::text("(script exhausted)")),
        };
        (step, inner.next_id)
    };
    match step {
        Step::Message { blocks, delay } => stream_message(&model, id, blocks, delay),
        Step::Error { status, kind, message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": format!("req_{id}")});
            (status, [("request-id", format!("req_{id}"))], axum::Json(body)).into_response()
        }
        Step::Hang => {
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

fn stream_message(model: &str, id: u64, blocks: Vec<Block>, delay: Duration) -> Response {
    acp_replay::stream(model, id, &blocks, delay)
}
