//! Turning a Job and its pod into the state machine's [`Progress`] (pure).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::state::Progress;

/// The runner container's name.
pub use acp_api::constants::runner_pod::RUNNER_CONTAINER;

/// What a run's Job and (newest) pod say.
pub fn progress(job: &Job, pod: Option<&Pod>) -> Progress {
    if job.metadata.deletion_timestamp.is_some() {
        return Progress::Terminating;
    }
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let failed = conditions.and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"));
    // The Job controller records `FailureTarget` before it terminates the pod
    // past the deadline (and `Failed` only once the pod is gone): the runner's
    // exit on that SIGTERM (143) must not read as a stop by signal.
    let deadline = conditions.is_some_and(|c| {
        c.iter().any(|c| {
            matches!(c.type_.as_str(), "Failed" | "FailureTarget")
                && c.status == "True"
                && c.reason.as_deref() == Some("DeadlineExceeded")
        })
    });
    if deadline {
        return Progress::DeadlineExceeded;
    }
    if let Some(progress) = pod.and_then(pod_progress) {
        return progress;
    }
    let complete = conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Complete" && c.status == "True"));
    if complete || failed.is_some() {
        // The pod is gone (garbage-collected); the Job still knows the outcome.
        return Progress::Exited {
            code: if complete { 0 } else { -1 },
            message: None,
            started: job.status.as_ref().and_then(|s| s.start_time.clone()),
            finished: job.status.as_ref().and_then(|s| s.completion_time.clone()),
        };
    }
    Progress::Waiting { reason: None, message: None }
}

fn pod_progress(pod: &Pod) -> Option<Progress> {
    let status = pod.status.as_ref()?;
    let container = status
        .container_statuses
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.name == RUNNER_CONTAINER))
        .and_then(|c| c.state.clone());
    if let Some(state) = container {
        if let Some(t) = state.terminated {
            return Some(Progress::Exited {
                code: t.exit_code,
                message: t.message.filter(|m| !m.is_empty()),
                started: t.started_at,
                finished: t.finished_at,
            });
        }
        if let Some(r) = state.running {
            return Some(Progress::Running { started: r.started_at });
        }
        if let Some(w) = state.waiting {
            return Some(
                sidecar_trouble(status).unwrap_or(Progress::Waiting { reason: w.reason, message: w.message }),
            );
        }
    }
    if let Some(trouble) = sidecar_trouble(status) {
        return Some(trouble);
    }
    let unschedulable = status.conditions.as_ref().and_then(|c| {
        c.iter().find(|c| {
            c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
        })
    });
    unschedulable
        .map(|c| Progress::Waiting { reason: Some("Unschedulable".into()), message: c.message.clone() })
}

/// The credentials sidecar starts first and the runner waits for it
/// (`PodInitializing`): the sidecar's trouble (an image it cannot pull, a
/// crash loop) is the run's.
fn sidecar_trouble(status: &k8s_openapi::api::core::v1::PodStatus) -> Option<Progress> {
    let waiting = status
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == acp_api::constants::runner_pod::CREDENTIALS_CONTAINER)?
        .state
        .clone()?
        .waiting?;
    let reason = waiting.reason.filter(|r| r != "PodInitializing")?;
    Some(Progress::Waiting { reason: Some(reason), message: waiting.message })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "s-1"}, "status": status})).expect("job")
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).expect("pod")
    }

    #[test]
    fn maps_container_states() {
        let j = job(json!({}));
        let running = pod(
            json!({"containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
        );
        assert!(matches!(progress(&j, Some(&running)), Progress::Running { started: Some(_) }));
        let done = pod(
            json!({"containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "message": "{}"}}}]}),
        );
        assert!(matches!(progress(&j, Some(&done)), Progress::Exited { code: 2, .. }));
        let pulling = pod(
            json!({"containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
        );
        assert!(
            matches!(progress(&j, Some(&pulling)), Progress::Waiting { reason: Some(r), .. } if r == "ImagePullBackOff")
        );
        let sidecar_pulling = pod(json!({
            "initContainerStatuses": [{"name": "credentials", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}],
            "containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]
        }));
        assert!(
            matches!(progress(&j, Some(&sidecar_pulling)), Progress::Waiting { reason: Some(r), .. } if r == "ErrImagePull")
        );
        let unschedulable = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/0 nodes"}]}),
        );
        assert!(
            matches!(progress(&j, Some(&unschedulable)), Progress::Waiting { reason: Some(r), .. } if r == "Unschedulable")
        );
        assert!(matches!(progress(&j, None), Progress::Waiting { reason: None, .. }));
    }

    #[test]
    fn job_conditions_win_when_they_decide() {
        let deadline =
            job(json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}));
        assert_eq!(progress(&deadline, None), Progress::DeadlineExceeded);
        let terminating = job(
            json!({"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}),
        );
        let signalled = pod(
            json!({"containerStatuses": [{"name": "runner", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 143}}}]}),
        );
        assert_eq!(progress(&terminating, Some(&signalled)), Progress::DeadlineExceeded);
        let complete = job(json!({"conditions": [{"type": "Complete", "status": "True"}]}));
        assert!(matches!(progress(&complete, None), Progress::Exited { code: 0, .. }));
    }
}
