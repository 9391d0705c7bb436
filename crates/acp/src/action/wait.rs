//! `wait`: polls the dashboard's JSON API until a named session, or every
//! session applied from a commit, has ended. Outputs follow ambient-action:
//! `session-name`, `session-phase`, `session-result`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{ActionArgs, Context, output, summary};

const TERMINAL: [&str; 3] = ["Completed", "Failed", "Stopped"];

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

struct Dashboard {
    base: String,
    token: Option<String>,
    client: Client<Https, Empty<Bytes>>,
}

impl Dashboard {
    fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("failed to load the system's root certificates")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// GET `path` as JSON; `None` for 404.
    async fn get(&self, path: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::get(&url).header("accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .client
            .request(request.body(Empty::new()).context("failed to build the request")?)
            .await
            .with_context(|| format!("failed to reach the dashboard at {url}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.context("failed to read the answer")?.to_bytes();
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).map(Some).with_context(|| format!("GET {url}: not JSON"))
    }
}

/// One session's end, as the outputs report it.
#[derive(Debug, serde::Serialize)]
struct Ended {
    name: String,
    phase: String,
    result: String,
}

fn ended(session: &serde_json::Value) -> Option<Ended> {
    let phase = session["status"]["phase"].as_str().unwrap_or("Pending");
    TERMINAL.contains(&phase).then(|| Ended {
        name: session["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        phase: phase.to_owned(),
        result: session["status"]["result"]["summary"]
            .as_str()
            .or(session["status"]["message"].as_str())
            .unwrap_or_default()
            .to_owned(),
    })
}

/// One poll: `Some` once everything waited for has ended.
async fn poll(dashboard: &Dashboard, args: &ActionArgs, commit: &str) -> anyhow::Result<Option<Vec<Ended>>> {
    if let Some(session) = args.session.as_deref().filter(|s| !s.is_empty()) {
        let (ns, name) = session.split_once('/').unwrap_or((&args.namespace, session));
        let found = dashboard.get(&format!("/api/v1/sessions/{ns}/{name}")).await?;
        return Ok(found.as_ref().and_then(ended).map(|e| vec![e]));
    }
    let list = dashboard
        .get(&format!("/api/v1/sessions?commit={commit}&limit=500"))
        .await?
        .context("the dashboard has no session API")?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() || items.iter().any(|r| !TERMINAL.contains(&r["phase"].as_str().unwrap_or("Pending")))
    {
        return Ok(None);
    }
    let mut out = Vec::new();
    for row in &items {
        let (ns, name) =
            (row["namespace"].as_str().unwrap_or_default(), row["name"].as_str().unwrap_or_default());
        if let Some(session) = dashboard.get(&format!("/api/v1/sessions/{ns}/{name}")).await? {
            out.extend(ended(&session));
        }
    }
    Ok(Some(out))
}

/// Waits, then sets the outputs.
pub fn run(args: &ActionArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let base = args
        .dashboard_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .context("wait needs the dashboard-url input")?;
    let commit = args.commit.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| ctx.sha.clone());
    if args.session.as_deref().is_none_or(str::is_empty) && commit.len() < 7 {
        bail!("wait needs the session input, or a commit (GITHUB_SHA)");
    }
    let dashboard = Dashboard::new(base, args.dashboard_token.clone().filter(|t| !t.is_empty()))?;
    let what =
        args.session.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| format!("the sessions of {commit}"));
    let deadline = Instant::now() + Duration::from_secs(args.wait_timeout);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = runtime.block_on(async {
        loop {
            match poll(&dashboard, args, &commit).await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => println!("waiting for {what}…"),
                // A dashboard restart is not the end of the wait.
                Err(e) => println!("::warning title=acp wait::{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!("{what} did not end within {} s", args.wait_timeout);
            }
            tokio::time::sleep(Duration::from_secs(args.poll_seconds.max(1))).await;
        }
    })?;
    let names: Vec<&str> = done.iter().map(|e| e.name.as_str()).collect();
    let all_completed = done.iter().all(|e| e.phase == "Completed");
    let phase = match done.as_slice() {
        [one] => one.phase.clone(),
        _ if all_completed => "Completed".to_owned(),
        _ => done.iter().find(|e| e.phase != "Completed").map(|e| e.phase.clone()).unwrap_or_default(),
    };
    let result = match done.as_slice() {
        [one] => one.result.clone(),
        _ => serde_json::to_string(&done)?,
    };
    output("session-name", &names.join(","))?;
    output("session-phase", &phase)?;
    output("session-result", &result)?;
    let mut report = String::from("### acp wait\n\n| session | phase | result |\n|---|---|---|\n");
    for e in &done {
        report.push_str(&format!(
            "| `{}` | {} | {} |\n",
            e.name,
            e.phase,
            e.result.replace('\n', " ").replace('|', "\\|")
        ));
    }
    summary(&report)?;
    for e in &done {
        println!("{}: {} — {}", e.name, e.phase, e.result);
    }
    let fail = args.fail_on_error != "false";
    Ok(if all_completed || !fail { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
