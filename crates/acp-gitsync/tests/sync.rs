//! git-sync against the real API server and real git repositories.

mod common;

use acp_api::condition::find;
use acp_api::constants::{annotations, labels};
use common::{Fixture, session};
use kube::ResourceExt as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

fn generation(o: &DynamicObject) -> i64 {
    o.metadata.generation.unwrap_or_default()
}

#[tokio::test]
async fn commits_sync_update_and_prune_only_what_left_git() {
    let f = Fixture::start("gitsync-basic").await;
    f.repo.write("sessions/a.yaml", &session("a", "first"));
    f.repo.write("sessions/b.yaml", &format!("{}---\n{}", session("b", "second"), session("c", "third")));
    f.repo.write("README.md", "not a manifest");
    let rev1 = f.repo.commit("two files, three sessions");
    // Someone else's session in the same namespace: never touched.
    let foreign = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": "foreign"}, "spec": {"initialPrompt": "mine"}});
    f.sessions()
        .patch("foreign", &PatchParams::apply("someone"), &Patch::Apply(&foreign))
        .await
        .expect("foreign");

    f.source("repo", json!({"path": "sessions"})).await;
    let status = f.synced("repo", &rev1, None).await;
    assert!(find(&status.conditions, "Ready").is_some_and(|c| c.is_true()), "{status:?}");
    assert_eq!(f.names().await, ["a", "b", "c", "foreign"]);
    assert_eq!(status.inventory.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    let a = f.sessions().get("a").await.expect("a");
    assert_eq!(a.labels()[labels::SOURCE_NAME], "repo");
    assert_eq!(a.labels()[labels::SOURCE_NAMESPACE], f.ns.name);
    assert_eq!(a.annotations()[annotations::SOURCE_PATH], "sessions/a.yaml");
    assert_eq!(a.annotations()[annotations::SOURCE_REVISION], rev1);
    assert_eq!(a.annotations()[annotations::SOURCE], format!("{}/repo", f.ns.name));
    let managers: Vec<_> =
        a.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert!(managers.contains(&"acp-git-sync".to_string()), "{managers:?}");

    acp_testenv::eventually("git-sync's session cache ready", acp_testenv::DEFAULT_TIMEOUT, || async {
        f.metrics.encode().contains("acp_git_sync_live_cache_ready 1").then_some(())
    })
    .await;
    // Edit one file: only that session changes.
    let b_before = f.sessions().get("b").await.expect("b");
    f.repo.write("sessions/a.yaml", &session("a", "first, edited"));
    let rev2 = f.repo.commit("edit a");
    f.trigger("repo", "edit").await;
    let status = f.synced("repo", &rev2, Some("edit")).await;
    assert_eq!(status.history[0].applied, 1, "{:?}", status.history);
    assert_eq!(status.history[0].unchanged, 2);
    let a2 = f.sessions().get("a").await.expect("a");
    assert_eq!(a2.data["spec"]["initialPrompt"], "first, edited");
    assert_eq!(generation(&a2), generation(&a) + 1);
    assert_eq!(a2.annotations()[annotations::SOURCE_REVISION], rev2);
    let b_after = f.sessions().get("b").await.expect("b");
    assert_eq!(b_after.metadata.resource_version, b_before.metadata.resource_version, "b untouched");
    assert_eq!(
        b_after.annotations()[annotations::SOURCE_REVISION],
        rev1,
        "b's revision is the one that last changed it"
    );

    // Once the watch cache holds its first list, syncs read the live
    // sessions from it, not with a list.
    let reads = |from: &str| {
        let text = f.metrics.encode();
        let line = format!("acp_git_sync_reads_total{{from=\"{from}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
    };
    assert!(reads("cache") >= 1, "{}", f.metrics.encode());

    // Re-sync of the same commit: nothing is written.
    let versions = f.resource_versions().await;
    let source_version = f.sources().get("repo").await.expect("source").metadata.resource_version;
    f.trigger("repo", "again").await;
    f.synced("repo", &rev2, Some("again")).await;
    let after = f.resource_versions().await;
    assert_eq!(after, versions, "a no-op sync writes no session");
    let status = f.sources().get("repo").await.expect("source").status.expect("status");
    assert_eq!(status.history.len(), 2, "a no-op sync adds no history: {:?}", status.history);
    assert_ne!(source_version, None);

    // Someone else's session of a name the cache does not hold (no source
    // label) is found before it is written: a conflict, left untouched.
    let theirs = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": {"name": "d"}, "spec": {"initialPrompt": "theirs"}});
    f.sessions().patch("d", &PatchParams::apply("someone"), &Patch::Apply(&theirs)).await.expect("theirs");
    f.repo.write("sessions/d.yaml", &session("d", "mine now"));
    let rev_d = f.repo.commit("claim d");
    f.trigger("repo", "claim").await;
    let status = f.synced("repo", &rev_d, Some("claim")).await;
    assert!(status.errors.iter().any(|e| e.path == "sessions/d.yaml"), "{:?}", status.errors);
    let d = f.sessions().get("d").await.expect("d");
    assert_eq!(d.data["spec"]["initialPrompt"], "theirs");
    assert!(!d.labels().contains_key(labels::SOURCE_NAME));
    f.repo.remove("sessions/d.yaml");
    let back = f.repo.commit("give d back");
    f.trigger("repo", "d-back").await;
    f.synced("repo", &back, Some("d-back")).await;

    // Delete one file: its sessions are pruned, and only those.
    f.repo.remove("sessions/b.yaml");
    let rev3 = f.repo.commit("drop b and c");
    f.trigger("repo", "prune").await;
    let status = f.synced("repo", &rev3, Some("prune")).await;
    assert_eq!(status.history[0].pruned, 2);
    acp_testenv::eventually("pruned sessions gone", acp_testenv::DEFAULT_TIMEOUT, || async {
        (f.names().await == ["a", "d", "foreign"]).then_some(())
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn each_bad_file_gets_one_clear_error_and_good_files_apply() {
    let f = Fixture::start("gitsync-bad").await;
    f.repo.write("good-1.yaml", &session("good-1", "ok"));
    f.repo.write("good-2.yml", &session("good-2", "ok"));
    f.repo.write(
        "malformed.yaml",
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata: {name: x\n",
    );
    f.repo.write("wrong-kind.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n");
    f.repo.write(
        "unknown-field.yaml",
        &session("unknown", "x").replace("  initialPrompt:", "  promt: typo\n  initialPrompt:"),
    );
    f.repo.write("policy.yaml", &format!("{}  llmSettings:\n    model: gpt-4\n", session("policy", "x")));
    f.repo.write("huge.yaml", &format!("{}# {}\n", session("huge", "x"), "x".repeat(10 << 20)));
    f.repo.write("z-duplicate.yaml", &session("good-1", "again"));
    std::os::unix::fs::symlink("../../../../etc/passwd", f.repo.path().join("escape.yaml")).expect("symlink");
    let rev = f.repo.commit("a mix");
    f.source("repo", json!({})).await;
    let status = f.synced("repo", &rev, None).await;

    assert_eq!(f.names().await, ["good-1", "good-2"]);
    let mut by_path: Vec<(String, String)> =
        status.errors.iter().map(|e| (e.path.clone(), e.message.clone())).collect();
    by_path.sort();
    let paths: Vec<&str> = by_path.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "escape.yaml",
            "huge.yaml",
            "malformed.yaml",
            "policy.yaml",
            "unknown-field.yaml",
            "wrong-kind.yaml",
            "z-duplicate.yaml"
        ],
        "one error per bad file: {by_path:#?}"
    );
    let message =
        |p: &str| by_path.iter().find(|(path, _)| path == p).map(|(_, m)| m.clone()).unwrap_or_default();
    assert!(message("z-duplicate.yaml").contains("also defined at good-1.yaml:1"));
    assert!(message("escape.yaml").contains("symlink"));
    assert!(message("huge.yaml").contains("limit"));
    assert!(message("malformed.yaml").starts_with("invalid YAML"));
    assert!(message("policy.yaml").contains("gpt-4 is not allowed"));
    assert!(message("unknown-field.yaml").contains("unknown field \"spec.promt\""));
    assert!(message("wrong-kind.yaml").contains("is not synced"));
    let unknown = status.errors.iter().find(|e| e.path == "unknown-field.yaml").expect("error");
    assert_eq!((unknown.line, unknown.column.is_some()), (Some(6), true), "points at the field");
    let ready = find(&status.conditions, "Ready").expect("ready");
    assert_eq!(ready.reason.as_deref(), Some("ValidationFailed"));

    // Each bad file is also a Warning event on the source.
    let events: Api<k8s_openapi::api::events::v1::Event> = f.ns.api();
    acp_testenv::eventually("warning events", acp_testenv::DEFAULT_TIMEOUT, || async {
        let list = events.list(&Default::default()).await.ok()?;
        let notes: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.note.clone())
            .collect();
        (notes.iter().filter(|n| n.contains(".yaml")).count() >= 7).then_some(())
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn suspend_stops_syncing() {
    let f = Fixture::start("gitsync-suspend").await;
    f.repo.write("a.yaml", &session("a", "x"));
    let rev1 = f.repo.commit("a");
    f.source("repo", json!({})).await;
    f.synced("repo", &rev1, None).await;
    f.source("repo", json!({"suspend": true})).await;
    f.wait_status("repo", "suspended", |s| {
        find(&s.conditions, "Reconciling").filter(|c| c.reason.as_deref() == Some("Suspended")).map(|_| ())
    })
    .await;
    f.repo.write("b.yaml", &session("b", "x"));
    let rev2 = f.repo.commit("b");
    f.trigger("repo", "while-suspended").await;
    // The trigger is seen (the status says suspended) but nothing is fetched or applied.
    let status = f.sources().get("repo").await.expect("source").status.expect("status");
    assert_eq!(status.last_attempted_revision.as_deref(), Some(rev1.as_str()));
    f.source("repo", json!({"suspend": false})).await;
    f.synced("repo", &rev2, None).await;
    assert_eq!(f.names().await, ["a", "b"]);
    f.stop().await;
}

#[tokio::test]
async fn force_pushed_history_moves_to_the_new_tip() {
    let f = Fixture::start("gitsync-force").await;
    f.repo.write("a.yaml", &session("a", "x"));
    let old = f.repo.commit("a");
    f.source("repo", json!({})).await;
    f.synced("repo", &old, None).await;
    // Rewrite history: a new root commit with a different session.
    acp_testenv::githttp::git(f.repo.path(), &["checkout", "-q", "--orphan", "rewritten"]);
    acp_testenv::githttp::git(f.repo.path(), &["rm", "-q", "-rf", "--cached", "."]);
    f.repo.remove("a.yaml");
    f.repo.write("b.yaml", &session("b", "x"));
    let new = f.repo.commit("rewritten");
    assert_ne!(old, new);
    f.trigger("repo", "force").await;
    let status = f.synced("repo", &new, Some("force")).await;
    assert_eq!(status.last_applied_revision.as_deref(), Some(new.as_str()));
    acp_testenv::eventually("a pruned, b created", acp_testenv::DEFAULT_TIMEOUT, || async {
        (f.names().await == ["b"]).then_some(())
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn write_back_branch_and_path_never_sync_and_the_requests_branch_is_not_the_synced_one() {
    let f = Fixture::start("gitsync-writeback").await;
    f.repo.write("a.yaml", &session("a", "x"));
    let rev1 = f.repo.commit("a");
    f.source("repo", json!({})).await;
    f.synced("repo", &rev1, None).await;
    // The status bot writes under status/ (on the write-back branch, or here on main itself).
    f.repo.write("status/a.yaml", &session("from-status", "never applied"));
    let rev2 = f.repo.commit("status: a");
    acp_testenv::githttp::git(f.repo.path(), &["push", "-q", "origin", "HEAD:acp/status"]);
    f.trigger("repo", "after-write-back").await;
    let status = f.synced("repo", &rev2, Some("after-write-back")).await;
    assert_eq!(f.names().await, ["a"], "files under the write-back path are ignored");
    assert_eq!(status.history[0].applied, 0);
    assert!(status.errors.is_empty());
    // Syncing the write-back branch itself is refused.
    f.source("repo", json!({"ref": {"branch": "acp/status"}})).await;
    f.wait_status("repo", "write-back branch refused", |s| {
        find(&s.conditions, "Stalled")
            .filter(|c| c.is_true() && c.message.as_deref().unwrap_or_default().contains("write-back branch"))
            .map(|_| ())
    })
    .await;
    // A requests branch that is the synced branch is refused: its waiting
    // requests (pending/) would be applied unapproved.
    let binding = json!({"repositories": ["acme/*"], "requestsBranch": "main", "template": {"spec": {}}});
    let github = json!({"repository": "acme/sessions"});
    f.source("repo", json!({"ref": {"branch": "main"}, "github": github, "pullRequests": binding})).await;
    f.wait_status("repo", "a requests branch that is synced refused", |s| {
        find(&s.conditions, "Stalled")
            .filter(|c| {
                c.is_true()
                    && c.reason.as_deref() == Some("InvalidSource")
                    && c.message.as_deref().unwrap_or_default().contains("would be applied unapproved")
            })
            .map(|_| ())
    })
    .await;
    f.stop().await;
}

#[tokio::test]
async fn impersonation_limits_writes_to_the_service_accounts_rights() {
    let f = Fixture::start("gitsync-impersonate").await;
    f.repo.write("a.yaml", &session("a", "x"));
    let rev = f.repo.commit("a");
    // A ServiceAccount that may read sessions but not write them.
    let rbac = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
               "rules": [{"apiGroups": ["vteam.ambient-code"], "resources": ["agenticsessions"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": f.ns.name}]}),
    ];
    for object in rbac {
        let file = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(file.path(), serde_json::to_vec(&object).expect("json")).expect("write");
        let out = acp_testenv::TestEnv::get()
            .kubectl()
            .args(["apply", "-n", &f.ns.name, "-f"])
            .arg(file.path())
            .output()
            .expect("kubectl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    f.source("repo", json!({"serviceAccountName": "reader"})).await;
    let status = f.synced("repo", &rev, None).await;
    assert!(f.names().await.is_empty(), "nothing applied without the right");
    let error = status.errors.first().expect("an error");
    assert_eq!(error.path, "a.yaml");
    assert!(
        error.message.contains("forbidden") && error.message.contains("system:serviceaccount"),
        "{}",
        error.message
    );
    assert_eq!(
        find(&status.conditions, "Ready").and_then(|c| c.reason.clone()).as_deref(),
        Some("ApplyFailed")
    );
    f.stop().await;
}

#[tokio::test]
async fn a_thousand_manifests_sync() {
    let f = Fixture::start("gitsync-1000").await;
    for i in 0..1000 {
        f.repo.write(&format!("s/{i:04}.yaml"), &session(&format!("s-{i:04}"), "bulk"));
    }
    let rev = f.repo.commit("1000 sessions");
    f.source("repo", json!({})).await;
    let status = f.synced("repo", &rev, None).await;
    assert!(status.errors.is_empty(), "{:?}", status.errors.first());
    assert_eq!(status.inventory.len(), 1000);
    assert_eq!(f.names().await.len(), 1000);
    f.stop().await;
}
