//! 20,000 sessions in one source, on the real control plane (kube-apiserver,
//! etcd): git-sync applies them all and its inventory, compacted, lists every
//! one in a status etcd stores (as a list it would be over etcd's 1.5 MiB
//! object limit); a one-file commit then changes one session and nothing else.

mod common;

use std::time::{Duration, Instant};

use acp_testenv::TestEnv;
use common::{Fixture, session};
use kube::api::{Api, DynamicObject, ListParams};

const SESSIONS: usize = 20_000;
const WAIT: Duration = Duration::from_secs(900);

#[tokio::test]
async fn twenty_thousand_sessions_in_one_source_fit_its_inventory() {
    let f = Fixture::start_in(TestEnv::control_plane_only(), "scale").await;
    for i in 0..SESSIONS {
        f.repo.write(&format!("sessions/s-{i:05}.yaml"), &session(&format!("s-{i:05}"), "scale"));
    }
    let first = f.repo.commit("twenty thousand sessions");
    let started = Instant::now();
    f.source("big", serde_json::json!({"path": "sessions"})).await;
    let status = f
        .wait_status_within("big", "the first sync of 20,000 files", WAIT, |s| {
            (s.last_applied_revision.as_deref() == Some(first.as_str())).then(|| s.clone())
        })
        .await;
    println!("20,000 sessions synced in {:.1} s", started.elapsed().as_secs_f64());
    assert!(status.errors.is_empty(), "{:?}", &status.errors[..status.errors.len().min(3)]);
    assert_eq!(status.inventory.len(), SESSIONS, "the inventory lists every session");
    let listed = f.sessions().list_metadata(&ListParams::default()).await.expect("list").items.len();
    assert_eq!(listed, SESSIONS);

    // As stored: compact, and far below etcd's limit.
    let raw: Api<DynamicObject> = Api::namespaced_with(
        f.ns.client.clone(),
        &f.ns.name,
        &kube::discovery::ApiResource::erase::<acp_api::SessionSource>(&()),
    );
    let stored = raw.get("big").await.expect("source");
    let stored_status = &stored.data["status"];
    assert!(stored_status.get("inventory").is_none(), "no plain list at this size");
    assert_eq!(stored_status["compactInventory"]["entries"], SESSIONS);
    let bytes = serde_json::to_vec(&stored.data).expect("json").len();
    println!("the source object is {bytes} bytes");
    assert!(bytes < 512 * 1024, "{bytes} bytes");

    // One file changes: one session is updated, the others keep their resourceVersion.
    let before = f.sessions().get("s-00042").await.expect("session").metadata.resource_version;
    let untouched = f.sessions().get("s-10000").await.expect("session").metadata.resource_version;
    f.repo.write("sessions/s-00042.yaml", &session("s-00042", "changed"));
    let second = f.repo.commit("one file");
    let started = Instant::now();
    f.trigger("big", "one-file").await;
    let status = f
        .wait_status_within("big", "the one-file sync", WAIT, |s| {
            (s.last_applied_revision.as_deref() == Some(second.as_str())).then(|| s.clone())
        })
        .await;
    println!("a one-file commit to 20,000 files synced in {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(status.inventory.len(), SESSIONS);
    let changed = status.inventory.iter().filter(|e| e.revision == second).count();
    assert_eq!(changed, 1, "only the changed file's entry moves to the new revision");
    assert_ne!(f.sessions().get("s-00042").await.expect("session").metadata.resource_version, before);
    assert_eq!(f.sessions().get("s-10000").await.expect("session").metadata.resource_version, untouched);
    f.stop().await;
}
