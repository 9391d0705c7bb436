//! A follow-up on the real node, with workspaces on claims: the parent's
//! pod leaves its Claude Code transcript on its claim; the follow-up's pod
//! mounts that claim read-only, and the real CLI in it resumes the same
//! conversation. (This machine's cluster has no storage provisioner: the
//! test plays the provisioner's part by creating a hostPath volume bound to
//! each workspace claim, which the real PV controller binds.)

mod common;

use std::os::unix::fs::PermissionsExt as _;

use acp_api::AgenticSession;
use acp_api::resume::{RESUME_ENV, Resume};
use acp_api::session::SessionPhase;
use acp_operator::children::Workspace;
use acp_testenv::model::Step;
use common::{Operator, POD_TIMEOUT, env_value};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// A hostPath volume under `dir`, reserved for claim `claim` of `ns`.
async fn volume_for(pvs: &Api<PersistentVolume>, dir: &std::path::Path, ns: &str, claim: &str) -> String {
    let path = dir.join(claim);
    std::fs::create_dir_all(&path).expect("volume dir");
    // The pod runs as uid 1000; a hostPath volume keeps the host's modes.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let name = format!("{ns}-{claim}");
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": path, "type": "Directory"},
            "claimRef": {"namespace": ns, "name": claim},
        }
    }))
    .expect("pv");
    pvs.create(&PostParams::default(), &pv).await.expect("create pv");
    name
}

#[tokio::test]
async fn a_follow_ups_pod_resumes_the_conversation_from_its_parents_claim() {
    let notes = "/workspace/repos/app/NOTES.md";
    let steps = vec![
        Step::tool("Write", json!({"file_path": notes, "content": "Notes from a pod.\n"})),
        Step::text("Wrote the notes."),
        Step::text("Added the changelog too."),
    ];
    let workspace = Workspace::Pvc { size: "1Gi".into(), storage_class: None };
    let op = Operator::start("op-follow", steps, workspace, true).await;
    let volumes = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(volumes.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pvs: Api<PersistentVolume> = Api::all(op.ns.client.clone());
    let mut created = Vec::new();
    for claim in ["first-workspace", "next-workspace"] {
        created.push(volume_for(&pvs, volumes.path(), &op.ns.name, claim).await);
    }

    op.apply("first", op.spec("app")).await;
    let first = op.wait_phase("first", SessionPhase::Completed, POD_TIMEOUT).await;
    let status = first.status.expect("status");
    let conversation = status.sdk_session_id.clone().expect("a conversation id");
    let pushed = status.result.expect("result").pushed_branches;

    // The follow-up, on the branch the first turn pushed.
    let mut spec = op.spec("app");
    spec["repos"][0]["branch"] = json!(pushed[0].branch);
    spec["initialPrompt"] = json!("Also add a changelog.");
    let next = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "next", "annotations": {"vteam.ambient-code/parent-session-id": "first"}},
        "spec": spec});
    op.sessions().patch("next", &PatchParams::apply("test-user"), &Patch::Apply(&next)).await.expect("apply");
    let done: AgenticSession = op.wait_phase("next", SessionPhase::Completed, POD_TIMEOUT).await;

    // The Job: the parent's claim, read-only, in the runner only; what it continues.
    let job = serde_json::to_value(op.ns.api::<Job>().get("next-1").await.expect("job")).expect("json");
    let pod = &job["spec"]["template"]["spec"];
    let claim = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "resume").cloned();
    assert_eq!(
        claim.map(|v| v["persistentVolumeClaim"].clone()),
        Some(json!({"claimName": "first-workspace", "readOnly": true}))
    );
    let resume: Resume = serde_json::from_str(
        env_value(&job, RESUME_ENV).and_then(|e| e["value"].as_str()).expect("RESUME_JSON"),
    )
    .expect("parse");
    assert_eq!(
        (resume.session_id.as_deref(), resume.workspace.as_deref(), resume.from.as_deref()),
        (Some(conversation.as_str()), Some("first"), Some("/resume/.acp/home"))
    );
    assert_eq!(resume.since.values().collect::<Vec<_>>(), [&pushed[0].commit]);

    // The CLI in the pod resumed the same conversation: the model got the
    // first turn as messages, and was told nothing was added since.
    assert_eq!(done.status.as_ref().and_then(|s| s.sdk_session_id.as_deref()), Some(conversation.as_str()));
    let requests = op.model.requests();
    let last = requests.last().expect("the follow-up's request");
    let messages = last.body["messages"].as_array().expect("messages");
    assert!(messages[0].to_string().contains("Write the notes."), "{messages:?}");
    assert!(
        messages.iter().any(|m| m["role"] == "assistant" && m.to_string().contains("Wrote the notes.")),
        "{messages:?}"
    );
    let asked = messages.last().map(ToString::to_string).unwrap_or_default();
    assert!(
        asked.contains("Also add a changelog.") && asked.contains("No commits were added to ambient/first"),
        "{asked}"
    );

    op.shutdown().await;
    for name in created {
        let _ = pvs.delete(&name, &DeleteParams::default()).await;
    }
}
