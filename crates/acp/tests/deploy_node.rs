//! The deploy overlays running for real: `kubectl apply --server-side -k` of
//! `deploy/kustomize/overlays/dev` and `overlays/production`, each on a
//! cluster of its own (their controllers watch every namespace). Every
//! component runs as a pod from the `acp` image built from `images/acp`, as
//! its own ServiceAccount, reaching the API server through the `kubernetes`
//! Service (kube-proxy); sessions run as pods from the runner image. The
//! images are preloaded on the node under the overlays' names, as on an
//! air-gapped cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use acp_api::{AgenticSession, SessionPhase};
use acp_testenv::githttp::GitServer;
use acp_testenv::model::{ScriptedModel, Step};
use acp_testenv::{TestEnv, eventually};
use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-6";
const GIT_TOKEN: &str = "deploy-git-token";
const COMPONENTS: [&str; 4] = ["acp-git-sync", "acp-operator", "acp-statusbot", "acp-dashboard"];
/// Pulling nothing, but starting pods and controllers: more than an API call.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// `kubectl apply --server-side -k deploy/kustomize/<overlay>`, as docs/deploying.md says.
fn apply_overlay(env: &TestEnv, overlay: &str) {
    let path = acp_testenv::env::repo_root().join("deploy/kustomize").join(overlay);
    let out = env
        .kubectl()
        .args(["apply", "--server-side", "--field-manager", "acp-deploy-test", "-k"])
        .arg(&path)
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "kubectl apply -k {overlay}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Waits until every Deployment of acp-system has `replicas` available.
async fn wait_available(client: &kube::Client, replicas: &BTreeMap<&str, i32>) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "acp-system");
    eventually("every component to be available", START_TIMEOUT, || {
        let deployments = deployments.clone();
        async move {
            for (name, want) in replicas {
                let d = deployments.get(name).await.ok()?;
                let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
                (available == *want).then_some(())?;
            }
            Some(())
        }
    })
    .await;
}

/// The running pods of component `name`.
async fn component_pods(client: &kube::Client, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "acp-system");
    let selector = format!("app.kubernetes.io/name={name}");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn dir_file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

/// GET `path` of the dashboard Service through the API server's service proxy.
async fn dashboard_get(client: &kube::Client, path: &str) -> Option<String> {
    let uri = format!("/api/v1/namespaces/acp-system/services/acp-dashboard:http/proxy{path}");
    let request = http::Request::get(uri).body(Vec::new()).ok()?;
    client.request_text(request).await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dev_overlay_runs_every_component_in_pods_and_a_committed_session_completes() {
    let env = TestEnv::isolated("dev");
    let admin = env.client().await;
    apply_overlay(env, "overlays/dev");
    wait_available(&admin, &COMPONENTS.iter().map(|c| (*c, 1)).collect()).await;
    for component in COMPONENTS {
        let pods = component_pods(&admin, component).await;
        let [pod] = pods.as_slice() else { panic!("{component}: one pod, got {}", pods.len()) };
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some(component), "its own ServiceAccount");
        assert_eq!(spec.containers[0].image.as_deref(), Some("acp:dev"));
        let status = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).expect("statuses");
        assert!(status[0].ready, "{component} is ready");
    }

    // A team: its runner credentials, a git server with its sessions, and the
    // model, on this machine where pods reach them. (The session clones
    // nothing: the policies allow only GitHub repositories, and the operator
    // tests cover cloning and pushing from a pod.)
    let team = env.namespace("team-dev").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = GitServer::start_on(env.host_address(), &tmp.path().join("git"), GIT_TOKEN).await;
    let manifest = format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: hello\nspec:\n  \
         initialPrompt: Say hello.\n  llmSettings: {{model: {MODEL}}}\n  timeout: 600\n"
    );
    let sessions_repo = server.create_repo("sessions", "main", &[("sessions/hello.yaml", &manifest)]);
    let model = ScriptedModel::start_responding(
        env.host_address(),
        MODEL,
        std::sync::Arc::new(|_| Step::text("Said hello from the cluster.")),
    )
    .await;
    for (name, data) in [
        (
            "ambient-runner-secrets",
            json!({"ANTHROPIC_API_KEY": "sk-ant-deploy", "ANTHROPIC_BASE_URL": model.url(), "GIT_TOKEN": GIT_TOKEN}),
        ),
        ("git-credentials", json!({"token": GIT_TOKEN})),
    ] {
        let secret =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
        team.api::<k8s_openapi::api::core::v1::Secret>()
            .patch(name, &PatchParams::apply("acp-deploy-test"), &Patch::Apply(secret))
            .await
            .expect("secret");
    }
    let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"name": "team"},
        "spec": {"url": server.url("sessions"), "ref": {"branch": "main"}, "path": "sessions", "interval": "10s",
                 "secretRef": {"name": "git-credentials"}, "prune": true, "writeBack": {"enabled": true}}});
    team.api::<acp_api::SessionSource>()
        .patch("team", &PatchParams::apply("acp-deploy-test"), &Patch::Apply(&source))
        .await
        .expect("source");

    // A session created with `kubectl apply` runs too: the operator needs
    // nothing but the namespace's ambient-runner-secrets.
    let direct = dir_file(&tmp, "direct.yaml", &manifest.replace("name: hello", "name: direct"));
    let out = env.kubectl().args(["apply", "-n", &team.name, "-f"]).arg(&direct).output().expect("kubectl");
    assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));

    // In-cluster git-sync applies it, the in-cluster operator runs it as a pod.
    let sessions: Api<AgenticSession> = team.api();
    for name in ["hello", "direct"] {
        let result = eventually(&format!("session {name} to complete in the cluster"), START_TIMEOUT, || {
            let sessions = sessions.clone();
            async move {
                let status = sessions.get(name).await.ok()?.status?;
                (status.phase? == SessionPhase::Completed).then_some(status.result?)
            }
        })
        .await;
        assert_eq!(result.summary.as_deref(), Some("Said hello from the cluster."), "{name}");
    }
    assert!(model.requests().iter().all(|r| r.api_key.as_deref() == Some("sk-ant-deploy")));

    // The in-cluster status bot writes the result back to the sessions repository.
    let status_file = format!("acp/status:status/{}/hello.yaml", team.name);
    let written = eventually("the status bot's write-back commit", START_TIMEOUT, || async {
        let out = std::process::Command::new("git")
            .current_dir(&sessions_repo)
            .args(["show", &status_file])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    assert!(written.contains("Completed"), "{written}");

    // The in-cluster dashboard shows it, and streams the runner's output from
    // the real pod log (API server → kubelet).
    let list = eventually("the dashboard to list the session", START_TIMEOUT, || async {
        let body = dashboard_get(&admin, &format!("/api/v1/sessions?namespace={}", team.name)).await?;
        body.contains("\"Completed\"").then_some(body)
    })
    .await;
    let list: Value = serde_json::from_str(&list).expect("JSON");
    assert!(list.to_string().contains("\"hello\""), "{list}");
    let log = dashboard_get(&admin, &format!("/api/v1/sessions/{}/hello/log?format=text", team.name))
        .await
        .expect("log");
    assert!(log.contains("Said hello from the cluster."), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_production_overlays_controllers_run_two_replicas_each_while_one_holds_each_lease() {
    let env = TestEnv::isolated("prod");
    let admin = env.client().await;
    apply_overlay(env, "overlays/production");
    let replicas = BTreeMap::from([
        ("acp-git-sync", 2),
        ("acp-operator", 2),
        ("acp-statusbot", 2),
        ("acp-dashboard", 2),
    ]);
    wait_available(&admin, &replicas).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "acp-system");
    let mut holders = BTreeMap::new();
    let mut names = Vec::new();
    for controller in ["acp-git-sync", "acp-operator", "acp-statusbot"] {
        let holder = eventually(&format!("a leader of {controller}"), START_TIMEOUT, || async {
            leases.get_opt(controller).await.ok()??.spec?.holder_identity
        })
        .await;
        let pods = component_pods(&admin, controller).await;
        let mine: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert!(mine.contains(&holder), "the leader {holder} is one of {mine:?}");
        holders.insert(controller, holder);
        names.extend(mine);
    }

    // Two minutes: both replicas stay Ready and are never restarted (the
    // standby's liveness probe passes while it waits). Every change to their
    // pods is watched, so a blip between two looks cannot hide.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "acp-system");
    let config = watcher::Config::default()
        .labels("app.kubernetes.io/name in (acp-git-sync,acp-operator,acp-statusbot)");
    let mut events = std::pin::pin!(watcher(pods, config).applied_objects());
    let watched = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(pod) = events.next().await {
            let pod = pod.expect("watch");
            let name = pod.metadata.name.clone().unwrap_or_default();
            assert!(names.contains(&name), "a replica was replaced: {name} not in {names:?}");
            let status = pod.status.and_then(|s| s.container_statuses).expect("statuses");
            assert!(status[0].ready, "{name} became unready");
            assert_eq!(status[0].restart_count, 0, "{name} was restarted");
        }
    })
    .await;
    assert!(watched.is_err(), "the watch ended before the two minutes");
    for (controller, holder) in &holders {
        let now = leases.get(controller).await.expect("lease").spec.and_then(|s| s.holder_identity);
        assert_eq!(now.as_deref(), Some(holder.as_str()), "the {controller} lease changed hands");
    }
}
