//! Shared by the dashboard's integration tests: a dashboard on loopback over
//! the real control plane, a small HTTP client (with server-sent events) and
//! session and schedule fixtures.
#![allow(dead_code)]

use std::time::Duration;

use acp_api::{AgenticSession, SessionSchedule};
use acp_dashboard::auth::Mode;
use acp_dashboard::logs::LogSource;
use acp_testenv::{TestEnv, eventually};
use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A dashboard served on a free loopback port.
pub struct Dashboard {
    pub url: String,
    /// The operations port (`/metrics`), apart from the public one.
    pub ops_url: String,
    pub app: acp_dashboard::server::Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Dashboard {
    pub async fn start(client: kube::Client, auth: Mode, logs: LogSource) -> Self {
        let config =
            acp_dashboard::Config { namespace: None, auth, logs, banner: Some("Test banner".into()) };
        let (app, watches) = acp_dashboard::app(client, config).expect("templates compile");
        tokio::spawn(watches);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ops_url = format!("http://{}", ops.local_addr().expect("addr"));
        let ops_router = acp_dashboard::server::ops_router(app.clone());
        tokio::spawn(async move { axum::serve(ops, ops_router).await });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = app.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            acp_dashboard::server::serve(listener, served, shutdown).await.expect("serve");
        });
        let ready = format!("{url}/readyz");
        eventually("the dashboard's caches to load", TIMEOUT, || {
            let ready = ready.clone();
            async move { (status_of(&ready).await == Some(200)).then_some(()) }
        })
        .await;
        Self { url, ops_url, app, stop: Some(tx), task }
    }

    /// Stops serving and waits until the server has returned.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TIMEOUT, &mut self.task).await.expect("the server stops").expect("server task");
    }
}

fn http() -> HttpClient<HttpConnector, Empty<Bytes>> {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

fn request(url: &str, token: Option<&str>, accept: &str) -> http::Request<Empty<Bytes>> {
    let headers: Vec<(&str, String)> =
        token.map(|t| ("authorization", format!("Bearer {t}"))).into_iter().collect();
    request_with(url, &headers, accept)
}

fn request_with(url: &str, headers: &[(&str, String)], accept: &str) -> http::Request<Empty<Bytes>> {
    let mut request = http::Request::get(url).header("accept", accept);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Empty::new()).expect("request")
}

/// GET `url`: status and body.
pub async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, String)> =
        token.map(|t| ("authorization", format!("Bearer {t}"))).into_iter().collect();
    get_with(url, &headers).await
}

/// GET `url` with `headers`: status and body.
pub async fn get_with(url: &str, headers: &[(&str, String)]) -> (u16, String) {
    let response = http().request(request_with(url, headers, "*/*")).await.expect("request sent");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The status of GET `url`, `None` while nothing listens there.
pub async fn status_of(url: &str) -> Option<u16> {
    http().request(request(url, None, "*/*")).await.ok().map(|r| r.status().as_u16())
}

/// GET `url` as JSON (status must be 200).
pub async fn get_json(url: &str, token: Option<&str>) -> serde_json::Value {
    let (status, body) = get(url, token).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A server-sent event stream being read.
pub struct Sse {
    body: hyper::body::Incoming,
    buffer: String,
}

impl Sse {
    pub async fn open(url: &str, token: Option<&str>) -> Result<Self, u16> {
        let response = http().request(request(url, token, "text/event-stream")).await.expect("request sent");
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        Ok(Self { body: response.into_body(), buffer: String::new() })
    }

    /// The next event (keep-alive comments skipped); `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { event: "message".into(), data: String::new() };
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if data.is_empty() && event.event == "message" {
                    continue;
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() as Result<Bytes, _> {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// The next event matching `want`, within [`TIMEOUT`].
    pub async fn until(&mut self, what: &str, want: impl Fn(&SseEvent) -> bool) -> SseEvent {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                match self.next().await {
                    Some(e) if want(&e) => return e,
                    Some(_) => {}
                    None => panic!("the stream ended before {what}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within {TIMEOUT:?}"))
    }
}

/// Creates a session, playing git-sync (its source annotations; the
/// provenance label, which the dashboard filters and links on, is tested with
/// the real git-sync in `crates/acp/tests/dashboard_chain.rs`).
pub async fn create_session(client: &kube::Client, ns: &str, name: &str, source: &str) -> AgenticSession {
    let api: Api<AgenticSession> = Api::namespaced(client.clone(), ns);
    let session: AgenticSession = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": ns,
            "annotations": {"ambient-code.io/source": source, "ambient-code.io/source-path": format!("sessions/{name}.yaml")}},
        "spec": {"initialPrompt": format!("work on {name}"), "displayName": format!("Session {name}"),
                 "repos": [{"url": "https://github.com/acme/app"}], "llmSettings": {"model": "claude-sonnet-4-5"}}
    }))
    .expect("a valid session");
    api.create(&PostParams::default(), &session)
        .await
        .unwrap_or_else(|e| panic!("failed to create {ns}/{name}: {e}"))
}

/// Writes `status` on a session, playing the operator (the real one feeds
/// the dashboard in `crates/acp/tests/dashboard_chain.rs`).
pub async fn set_status(client: &kube::Client, ns: &str, name: &str, status: serde_json::Value) {
    let api: Api<AgenticSession> = Api::namespaced(client.clone(), ns);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .unwrap_or_else(|e| panic!("failed to write the status of {ns}/{name}: {e}"));
}

/// Creates SessionSchedule `name` (weekdays at 09:00 in `time_zone`, or UTC)
/// and, when given, writes its `status`, playing the operator's scheduler,
/// which owns that status (the dashboard only reads it). Returns the
/// schedule as created, with its uid for [`create_run`].
pub async fn create_schedule(
    client: &kube::Client,
    ns: &str,
    name: &str,
    time_zone: Option<&str>,
    status: Option<serde_json::Value>,
) -> SessionSchedule {
    let api: Api<SessionSchedule> = Api::namespaced(client.clone(), ns);
    let mut spec = json!({"schedule": "0 9 * * MON-FRI", "concurrencyPolicy": "Forbid",
        "template": {"spec": {"initialPrompt": format!("triage for {name}"), "repos": [{"url": "https://github.com/acme/app"}]}}});
    if let Some(zone) = time_zone {
        spec["timeZone"] = json!(zone);
    }
    let schedule: SessionSchedule = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .expect("a valid schedule");
    let created = api
        .create(&PostParams::default(), &schedule)
        .await
        .unwrap_or_else(|e| panic!("failed to create schedule {ns}/{name}: {e}"));
    if let Some(status) = status {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
            .await
            .unwrap_or_else(|e| panic!("failed to write the status of schedule {ns}/{name}: {e}"));
    }
    created
}

/// Creates session `name` as a run of `schedule`, playing the operator's
/// scheduler: its schedule label and the schedule as controller owner.
pub async fn create_run(client: &kube::Client, schedule: &SessionSchedule, name: &str) -> AgenticSession {
    let ns = schedule.metadata.namespace.as_deref().expect("a namespaced schedule");
    let owner = schedule.metadata.name.as_deref().expect("a named schedule");
    let uid = schedule.metadata.uid.as_deref().expect("a created schedule has a uid");
    let api: Api<AgenticSession> = Api::namespaced(client.clone(), ns);
    let session: AgenticSession = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"ambient-code.io/schedule": owner},
            "ownerReferences": [{"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
                                 "name": owner, "uid": uid, "controller": true}]},
        "spec": {"initialPrompt": format!("triage for {owner}"), "displayName": format!("Session {name}")}
    }))
    .expect("a valid session");
    api.create(&PostParams::default(), &session)
        .await
        .unwrap_or_else(|e| panic!("failed to create run {ns}/{name}: {e}"))
}

/// The shared control plane with acp's CRDs.
pub async fn env() -> (&'static TestEnv, kube::Client) {
    let env = TestEnv::get();
    let client = env.client().await;
    env.install_crds(&client).await;
    (env, client)
}
