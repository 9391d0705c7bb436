use std::collections::HashSet;

use acp_api::source::InventoryEntry;
use acp_policy::Checker;
use serde_json::json;

use super::*;

fn source() -> SourceRef {
    SourceRef::new("team", "repo")
}

fn file(path: &str, text: &str) -> Entry {
    Entry::File { path: path.into(), bytes: text.as_bytes().to_vec() }
}

fn session(name: &str, prompt: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: {prompt}\n"
    )
}

fn checker() -> Checker {
    Checker::with_embedded_policies().expect("policies")
}

#[test]
fn valid_sessions_are_stamped_and_bad_files_reported_one_each() {
    let entries = vec![
        file("a.yaml", &session("a", "one")),
        file("b.yaml", &format!("{}---\n{}", session("b", "two"), session("c", "three"))),
        file("bad-yaml.yaml", "a: [1,\n"),
        file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
        file("dup.yaml", &session("a", "again")),
        file("policy.yaml", &format!("{}  timeout: 5\n", session("p", "short"))),
        Entry::Symlink { path: "link.yaml".into(), target: "../../etc/passwd".into() },
        Entry::TooLarge { path: "huge.yaml".into(), size: 10 << 20 },
    ];
    let out = manifests(&entries, &source(), Some("team"), &checker());
    let names: Vec<_> = out.desired.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let errors: Vec<String> =
        out.errors.iter().map(|e| format!("{}:{:?} {}", e.path, e.line, e.message)).collect();
    assert_eq!(errors.len(), 6, "{errors:#?}");
    for (path, text) in [
        ("bad-yaml.yaml", "invalid YAML"),
        ("cm.yaml", "is not synced"),
        ("dup.yaml", "also defined at a.yaml:1"),
        ("policy.yaml", "spec.timeout is 5 seconds"),
        ("link.yaml", "symlink"),
        ("huge.yaml", "over the 1048576-byte limit"),
    ] {
        assert!(errors.iter().any(|e| e.starts_with(path) && e.contains(text)), "{path}: {errors:#?}");
    }
    let policy = out.errors.iter().find(|e| e.path == "policy.yaml").expect("policy error");
    assert_eq!(policy.line, Some(7), "points at the timeout line");
    let a = &out.desired[0].object;
    assert_eq!(a["metadata"]["namespace"], "team");
    assert_eq!(a["metadata"]["labels"][labels::SOURCE_NAME], "repo");
    assert_eq!(a["metadata"]["annotations"][annotations::SOURCE_PATH], "a.yaml");
    assert_eq!(
        out.desired[0].at_revision("abc")["metadata"]["annotations"][annotations::SOURCE_REVISION],
        "abc"
    );
}

#[test]
fn a_foreign_namespace_is_refused() {
    let text = session("a", "x").replace("  name: a\n", "  name: a\n  namespace: other\n");
    let out = manifests(&[file("a.yaml", &text)], &source(), Some("team"), &checker());
    assert!(out.desired.is_empty());
    assert!(out.errors[0].message.contains("applies into \"team\""));
}

fn live_from(desired: &Desired, revision: &str) -> Value {
    let mut live = desired.at_revision(revision);
    // What the API server adds: defaults and bookkeeping.
    live["spec"]["timeout"] = json!(300);
    live["metadata"]["generation"] = json!(1);
    live["status"] = json!({"phase": "Pending"});
    live
}

#[test]
fn diff_sorts_into_create_update_unchanged_and_prune() {
    let entries = vec![file("a.yaml", &session("a", "one")), file("b.yaml", &session("b", "two"))];
    let desired = manifests(&entries, &source(), Some("team"), &checker()).desired;
    let mut live_b = live_from(&desired[1], "rev1");
    let live_a = live_from(&desired[0], "rev1");
    let old =
        manifests(&[file("gone.yaml", &session("gone", "bye"))], &source(), Some("team"), &checker()).desired;
    let live_gone = live_from(&old[0], "rev1");
    let inventory: Vec<InventoryEntry> = ["a", "b", "gone"]
        .iter()
        .map(|n| InventoryEntry {
            kind: "AgenticSession".into(),
            namespace: "team".into(),
            name: n.to_string(),
            path: format!("{n}.yaml"),
            revision: "rev1".into(),
        })
        .collect();

    let plan = diff(
        desired.clone(),
        &[live_a.clone(), live_b.clone(), live_gone.clone()],
        &inventory,
        &source(),
        &HashSet::new(),
    );
    assert!(plan.create.is_empty() && plan.update.is_empty());
    assert_eq!(plan.unchanged.len(), 2);
    assert_eq!(plan.unchanged[0].1, "rev1");
    assert_eq!(plan.prune, ["gone"]);

    // Drift by hand on a field git sets is an update; a file with errors is kept.
    live_b["spec"]["initialPrompt"] = json!("edited by hand");
    let broken = HashSet::from(["gone.yaml"]);
    let plan = diff(desired.clone(), &[live_a.clone(), live_b, live_gone], &inventory, &source(), &broken);
    assert_eq!(plan.update.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(plan.prune.is_empty());

    // An object of the same name not made by this source is a conflict, not an update.
    let mut foreign = live_a;
    foreign["metadata"]["labels"] = json!({});
    let plan = diff(desired, &[foreign], &[], &source(), &HashSet::new());
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.create.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["b"]);
}

#[test]
fn removing_a_field_changes_the_digest() {
    let with = manifests(
        &[file("a.yaml", &format!("{}  maxTurns: 5\n", session("a", "x")))],
        &source(),
        Some("team"),
        &checker(),
    );
    let without = manifests(&[file("a.yaml", &session("a", "x"))], &source(), Some("team"), &checker());
    let live = live_from(&with.desired[0], "r");
    let plan = diff(without.desired, &[live], &[], &source(), &HashSet::new());
    assert_eq!(plan.update.len(), 1, "the live object still has maxTurns; the digest tells");
}

#[test]
fn unchanged_files_reuse_their_check_results() {
    let entries = vec![file("a.yaml", &session("a", "x")), file("b.yaml", &session("b", "x"))];
    let (first, mut cache) =
        manifests_cached(&entries, &source(), Some("team"), &checker(), &CheckCache::new());
    assert_eq!(first.desired.len(), 2);
    assert_eq!(cache.len(), 2);
    // Mark a.yaml's cached result, then change b.yaml: a comes from the cache, b is checked.
    for (key, checked) in cache.iter_mut() {
        if key.0 == "a.yaml" {
            checked.desired[0].name = "from-cache".into();
        }
    }
    let entries = vec![file("a.yaml", &session("a", "x")), file("b.yaml", &session("b", "changed"))];
    let (second, next) = manifests_cached(&entries, &source(), Some("team"), &checker(), &cache);
    let names: Vec<_> = second.desired.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["b", "from-cache"]);
    assert_eq!(next.len(), 2, "only this revision's files are kept");
}

#[test]
fn another_target_namespace_needs_a_service_account() {
    let spec = |target: Option<&str>, sa: Option<&str>| {
        serde_json::from_value::<acp_api::source::SessionSourceSpec>(json!({
            "url": "https://github.com/acme/sessions", "targetNamespace": target, "serviceAccountName": sa
        }))
        .expect("spec")
    };
    assert_eq!(target_namespace(&spec(None, None), "team-a").as_deref(), Ok("team-a"));
    assert_eq!(target_namespace(&spec(Some("team-a"), None), "team-a").as_deref(), Ok("team-a"));
    assert_eq!(target_namespace(&spec(Some("team-b"), Some("syncer")), "team-a").as_deref(), Ok("team-b"));
    let refused = target_namespace(&spec(Some("team-b"), None), "team-a").expect_err("refused");
    assert!(refused.contains("needs spec.serviceAccountName"), "{refused}");
}

#[test]
fn reserved_labels_and_annotations_from_git_are_refused() {
    let source = SourceRef::new("team-a", "src");
    let checker = acp_policy::Checker::with_embedded_policies().expect("policies");
    let text = "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: sneaky\n  \
                annotations:\n    ambient-code.io/runner-secret: team-b-keys\n    ambient-code.io/desired-phase: Stopped\n  \
                labels:\n    ambient-code.io/source-name: other\nspec:\n  initialPrompt: hi\n";
    let entries = vec![Entry::File { path: "s.yaml".into(), bytes: text.as_bytes().to_vec() }];
    let manifests = manifests(&entries, &source, Some("team-a"), &checker);
    assert!(manifests.desired.is_empty(), "nothing of the file is applied");
    let messages: Vec<&str> = manifests.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("annotation ambient-code.io/runner-secret is reserved")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("label ambient-code.io/source-name is reserved")),
        "{messages:?}"
    );
    assert!(manifests.errors.iter().all(|e| e.line.is_some()), "each points at its key");
}

fn schedule(name: &str, cron: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: {name}\nspec:\n  schedule: \"{cron}\"\n  template:\n    spec:\n      initialPrompt: go\n"
    )
}

#[test]
fn schedules_are_synced_beside_sessions_with_names_unique_per_kind() {
    let entries = vec![
        file("s.yaml", &format!("{}---\n{}", session("nightly", "one"), schedule("nightly", "0 3 * * *"))),
        file("bad-cron.yaml", &schedule("broken", "0 3 * *")),
        file("dup.yaml", &schedule("nightly", "0 4 * * *")),
    ];
    let out = manifests(&entries, &source(), Some("team"), &checker());
    let kinds: Vec<_> = out.desired.iter().map(|d| (d.kind, d.name.as_str())).collect();
    assert_eq!(kinds, [(Kind::Session, "nightly"), (Kind::Schedule, "nightly")]);
    let schedule = &out.desired[1].object;
    assert_eq!(schedule["metadata"]["labels"][labels::SOURCE_NAME], "repo", "stamped like a session");
    let errors: Vec<String> =
        out.errors.iter().map(|e| format!("{}:{:?} {}", e.path, e.line, e.message)).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.starts_with("bad-cron.yaml:Some(6)") && e.contains("4 fields, not 5")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("dup.yaml") && e.contains("SessionSchedule \"nightly\" is also defined"))
    );
}

#[test]
fn a_schedules_run_is_never_taken_for_a_session_of_the_source() {
    let run = json!({"metadata": {"name": "nightly-29411400", "labels": {
        labels::SOURCE_NAMESPACE: "team", labels::SOURCE_NAME: "repo", labels::SCHEDULE: "nightly"}}});
    assert!(!source().owns(&run), "the scheduler created it: git-sync neither updates nor prunes it");
}

#[test]
fn a_sharded_source_stamps_its_shard_and_a_manifest_cannot_pick_one() {
    let entries = vec![file("a.yaml", &session("a", "one"))];
    let sharded = SourceRef { shard: Some("2".into()), ..source() };
    let previous = CheckCache::new();
    let (out, cache) = manifests_cached(&entries, &sharded, Some("team"), &checker(), &previous);
    assert_eq!(out.desired[0].object["metadata"]["labels"][labels::SHARD], "2");
    // The same bytes for an unsharded source are not served from the sharded stamp.
    let (unsharded, _) = manifests_cached(&entries, &source(), Some("team"), &checker(), &cache);
    assert!(unsharded.desired[0].object["metadata"]["labels"].get(labels::SHARD).is_none());
    // A source leaving its shard re-applies its sessions without the label.
    let live = vec![out.desired[0].object.clone()];
    let same = diff(out.desired.clone(), &live, &[], &sharded, &HashSet::new());
    assert_eq!(same.unchanged.len(), 1, "same shard: nothing to do");
    assert_eq!(
        diff(unsharded.desired, &live, &[], &source(), &HashSet::new()).update.len(),
        1,
        "the label goes"
    );
    let picking = session("b", "two")
        .replace("  name: b\n", "  name: b\n  labels:\n    ambient-code.io/shard: \"1\"\n");
    let out = manifests(&[file("b.yaml", &picking)], &sharded, Some("team"), &checker());
    assert!(out.desired.is_empty(), "a manifest cannot choose its shard");
    assert!(out.errors[0].message.contains("label ambient-code.io/shard is reserved"), "{:?}", out.errors);
}
