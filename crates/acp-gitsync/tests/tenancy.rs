//! A team's repository, tried as a hostile tenant would: it can reach no other
//! namespace, set no metadata acp's components own, and no file of it can
//! exhaust git-sync. Against the real API server (admission included).

mod common;

use common::{Fixture, session};
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn find<'a>(conditions: &'a [acp_api::Condition], type_: &str) -> Option<&'a acp_api::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Applies `objects` in `namespace` with kubectl (as the test's admin).
fn kubectl_apply(namespace: &str, objects: &[serde_json::Value]) {
    for object in objects {
        let file = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(file.path(), serde_json::to_vec(object).expect("json")).expect("write");
        let out = acp_testenv::TestEnv::get()
            .kubectl()
            .args(["apply", "-n", namespace, "-f"])
            .arg(file.path())
            .output()
            .expect("kubectl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test]
async fn a_source_reaches_another_namespace_only_as_a_service_account_allowed_there() {
    let f = Fixture::start("tenancy-a").await;
    let other = acp_testenv::TestEnv::get().namespace("tenancy-b").await;
    f.repo.write("a.yaml", &session("a", "x"));
    f.repo.write("b.yaml", &session("b", "x"));
    f.repo.commit("two sessions");

    // Admission: another namespace without a ServiceAccount is refused.
    let object = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"name": "cross"}, "spec": {"url": f.repo.url(), "targetNamespace": other.name}});
    let refused = f.sources().patch("cross", &PatchParams::apply("test"), &Patch::Apply(&object)).await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("needs serviceAccountName"), "{}", status.message);
        }
        other => panic!("a cross-namespace source without a ServiceAccount was admitted: {other:?}"),
    }

    // With a ServiceAccount whose RBAC covers only its own namespace, the
    // other namespace stays untouched.
    let ns = f.ns.name.clone();
    kubectl_apply(
        &ns,
        &[
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "syncer"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "syncer"},
                   "rules": [{"apiGroups": ["vteam.ambient-code"], "resources": ["agenticsessions"],
                              "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "syncer"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "syncer"},
                   "subjects": [{"kind": "ServiceAccount", "name": "syncer", "namespace": ns}]}),
        ],
    );
    f.source("cross", json!({"targetNamespace": other.name, "serviceAccountName": "syncer"})).await;
    let status = f
        .wait_status("cross", "the sync to be refused", |s| {
            let ready = find(&s.conditions, "Ready")?;
            (ready.status == acp_api::ConditionStatus::False
                && ready.reason.as_deref() != Some("Progressing"))
            .then(|| s.clone())
        })
        .await;
    let sessions_there = acp_gitsync::apply::sessions(other.client.clone(), &other.name);
    let there = sessions_there.list(&Default::default()).await.expect("list").items;
    assert!(there.is_empty(), "{} sessions were created in the other namespace", there.len());
    let ready = find(&status.conditions, "Ready").expect("Ready");
    assert!(!ready.is_true());
    assert!(ready.message.as_deref().is_some_and(|m| m.contains("forbidden")), "{ready:?}");
    assert!(f.names().await.is_empty(), "nothing leaked into the source's namespace either");
    f.stop().await;
}

#[tokio::test]
async fn metadata_owned_by_acp_never_comes_from_git_and_no_file_exhausts_git_sync() {
    let f = Fixture::start("tenancy-meta").await;
    f.repo.write("good.yaml", &session("good", "ok"));
    let sneaky = session("sneaky", "x").replace(
        "metadata:\n  name: sneaky\n",
        "metadata:\n  name: sneaky\n  annotations:\n    ambient-code.io/runner-secret: team-b-keys\n",
    );
    f.repo.write("sneaky.yaml", &sneaky);
    let forged = session("forged", "x").replace(
        "metadata:\n  name: forged\n",
        "metadata:\n  name: forged\n  annotations:\n    ambient-code.io/status-bot: '{\"comment\": 1}'\n    \
         ambient-code.io/source: other-team/their-source\n",
    );
    f.repo.write("forged.yaml", &forged);
    let intent = session("stop-me", "x").replace(
        "metadata:\n  name: stop-me\n",
        "metadata:\n  name: stop-me\n  annotations:\n    ambient-code.io/desired-phase: Stopped\n",
    );
    f.repo.write("intent.yaml", &intent);
    // "Billion laughs": nine references per level.
    let mut bomb = session("bomb", "x") + "  environmentVariables:\n    L0: &l0 lol\n";
    bomb.push_str("l1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]\n");
    for level in 2..=6 {
        let refs = vec![format!("*l{}", level - 1); 9].join(", ");
        bomb.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
    }
    f.repo.write("bomb.yaml", &bomb);
    let rev = f.repo.commit("a hostile mix");
    f.source("repo", json!({})).await;
    let status = f.synced("repo", &rev, None).await;

    assert_eq!(f.names().await, ["good", "stop-me"], "only the clean files applied");
    let message = |path: &str| {
        status
            .errors
            .iter()
            .filter(|e| e.path == path)
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(message("sneaky.yaml").contains("annotation ambient-code.io/runner-secret is reserved"));
    assert!(message("forged.yaml").contains("ambient-code.io/status-bot is reserved"));
    assert!(message("forged.yaml").contains("ambient-code.io/source is reserved"));
    assert!(message("bomb.yaml").contains("over the parsing budget"), "{}", message("bomb.yaml"));
    // The user's request to acp is kept.
    let stop = f.sessions().get("stop-me").await.expect("stop-me");
    assert_eq!(
        stop.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("ambient-code.io/desired-phase"))
            .map(String::as_str),
        Some("Stopped")
    );
    f.stop().await;
}
