//! The dashboard with N sessions (default 10 000), against the real control
//! plane, under concurrent load from wrk (a separate process):
//! - p50 / p99 latency and throughput of the list page, a filtered and
//!   searched list page, a detail page, the JSON list and get, and the JSON
//!   list with token auth (TokenReview + SubjectAccessReview, cached);
//! - baseline in the same run: the API server's own paginated list of the
//!   same sessions (`GET …/agenticsessions?limit=50`), what a dashboard that
//!   calls the API per page would pay at best;
//! - time from start to ready (caches loaded), and the dashboard's RSS.
//!
//! The dashboard runs as its own process (`acp dashboard`), as deployed.
//! Run: `cargo bench -p acp --bench dashboard_scale`. Env: ACP_BENCH_SESSIONS
//! (10000), ACP_BENCH_NAMESPACES (10), ACP_BENCH_SECONDS (10 per scenario),
//! ACP_BENCH_CONNECTIONS (32).
//!
//! With ACP_BENCH_OPERATOR=1 (the 100,000-session run: ACP_BENCH_SESSIONS=100000
//! ACP_BENCH_NAMESPACES=1000), the statuses come from the real operator instead:
//! sessions are created held `Stopped`, `acp operator` (all namespaces) gives
//! each its status, and the bench reports how long that took, the operator's
//! RSS, and, after a restart, its time to ready (every session reconciled
//! from its caches) and the requests that cost; then the etcd database size.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acp_api::AgenticSession;
use acp_testenv::TestEnv;
use acp_testenv::bench::{env_usize, free_port, status_kib, wait_until};
use acp_testenv::proc::{Killed, curl};
use futures_util::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn session(ns: &str, i: usize, stopped: bool) -> AgenticSession {
    let mut annotations = json!({"ambient-code.io/source": format!("{ns}/sessions"),
                                 "ambient-code.io/source-path": format!("sessions/team/session-{i:05}.yaml")});
    if stopped {
        annotations["ambient-code.io/desired-phase"] = json!("Stopped");
    }
    serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": format!("session-{i:05}"), "namespace": ns,
            "labels": {"ambient-code.io/source-commit": "0123456789abcdef0123456789abcdef01234567"},
            "annotations": annotations},
        "spec": {"displayName": format!("Benchmark session {i}"), "initialPrompt": format!("Fix issue #{i} and open a PR"),
                 "repos": [{"url": "https://github.com/acme/app.git", "autoPush": true}],
                 "llmSettings": {"model": "claude-sonnet-4-5"}, "timeout": 1800}
    }))
    .expect("a valid session")
}

fn status(i: usize) -> serde_json::Value {
    let phase = ["Completed", "Running", "Failed", "Pending", "Completed"][i % 5];
    json!({"status": {"phase": phase, "jobName": format!("session-{i:05}-1"), "run": 1,
        "startTime": "2026-11-24T10:00:00Z",
        "conditions": [{"type": "JobCreated", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-11-24T10:00:00Z"}],
        "result": {"outcome": "success", "summary": format!("Fixed issue #{i}: the retry loop now backs off."),
                   "numTurns": i % 40, "totalCostUsd": (i % 100) as f64 / 100.0, "durationMs": 1000 * (i % 600) as i64}}})
}

/// Percentiles and throughput wrk printed.
struct Load {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
    errors: bool,
}

fn ms(value: &str) -> f64 {
    let (number, factor) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn wrk(url: &str, header: Option<&str>, seconds: usize, connections: usize) -> Load {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "--timeout", "5s"]);
    if let Some(header) = header {
        cmd.args(["-H", header]);
    }
    let out = cmd.arg(url).output().expect("wrk runs (scripts/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    Load {
        p50_ms: ms(&find("50%")),
        p99_ms: ms(&find("99%")),
        rps: find("Requests/sec:").parse().unwrap_or(0.0),
        errors: text.contains("Non-2xx") || text.contains("Socket errors"),
    }
}

async fn reader_token(client: &kube::Client, ns: &str) -> String {
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-reader")},
        "rules": [{"apiGroups": ["vteam.ambient-code"], "resources": ["agenticsessions"], "verbs": ["get", "list", "watch"]}]
    }))
    .expect("role");
    Api::<ClusterRole>::all(client.clone()).create(&PostParams::default(), &role).await.expect("role");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-reader")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{ns}-reader")},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).expect("sa");
    accounts.create(&PostParams::default(), &account).await.expect("sa");
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).expect("request");
    let token =
        accounts.create_token_request("reader", &PostParams::default(), &request).await.expect("token");
    token.status.and_then(|s| s.token).expect("a token")
}

fn start_dashboard(env: &TestEnv, port: u16, auth: &str) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["dashboard", "--listen", &format!("127.0.0.1:{port}"), "--auth", auth])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", acp_testenv::bench::free_port())])
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("acp dashboard starts");
    Killed(child)
}

async fn ready(port: u16) -> Duration {
    wait_until("the dashboard's caches", Duration::from_secs(300), async || {
        curl(&format!("http://127.0.0.1:{port}/readyz"), &[]).is_some()
    })
    .await
}

#[tokio::main]
async fn main() {
    let n = env_usize("ACP_BENCH_SESSIONS", 10_000);
    let seconds = env_usize("ACP_BENCH_SECONDS", 10);
    let connections = env_usize("ACP_BENCH_CONNECTIONS", 32);
    let env = TestEnv::control_plane_only();
    let client = env.client().await;
    env.install_crds(&client).await;
    let namespace_count = env_usize("ACP_BENCH_NAMESPACES", 10);
    let with_operator = env_usize("ACP_BENCH_OPERATOR", 0) == 1;
    let namespaces: Vec<String> = stream::iter(0..namespace_count)
        .map(|_| async { env.namespace("bench-dash").await.name })
        .buffer_unordered(16)
        .collect()
        .await;
    let started = Instant::now();
    let params = PatchParams::apply("acp-bench");
    stream::iter(0..n)
        .map(|i| {
            let (client, ns, params) =
                (client.clone(), namespaces[i % namespace_count].clone(), params.clone());
            async move {
                let api: Api<AgenticSession> = Api::namespaced(client, &ns);
                let name = format!("session-{i:05}");
                api.patch(&name, &params, &Patch::Apply(session(&ns, i, with_operator))).await?;
                if !with_operator {
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status(i))).await?;
                }
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .expect("sessions created");
    println!("created {n} sessions in {namespace_count} namespaces in {:.1?}", started.elapsed());
    if with_operator {
        operator_statuses(env, n).await;
    }
    let token = reader_token(&client, &namespaces[0]).await;

    let port = free_port();
    let dashboard = start_dashboard(env, port, "none");
    let took = ready(port).await;
    println!("dashboard ready (all {n} sessions cached) {took:.2?} after start");
    let token_port = free_port();
    let token_dashboard = start_dashboard(env, token_port, "token");
    ready(token_port).await;

    let base = format!("http://127.0.0.1:{port}");
    let ns = &namespaces[3 % namespaces.len()];
    let bearer = format!("Authorization: Bearer {token}");
    let server = env.config().await.cluster_url.to_string();
    let server = server.trim_end_matches('/');
    let scenarios: Vec<(&str, String, Option<&str>)> = vec![
        ("list page /sessions (page 1 of all)", format!("{base}/sessions"), None),
        (
            "list page, filtered + searched",
            format!("{base}/sessions?namespace={ns}&phase=Failed&q=session%2001&sort=cost"),
            None,
        ),
        ("detail page", format!("{base}/sessions/{ns}/session-00003"), None),
        ("API list ?limit=50", format!("{base}/api/v1/sessions?limit=50"), None),
        ("API get", format!("{base}/api/v1/sessions/{ns}/session-00003"), None),
        (
            "API list, token auth",
            format!("http://127.0.0.1:{token_port}/api/v1/sessions?limit=50"),
            Some(bearer.as_str()),
        ),
        (
            "baseline: API server list ?limit=50",
            format!("{server}/apis/vteam.ambient-code/v1alpha1/agenticsessions?limit=50"),
            Some(bearer.as_str()),
        ),
    ];
    println!("\nwrk -t2 -c{connections} -d{seconds}s, {n} sessions:");
    println!("{:<40} {:>10} {:>10} {:>10}", "scenario", "p50 ms", "p99 ms", "req/s");
    let mut results = Vec::new();
    for (name, url, header) in &scenarios {
        let load = wrk(url, *header, seconds, connections);
        println!(
            "{name:<40} {:>10.2} {:>10.2} {:>10.0}{}",
            load.p50_ms,
            load.p99_ms,
            load.rps,
            if load.errors { "  (errors!)" } else { "" }
        );
        results.push(load);
    }
    let baseline = &results[results.len() - 1];
    println!(
        "\nlist page p99 vs the API server's own paginated list p99: {:.1}x faster; API list: {:.1}x",
        baseline.p99_ms / results[0].p99_ms,
        baseline.p99_ms / results[3].p99_ms
    );
    let pid = dashboard.0.id();
    println!(
        "dashboard RSS with {n} sessions: {:.1} MiB now, {:.1} MiB peak",
        status_kib(pid, "VmRSS") as f64 / 1024.0,
        status_kib(pid, "VmHWM") as f64 / 1024.0
    );
    let goal = results[..results.len() - 1].iter().all(|l| l.p99_ms < 50.0 && !l.errors);
    println!("goal p99 < 50 ms on every dashboard scenario: {}", if goal { "met" } else { "NOT met" });
    drop(token_dashboard);
    drop(dashboard);
    if let Some(dir) = env.kubeconfig().parent() {
        let out = Command::new("du").args(["-sb"]).arg(dir.join("etcd-data")).output().expect("du");
        let bytes: f64 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0.0);
        println!("etcd data directory: {:.0} MiB", bytes / 1024.0 / 1024.0);
    }
}

fn start_operator(env: &TestEnv, port: u16) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["operator", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("acp operator starts");
    Killed(child)
}

/// The real operator gives the `n` held sessions their status (Stopped);
/// then, restarted, resyncs them all from its caches.
async fn operator_statuses(env: &TestEnv, n: usize) {
    let port = free_port();
    let started = Instant::now();
    let operator = start_operator(env, port);
    let stopped = r#"to="Stopped""#;
    wait_until("the operator's statuses", Duration::from_secs(3600), async || {
        acp_testenv::bench::metric(port, "acp_operator_phase_transitions_total", stopped) >= n as f64
    })
    .await;
    println!("operator: {n} sessions given their status in {:.1?}", started.elapsed());
    let pid = operator.0.id();
    println!(
        "operator RSS with {n} sessions: {:.1} MiB (peak {:.1} MiB)",
        status_kib(pid, "VmRSS") as f64 / 1024.0,
        status_kib(pid, "VmHWM") as f64 / 1024.0
    );
    drop(operator);
    let port = free_port();
    let started = Instant::now();
    let operator = start_operator(env, port);
    wait_until("the restarted operator's resync", Duration::from_secs(3600), async || {
        acp_testenv::bench::metric(port, "acp_operator_reconciles_completed_total", "") >= n as f64
    })
    .await;
    let ready = started.elapsed();
    let pid = operator.0.id();
    println!(
        "operator restarted: every session reconciled {ready:.1?} after start, {} API requests (watches), RSS {:.1} MiB (peak {:.1} MiB)",
        acp_testenv::bench::metric(port, "acp_operator_api_requests_total", ""),
        status_kib(pid, "VmRSS") as f64 / 1024.0,
        status_kib(pid, "VmHWM") as f64 / 1024.0
    );
}
