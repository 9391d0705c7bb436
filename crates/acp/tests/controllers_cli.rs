//! `acp git-sync` and `acp statusbot` as processes, the way they are deployed:
//! they start from KUBECONFIG, git-sync serves /healthz and /metrics and syncs
//! a source, and both stop cleanly (exit 0) on SIGTERM; under leader
//! election, of two git-sync replicas only the lease holder syncs, and the
//! standby takes over when the leader is killed.

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
    commit_session(&work, &bare, "from-git");

    let (gitsync, port, metrics_port) = git_sync(env, &ns.name, &tmp.path().join("cache"), &[], "git-sync");
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

fn syncs(metrics_port: u16) -> Option<f64> {
    let metrics = curl(&format!("http://127.0.0.1:{metrics_port}/metrics"))?;
    Some(
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("acp_git_sync_syncs_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0),
    )
}

/// `acp git-sync` for namespace `ns` with `extra` flags, as replica `name`;
/// returns it with its webhook and metrics ports.
fn git_sync(
    env: &TestEnv,
    ns: &str,
    cache: &std::path::Path,
    extra: &[&str],
    name: &str,
) -> (Child, u16, u16) {
    let (port, metrics_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["git-sync", "--namespace", ns, "--webhook-addr", &format!("127.0.0.1:{port}")])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}"), "--cache-dir"])
        .arg(cache)
        .args(extra)
        .env("KUBECONFIG", env.kubeconfig())
        .env("POD_NAME", name)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("acp git-sync starts");
    (child, port, metrics_port)
}

fn commit_session(work: &std::path::Path, bare: &std::path::Path, name: &str) {
    std::fs::write(
        work.join(format!("{name}.yaml")),
        format!("apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: hi\n"),
    )
    .expect("write");
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-qm", name]);
    git(work, &["push", "-q", bare.to_str().expect("utf-8"), "main"]);
}

/// Two replicas of git-sync, as during a rollout: only the lease holder syncs
/// (the standby's sync counter stays at zero while it serves health), and
/// when the leader is SIGKILLed the standby takes the lease and syncs.
#[tokio::test]
async fn of_two_git_sync_replicas_only_the_leader_syncs_and_the_standby_takes_over() {
    let env = TestEnv::get();
    let ns = env.namespace("cli-leader").await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = tmp.path().join("repo.git");
    let work = tmp.path().join("work");
    git(tmp.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
    git(tmp.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
    commit_session(&work, &bare, "first");
    let replica = |name: &str| {
        let lease =
            ["--leader-elect", "--leader-election-namespace", &ns.name, "--lease-duration-seconds", "3"];
        let (child, _, metrics_port) = git_sync(env, &ns.name, &tmp.path().join(name), &lease, name);
        (child, metrics_port)
    };
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = ns.api();
    let holder = || async { leases.get_opt("acp-git-sync").await.ok()??.spec?.holder_identity };
    let (mut a, a_metrics) = replica("replica-a");
    eventually("replica-a to lead", Duration::from_secs(30), || async {
        (holder().await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let (b, b_metrics) = replica("replica-b");
    eventually("replica-b to serve its metrics", Duration::from_secs(30), || async { syncs(b_metrics) })
        .await;

    let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": "repo"},
        "spec": {"url": format!("file://{}", bare.display()), "interval": "1h"}});
    ns.api::<acp_api::SessionSource>()
        .patch("repo", &PatchParams::apply("test"), &Patch::Apply(&source))
        .await
        .expect("source");
    let sessions = acp_gitsync::apply::sessions(ns.client.clone(), &ns.name);
    eventually("the leader to sync", Duration::from_secs(60), || async {
        sessions.get_opt("first").await.ok().flatten().map(|_| ())
    })
    .await;
    assert!(syncs(a_metrics).is_some_and(|n| n >= 1.0), "the leader synced");
    assert_eq!(syncs(b_metrics), Some(0.0), "the standby never syncs while the leader holds the lease");

    commit_session(&work, &bare, "second");
    a.kill().expect("SIGKILL the leader");
    a.wait().expect("reap");
    eventually("replica-b to take the lease", Duration::from_secs(30), || async {
        (holder().await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    eventually("the new leader to sync the new commit", Duration::from_secs(60), || async {
        sessions.get_opt("second").await.ok().flatten().map(|_| ())
    })
    .await;
    assert!(terminate(b).await.success(), "the leader exits 0 on SIGTERM");
    let released = holder().await;
    assert_eq!(released, None, "a clean shutdown releases the lease");
}
