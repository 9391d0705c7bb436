//! The operator against a real kube-apiserver + kube-controller-manager (Job
//! controller, garbage collector), with the harness playing the kubelet.

use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::session::{SessionPhase, StoppedReason};
use acp_operator::controller::{self, Config};
use acp_testenv::{DEFAULT_TIMEOUT, Kubelet, TestEnv, TestNamespace, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Operator {
    ns: TestNamespace,
    metrics: std::sync::Arc<acp_operator::metrics::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    async fn start(prefix: &str, with_secret: bool) -> Self {
        let env = TestEnv::get();
        let ns = env.namespace(prefix).await;
        env.install_crds(&ns.client).await;
        if with_secret {
            create_secret(&ns).await;
        }
        let (tx, rx) = oneshot::channel::<()>();
        let config = Config { namespace: Some(ns.name.clone()), ..Config::default() };
        let metrics = std::sync::Arc::new(acp_operator::metrics::Metrics::default());
        let task =
            tokio::spawn(controller::run_with_metrics(ns.client.clone(), config, metrics.clone(), async {
                let _ = rx.await;
            }));
        Self { ns, metrics, stop: Some(tx), task }
    }

    fn sessions(&self) -> Api<AgenticSession> {
        self.ns.api()
    }

    async fn apply(&self, name: &str, spec: Value) {
        let session = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": name}, "spec": spec});
        self.sessions()
            .patch(name, &PatchParams::apply("test-user"), &Patch::Apply(&session))
            .await
            .expect("apply session");
    }

    async fn wait_phase(&self, name: &str, phase: SessionPhase) -> AgenticSession {
        let api = self.sessions();
        eventually(&format!("session {name} to be {phase}"), DEFAULT_TIMEOUT, || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                (s.status.as_ref()?.phase == Some(phase)).then_some(s)
            }
        })
        .await
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn create_secret(ns: &TestNamespace) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ambient-runner-secrets"},
        "stringData": {"ANTHROPIC_API_KEY": "sk-ant-operator-test", "GITHUB_TOKEN": "ghp_operator", "IGNORED": "x"}
    }))
    .expect("secret");
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("create secret");
}

fn spec() -> Value {
    json!({
        "initialPrompt": "Fix the bug.",
        "displayName": "Fix it",
        "repos": [{"url": "https://github.com/acme/app.git", "autoPush": true}],
        "llmSettings": {"model": "claude-sonnet-4-6"},
        "timeout": 600,
        "inactivityTimeout": 120,
        "maxTurns": 9,
        "environmentVariables": {"LOG_LEVEL": "debug"}
    })
}

fn env_value<'a>(job: &'a Value, name: &str) -> Option<&'a Value> {
    job["spec"]["template"]["spec"]["containers"][0]["env"].as_array()?.iter().find(|e| e["name"] == name)
}

#[tokio::test]
async fn a_session_gets_its_children_runs_and_completes_with_the_result() {
    let op = Operator::start("op-life", true).await;
    op.apply("fix-bug", spec()).await;
    let creating = op.wait_phase("fix-bug", SessionPhase::Creating).await;
    let uid = creating.metadata.uid.clone().expect("uid");
    let status = creating.status.expect("status");
    assert_eq!(status.job_name.as_deref(), Some("fix-bug-1"));
    assert_eq!(status.run, Some(1));

    // Secret: only the runner keys, owned by the session.
    let secret = op.ns.api::<Secret>().get("fix-bug-runner").await.expect("secret");
    let keys: Vec<_> = secret.data.as_ref().expect("data").keys().cloned().collect();
    assert_eq!(keys, ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"]);
    let owner = &secret.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!((owner.uid.as_str(), owner.controller), (uid.as_str(), Some(true)));
    // PVC: the workspace.
    let pvc = op.ns.api::<PersistentVolumeClaim>().get("fix-bug-workspace").await.expect("pvc");
    assert_eq!(pvc.metadata.owner_references.expect("owner")[0].uid, uid);
    // Job: every property of the runner contract.
    let job = op.ns.api::<Job>().get("fix-bug-1").await.expect("job");
    assert_eq!(job.metadata.owner_references.clone().expect("owner")[0].uid, uid);
    let job_json = serde_json::to_value(&job).expect("json");
    let spec = &job_json["spec"];
    assert_eq!(spec["activeDeadlineSeconds"], 600);
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["ttlSecondsAfterFinished"], 86400);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    // The runner image's entrypoint is `acp runner`: the Job adds no command or args.
    assert!(container.get("args").is_none() && container.get("command").is_none(), "{container}");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["terminationMessagePolicy"], "FallbackToLogsOnError");
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert_eq!(mounts, ["/workspace", "/tmp", "/var/run/acp/secrets"]);
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "fix-bug-workspace");
    assert_eq!(env_value(&job_json, "AGENTIC_SESSION_NAME").expect("name")["value"], "fix-bug");
    assert_eq!(env_value(&job_json, "INITIAL_PROMPT").expect("prompt")["value"], "Fix the bug.");
    assert_eq!(env_value(&job_json, "MAX_TURNS").expect("turns")["value"], "9");
    assert_eq!(env_value(&job_json, "INACTIVITY_TIMEOUT").expect("inactivity")["value"], "120");
    assert_eq!(env_value(&job_json, "SESSION_ENV_JSON").expect("env")["value"], r#"{"LOG_LEVEL":"debug"}"#);
    let repos: Value = serde_json::from_str(
        env_value(&job_json, "REPOS_JSON").expect("repos")["value"].as_str().expect("str"),
    )
    .expect("json");
    assert_eq!(
        repos,
        json!([{"url": "https://github.com/acme/app.git", "branch": "main", "autoPush": true, "pullRequest": false}])
    );
    assert_eq!(
        env_value(&job_json, "ANTHROPIC_API_KEY").expect("key")["valueFrom"]["secretKeyRef"]["name"],
        "fix-bug-runner"
    );

    // The kubelet starts the pod: Running.
    let kubelet = Kubelet::new(op.ns.client.clone(), &op.ns.name);
    let pod = kubelet.job_pod("fix-bug-1", DEFAULT_TIMEOUT).await.metadata.name.expect("pod name");
    kubelet.run(&pod).await;
    let running = op.wait_phase("fix-bug", SessionPhase::Running).await;
    assert!(running.status.as_ref().and_then(|s| s.start_time.clone()).is_some());

    // Exit 0 with the runner's result: Completed, result copied.
    let result = json!({"outcome": "success", "summary": "Fixed the bug.", "numTurns": 5, "totalCostUsd": 0.42,
        "pushedBranches": [{"repo": "https://github.com/acme/app.git", "branch": "ambient/fix-bug", "commit": "abc123"}]});
    kubelet.terminate(&pod, 0, &result.to_string()).await;
    let done = op.wait_phase("fix-bug", SessionPhase::Completed).await;
    let status = done.status.expect("status");
    let result = status.result.expect("result");
    assert_eq!(result.summary.as_deref(), Some("Fixed the bug."));
    assert_eq!(result.num_turns, Some(5));
    assert_eq!(result.pushed_branches[0].branch, "ambient/fix-bug");
    assert!(status.completion_time.is_some());
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.is_true()));
    assert_eq!(status.observed_generation, done.metadata.generation);

    // Re-applying the unchanged manifest never re-runs.
    op.apply("fix-bug", self::spec()).await;
    let again = op.sessions().get("fix-bug").await.expect("get");
    assert_eq!(again.status.and_then(|s| s.run), Some(1));
    assert!(op.ns.api::<Job>().get_opt("fix-bug-2").await.expect("get").is_none());

    // Metrics saw the lifecycle.
    let text = op.metrics.encode();
    assert!(
        text.contains(r#"acp_operator_phase_transitions_total{from="Running",to="Completed"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"acp_operator_session_duration_seconds_count{phase="Completed"} 1"#), "{text}");
    assert!(!text.contains("acp_operator_reconciles_total 0"), "{text}");
    op.shutdown().await;
}

#[tokio::test]
async fn exit_codes_1_and_2_fail_with_distinct_reasons() {
    let op = Operator::start("op-fail", true).await;
    let kubelet = Kubelet::new(op.ns.client.clone(), &op.ns.name);
    for (name, code, reason) in [("agent-err", 1, "AgentError"), ("prereq", 2, "PrerequisiteFailed")] {
        op.apply(name, spec()).await;
        let pod = kubelet.job_pod(&format!("{name}-1"), DEFAULT_TIMEOUT).await.metadata.name.expect("pod");
        kubelet.run(&pod).await;
        kubelet
            .terminate(
                &pod,
                code,
                &json!({"outcome": "agentError", "error": format!("boom {code}")}).to_string(),
            )
            .await;
        let failed = op.wait_phase(name, SessionPhase::Failed).await;
        let status = failed.status.expect("status");
        let condition = status.conditions.iter().find(|c| c.type_ == "Failed").expect("Failed condition");
        assert_eq!(condition.reason.as_deref(), Some(reason));
        assert!(status.message.as_deref().is_some_and(|m| m.contains(&format!("boom {code}"))), "{status:?}");
    }
    op.shutdown().await;
}

#[tokio::test]
async fn the_job_controllers_deadline_fails_the_session_with_timeout() {
    let op = Operator::start("op-timeout", true).await;
    let mut short = spec();
    short["timeout"] = json!(1);
    op.apply("slow", short).await;
    let kubelet = Kubelet::new(op.ns.client.clone(), &op.ns.name);
    let pod = kubelet.job_pod("slow-1", DEFAULT_TIMEOUT).await.metadata.name.expect("pod");
    kubelet.run(&pod).await;
    let failed = op.wait_phase("slow", SessionPhase::Failed).await;
    let condition = failed
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("condition");
    assert_eq!(condition.reason.as_deref(), Some("Timeout"));
    op.shutdown().await;
}

#[tokio::test]
async fn stop_leaves_no_job_and_restart_starts_a_new_run() {
    let op = Operator::start("op-stop", true).await;
    op.apply("stoppable", spec()).await;
    let kubelet = Kubelet::new(op.ns.client.clone(), &op.ns.name);
    let pod = kubelet.job_pod("stoppable-1", DEFAULT_TIMEOUT).await.metadata.name.expect("pod");
    kubelet.run(&pod).await;
    op.wait_phase("stoppable", SessionPhase::Running).await;

    let annotate =
        |phase: &str| json!({"metadata": {"annotations": {"ambient-code.io/desired-phase": phase}}});
    op.sessions()
        .patch("stoppable", &PatchParams::default(), &Patch::Merge(annotate("Stopped")))
        .await
        .expect("stop");
    let stopped = op.wait_phase("stoppable", SessionPhase::Stopped).await;
    assert_eq!(stopped.status.and_then(|s| s.stopped_reason), Some(StoppedReason::User));
    assert!(op.ns.api::<Job>().get_opt("stoppable-1").await.expect("get").is_none(), "no job left");

    op.sessions()
        .patch("stoppable", &PatchParams::default(), &Patch::Merge(annotate("Running")))
        .await
        .expect("restart");
    let jobs = op.ns.api::<Job>();
    eventually("run 2's job", DEFAULT_TIMEOUT, || {
        let jobs = jobs.clone();
        async move { jobs.get_opt("stoppable-2").await.ok().flatten() }
    })
    .await;
    op.shutdown().await;
}

#[tokio::test]
async fn deleting_the_session_lets_the_garbage_collector_remove_its_children() {
    let op = Operator::start("op-gc", true).await;
    op.apply("doomed", spec()).await;
    op.wait_phase("doomed", SessionPhase::Creating).await;
    op.sessions().delete("doomed", &DeleteParams::default()).await.expect("delete");
    let ns = op.ns.clone();
    eventually("children to be garbage-collected", DEFAULT_TIMEOUT, || {
        let ns = ns.clone();
        async move {
            let job = ns.api::<Job>().get_opt("doomed-1").await.ok()?;
            let secret = ns.api::<Secret>().get_opt("doomed-runner").await.ok()?;
            let pvc = ns.api::<PersistentVolumeClaim>().get_opt("doomed-workspace").await.ok()?;
            // A PVC may linger with its protection finalizer; it must be terminating.
            let pvc_gone = pvc.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
            (job.is_none() && secret.is_none() && pvc_gone).then_some(())
        }
    })
    .await;
    op.shutdown().await;
}

#[tokio::test]
async fn a_missing_secret_keeps_the_session_pending_until_it_appears() {
    let op = Operator::start("op-secret", false).await;
    op.apply("waiting", spec()).await;
    let pending = op.wait_phase("waiting", SessionPhase::Pending).await;
    let api = op.sessions();
    let status = eventually("SecretsReady=False", DEFAULT_TIMEOUT, || {
        let api = api.clone();
        async move {
            let s = api.get("waiting").await.ok()?.status?;
            s.conditions.iter().any(|c| c.type_ == "SecretsReady" && !c.is_true()).then_some(s)
        }
    })
    .await;
    let condition = status.conditions.iter().find(|c| c.type_ == "SecretsReady").expect("condition");
    assert!(
        condition.message.as_deref().is_some_and(|m| m.contains("ambient-runner-secrets")),
        "{condition:?}"
    );
    assert!(pending.metadata.name.is_some());
    assert!(op.ns.api::<Job>().get_opt("waiting-1").await.expect("get").is_none());

    create_secret(&op.ns).await;
    let creating = op.wait_phase("waiting", SessionPhase::Creating).await;
    assert_eq!(creating.status.and_then(|s| s.run), Some(1));
    op.shutdown().await;
}
