//! The operator on the real cluster with a real node (shared by the tests
//! that run pods): a fresh namespace, a git server and a scripted model on
//! this machine, reachable from the node's pods, and the operator running
//! in the test process.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::session::SessionPhase;
use acp_operator::children::{ChildConfig, Workspace};
use acp_operator::controller::{self, Config};
use acp_testenv::githttp::GitServer;
use acp_testenv::model::{ScriptedModel, Step};
use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, TestNamespace, eventually};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const MODEL: &str = "claude-sonnet-4-6";
pub const API_KEY: &str = "sk-ant-operator-test";
pub const GIT_TOKEN: &str = "git-operator-token";
/// Pods start, clone and run the CLI: allow more than an API round trip.
pub const POD_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Operator {
    pub ns: TestNamespace,
    pub model: ScriptedModel,
    pub git: GitServer,
    pub metrics: std::sync::Arc<acp_operator::metrics::Metrics>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
    pub _tmp: tempfile::TempDir,
}

impl Operator {
    /// An operator for a fresh namespace whose runners reach a git server
    /// (repository `app`) and a model following `steps`.
    pub async fn start(prefix: &str, steps: Vec<Step>, workspace: Workspace, with_secret: bool) -> Self {
        Self::start_with_image(prefix, steps, workspace, with_secret, &TestEnv::get().node().runner_image)
            .await
    }

    pub async fn start_with_image(
        prefix: &str,
        steps: Vec<Step>,
        workspace: Workspace,
        with_secret: bool,
        runner_image: &str,
    ) -> Self {
        let env = TestEnv::get();
        let ns = env.namespace(prefix).await;
        env.install_crds(&ns.client).await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let git = GitServer::start_on(env.host_address(), &tmp.path().join("git"), GIT_TOKEN).await;
        git.create_repo("app", "main", &[("README.md", "hello\n")]);
        let model = ScriptedModel::start_on(env.host_address(), MODEL, steps).await;
        let (tx, rx) = oneshot::channel::<()>();
        let config = Config {
            namespace: Some(ns.name.clone()),
            children: ChildConfig {
                runner_image: runner_image.to_owned(),
                image_pull_policy: Some("IfNotPresent".into()),
                workspace,
                ..ChildConfig::default()
            },
            ..Config::default()
        };
        let metrics = std::sync::Arc::new(acp_operator::metrics::Metrics::default());
        let task =
            tokio::spawn(controller::run_with_metrics(ns.client.clone(), config, metrics.clone(), async {
                let _ = rx.await;
            }));
        let op = Self { ns, model, git, metrics, stop: Some(tx), task, _tmp: tmp };
        if with_secret {
            op.create_secret().await;
        }
        op
    }

    /// The namespace's `ambient-runner-secrets`: the model's key and address,
    /// the git token.
    pub async fn create_secret(&self) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "ambient-runner-secrets"},
            "stringData": {
                "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": self.model.url(),
                "GIT_TOKEN": GIT_TOKEN, "IGNORED": "x"
            }
        }))
        .expect("secret");
        self.ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("create secret");
    }

    pub fn sessions(&self) -> Api<AgenticSession> {
        self.ns.api()
    }

    pub fn spec(&self, repo: &str) -> Value {
        json!({
            "initialPrompt": "Write the notes.",
            "displayName": "Write notes",
            "repos": [{"url": self.git.url(repo), "branch": "main", "autoPush": true}],
            "llmSettings": {"model": MODEL},
            "timeout": 600,
            "inactivityTimeout": 120,
            "maxTurns": 9,
            "environmentVariables": {"LOG_LEVEL": "debug"}
        })
    }

    pub async fn apply(&self, name: &str, spec: Value) {
        let session = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": name}, "spec": spec});
        self.sessions()
            .patch(name, &PatchParams::apply("test-user"), &Patch::Apply(&session))
            .await
            .expect("apply session");
    }

    pub async fn wait_phase(&self, name: &str, phase: SessionPhase, timeout: Duration) -> AgenticSession {
        let api = self.sessions();
        eventually(&format!("session {name} to be {phase}"), timeout, || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                (s.status.as_ref()?.phase == Some(phase)).then_some(s)
            }
        })
        .await
    }

    /// Waits until the operator has recorded that session `name`'s Job exists
    /// (it records a run first, then creates its children, then says so).
    pub async fn wait_job_created(&self, name: &str) -> AgenticSession {
        let api = self.sessions();
        eventually(&format!("session {name}'s Job to be created"), DEFAULT_TIMEOUT, || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                let created = acp_api::condition::find(&s.status.as_ref()?.conditions, "JobCreated")?;
                created.is_true().then_some(s)
            }
        })
        .await
    }

    /// The pods of run `job` that are not being deleted.
    pub async fn pods(&self, job: &str) -> Vec<Pod> {
        let selector = format!("batch.kubernetes.io/job-name={job}");
        let pods = self.ns.api::<Pod>().list(&ListParams::default().labels(&selector)).await.expect("pods");
        pods.items
    }

    pub async fn shutdown(mut self) {
        // Runs still going end with the session (its Job and pods are owned).
        let _ = self.sessions().delete_collection(&DeleteParams::foreground(), &ListParams::default()).await;
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub fn env_value<'a>(job: &'a Value, name: &str) -> Option<&'a Value> {
    job["spec"]["template"]["spec"]["containers"][0]["env"].as_array()?.iter().find(|e| e["name"] == name)
}
