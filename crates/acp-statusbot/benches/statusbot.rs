//! Status bot economy, against the real control plane, real git and a
//! wiremock GitHub:
//! - mutating GitHub calls for one "ten-minute" session with progress every
//!   minute (time compressed 100×: the debounce is scaled the same way),
//!   against the baseline of editing the comment on every change;
//! - write-back commits for N sessions completing at once (goal: exactly one
//!   each).
//!
//! Run: `cargo bench -p acp-statusbot --bench statusbot`. Env: ACP_BENCH_SESSIONS (1000).

use std::sync::Arc;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::constants::annotations;
use acp_statusbot::controller::{Config, run};
use acp_statusbot::render::Renderer;
use acp_testenv::bench::{env_usize, wait_until};
use acp_testenv::githttp::git;
use acp_testenv::{TestEnv, TestNamespace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// Time compression: one bench second is 100 session seconds.
const SCALE: u64 = 100;

fn start(
    ns: &TestNamespace,
    github: &str,
    cache: &std::path::Path,
    debounce: Duration,
) -> tokio::sync::oneshot::Sender<()> {
    let config = Config {
        namespace: Some(ns.name.clone()),
        github_api_url: github.to_string(),
        dashboard_url: Some("https://acp.example".into()),
        renderer: Arc::new(Renderer::new(None).expect("templates")),
        cache_dir: cache.to_path_buf(),
        debounce,
        author: ("acp status bot".into(), "acp@example.invalid".into()),
        output: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(ns.client.clone(), config, async move {
        let _ = stopped.await;
    }));
    stop
}

async fn source(ns: &TestNamespace, url: &str, github: bool) {
    let mut spec = json!({"url": url});
    if github {
        spec["github"] = json!({"repository": "acme/sessions", "tokenSecretRef": {"name": "gh"}});
        spec["writeBack"] = json!({"enabled": false});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"}, "stringData": {"token": "t"}});
        ns.api::<Secret>()
            .patch("gh", &PatchParams::apply("bench"), &Patch::Apply(&secret))
            .await
            .expect("secret");
    }
    let object = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": "repo"}, "spec": spec});
    ns.api::<acp_api::SessionSource>()
        .patch("repo", &PatchParams::apply("bench"), &Patch::Apply(&object))
        .await
        .expect("source");
}

async fn session(ns: &TestNamespace, name: &str) {
    let object = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": name, "labels": {"ambient-code.io/source-name": "repo", "ambient-code.io/source-namespace": ns.name},
            "annotations": {annotations::SOURCE: format!("{}/repo", ns.name), annotations::SOURCE_REVISION: SHA}},
        "spec": {"initialPrompt": "bench"}});
    ns.api::<AgenticSession>()
        .patch(name, &PatchParams::apply("acp-git-sync"), &Patch::Apply(&object))
        .await
        .expect("session");
}

/// Lists `names` in the source's inventory, as git-sync does after applying
/// (the benchmark plays git-sync and the operator: it measures the bot).
async fn inventory(ns: &TestNamespace, names: &[String]) {
    let entries: Vec<Value> = names
        .iter()
        .map(|n| json!({"kind": "AgenticSession", "namespace": ns.name, "name": n, "path": format!("{n}.yaml"), "revision": SHA}))
        .collect();
    let patch = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "status": {"inventory": entries}});
    ns.api::<acp_api::SessionSource>()
        .patch_status("repo", &PatchParams::apply("acp-git-sync").force(), &Patch::Apply(&patch))
        .await
        .expect("inventory");
}

async fn set_status(ns: &TestNamespace, name: &str, status: Value) {
    let patch =
        json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "status": status});
    ns.api::<AgenticSession>()
        .patch_status(name, &PatchParams::apply("acp-operator").force(), &Patch::Apply(&patch))
        .await
        .expect("status");
}

async fn github_fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/user$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": "acp-bot"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("/pulls$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"number": 7}])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/statuses/"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/issues/7/comments$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 9})))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex("/issues/comments/9$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 9})))
        .mount(&server)
        .await;
    server
}

async fn mutating(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.method.as_str() != "GET").count()
}

/// One ten-minute session with progress every minute; returns mutating calls.
async fn lifecycle(env: &TestEnv, debounce_session_seconds: u64) -> usize {
    let ns = env.namespace("bench-bot-life").await;
    env.install_crds(&ns.client).await;
    let github = github_fake().await;
    let cache = tempfile::tempdir().expect("tmp");
    source(&ns, "file:///nonexistent", true).await;
    let stop = start(
        &ns,
        &github.uri(),
        cache.path(),
        Duration::from_millis(debounce_session_seconds * 1000 / SCALE),
    );
    session(&ns, "s").await;
    inventory(&ns, &["s".to_owned()]).await;
    set_status(&ns, "s", json!({"phase": "Pending"})).await;
    set_status(&ns, "s", json!({"phase": "Creating"})).await;
    let minute = Duration::from_millis(60 * 1000 / SCALE);
    for step in 1..=10 {
        set_status(
            &ns,
            "s",
            json!({"phase": "Running", "run": 1, "message": format!("minute {step}: working")}),
        )
        .await;
        tokio::time::sleep(minute).await; // the simulated session's own pace, not a synchronisation
    }
    set_status(&ns, "s", json!({"phase": "Completed", "run": 1, "result": {"outcome": "success", "isError": false, "summary": "done"}})).await;
    let sessions: Api<AgenticSession> = ns.api();
    wait_until("final state recorded", Duration::from_secs(60), async || {
        sessions
            .get("s")
            .await
            .ok()
            .and_then(|s| s.metadata.annotations)
            .and_then(|a| a.get(annotations::STATUS_BOT_STATE).cloned())
            .is_some_and(|s| s.contains("success") && s.contains("posted"))
    })
    .await;
    // The final comment (edit, or creation when the run was that short) carries the result.
    wait_until("final comment", Duration::from_secs(60), async || {
        github.received_requests().await.unwrap_or_default().iter().any(|r| {
            let comment = r.method.as_str() == "PATCH" || r.url.path().ends_with("/comments");
            comment && r.method.as_str() != "GET" && String::from_utf8_lossy(&r.body).contains("done")
        })
    })
    .await;
    let calls = mutating(&github).await;
    let _ = stop.send(());
    calls
}

#[tokio::main]
async fn main() {
    let n = env_usize("ACP_BENCH_SESSIONS", 1000);
    let env = TestEnv::control_plane_only();

    let naive = lifecycle(env, 0).await;
    let debounced = lifecycle(env, 900).await;

    // Write-back: N sessions complete at once.
    let ns = env.namespace("bench-bot-commits").await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = tmp.path().join("sessions.git");
    git(tmp.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
    source(&ns, &format!("file://{}", bare.display()), false).await;
    let stop = start(&ns, "http://127.0.0.1:9", &tmp.path().join("cache"), Duration::from_secs(600));
    for i in 0..n {
        session(&ns, &format!("s-{i:05}")).await;
    }
    inventory(&ns, &(0..n).map(|i| format!("s-{i:05}")).collect::<Vec<_>>()).await;
    let done = json!({"phase": "Completed", "run": 1, "result": {"outcome": "success", "isError": false, "summary": "done"}});
    futures_util::future::join_all((0..n).map(|i| {
        let (ns, done) = (&ns, done.clone());
        async move { set_status(ns, &format!("s-{i:05}"), done).await }
    }))
    .await;
    let count = || git(&bare, &["rev-list", "--count", "acp/status"]).trim().parse::<usize>().unwrap_or(0);
    let took = wait_until("all written back", Duration::from_secs(1800), async || {
        std::process::Command::new("git")
            .current_dir(&bare)
            .args(["rev-parse", "--verify", "-q", "acp/status"])
            .output()
            .is_ok_and(|o| o.status.success())
            && count() >= n
    })
    .await;
    let _ = stop.send(());
    let commits = count();

    println!("statusbot: sessions={n}");
    println!("  mutating GitHub calls, ten-minute session with progress every minute:");
    println!("    edit on every change (baseline): {naive}");
    println!(
        "    acp status bot (default 15 min debounce): {debounced}  (ratio {:.2})",
        debounced as f64 / naive as f64
    );
    println!(
        "  write-back: {commits} commits for {n} sessions ({:.3} per session), written in {:.1} s",
        commits as f64 / n as f64,
        took.as_secs_f64()
    );
}
