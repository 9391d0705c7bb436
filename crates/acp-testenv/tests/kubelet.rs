//! The harness's kubelet drives a real Job through the real Job controller.

use std::time::Duration;

use acp_testenv::{DEFAULT_TIMEOUT, Kubelet, TestEnv, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [{"name": "runner", "image": "example.invalid/runner:test",
                                "terminationMessagePolicy": "File"}]
            }}
        }
    }))
    .expect("valid job")
}

async fn job_condition(jobs: &Api<Job>, name: &str, type_: &str) -> Job {
    eventually(&format!("job {name} condition {type_}"), DEFAULT_TIMEOUT, || async {
        let job = jobs.get(name).await.ok()?;
        let done =
            job.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == type_ && c.status == "True");
        done.then_some(job)
    })
    .await
}

#[tokio::test]
async fn pod_runs_then_succeeds_and_the_job_completes() {
    let env = TestEnv::get();
    let ns = env.namespace("kubelet-ok").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("ok")).await.expect("create job");

    let kubelet = Kubelet::new(ns.client.clone(), &ns.name);
    let pod = kubelet.job_pod("ok", DEFAULT_TIMEOUT).await;
    let pod_name = pod.metadata.name.expect("named pod");
    kubelet.run(&pod_name).await;

    let jobs2 = jobs.clone();
    eventually("job counts the pod as active and ready", DEFAULT_TIMEOUT, || async {
        let status = jobs2.get("ok").await.ok()?.status?;
        (status.active == Some(1) && status.ready == Some(1)).then_some(())
    })
    .await;

    kubelet.terminate(&pod_name, 0, r#"{"outcome":"success"}"#).await;
    let done = job_condition(&jobs, "ok", "Complete").await;
    assert_eq!(done.status.and_then(|s| s.succeeded), Some(1));

    let pods: Api<Pod> = ns.api();
    let pod = pods.get(&pod_name).await.expect("pod");
    let state = pod.status.and_then(|s| s.container_statuses).expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(state.exit_code, 0);
    assert_eq!(state.message.as_deref(), Some(r#"{"outcome":"success"}"#));
}

#[tokio::test]
async fn non_zero_exit_fails_the_job() {
    let env = TestEnv::get();
    let ns = env.namespace("kubelet-fail").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("bad")).await.expect("create job");

    let kubelet = Kubelet::new(ns.client.clone(), &ns.name);
    let pod = kubelet.job_pod("bad", DEFAULT_TIMEOUT).await;
    let pod_name = pod.metadata.name.expect("named pod");
    kubelet.run(&pod_name).await;
    kubelet.terminate(&pod_name, 2, "clone failed").await;

    let failed = job_condition(&jobs, "bad", "Failed").await;
    let reason = failed
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Failed"))
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
}

#[tokio::test]
async fn waiting_reason_is_visible_on_the_pod() {
    let env = TestEnv::get();
    let ns = env.namespace("kubelet-wait").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("pull")).await.expect("create job");
    let kubelet = Kubelet::new(ns.client.clone(), &ns.name);
    let pod = kubelet.job_pod("pull", Duration::from_secs(60)).await;
    let pod_name = pod.metadata.name.expect("named pod");
    kubelet.wait_reason(&pod_name, "ImagePullBackOff", "Back-off pulling image").await;

    let pods: Api<Pod> = ns.api();
    let pod = pods.get(&pod_name).await.expect("pod");
    let waiting = pod.status.and_then(|s| s.container_statuses).expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
}
