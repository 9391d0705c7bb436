//! The reserved-metadata policy, offline: a manifest is checked as a request
//! of nobody in particular, so exactly the keys `is_reserved` names are
//! refused (git-sync refuses them itself before this check, and stamps its
//! own after it). `crates/acp-gitsync/tests/tenancy.rs` puts the same
//! policy on the real API server, where acp's controllers pass.

use acp_api::constants::{annotations, is_reserved, labels};
use acp_policy::{Checker, Origin};
use serde_json::{Value, json};

fn session(kind: &str, key: &str) -> Value {
    let map = json!({ key: "x" });
    let metadata = if kind == "labels" {
        json!({"name": "s", "labels": map})
    } else {
        json!({"name": "s", "annotations": map})
    };
    json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "metadata": metadata,
           "spec": {"initialPrompt": "x"}})
}

fn refusals(checker: &Checker, object: &Value) -> Vec<String> {
    checker
        .check(object, "team-a")
        .into_iter()
        .filter(|f| f.origin == Origin::Policy("acp-reserved-metadata".into()))
        .map(|f| f.message)
        .collect()
}

#[test]
fn offline_the_policy_refuses_exactly_the_reserved_keys() {
    let checker = Checker::with_embedded_policies().expect("shipped policies load");
    let keys = [
        labels::SOURCE_NAME,
        labels::SOURCE_NAMESPACE,
        labels::SOURCE_COMMIT,
        labels::SCHEDULE,
        labels::SHARD,
        labels::SESSION,
        annotations::SOURCE,
        annotations::SOURCE_PATH,
        annotations::SOURCE_REVISION,
        annotations::STATUS_BOT_STATE,
        annotations::SCHEDULED_AT,
        annotations::DESIRED_PHASE,
        annotations::TRIGGER_REQUESTED_AT,
        annotations::PULL_REQUEST_HEAD,
        annotations::PARENT_SESSION,
        "sub.ambient-code.io/x",
        "example.com/ambient-code.io",
        "notambient-code.io/x",
        "team",
    ];
    for kind in ["labels", "annotations"] {
        for key in keys {
            let found = refusals(&checker, &session(kind, key));
            let singular = &kind[..kind.len() - 1];
            if is_reserved(key) {
                let want = format!(
                    "{singular} {key} is reserved for acp's components: only acp's controllers may set or change it; remove it"
                );
                assert_eq!(found, [want], "{kind} {key}");
            } else {
                assert!(found.is_empty(), "{kind} {key}: {found:?}");
            }
        }
    }
    // A schedule too.
    let mut schedule = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
        "metadata": {"name": "nightly", "labels": {labels::SOURCE_NAME: "repo"}},
        "spec": {"schedule": "@daily", "template": {"spec": {}}}});
    assert_eq!(refusals(&checker, &schedule).len(), 1);
    schedule["metadata"]["labels"] = json!({"team": "a"});
    assert!(refusals(&checker, &schedule).is_empty());
}
