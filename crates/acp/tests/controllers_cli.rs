//! `acp git-sync` and `acp statusbot` as processes, the way they are deployed:
//! they start from KUBECONFIG, git-sync serves /healthz and /metrics and syncs
//! a source, and both stop cleanly (exit 0) on SIGTERM.

use std::process::{Child, Command};
use std::time::Duration;

use acp_testenv::githttp::git;
use acp_testenv::{TestEnv, eventually};
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl").args(["-fsS", url]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    eventually("exit after SIGTERM", Duration::from_secs(15), || {
        let status = child.try_wait().expect("wait");
        async move { status }
    })
    .await
}

#[tokio::test]
async fn git_sync_and_statusbot_run_as_processes_and_stop_on_sigterm() {
    let env = TestEnv::get();
    let ns = env.namespace("cli-controllers").await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = tmp.path().join("repo.git");
    let work = tmp.path().join("work");
    git(tmp.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
    git(tmp.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
    std::fs::write(
        work.join("a.yaml"),
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: from-git\nspec:\n  initialPrompt: hi\n",
    )
    .expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-qm", "a"]);
    git(&work, &["push", "-q", bare.to_str().expect("utf-8"), "main"]);

    let (port, metrics_port) = (free_port(), free_port());
    let gitsync = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args([
            "git-sync",
            "--namespace",
            &ns.name,
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--cache-dir",
        ])
        .arg(tmp.path().join("cache"))
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("acp git-sync starts");
    let statusbot = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["statusbot", "--namespace", &ns.name, "--cache-dir"])
        .arg(tmp.path().join("bot"))
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("acp statusbot starts");
    eventually("git-sync healthy", Duration::from_secs(30), || async {
        curl(&format!("http://127.0.0.1:{port}/healthz"))
    })
    .await;

    let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": "repo"},
        "spec": {"url": format!("file://{}", bare.display()), "interval": "1h"}});
    ns.api::<acp_api::SessionSource>()
        .patch("repo", &PatchParams::apply("test"), &Patch::Apply(&source))
        .await
        .expect("source");
    let sessions = acp_gitsync::apply::sessions(ns.client.clone(), &ns.name);
    eventually("session synced by the process", Duration::from_secs(60), || async {
        sessions.get_opt("from-git").await.ok().flatten().map(|_| ())
    })
    .await;
    // Metrics on their own port, never next to the internet-facing webhook.
    assert!(curl(&format!("http://127.0.0.1:{port}/metrics")).is_none(), "no /metrics on the webhook port");
    let metrics = curl(&format!("http://127.0.0.1:{metrics_port}/metrics")).expect("metrics");
    let syncs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("acp_git_sync_syncs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(syncs >= 1.0, "{metrics}");
    assert!(metrics.contains("acp_git_sync_applied_total 1"), "{metrics}");

    assert!(terminate(gitsync).await.success(), "git-sync exits 0 on SIGTERM");
    assert!(terminate(statusbot).await.success(), "statusbot exits 0 on SIGTERM");
}
