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

/// `policies/reserved-metadata.yaml` and its params, bound to `ns` alone,
/// acp's controllers being `acp-admin` (the test's git-sync, by its
/// username: not by a group); waits until a `tenant` (not a controller)
/// is refused.
async fn install_reserved_metadata_policy(ns: &acp_testenv::TestNamespace, tenant: &kube::Client) {
    use kube::api::{Api, DynamicObject};
    use kube::core::{ApiResource, GroupVersionKind};
    let params = PatchParams::apply("acp-test").force();
    for mut doc in acp_testenv::policies::scoped_policy_documents(&ns.name) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let (group, version) =
            doc["apiVersion"].as_str().unwrap_or_default().split_once('/').unwrap_or(("", "v1"));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let api: Api<DynamicObject> = match kind.as_str() {
            "ConfigMap" => {
                doc["data"]["controllerUsernames"] = json!("acp-admin");
                doc["data"]["controllerGroups"] = json!("");
                Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
            }
            _ if name.starts_with("acp-reserved-metadata-") => {
                Api::all_with(ns.client.clone(), &ApiResource::from_gvk(&gvk))
            }
            _ => continue,
        };
        api.patch(&name, &params, &Patch::Apply(&doc)).await.unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }
    let mut dry_run = PatchParams::apply("acp-test-probe");
    dry_run.dry_run = true;
    let probe = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "probe", "labels": {"ambient-code.io/source-name": "x"}}, "spec": {}});
    let sessions = acp_gitsync::apply::sessions(tenant.clone(), &ns.name);
    let want = format!("'acp-reserved-metadata-{}'", ns.name);
    acp_testenv::eventually(
        "the reserved-metadata policy enforced",
        std::time::Duration::from_secs(60),
        || {
            let (sessions, probe, dry_run, want) = (&sessions, &probe, &dry_run, &want);
            async move {
                match sessions.patch("probe", dry_run, &Patch::Apply(probe)).await {
                    Err(kube::Error::Api(status)) if status.message.contains(want.as_str()) => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
}

/// A client of `ns`'s ServiceAccount `name`, with its own token (so that
/// what it asks to impersonate is checked against its own RBAC).
async fn client_with_token(ns: &acp_testenv::TestNamespace, name: &str) -> (kube::Client, kube::Config) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).expect("request");
    let token = ns
        .api::<ServiceAccount>()
        .create_token_request(name, &Default::default(), &request)
        .await
        .expect("token")
        .status
        .map(|s| s.token)
        .expect("a token");
    let mut config = acp_testenv::TestEnv::get().config().await;
    config.auth_info = serde_json::from_value(json!({"token": token})).expect("auth info");
    (kube::Client::try_from(config.clone()).expect("client"), config)
}

/// The labels and annotations acp's components own, at admission on the real
/// API server (`policies/reserved-metadata.yaml`): a tenant's ServiceAccount
/// that may create sessions is refused one carrying them (or changing them),
/// and cannot borrow git-sync's impersonation extra; git-sync stamps them
/// applying as itself and as a source's ServiceAccount.
#[tokio::test]
async fn only_acps_controllers_write_acps_metadata_at_admission() {
    let f = Fixture::start("tenancy-admission").await;
    let ns = f.ns.name.clone();
    let writer = json!({"apiGroups": ["vteam.ambient-code"], "resources": ["agenticsessions"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]});
    let mut rbac = Vec::new();
    for (account, rules) in [
        // A tenant as `edit` makes one: sessions, and impersonating the namespace's ServiceAccounts.
        (
            "tenant",
            json!([writer, {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]),
        ),
        ("syncer", json!([writer])),
    ] {
        rbac.extend([
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": account}, "rules": rules}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": account},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                   "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]}),
        ]);
    }
    kubectl_apply(&ns, &rbac);
    let (tenant, tenant_config) = client_with_token(&f.ns, "tenant").await;
    install_reserved_metadata_policy(&f.ns, &tenant).await;
    let as_tenant = acp_gitsync::apply::sessions(tenant.clone(), &ns);
    let create = PatchParams::apply("kubectl");

    // A session made by hand claiming a source is refused, with the reason.
    let forged = |labels: serde_json::Value, annotations: serde_json::Value| {
        json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": "by-hand", "labels": labels, "annotations": annotations},
            "spec": {"initialPrompt": "x"}})
    };
    let refused = |result: Result<kube::api::DynamicObject, kube::Error>| match result {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("admitted: {other:?}"),
    };
    let claim = forged(
        json!({"ambient-code.io/source-name": "repo", "ambient-code.io/source-namespace": ns}),
        json!({"vteam.ambient-code/parent-session-id": "a"}),
    );
    let message = refused(as_tenant.patch("by-hand", &create, &Patch::Apply(&claim)).await);
    // (The first of the two reserved labels in the map's order.)
    assert!(
        message.contains("label ambient-code.io/source-")
            && message.contains(
                "is reserved for acp's components: only acp's controllers may set or change it; remove it"
            ),
        "{message}"
    );
    let claim = forged(json!({}), json!({"ambient-code.io/source": format!("{ns}/repo")}));
    let message = refused(as_tenant.patch("by-hand", &create, &Patch::Apply(&claim)).await);
    assert!(
        message.contains("annotation ambient-code.io/source is reserved for acp's components"),
        "{message}"
    );
    // Borrowing git-sync's extra takes an RBAC grant no tenant has.
    let mut borrowed = tenant_config.clone();
    borrowed.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:tenant"));
    borrowed.auth_info.impersonate_user_extra = Some(
        [(acp_api::constants::impersonation::APPLIED_BY.to_owned(), vec!["git-sync".to_owned()])].into(),
    );
    let borrowed = acp_gitsync::apply::sessions(kube::Client::try_from(borrowed).expect("client"), &ns);
    match borrowed.patch("by-hand", &create, &Patch::Apply(&claim)).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains("userextras/ambient-code.io/applied-by"), "{}", status.message);
        }
        other => panic!("a tenant borrowed git-sync's extra: {other:?}"),
    }
    // Requests to acp are the tenant's to make.
    let request = forged(json!({"team": "a"}), json!({"ambient-code.io/desired-phase": "Stopped"}));
    as_tenant.patch("by-hand", &create, &Patch::Apply(&request)).await.expect("a plain session is admitted");

    // git-sync stamps what it applies, as itself and as a source's ServiceAccount.
    f.repo.write("own/a.yaml", &session("a", "x"));
    f.repo.write("team/b.yaml", &session("b", "x"));
    let rev = f.repo.commit("two sessions");
    f.source("own", json!({"path": "own"})).await;
    f.source("team", json!({"path": "team", "serviceAccountName": "syncer"})).await;
    for source in ["own", "team"] {
        let status = f.synced(source, &rev, None).await;
        assert!(status.errors.is_empty(), "{source}: {:?}", status.errors);
    }
    let listed = f.listed().await;
    let stamp = |name: &str| {
        listed
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(name))
            .and_then(|o| o.metadata.labels.as_ref()?.get("ambient-code.io/source-name").cloned())
    };
    assert_eq!((stamp("a").as_deref(), stamp("b").as_deref()), (Some("own"), Some("team")));

    // A tenant's edit of a stamped session keeps its stamps, or is refused.
    let edit = json!({"metadata": {"labels": {"team": "a"}}});
    as_tenant
        .patch("a", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("an edit beside the stamps");
    let rewrite = json!({"metadata": {"labels": {"ambient-code.io/source-commit": "0000000"}}});
    let message = refused(as_tenant.patch("a", &PatchParams::default(), &Patch::Merge(&rewrite)).await);
    assert!(message.contains("label ambient-code.io/source-commit is reserved"), "{message}");
    f.stop().await;
}
