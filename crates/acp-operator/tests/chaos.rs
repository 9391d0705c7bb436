//! Reliability: the operator is killed (its task aborted mid-flight, as a
//! crash would) and restarted at pseudo-random points while 50 sessions go
//! through their lives on the real node (runner pods, the real CLI against a
//! scripted model that answers each session by its prompt). It must end with
//! exactly one Job per run, no session stuck, and every status right.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::session::SessionPhase;
use acp_operator::children::{ChildConfig, Workspace};
use acp_operator::controller::{self, Config};
use acp_testenv::githttp::GitServer;
use acp_testenv::model::{ScriptedModel, Step};
use acp_testenv::{TestEnv, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const SESSIONS: usize = 50;

const MODEL: &str = "claude-sonnet-4-6";

fn expected(i: usize) -> SessionPhase {
    if i.is_multiple_of(3) { SessionPhase::Failed } else { SessionPhase::Completed }
}

/// The model's answer to session `s-NN`, recognised by its prompt: a failure
/// (exit 1) for every third session, else a summary naming it.
fn answer(body: &serde_json::Value) -> Step {
    let text = body.to_string();
    let Some(at) = text.find("chaos task s-") else { return Step::text("(not a chaos task)") };
    let i: usize = text[at + 13..at + 15].parse().unwrap_or(usize::MAX);
    if expected(i) == SessionPhase::Failed {
        Step::error(400, "invalid_request_error", &format!("scripted failure {i}"))
    } else {
        Step::text(format!("done {i}"))
    }
}

#[tokio::test]
async fn operator_crashes_lose_nothing_and_duplicate_nothing() {
    let env = TestEnv::get();
    let ns = env.namespace("chaos").await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = GitServer::start_on(env.host_address(), &tmp.path().join("git"), "chaos-token").await;
    git.create_repo("app", "main", &[("README.md", "hello\n")]);
    let model = ScriptedModel::start_responding(env.host_address(), MODEL, Arc::new(answer)).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ambient-runner-secrets"},
        "stringData": {"ANTHROPIC_API_KEY": "sk-ant-chaos", "ANTHROPIC_BASE_URL": model.url(), "GIT_TOKEN": "chaos-token"}
    }))
    .expect("secret");
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");

    // The chaos monkey: run the operator for a pseudo-random 100–1000 ms, abort it, repeat.
    let done = Arc::new(AtomicBool::new(false));
    let (client, namespace, flag) = (ns.client.clone(), ns.name.clone(), done.clone());
    let children = ChildConfig {
        runner_image: env.node().runner_image.clone(),
        image_pull_policy: Some("IfNotPresent".into()),
        workspace: Workspace::EmptyDir,
        ..ChildConfig::default()
    };
    let monkey = tokio::spawn(async move {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut restarts = 0u32;
        while !flag.load(Ordering::Relaxed) {
            let config = Config {
                namespace: Some(namespace.clone()),
                children: children.clone(),
                ..Config::default()
            };
            let operator = tokio::spawn(controller::run(client.clone(), config, std::future::pending()));
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            tokio::time::sleep(Duration::from_millis(100 + seed % 900)).await;
            operator.abort();
            let _ = operator.await;
            restarts += 1;
        }
        restarts
    });

    let sessions: Api<AgenticSession> = ns.api();
    for i in 0..SESSIONS {
        let name = format!("s-{i:02}");
        let manifest = json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": name},
            "spec": {"initialPrompt": format!("Do chaos task {name}."), "llmSettings": {"model": MODEL},
                     "repos": [{"url": git.url("app"), "branch": "main"}]}
        });
        sessions.patch(&name, &PatchParams::apply("chaos"), &Patch::Apply(&manifest)).await.expect("apply");
    }

    let all_terminal = eventually("every session to reach its final phase", Duration::from_secs(600), || {
        let sessions = sessions.clone();
        async move {
            let list = sessions.list(&ListParams::default()).await.ok()?;
            let terminal = list
                .items
                .iter()
                .filter(|s| s.status.as_ref().and_then(|st| st.phase).is_some_and(|p| p.is_terminal()));
            (terminal.count() == SESSIONS).then_some(list.items)
        }
    })
    .await;
    done.store(true, Ordering::Relaxed);
    let restarts = monkey.await.expect("monkey");
    assert!(restarts >= 3, "the operator was restarted {restarts} times");

    for session in &all_terminal {
        let name = session.metadata.name.clone().expect("name");
        let i: usize = name[2..].parse().expect("index");
        let status = session.status.clone().expect("status");
        assert_eq!(status.phase, Some(expected(i)), "{name}: {status:?}");
        assert_eq!(status.run, Some(1), "{name} ran exactly once");
        let result = status.result.clone().unwrap_or_else(|| panic!("{name} has no result: {status:?}"));
        match expected(i) {
            SessionPhase::Completed => assert_eq!(result.summary, Some(format!("done {i}")), "{name}"),
            _ => assert!(
                result.error.as_deref().is_some_and(|e| e.contains(&format!("scripted failure {i}"))),
                "{name}: {result:?}"
            ),
        }
        assert_eq!(status.observed_generation, session.metadata.generation);
    }
    let jobs: BTreeSet<String> = ns
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs")
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    let want: BTreeSet<String> = (0..SESSIONS).map(|i| format!("s-{i:02}-1")).collect();
    assert_eq!(jobs, want, "exactly one Job per run");
}
