//! git-sync at scale, against the real control plane:
//! - N manifests synced from a git repository, against the baseline of
//!   `kubectl apply --server-side -f DIR` of the same directory;
//! - a no-op re-sync (same commit): its duration and the write requests the
//!   API server counted (apiserver_request_total) while it ran;
//! - git-sync's peak RSS;
//! - webhook delivery → AgenticSession applied: p50 and p99.
//!
//! git-sync runs as its own process (`acp git-sync`), as deployed.
//! Run: `cargo bench -p acp --bench gitsync_scale`. Env: ACP_BENCH_MANIFESTS
//! (1000), ACP_BENCH_DELIVERIES (30).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use acp_api::SessionSource;
use acp_testenv::TestEnv;
use acp_testenv::bench::{env_usize, free_port, status_kib, wait_until};
use acp_testenv::githttp::git;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn session(name: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: benchmark {name}\n  repos:\n  - url: https://github.com/acme/app.git\n"
    )
}

/// Write requests on acp's resources and events, as the API server counts them.
fn server_writes(env: &TestEnv) -> u64 {
    let out = env.kubectl().args(["get", "--raw", "/metrics"]).output().expect("kubectl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            ["agenticsessions", "sessionsources", "events"]
                .iter()
                .any(|r| l.contains(&format!("resource=\"{r}\"")))
        })
        .filter(|l| {
            ["APPLY", "PATCH", "POST", "PUT", "DELETE"].iter().any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

fn metric(port: u16, name: &str) -> f64 {
    acp_testenv::bench::metric(port, name, "")
}

fn commit(work: &Path, message: &str) -> String {
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=B", "-c", "user.email=b@example.invalid", "commit", "-qm", message]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"]).trim().to_string()
}

fn start(env: &TestEnv, ns: &str, cache: &Path, port: u16, metrics_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_acp"))
        .args([
            "git-sync",
            "--namespace",
            ns,
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--webhook-rate",
            "1000",
        ])
        .arg("--cache-dir")
        .arg(cache)
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", std::env::var("ACP_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .spawn()
        .expect("acp git-sync starts")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n = env_usize("ACP_BENCH_MANIFESTS", 1000);
    let deliveries = env_usize("ACP_BENCH_DELIVERIES", 30);
    let env = TestEnv::control_plane_only();
    let tmp = tempfile::tempdir().expect("tempdir");
    let bare = tmp.path().join("repo.git");
    let work = tmp.path().join("work");
    git(tmp.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
    git(tmp.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
    git(&work, &["remote", "add", "origin", bare.to_str().expect("utf-8")]);
    std::fs::create_dir(work.join("sessions")).expect("mkdir");
    for i in 0..n {
        std::fs::write(work.join(format!("sessions/s-{i:05}.yaml")), session(&format!("s-{i:05}")))
            .expect("write");
    }
    let revision = commit(&work, "sessions");

    // Baseline: kubectl apply --server-side of the same directory.
    let base = env.namespace("bench-kubectl").await;
    env.install_crds(&base.client).await;
    let started = Instant::now();
    let out = env
        .kubectl()
        .args(["apply", "--server-side", "-n", &base.name, "-f"])
        .arg(work.join("sessions"))
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let baseline = started.elapsed();

    // git-sync.
    let ns = env.namespace("bench-gitsync").await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut gitsync = start(env, &ns.name, &tmp.path().join("cache"), port, metrics_port);
    wait_until("git-sync up", Duration::from_secs(60), async || {
        Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{port}/healthz")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "hook"}, "stringData": {"webhook-secret": "bench"}}),
    )
    .expect("secret");
    ns.api::<Secret>().create(&Default::default(), &secret).await.expect("secret");
    let sources: Api<SessionSource> = ns.api();
    let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": "bench"},
        "spec": {"url": format!("file://{}", bare.display()), "path": "sessions", "interval": "1h", "prune": true,
                 "github": {"repository": "acme/bench", "webhookSecretRef": {"name": "hook"}}}});
    let started = Instant::now();
    sources.patch("bench", &PatchParams::apply("bench"), &Patch::Apply(&source)).await.expect("source");
    wait_until("first sync", Duration::from_secs(600), async || {
        sources
            .get("bench")
            .await
            .ok()
            .and_then(|s| s.status)
            .and_then(|s| s.last_applied_revision)
            .as_deref()
            == Some(revision.as_str())
    })
    .await;
    let synced = started.elapsed();
    let inventory = sources.get("bench").await.expect("source").status.expect("status").inventory.len();
    assert_eq!(inventory, n, "every manifest applied");

    // No-op re-sync: the same commit, triggered.
    let syncs_before = metric(metrics_port, "acp_git_sync_syncs_total");
    let seconds_before = metric(metrics_port, "acp_git_sync_sync_seconds_sum");
    let writes_before = server_writes(env);
    let trigger = json!({"metadata": {"annotations": {"ambient-code.io/reconcile-requested-at": "noop"}}});
    sources.patch("bench", &PatchParams::default(), &Patch::Merge(&trigger)).await.expect("trigger");
    wait_until("no-op sync", Duration::from_secs(120), async || {
        metric(metrics_port, "acp_git_sync_syncs_total") > syncs_before
    })
    .await;
    let noop = metric(metrics_port, "acp_git_sync_sync_seconds_sum") - seconds_before;
    // The trigger (1 PATCH) and the status recording that it was handled (1 APPLY) are the only writes.
    wait_until("trigger recorded", Duration::from_secs(60), async || {
        sources
            .get("bench")
            .await
            .ok()
            .and_then(|s| s.status)
            .and_then(|s| s.last_handled_reconcile_at)
            .as_deref()
            == Some("noop")
    })
    .await;
    let noop_writes = server_writes(env) - writes_before;
    let peak = status_kib(gitsync.id(), "VmHWM");

    // Webhook delivery → session applied.
    let client = deliver(port);
    let sessions = acp_gitsync::apply::sessions(ns.client.clone(), &ns.name);
    let mut latencies = Vec::new();
    for i in 0..deliveries {
        let name = format!("hook-{i:03}");
        std::fs::write(work.join(format!("sessions/{name}.yaml")), session(&name)).expect("write");
        let after = commit(&work, &name);
        let body = serde_json::to_vec(
            &json!({"ref": "refs/heads/main", "after": after, "repository": {"full_name": "acme/bench"}}),
        )
        .expect("json");
        let started = Instant::now();
        client(&body, &format!("bench-{i}"));
        wait_until("webhook session", Duration::from_secs(60), async || {
            sessions.get_opt(&name).await.ok().flatten().is_some()
        })
        .await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let _ = gitsync.kill();
    let _ = gitsync.wait();

    println!("gitsync_scale: manifests={n} deliveries={deliveries}");
    println!("  baseline kubectl apply --server-side -f DIR: {:.2} s", baseline.as_secs_f64());
    println!("  git-sync, source created -> {n} sessions applied: {:.2} s", synced.as_secs_f64());
    println!("  speed-up git-sync vs kubectl: {:.1}x", baseline.as_secs_f64() / synced.as_secs_f64());
    println!(
        "  no-op re-sync of {n}: {:.0} ms, {noop_writes} write requests (trigger + handled-marker)",
        noop * 1000.0
    );
    println!("  git-sync peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    println!(
        "  webhook delivery -> session applied: p50 {:.0} ms, p99 {:.0} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
}

/// A signed delivery sender over real HTTP (curl, a separate client).
fn deliver(port: u16) -> impl Fn(&[u8], &str) {
    move |body: &[u8], delivery: &str| {
        let signature = acp_gitsync::webhook::sign(b"bench", body);
        let out = Command::new("curl")
            .args(["-fsS", "-X", "POST", &format!("http://127.0.0.1:{port}/hooks/github")])
            .args(["-H", "X-GitHub-Event: push", "-H", &format!("X-GitHub-Delivery: {delivery}")])
            .args([
                "-H",
                &format!("X-Hub-Signature-256: {signature}"),
                "-H",
                "Content-Type: application/json",
            ])
            .args(["--data-binary", &String::from_utf8_lossy(body)])
            .output()
            .expect("curl");
        assert!(out.status.success(), "delivery refused: {}", String::from_utf8_lossy(&out.stderr));
    }
}
