//! The operator on the real cluster: kube-apiserver, kube-controller-manager
//! (Job controller, garbage collector), kube-scheduler and a node whose kubelet
//! runs every run's pod from the runner image built from `images/runner`. In
//! the pod, `acp runner` clones from a git server on this machine and drives
//! the real Claude Code CLI against a scripted Messages API; its verdict comes
//! back through the real termination message and exit code.

use std::time::{Duration, Instant};

use acp_api::session::{SessionPhase, StoppedReason};
use acp_operator::children::Workspace;
use acp_testenv::githttp::git;
use acp_testenv::model::Step;
use acp_testenv::{DEFAULT_TIMEOUT, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

mod common;

use common::{API_KEY, GIT_TOKEN, Operator, POD_TIMEOUT, env_value};

#[tokio::test]
async fn a_session_runs_in_a_real_pod_and_completes_with_the_runners_result() {
    let notes = "/workspace/repos/app/NOTES.md";
    let steps = vec![
        Step::tool(
            "Bash",
            json!({"command": "id -u && touch /home/runner/probe 2>&1; true", "description": "who am I"}),
        ),
        Step::tool("Write", json!({"file_path": notes, "content": "Notes from a pod.\n"})),
        Step::text("Wrote the notes."),
    ];
    let op = Operator::start("op-life", steps, Workspace::EmptyDir, true).await;
    op.apply("fix-bug", op.spec("app")).await;
    let creating = op.wait_job_created("fix-bug").await;
    let uid = creating.metadata.uid.clone().expect("uid");
    let status = creating.status.expect("status");
    assert_eq!(status.job_name.as_deref(), Some("fix-bug-1"));
    assert_eq!(status.run, Some(1));

    // Secret: only the runner keys, owned by the session.
    let secret = op.ns.api::<Secret>().get("fix-bug-runner").await.expect("secret");
    let keys: Vec<_> = secret.data.as_ref().expect("data").keys().cloned().collect();
    assert_eq!(keys, ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GIT_TOKEN"]);
    let owner = &secret.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!((owner.uid.as_str(), owner.controller), (uid.as_str(), Some(true)));
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
    assert_eq!(mounts, ["/workspace", "/tmp"], "no Secret in the runner's container");
    assert_eq!(pod["initContainers"][0]["name"], "credentials");
    assert_eq!(env_value(&job_json, "AGENTIC_SESSION_NAME").expect("name")["value"], "fix-bug");
    assert_eq!(env_value(&job_json, "INITIAL_PROMPT").expect("prompt")["value"], "Write the notes.");
    assert_eq!(env_value(&job_json, "MAX_TURNS").expect("turns")["value"], "9");
    assert_eq!(env_value(&job_json, "INACTIVITY_TIMEOUT").expect("inactivity")["value"], "120");
    assert_eq!(env_value(&job_json, "SESSION_ENV_JSON").expect("env")["value"], r#"{"LOG_LEVEL":"debug"}"#);
    assert_eq!(
        env_value(&job_json, "ANTHROPIC_API_KEY").expect("key")["value"],
        "held-by-the-acp-credentials-sidecar"
    );

    // The kubelet runs the pod; the runner works; its exit and termination
    // message end the session.
    let done = op.wait_phase("fix-bug", SessionPhase::Completed, POD_TIMEOUT).await;
    let status = done.status.expect("status");
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let result = status.result.expect("result");
    assert_eq!(result.summary.as_deref(), Some("Wrote the notes."), "{result:?}");
    assert_eq!(result.num_turns, Some(3));
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.is_true()));
    assert!(status.conditions.iter().any(|c| c.type_ == "RunnerStarted" && c.is_true()));
    assert_eq!(status.observed_generation, done.metadata.generation);

    // What the agent saw: the Job's user, a read-only root filesystem, the key.
    let requests = op.model.requests();
    assert!(requests.iter().all(|r| r.api_key.as_deref() == Some(API_KEY)));
    let (_, whoami) = requests[1].tool_results().into_iter().next().expect("Bash result");
    assert!(whoami.starts_with("1000"), "the runner runs as uid 1000: {whoami}");
    assert!(whoami.contains("Read-only file system"), "the root filesystem is read-only: {whoami}");

    // The push from the pod: ambient/<session> with the agent's file.
    let [pushed] = result.pushed_branches.as_slice() else { panic!("one pushed branch: {result:?}") };
    assert_eq!(pushed.branch, "ambient/fix-bug");
    let bare = op.git.root().join("app.git");
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/ambient/fix-bug"]).trim(), pushed.commit);
    assert_eq!(git(&bare, &["show", "ambient/fix-bug:NOTES.md"]), "Notes from a pod.\n");

    // The pod really ran the image and ended as the Job controller saw it.
    let pod_status = eventually("the pod to be Succeeded", DEFAULT_TIMEOUT, || async {
        let pod = op.pods("fix-bug-1").await.into_iter().next()?;
        pod.status.filter(|s| s.phase.as_deref() == Some("Succeeded"))
    })
    .await;
    let terminated = pod_status.container_statuses.expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(terminated.exit_code, 0);
    let message: Value = serde_json::from_str(terminated.message.as_deref().expect("termination message"))
        .expect("the termination message is JSON");
    assert_eq!(message["summary"], "Wrote the notes.");

    // Re-applying the unchanged manifest never re-runs.
    op.apply("fix-bug", op.spec("app")).await;
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
    op.shutdown().await;
}

#[tokio::test]
async fn exit_codes_1_and_2_fail_with_distinct_reasons() {
    let error = Step::error(400, "invalid_request_error", "messages.0: scripted failure 42");
    let op = Operator::start("op-fail", vec![error; 6], Workspace::EmptyDir, true).await;
    // Exit 2: the clone fails (no such repository).
    op.apply("prereq", op.spec("missing")).await;
    // Exit 1: the model API refuses every request.
    op.apply("agent-err", op.spec("app")).await;
    for (name, reason, says) in
        [("prereq", "PrerequisiteFailed", "missing.git"), ("agent-err", "AgentError", "scripted failure 42")]
    {
        let failed = op.wait_phase(name, SessionPhase::Failed, POD_TIMEOUT).await;
        let status = failed.status.expect("status");
        let condition = status.conditions.iter().find(|c| c.type_ == "Failed").expect("Failed condition");
        assert_eq!(condition.reason.as_deref(), Some(reason), "{status:?}");
        assert!(status.message.as_deref().is_some_and(|m| m.contains(says)), "{name}: {status:?}");
        let pod = op.pods(&format!("{name}-1")).await.into_iter().next().expect("pod");
        let code = pod.status.and_then(|s| s.container_statuses).and_then(|c| c[0].state.clone()?.terminated);
        assert_eq!(code.map(|t| t.exit_code), Some(if name == "prereq" { 2 } else { 1 }));
    }
    op.shutdown().await;
}

#[tokio::test]
async fn a_hung_run_is_killed_by_the_jobs_deadline_and_fails_with_timeout() {
    let op = Operator::start("op-timeout", vec![Step::Hang], Workspace::EmptyDir, true).await;
    let mut short = op.spec("app");
    short["timeout"] = json!(15);
    op.apply("slow", short).await;
    op.wait_phase("slow", SessionPhase::Running, POD_TIMEOUT).await;
    let failed = op.wait_phase("slow", SessionPhase::Failed, POD_TIMEOUT).await;
    let condition = failed
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("condition");
    assert_eq!(condition.reason.as_deref(), Some("Timeout"));
    assert_eq!(op.model.requests().len(), 1, "the agent was waiting on the model");
    // The deadline really ended the pod.
    let jobs = op.ns.api::<Job>();
    let job = jobs.get("slow-1").await.expect("job");
    assert!(job.status.and_then(|s| s.active).unwrap_or(0) == 0, "no pod still active");
    op.shutdown().await;
}

#[tokio::test]
async fn stop_deletes_the_pod_promptly_and_the_model_hears_nothing_after() {
    let busy = || Step::tool("Bash", json!({"command": "sleep 1", "description": "work"}));
    let op = Operator::start("op-stop", (0..60).map(|_| busy()).collect(), Workspace::EmptyDir, true).await;
    op.apply("stoppable", op.spec("app")).await;
    op.wait_phase("stoppable", SessionPhase::Running, POD_TIMEOUT).await;
    let model = &op.model;
    eventually("the agent at work", POD_TIMEOUT, || async { (model.requests().len() >= 2).then_some(()) })
        .await;

    let annotate =
        |phase: &str| json!({"metadata": {"annotations": {"ambient-code.io/desired-phase": phase}}});
    let asked = Instant::now();
    op.sessions()
        .patch("stoppable", &PatchParams::default(), &Patch::Merge(annotate("Stopped")))
        .await
        .expect("stop");
    // The pod object goes only once the kubelet has killed its containers.
    eventually("the run's pod to be gone", Duration::from_secs(30), || async {
        op.pods("stoppable-1").await.is_empty().then_some(())
    })
    .await;
    let gone = Instant::now();
    let took = gone - asked;
    assert!(took < Duration::from_secs(20), "stop took {took:?}");
    let stopped = op.wait_phase("stoppable", SessionPhase::Stopped, DEFAULT_TIMEOUT).await;
    assert_eq!(stopped.status.and_then(|s| s.stopped_reason), Some(StoppedReason::User));
    assert!(op.ns.api::<Job>().get_opt("stoppable-1").await.expect("get").is_none(), "no job left");
    let late: Vec<_> = op.model.requests().into_iter().filter(|r| r.at > gone).collect();
    assert!(late.is_empty(), "{} model requests after the pod was gone", late.len());

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

/// A Job deleted behind the operator's back (by hand here; by its TTL while
/// the operator was down in life) is not run a second time: the session ends
/// Failed with reason RunLost and a warning event, and only a restart request
/// starts run 2.
#[tokio::test]
async fn a_job_deleted_behind_the_operators_back_is_run_lost_not_run_again() {
    let busy = || Step::tool("Bash", json!({"command": "sleep 1", "description": "work"}));
    let op = Operator::start("op-lost", (0..60).map(|_| busy()).collect(), Workspace::EmptyDir, true).await;
    op.apply("lost", op.spec("app")).await;
    op.wait_phase("lost", SessionPhase::Running, POD_TIMEOUT).await;
    op.ns.api::<Job>().delete("lost-1", &DeleteParams::background()).await.expect("delete the job");

    let failed = op.wait_phase("lost", SessionPhase::Failed, DEFAULT_TIMEOUT).await;
    let status = failed.status.expect("status");
    assert_eq!(status.run, Some(1));
    let condition = acp_api::condition::find(&status.conditions, "Failed").expect("Failed condition");
    assert_eq!(condition.reason.as_deref(), Some("RunLost"), "{condition:?}");
    let events = op.ns.api::<k8s_openapi::api::events::v1::Event>();
    eventually("a RunLost event", DEFAULT_TIMEOUT, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("RunLost")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lost")
            })
        }
    })
    .await;
    let jobs = op.ns.api::<Job>();
    eventually("the deleted job to be gone", DEFAULT_TIMEOUT, || {
        let jobs = jobs.clone();
        async move { jobs.get_opt("lost-1").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let left = jobs.list(&ListParams::default().labels("ambient-code.io/session=lost")).await.expect("jobs");
    assert!(
        left.items.is_empty(),
        "no job re-created: {:?}",
        left.items.iter().map(|j| j.metadata.name.clone()).collect::<Vec<_>>()
    );
    let after = op.sessions().get("lost").await.expect("session");
    assert_eq!(after.status.and_then(|s| s.run), Some(1), "no second run");

    op.sessions()
        .patch(
            "lost",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"ambient-code.io/desired-phase": "Running"}}})),
        )
        .await
        .expect("restart");
    eventually("run 2's job, asked for", DEFAULT_TIMEOUT, || {
        let jobs = jobs.clone();
        async move { jobs.get_opt("lost-2").await.ok().flatten() }
    })
    .await;
    op.shutdown().await;
}

/// With the PVC workspace, the claim is created and owned. (This node has no
/// storage provisioner, so the pod stays Pending; only the children matter.)
#[tokio::test]
async fn deleting_the_session_lets_the_garbage_collector_remove_its_children() {
    let workspace = Workspace::Pvc { size: "1Gi".into(), storage_class: None };
    let op = Operator::start("op-gc", Vec::new(), workspace, true).await;
    op.apply("doomed", op.spec("app")).await;
    let creating = op.wait_job_created("doomed").await;
    let uid = creating.metadata.uid.expect("uid");
    let pvc = op.ns.api::<PersistentVolumeClaim>().get("doomed-workspace").await.expect("pvc");
    assert_eq!(pvc.metadata.owner_references.expect("owner")[0].uid, uid);
    let job = op.ns.api::<Job>().get("doomed-1").await.expect("job");
    let volumes =
        serde_json::to_value(job.spec.expect("spec").template.spec.expect("pod").volumes).expect("json");
    assert_eq!(volumes[0]["persistentVolumeClaim"]["claimName"], "doomed-workspace");
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
    let op = Operator::start("op-secret", vec![Step::text("Done.")], Workspace::EmptyDir, false).await;
    op.apply("waiting", op.spec("app")).await;
    let pending = op.wait_phase("waiting", SessionPhase::Pending, DEFAULT_TIMEOUT).await;
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

    op.create_secret().await;
    let done = op.wait_phase("waiting", SessionPhase::Completed, POD_TIMEOUT).await;
    assert_eq!(done.status.and_then(|s| s.run), Some(1));
    op.shutdown().await;
}

#[tokio::test]
async fn an_image_the_node_cannot_pull_surfaces_in_the_runner_started_condition() {
    let image = "localhost:1/acp/not-built:0";
    let op = Operator::start_with_image("op-pull", Vec::new(), Workspace::EmptyDir, true, image).await;
    op.apply("unpullable", op.spec("app")).await;
    let api = op.sessions();
    let condition = eventually("RunnerStarted=False for the pull", POD_TIMEOUT, || {
        let api = api.clone();
        async move {
            let status = api.get("unpullable").await.ok()?.status?;
            let c = status.conditions.into_iter().find(|c| c.type_ == "RunnerStarted")?;
            matches!(c.reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff")).then_some(c)
        }
    })
    .await;
    assert!(!condition.is_true());
    assert!(condition.message.as_deref().is_some_and(|m| m.contains("localhost:1")), "{condition:?}");
    op.shutdown().await;
}

/// The hostile agent of a prompt injection, on the real node: it hunts for
/// credentials everywhere its pod lets it (its environment, PID 1's, every
/// process's it can see, every file named like a token, the Secret's and
/// the ServiceAccount token's mount points) and reports it all to the model.
/// The model must hear none of them, while the session still works: the
/// sidecar adds the key to every model request and pushes with the token.
#[tokio::test]
async fn an_agent_hunting_for_credentials_in_its_pod_reports_none() {
    let hunt = "env; echo '-- pid 1'; tr '\\0' '\\n' < /proc/1/environ; \
                echo '-- tokens'; find / -name '*token*' 2>/dev/null; \
                echo '-- mounts'; ls -la /var/run/acp/secrets /var/run/secrets/kubernetes.io/serviceaccount 2>&1; \
                echo '-- processes'; for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done | sort -u; true";
    let notes = "/workspace/repos/app/NOTES.md";
    let steps = vec![
        Step::tool("Bash", json!({"command": hunt, "description": "look around"})),
        Step::tool("Write", json!({"file_path": notes, "content": "Nothing found.\n"})),
        Step::text("Found nothing."),
    ];
    let op = Operator::start("op-hunt", steps, Workspace::EmptyDir, true).await;
    op.apply("hunt", op.spec("app")).await;
    let done = op.wait_phase("hunt", SessionPhase::Completed, POD_TIMEOUT).await;
    let result = done.status.and_then(|s| s.result).expect("result");

    let requests = op.model.requests();
    let (_, report) = requests[1].tool_results().into_iter().next().expect("the hunt's output");
    for section in ["-- pid 1", "-- tokens", "-- mounts", "-- processes"] {
        assert!(report.contains(section), "the hunt did not run through: {report}");
    }
    assert!(report.contains("ANTHROPIC_API_KEY=held-by-the-acp-credentials-sidecar"), "{report}");
    assert!(!report.contains(API_KEY), "the agent found the model key: {report}");
    assert!(!report.contains(GIT_TOKEN), "the agent found the git token: {report}");
    assert!(!report.contains("serviceaccount/token"), "a ServiceAccount token is mounted: {report}");

    // And yet the model got the key and the remote got the push.
    assert!(requests.iter().all(|r| r.api_key.as_deref() == Some(API_KEY)));
    let [pushed] = result.pushed_branches.as_slice() else { panic!("one pushed branch: {result:?}") };
    let bare = op.git.root().join("app.git");
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/ambient/hunt"]).trim(), pushed.commit);

    // Egress: the operator gave the namespace its policy, selecting this pod.
    let policy = op.ns.api::<NetworkPolicy>().get("acp-runner-egress").await.expect("egress policy");
    let pod = op.pods("hunt-1").await.into_iter().next().expect("pod");
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let selector = policy.spec.as_ref().and_then(|s| s.pod_selector.clone()).expect("selector");
    assert!(selector.match_labels.unwrap_or_default().iter().all(|(k, v)| labels.get(k) == Some(v)));
    assert!(selector.match_expressions.unwrap_or_default().iter().all(|e| labels.contains_key(&e.key)));
    let policy = serde_json::to_value(&policy).expect("json");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Egress"]));
    assert!(policy.to_string().contains("169.254.0.0/16"), "the metadata endpoint is not excluded: {policy}");
    op.shutdown().await;
}
