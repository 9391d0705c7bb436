//! The harness's node: real pods through the real Job controller, scheduler,
//! kubelet, containerd and CNI, with the images built from `images/`.

use std::time::Duration;

use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const POD_TIMEOUT: Duration = Duration::from_secs(120);

fn job(name: &str, image: &str, script: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [{"name": "runner", "image": image, "imagePullPolicy": "IfNotPresent",
                                "command": ["bash", "-c", script], "terminationMessagePolicy": "File"}]
            }}
        }
    }))
    .expect("valid job")
}

async fn job_condition(jobs: &Api<Job>, name: &str, type_: &str) -> Job {
    eventually(&format!("job {name} condition {type_}"), POD_TIMEOUT, || async {
        let job = jobs.get(name).await.ok()?;
        let done =
            job.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == type_ && c.status == "True");
        done.then_some(job)
    })
    .await
}

async fn job_pod(pods: &Api<Pod>, job: &str) -> Pod {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    eventually(&format!("the pod of {job}"), DEFAULT_TIMEOUT, || async {
        pods.list(&ListParams::default().labels(&selector)).await.ok()?.items.into_iter().next()
    })
    .await
}

#[tokio::test]
async fn a_job_pod_runs_the_runner_image_and_reports_its_termination_message() {
    let env = TestEnv::get();
    let node = env.node();
    let ns = env.namespace("node-ok").await;
    let jobs: Api<Job> = ns.api();
    // The pod reaches the API server through the `kubernetes` Service
    // (kube-proxy) and this machine at ACP_HOST_ADDRESS.
    let host = tokio::net::TcpListener::bind((env.host_address(), 0)).await.expect("bind host address");
    let port = host.local_addr().expect("addr").port();
    let accept = tokio::spawn(async move { host.accept().await.map(|_| ()) });
    let script = format!(
        "set -e; exec 3<>/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT; \
         exec 4<>/dev/tcp/{}/{port}; \
         echo \"{{\\\"outcome\\\":\\\"success\\\",\\\"user\\\":$(id -u)}}\" > /dev/termination-log",
        env.host_address()
    );
    jobs.create(&PostParams::default(), &job("ok", &node.runner_image, &script)).await.expect("create job");
    let done = job_condition(&jobs, "ok", "Complete").await;
    assert_eq!(done.status.and_then(|s| s.succeeded), Some(1));
    tokio::time::timeout(DEFAULT_TIMEOUT, accept)
        .await
        .expect("the pod connected")
        .expect("task")
        .expect("accept");

    let pod = job_pod(&ns.api(), "ok").await;
    let state = pod.status.and_then(|s| s.container_statuses).expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(state.exit_code, 0);
    assert_eq!(state.message.as_deref(), Some("{\"outcome\":\"success\",\"user\":1000}\n"));
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_job() {
    let env = TestEnv::get();
    let ns = env.namespace("node-fail").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("bad", &env.node().image, "exit 2")).await.expect("create job");
    let failed = job_condition(&jobs, "bad", "Failed").await;
    let reason = failed
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Failed"))
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
    let pod = job_pod(&ns.api(), "bad").await;
    let code = pod.status.and_then(|s| s.container_statuses).and_then(|c| c[0].state.clone()?.terminated);
    assert_eq!(code.map(|t| t.exit_code), Some(2));
}

#[tokio::test]
async fn an_image_that_is_not_on_the_node_waits_in_image_pull_back_off() {
    let env = TestEnv::get();
    let ns = env.namespace("node-pull").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("pull", "localhost:1/acp/not-built:0", "true"))
        .await
        .expect("job");
    let pods: Api<Pod> = ns.api();
    let reason = eventually("the kubelet to report the failed pull", POD_TIMEOUT, || async {
        let pod = job_pod(&pods, "pull").await;
        let waiting = pod.status?.container_statuses?[0].state.clone()?.waiting?;
        waiting.reason.filter(|r| r == "ImagePullBackOff" || r == "ErrImagePull")
    })
    .await;
    assert!(reason == "ImagePullBackOff" || reason == "ErrImagePull", "{reason}");
}
