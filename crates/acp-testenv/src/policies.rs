//! Installs the repository's `policies/` into a test namespace: the policies
//! and bindings are renamed per namespace and bound to it alone, and the params
//! ConfigMap lives in it, so tests sharing one API server do not see each
//! other's policies. Waits until the API server enforces every policy.

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::env::{TestNamespace, repo_root};
use crate::eventually;

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ConfigMap" => "configmaps",
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding" => "validatingadmissionpolicybindings",
        other => panic!("unexpected kind {other} in policies/"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The documents of `policies/`, scoped to namespace `ns`.
pub fn scoped_policy_documents(ns: &str) -> Vec<Value> {
    let dir = repo_root().join("policies");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("policies/").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files.iter().filter(|f| f.file_name().is_some_and(|n| n != "kustomization.yaml")) {
        let text = std::fs::read_to_string(file).expect("policy file");
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text).expect("policy YAML");
        for mut doc in parsed {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "ConfigMap" => doc["metadata"]["namespace"] = json!(ns),
                "ValidatingAdmissionPolicy" => {
                    let name = format!("{}-{ns}", doc["metadata"]["name"].as_str().unwrap_or_default());
                    doc["metadata"]["name"] = json!(name);
                }
                "ValidatingAdmissionPolicyBinding" => {
                    let name = format!("{}-{ns}", doc["metadata"]["name"].as_str().unwrap_or_default());
                    doc["metadata"]["name"] = json!(name);
                    let policy = format!("{}-{ns}", doc["spec"]["policyName"].as_str().unwrap_or_default());
                    doc["spec"]["policyName"] = json!(policy);
                    doc["spec"]["matchResources"] =
                        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}});
                    if doc["spec"].get("paramRef").is_some() {
                        doc["spec"]["paramRef"]["namespace"] = json!(ns);
                    }
                }
                _ => {}
            }
            docs.push(doc);
        }
    }
    docs
}

/// Installs `policies/` for namespace `ns` and waits until each is enforced.
pub async fn install_policies(ns: &TestNamespace) {
    let params = PatchParams::apply("acp-test").force();
    for doc in scoped_policy_documents(&ns.name) {
        let ar = resource(
            doc["apiVersion"].as_str().unwrap_or_default(),
            doc["kind"].as_str().unwrap_or_default(),
        );
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let api: Api<DynamicObject> = if doc["kind"] == "ConfigMap" {
            Api::namespaced_with(ns.client.clone(), &ns.name, &ar)
        } else {
            Api::all_with(ns.client.clone(), &ar)
        };
        api.patch(&name, &params, &Patch::Apply(&doc))
            .await
            .unwrap_or_else(|e| panic!("failed to apply {name}: {e}"));
    }
    // One probe per policy, each violating only that policy.
    let session = "AgenticSession";
    let probes = [
        ("acp-session-timeout", session, json!({"timeout": 1})),
        ("acp-session-repos", session, json!({"repos": [{"url": "https://example.invalid/x"}]})),
        ("acp-session-models", session, json!({"llmSettings": {"model": "not-a-model"}})),
        ("acp-session-env-secrets", session, json!({"environmentVariables": {"GITHUB_TOKEN": "x"}})),
        ("acp-session-max-turns", session, json!({"maxTurns": 5000})),
        (
            "acp-schedule-frequency",
            "SessionSchedule",
            json!({"schedule": "* * * * *", "template": {"spec": {}}}),
        ),
    ];
    let mut dry_run = PatchParams::apply("acp-test-probe");
    dry_run.dry_run = true;
    for (policy, kind, spec) in probes {
        let plural = if kind == session { "agenticsessions" } else { "sessionschedules" };
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(acp_api::constants::GROUP, acp_api::constants::VERSION, kind),
            plural,
        );
        let sessions: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
        let probe = json!({
            "apiVersion": acp_api::constants::API_VERSION, "kind": kind,
            "metadata": {"name": "policy-probe"}, "spec": spec,
        });
        let want = format!("'{policy}-{}'", ns.name);
        eventually(&format!("policy {policy} enforced"), Duration::from_secs(60), || {
            let (sessions, probe, dry_run, want) = (&sessions, &probe, &dry_run, &want);
            async move {
                match sessions.patch("policy-probe", dry_run, &Patch::Apply(probe)).await {
                    Err(kube::Error::Api(status)) if status.message.contains(want.as_str()) => Some(()),
                    _ => None,
                }
            }
        })
        .await;
    }
}
