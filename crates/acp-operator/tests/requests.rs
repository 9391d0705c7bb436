//! What a session costs the API server, on the real control plane
//! (kube-apiserver, etcd, kube-controller-manager; no node, so Jobs get pods
//! that never run). The operator's client records every request it sends,
//! method and path, so the test sees exactly what the operator asked for.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::session::SessionPhase;
use acp_operator::controller::{self, Config};
use acp_operator::metrics::Metrics;
use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, TestNamespace, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::oneshot;

const SESSIONS: usize = 8;

type Log = Arc<Mutex<Vec<String>>>;

/// A client that records `METHOD path?query` of every request.
async fn recording_client(env: &TestEnv) -> (kube::Client, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let layer = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        let line = format!("{} {}", request.method(), request.uri());
        sink.lock().expect("log").push(line);
        request
    });
    let client =
        kube::client::ClientBuilder::try_from(env.config().await).expect("config").with_layer(&layer).build();
    (client, log)
}

fn lines(log: &Log, from: usize) -> Vec<String> {
    log.lock().expect("log")[from..].to_vec()
}

async fn create_session(ns: &TestNamespace, name: &str) {
    let session: AgenticSession = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name},
        "spec": {"initialPrompt": "count my requests", "repos": [{"url": "https://github.com/acme/app.git"}]},
    }))
    .expect("session");
    ns.api::<AgenticSession>().create(&PostParams::default(), &session).await.expect("create session");
}

/// True when every named session's status records its Job as created.
async fn all_job_created(ns: &TestNamespace, names: &[String]) -> bool {
    let list = ns.api::<AgenticSession>().list(&ListParams::default()).await.expect("list").items;
    names.iter().all(|name| {
        list.iter().any(|s| {
            s.metadata.name.as_ref() == Some(name)
                && s.status.as_ref().is_some_and(|st| {
                    acp_api::condition::find(&st.conditions, "JobCreated").is_some_and(|c| c.is_true())
                })
        })
    })
}

#[tokio::test]
async fn a_session_costs_four_writes_up_to_its_job_no_reads_and_a_settled_one_no_request() {
    let env = TestEnv::control_plane_only();
    let ns = env.namespace("requests").await;
    env.install_crds(&ns.client).await;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "ambient-runner-secrets"}, "stringData": {"ANTHROPIC_API_KEY": "sk-count"}}),
    )
    .expect("secret");
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");
    let (client, log) = recording_client(env).await;
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = Config { namespace: Some(ns.name.clone()), ..Config::default() };
    let operator = tokio::spawn(controller::run_with_metrics(client, config, metrics.clone(), async {
        let _ = stopped.await;
    }));

    // One session through to its recorded Job: the caches have listed.
    create_session(&ns, "warm").await;
    eventually("the warm-up session's job", DEFAULT_TIMEOUT, || async {
        all_job_created(&ns, &["warm".to_owned()]).await.then_some(())
    })
    .await;

    let mark = log.lock().expect("log").len();
    let names: Vec<String> = (0..SESSIONS).map(|i| format!("s-{i}")).collect();
    for name in &names {
        create_session(&ns, name).await;
    }
    eventually("every session's job, recorded in its status", DEFAULT_TIMEOUT, || {
        let (ns, names) = (&ns, &names);
        async move { all_job_created(ns, names).await.then_some(()) }
    })
    .await;
    let window = lines(&log, mark);
    let reads: Vec<&String> =
        window.iter().filter(|l| l.starts_with("GET") && !l.contains("watch=")).collect();
    assert!(reads.is_empty(), "the operator reads from its caches, yet it sent: {reads:#?}");
    for name in &names {
        let writes =
            |path: &str| window.iter().filter(|l| l.starts_with("PATCH") && l.contains(path)).count();
        assert_eq!(writes(&format!("/secrets/{name}-runner?")), 1, "{name}'s Secret is written once");
        assert_eq!(writes(&format!("/persistentvolumeclaims/{name}-workspace?")), 1, "{name}'s claim");
        assert_eq!(writes(&format!("/jobs/{name}-1?")), 1, "{name}'s Job is written once");
        let job = window.iter().position(|l| l.contains(&format!("/jobs/{name}-1?"))).expect("job write");
        let before: Vec<&String> = window[..job]
            .iter()
            .filter(|l| l.contains(&format!("/agenticsessions/{name}/")) || l.contains(&format!("/{name}-")))
            .collect();
        assert_eq!(
            before.len(),
            3,
            "up to its Job a session costs its run's record, its Secret and its claim: {before:#?}"
        );
        assert!(before[0].contains(&format!("/agenticsessions/{name}/status")), "the run is recorded first");
    }
    let events = window.iter().filter(|l| l.starts_with("POST") && l.contains("/events")).count();
    println!("{} requests for {SESSIONS} sessions to a recorded Job ({events} of them events)", window.len());

    // Stopped sessions are settled: a reconcile of one sends nothing.
    let stop_all = json!({"metadata": {"annotations": {"ambient-code.io/desired-phase": "Stopped"}}});
    let sessions = ns.api::<AgenticSession>();
    for name in names.iter().chain(["warm".to_owned()].iter()) {
        sessions.patch(name, &PatchParams::default(), &Patch::Merge(&stop_all)).await.expect("stop");
    }
    eventually("every session stopped", DEFAULT_TIMEOUT, || {
        let sessions = &sessions;
        async move {
            let list = sessions.list(&ListParams::default()).await.expect("list").items;
            let stopped = list
                .iter()
                .filter(|s| s.status.as_ref().and_then(|st| st.phase) == Some(SessionPhase::Stopped))
                .count();
            (stopped == SESSIONS + 1).then_some(())
        }
    })
    .await;
    let jobs: Api<Job> = ns.api();
    eventually("the stopped sessions' jobs gone", DEFAULT_TIMEOUT, || {
        let jobs = &jobs;
        async move {
            let left = jobs.list_metadata(&ListParams::default()).await.expect("jobs").items;
            left.is_empty().then_some(())
        }
    })
    .await;
    let mark = log.lock().expect("log").len();
    let completed = metrics.reconciles_completed.get();
    let touch = json!({"metadata": {"labels": {"touched": "yes"}}});
    for name in &names {
        sessions.patch(name, &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
    }
    eventually("a reconcile of every touched session", DEFAULT_TIMEOUT, || async {
        (metrics.reconciles_completed.get() >= completed + SESSIONS as u64).then_some(())
    })
    .await;
    let after = lines(&log, mark);
    assert!(after.is_empty(), "settled sessions cost no request, yet the operator sent: {after:#?}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), operator).await.expect("operator stops").expect("join");
}
