//! The operator's `process` executor runs a real `acp runner` (real claude CLI,
//! scripted model, real git) and the session ends Completed with its result,
//! even when the operator process is killed while the run works.

use acp_api::AgenticSession;
use acp_api::session::SessionPhase;
use acp_operator::controller::{self, Config};
use acp_operator::process::ProcessConfig;
use acp_testenv::githttp::{GitServer, git};
use acp_testenv::model::{ScriptedModel, Step};
use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, eventually};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const TOKEN: &str = "process-executor-token";

/// A namespace with the runner secret, a git server (repository `app`) and a
/// model following `steps`.
struct Setup {
    ns: acp_testenv::env::TestNamespace,
    tmp: tempfile::TempDir,
    git_server: GitServer,
    root: std::path::PathBuf,
    model: ScriptedModel,
}

async fn setup(prefix: &str, steps: impl FnOnce(&std::path::Path, &str) -> Vec<Step>) -> Setup {
    let env = TestEnv::get();
    let ns = env.namespace(prefix).await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let git_server = GitServer::start(&tmp.path().join("git"), TOKEN).await;
    git_server.create_repo("app", "main", &[("README.md", "hello\n")]);
    let root = tmp.path().join("runs");
    let model = ScriptedModel::start("claude-sonnet-4-6", steps(&root, &ns.name)).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ambient-runner-secrets"},
        "stringData": {"ANTHROPIC_API_KEY": "sk-ant-process", "ANTHROPIC_BASE_URL": model.url(), "GIT_TOKEN": TOKEN}
    }))
    .expect("secret");
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");
    Setup { ns, tmp, git_server, root, model }
}

/// The operator with the process executor, in this process; the sender stops it.
fn in_process(setup: &Setup) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        namespace: Some(setup.ns.name.clone()),
        process: Some(ProcessConfig {
            root: setup.root.clone(),
            acp: env!("CARGO_BIN_EXE_acp").into(),
            env: vec![("CLAUDE_BIN".into(), acp_testenv::claude_bin().to_string_lossy().into_owned())],
        }),
        ..Config::default()
    };
    let task = tokio::spawn(controller::run(setup.ns.client.clone(), config, async {
        let _ = rx.await;
    }));
    (tx, task)
}

/// Session `name` once it has finished.
async fn finished(sessions: &Api<AgenticSession>, name: &str) -> AgenticSession {
    eventually(&format!("session {name} to finish"), DEFAULT_TIMEOUT, || {
        let sessions = sessions.clone();
        async move {
            let s = sessions.get(name).await.ok()?;
            s.status.as_ref()?.phase.filter(|p| p.is_terminal()).map(|_| s)
        }
    })
    .await
}

#[tokio::test]
async fn process_executor_runs_a_real_runner_to_completion() {
    let setup = setup("op-process", |root, ns| {
        let readme = root.join(ns).join("local-1/workspace/repos/app/README.md");
        vec![
            Step::tool(
                "Edit",
                json!({"file_path": readme, "old_string": "hello", "new_string": "hello from the operator"}),
            ),
            Step::text("Edited README.md."),
        ]
    })
    .await;
    let (tx, task) = in_process(&setup);
    let session = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": "local"},
        "spec": {"initialPrompt": "Greet the operator.", "repos": [{"url": setup.git_server.url("app"), "autoPush": true}]}
    });
    let sessions: Api<AgenticSession> = setup.ns.api();
    sessions.patch("local", &PatchParams::apply("test"), &Patch::Apply(&session)).await.expect("apply");
    let done = finished(&sessions, "local").await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(SessionPhase::Completed), "{status:?}");
    let result = status.result.expect("result");
    assert_eq!(result.summary.as_deref(), Some("Edited README.md."));
    assert_eq!(result.pushed_branches[0].branch, "ambient/local");
    let bare = setup.git_server.root().join("app.git");
    assert_eq!(git(&bare, &["show", "ambient/local:README.md"]), "hello from the operator\n");
    let _ = tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
}

/// Sessions whose (hand-made) parent links form a cycle of three: one goes
/// first and the others follow their links, one at a time; none waits
/// forever.
#[tokio::test]
async fn a_cycle_of_parent_links_runs_one_at_a_time_and_ends() {
    let setup =
        setup("op-process-cycle", |_, _| (1..=3).map(|n| Step::text(format!("Turn {n}."))).collect()).await;
    let (tx, task) = in_process(&setup);
    let sessions: Api<AgenticSession> = setup.ns.api();
    for (name, parent) in [("a", "c"), ("b", "a"), ("c", "b")] {
        let session = json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": name, "annotations": {"vteam.ambient-code/parent-session-id": parent}},
            "spec": {"initialPrompt": "Take a turn.", "repos": [{"url": setup.git_server.url("app")}]}
        });
        sessions.patch(name, &PatchParams::apply("test"), &Patch::Apply(&session)).await.expect("apply");
    }
    let mut ended = Vec::new();
    for name in ["a", "b", "c"] {
        let status = finished(&sessions, name).await.status.expect("status");
        assert_eq!(status.phase, Some(SessionPhase::Completed), "{name}: {status:?}");
        ended.push((status.start_time.expect("start").0, status.completion_time.expect("end").0));
    }
    // a (the smallest name) first; b after a ended; c after b ended.
    assert!(ended[1].0 >= ended[0].1 && ended[2].0 >= ended[1].1, "{ended:?}");
    let _ = tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
}

/// The operator runs as a process and is SIGKILLed while its run works; the
/// run ends while no operator exists. Its verdict, written by the run's own
/// supervisor (not by the operator), is there when the operator is back: the
/// session ends Completed, not failed. The run's files are private.
#[tokio::test]
async fn a_run_outlives_a_killed_operator_and_its_verdict_is_kept() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::{Command, Stdio};
    let env = TestEnv::get();
    let busy = || Step::tool("Bash", json!({"command": "sleep 1", "description": "work"}));
    let Setup { ns, tmp, git_server, root, model } = setup("op-process-kill", |_, _| {
        let mut steps: Vec<Step> = (0..4).map(|_| busy()).collect();
        steps.push(Step::text("Finished while the operator was away."));
        steps
    })
    .await;
    let operator = |log: &str| {
        let log = std::fs::File::create(tmp.path().join(log)).expect("log");
        Command::new(env!("CARGO_BIN_EXE_acp"))
            .args([
                "operator",
                "--namespace",
                &ns.name,
                "--executor",
                "process",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .arg("--process-root")
            .arg(&root)
            .arg("--claude-bin")
            .arg(acp_testenv::claude_bin())
            .env("KUBECONFIG", env.kubeconfig())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("acp operator starts")
    };
    let mut first = operator("operator-1.log");
    let session = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": "outlives"},
        "spec": {"initialPrompt": "Work a while.", "repos": [{"url": git_server.url("app")}]}
    });
    let sessions: Api<AgenticSession> = ns.api();
    sessions.patch("outlives", &PatchParams::apply("test"), &Patch::Apply(&session)).await.expect("apply");
    let run = root.join(&ns.name).join("outlives-1");
    let model_ref = &model;
    eventually("the agent at work", DEFAULT_TIMEOUT, || async {
        (model_ref.requests().len() >= 2).then_some(())
    })
    .await;
    first.kill().expect("SIGKILL the operator");
    first.wait().expect("reap the operator");

    let exit = run.join("exit");
    let code = eventually("the run to end with no operator running", DEFAULT_TIMEOUT, || async {
        std::fs::read_to_string(&exit).ok()
    })
    .await;
    assert_eq!(code.trim(), "0", "the runner succeeded");
    let phase = sessions.get("outlives").await.expect("session").status.and_then(|s| s.phase);
    assert!(phase.is_some_and(|p| !p.is_terminal()), "no operator has seen the verdict yet: {phase:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&run), 0o700, "run directory");
    for file in ["pid", "exit", "runner.log"] {
        assert_eq!(mode(&run.join(file)), 0o600, "{file}");
    }

    let mut second = operator("operator-2.log");
    let done = finished(&sessions, "outlives").await;
    let _ = second.kill();
    let _ = second.wait();
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(SessionPhase::Completed), "{status:?}");
    assert_eq!(status.run, Some(1), "one run");
    assert_eq!(
        status.result.and_then(|r| r.summary).as_deref(),
        Some("Finished while the operator was away.")
    );
}
