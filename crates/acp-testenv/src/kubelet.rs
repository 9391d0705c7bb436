//! Playing the kubelet: there is no node, so tests move a Job's pod through its
//! lifecycle by writing pod status, the way envtest users do. The real Job
//! controller (in kube-controller-manager) then reacts as it would on a cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::wait::eventually;

/// Writes pod status in one namespace, as a kubelet would.
#[derive(Clone)]
pub struct Kubelet {
    pods: Api<Pod>,
}

impl Kubelet {
    /// A kubelet for the pods of `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self { pods: Api::namespaced(client, namespace) }
    }

    /// Waits until the Job controller created a pod for `job` and returns it.
    pub async fn job_pod(&self, job: &str, timeout: Duration) -> Pod {
        let selector = format!("batch.kubernetes.io/job-name={job}");
        eventually(&format!("a pod of job {job}"), timeout, || {
            let pods = self.pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
                list.items.into_iter().find(|p| p.metadata.deletion_timestamp.is_none())
            }
        })
        .await
    }

    /// Puts the pod `Running` with every container started.
    pub async fn run(&self, pod: &str) {
        let now = now();
        let statuses: Vec<_> = self
            .containers(pod)
            .await
            .into_iter()
            .map(|(name, image)| {
                json!({
                    "name": name, "image": image, "imageID": "", "ready": true, "started": true,
                    "restartCount": 0, "state": {"running": {"startedAt": now}}
                })
            })
            .collect();
        self.patch_status(
            pod,
            json!({
                "phase": "Running",
                "startTime": now,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}
                ],
                "containerStatuses": statuses
            }),
        )
        .await;
    }

    /// Ends the pod: every container terminated with `exit_code` and the first
    /// container's termination `message`; phase `Succeeded` for 0, else `Failed`.
    pub async fn terminate(&self, pod: &str, exit_code: i32, message: &str) {
        let now = now();
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        let statuses: Vec<_> = self
            .containers(pod)
            .await
            .into_iter()
            .enumerate()
            .map(|(i, (name, image))| {
                let message = if i == 0 { message } else { "" };
                json!({
                    "name": name, "image": image, "imageID": "", "ready": false, "started": false,
                    "restartCount": 0,
                    "state": {"terminated": {
                        "exitCode": exit_code, "reason": reason, "message": message,
                        "startedAt": now, "finishedAt": now
                    }}
                })
            })
            .collect();
        self.patch_status(pod, json!({
            "phase": if exit_code == 0 { "Succeeded" } else { "Failed" },
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
            ],
            "containerStatuses": statuses
        }))
        .await;
    }

    /// Leaves the pod `Pending` with its first container waiting for `reason`
    /// (for example `ImagePullBackOff` or `CrashLoopBackOff`).
    pub async fn wait_reason(&self, pod: &str, reason: &str, message: &str) {
        let statuses: Vec<_> = self
            .containers(pod)
            .await
            .into_iter()
            .map(|(name, image)| {
                json!({
                    "name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}}
                })
            })
            .collect();
        self.patch_status(pod, json!({"phase": "Pending", "containerStatuses": statuses})).await;
    }

    async fn containers(&self, pod: &str) -> Vec<(String, String)> {
        let pod = self.pods.get(pod).await.unwrap_or_else(|e| panic!("failed to read pod {pod}: {e}"));
        pod.spec
            .map(|s| s.containers.into_iter().map(|c| (c.name, c.image.unwrap_or_default())).collect())
            .unwrap_or_default()
    }

    async fn patch_status(&self, pod: &str, status: serde_json::Value) {
        self.pods
            .patch_status(pod, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
            .await
            .unwrap_or_else(|e| panic!("failed to write status of pod {pod}: {e}"));
    }
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
