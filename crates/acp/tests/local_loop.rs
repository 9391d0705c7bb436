//! The local GitOps loop end to end, as `scripts/quickstart` runs it: `acp all`
//! (git-sync, operator, status bot, dashboard, git server, replay model)
//! against the real cluster, the real Claude Code CLI and real git; runs are
//! Jobs whose pods run the runner image on the node (the quickstart's default),
//! or `acp runner` processes on this host (`--executor process`). A session
//! committed and pushed to the local repository runs to Completed, its status
//! commit lands on the write-back branch, the dashboard API shows it, and
//! Ctrl-C stops everything.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use acp_testenv::bench::free_port;
use acp_testenv::githttp::{bare_repo, git};
use acp_testenv::proc::{Killed, curl};
use acp_testenv::{TestEnv, eventually};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn a_committed_session_runs_as_a_job_writes_back_and_shows_on_the_dashboard() {
    committed_session_runs("job").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_process_executor_the_same_loop_runs_on_this_host() {
    committed_session_runs("process").await;
}

/// The policies with the local git server allowed, as the quickstart writes them.
fn policies_allowing(dir: &Path, prefix: &str) -> std::path::PathBuf {
    let out = dir.join("policies");
    std::fs::create_dir_all(&out).expect("policies dir");
    let source = acp_testenv::env::repo_root().join("policies");
    for entry in std::fs::read_dir(source).expect("policies").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("policy");
        let text = text.replace(
            "allowedRepoPrefixes: \"https://github.com/,",
            &format!("allowedRepoPrefixes: \"{prefix},https://github.com/,"),
        );
        std::fs::write(out.join(entry.file_name()), text).expect("write policy");
    }
    out
}

async fn committed_session_runs(executor: &str) {
    let env = TestEnv::get();
    let client = env.client().await;
    env.install_crds(&client).await;
    let ns = env.namespace(&format!("loop-{executor}")).await.name;
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state) = (dir.path().join("git"), dir.path().join("state"));
    let (git_port, dash_port) = (free_port(), free_port());
    // Runner pods reach this machine at the node's host address.
    let host = if executor == "job" { env.host_address() } else { [127, 0, 0, 1].into() };
    let git_url = format!("http://{host}:{git_port}");
    bare_repo(&root, "sessions.git", "main", &[("README.md", "sessions\n")]);
    bare_repo(&root, "github.com/acme/app.git", "main", &[("README.md", "app\n")]);
    let policies = policies_allowing(dir.path(), &format!("{git_url}/"));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acp"));
    cmd.args(["all", "--namespace", &ns, "--executor", executor, "--state-dir"])
        .arg(&state)
        .arg("--policies")
        .arg(&policies)
        .args(["--dashboard-addr", &format!("127.0.0.1:{dash_port}")])
        .args(["--webhook-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--serve-git")
        .arg(&root)
        .args(["--git-addr", &format!("{host}:{git_port}")])
        .args(["--replay-addr", &format!("{host}:0")]);
    if executor == "job" {
        cmd.args(["--runner-image", &env.node().runner_image, "--image-pull-policy", "IfNotPresent"]);
    } else {
        cmd.arg("--claude-bin").arg(acp_testenv::claude_bin());
    }
    let mut all = Killed(
        cmd.env("KUBECONFIG", env.kubeconfig())
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("acp-all.log")).expect("log file"))
            .spawn()
            .expect("acp all starts"),
    );
    let dashboard = format!("http://127.0.0.1:{dash_port}");
    eventually("the dashboard to be ready", Duration::from_secs(60), || async {
        curl(&format!("{dashboard}/readyz"), &[]).map(|_| ())
    })
    .await;

    let sources: Api<acp_api::SessionSource> = Api::namespaced(client.clone(), &ns);
    let source = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"name": "local", "namespace": ns},
        "spec": {"url": format!("{git_url}/sessions.git"), "interval": "2s", "prune": true,
                 "writeBack": {"branch": "acp/status", "path": "status"}}
    });
    sources.patch("local", &PatchParams::apply("test"), &Patch::Apply(&source)).await.expect("source");

    // A developer commits a session and pushes it.
    let work = dir.path().join("work");
    git(dir.path(), &["clone", "-q", &format!("{git_url}/sessions.git"), "work"]);
    std::fs::write(
        work.join("hello.yaml"),
        format!(
            "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: hello\nspec:\n  \
         displayName: Hello from the loop\n  initialPrompt: Say hello in a file\n  timeout: 300\n  repos:\n  \
         - url: {git_url}/github.com/acme/app.git\n    autoPush: true\n"
        ),
    )
    .expect("session file");
    git(&work, &["add", "-A"]);
    git(
        &work,
        &["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", "commit", "-qm", "Add hello"],
    );
    git(&work, &["push", "-q", "origin", "HEAD:main"]);

    // It runs to Completed, as the dashboard API shows.
    let url = format!("{dashboard}/api/v1/sessions/{ns}/hello");
    let session: serde_json::Value = eventually("the session to end", RUN_TIMEOUT, || async {
        let body = curl(&url, &[])?;
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        let phase = value["status"]["phase"].as_str().unwrap_or_default().to_owned();
        ["Completed", "Failed", "Stopped"].contains(&phase.as_str()).then_some(value)
    })
    .await;
    let log = std::fs::read_to_string(dir.path().join("acp-all.log")).unwrap_or_default();
    assert_eq!(session["status"]["phase"], "Completed", "{session:#}\n--- acp all log ---\n{log}");
    let summary = session["status"]["result"]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("[replay model]"), "the replay is labelled in the result: {summary}");
    let list =
        curl(&format!("{dashboard}/api/v1/sessions?namespace={ns}&phase=Completed"), &[]).expect("list");
    assert!(list.contains("\"hello\""), "{list}");
    let page = curl(&format!("{dashboard}/sessions/{ns}/hello"), &[]).expect("page");
    assert!(page.contains("scripted replay"), "the dashboard labels the replay model");

    // The agent's change was pushed to ambient/hello of the (local) app repository.
    let app = root.join("github.com/acme/app.git");
    let files = git(&app, &["ls-tree", "--name-only", "ambient/hello"]);
    assert!(files.contains("ACP_REPLAY.md"), "pushed branch holds the replay's file: {files}");

    // Its status commit lands on the write-back branch.
    let status = eventually("the status commit", Duration::from_secs(60), || async {
        // The branch appears with the first status commit: until then the fetch fails.
        let fetched = Command::new("git")
            .current_dir(&work)
            .args(["fetch", "-q", "origin", "+refs/heads/acp/status:refs/remotes/origin/acp/status"])
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !fetched.success() {
            return None;
        }
        let out = Command::new("git")
            .current_dir(&work)
            .args(["show", &format!("origin/acp/status:status/{ns}/hello.yaml")])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert!(status.contains("Completed"), "{status}");
    let main = git(&work, &["ls-remote", &format!("{git_url}/sessions.git"), "refs/heads/main"]);
    assert!(main.starts_with(git(&work, &["rev-parse", "HEAD"]).trim()), "main is never written by the bot");

    // Ctrl-C stops everything cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(all.child().id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let exited = eventually("acp all to exit", Duration::from_secs(20), || {
        let status = all.child().try_wait().expect("wait");
        async move { status }
    })
    .await;
    assert!(exited.success(), "exit status {exited}");
    if executor == "job" {
        return;
    }
    for run in std::fs::read_dir(state.join("runs").join(&ns)).expect("runs").flatten() {
        let pid = std::fs::read_to_string(run.path().join("pid")).unwrap_or_default();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists() || pid.trim().is_empty(),
            "runner {} is gone",
            pid.trim()
        );
    }
}
