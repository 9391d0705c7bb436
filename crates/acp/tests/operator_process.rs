//! The operator's `process` executor runs a real `acp runner` (real claude CLI,
//! scripted model, real git) and the session ends Completed with its result.

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

#[tokio::test]
async fn process_executor_runs_a_real_runner_to_completion() {
    let env = TestEnv::get();
    let ns = env.namespace("op-process").await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let git_server = GitServer::start(&tmp.path().join("git"), TOKEN).await;
    git_server.create_repo("app", "main", &[("README.md", "hello\n")]);
    let root = tmp.path().join("runs");
    let readme = root.join(&ns.name).join("local-1/workspace/repos/app/README.md");
    let model = ScriptedModel::start(
        "claude-sonnet-4-6",
        vec![
            Step::tool(
                "Edit",
                json!({"file_path": readme, "old_string": "hello", "new_string": "hello from the operator"}),
            ),
            Step::text("Edited README.md."),
        ],
    )
    .await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ambient-runner-secrets"},
        "stringData": {"ANTHROPIC_API_KEY": "sk-ant-process", "ANTHROPIC_BASE_URL": model.url(), "GIT_TOKEN": TOKEN}
    }))
    .expect("secret");
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        namespace: Some(ns.name.clone()),
        process: Some(ProcessConfig {
            root: root.clone(),
            acp: env!("CARGO_BIN_EXE_acp").into(),
            env: vec![("CLAUDE_BIN".into(), acp_testenv::claude_bin().to_string_lossy().into_owned())],
        }),
        ..Config::default()
    };
    let task = tokio::spawn(controller::run(ns.client.clone(), config, async {
        let _ = rx.await;
    }));

    let session = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": "local"},
        "spec": {"initialPrompt": "Greet the operator.", "repos": [{"url": git_server.url("app"), "autoPush": true}]}
    });
    let sessions: Api<AgenticSession> = ns.api();
    sessions.patch("local", &PatchParams::apply("test"), &Patch::Apply(&session)).await.expect("apply");
    let done = eventually("the session to finish", DEFAULT_TIMEOUT, || {
        let sessions = sessions.clone();
        async move {
            let s = sessions.get("local").await.ok()?;
            s.status.as_ref()?.phase.filter(|p| p.is_terminal()).map(|_| s)
        }
    })
    .await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(SessionPhase::Completed), "{status:?}");
    let result = status.result.expect("result");
    assert_eq!(result.summary.as_deref(), Some("Edited README.md."));
    assert_eq!(result.pushed_branches[0].branch, "ambient/local");
    let bare = git_server.root().join("app.git");
    assert_eq!(git(&bare, &["show", "ambient/local:README.md"]), "hello from the operator\n");
    let _ = tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
}
