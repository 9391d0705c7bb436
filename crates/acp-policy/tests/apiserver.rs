//! The shipped policies on the real API server, against the offline checker:
//! every corpus manifest gets the same verdict from both (server-side apply,
//! dry run, strict field validation), and a policy's denial carries the same
//! message in both.

use std::path::PathBuf;

use acp_policy::{Checker, Origin};
use acp_testenv::TestEnv;
use acp_testenv::policies::install_policies;
use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn corpus() -> Vec<(String, bool, Value)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out = Vec::new();
    for (dir, allowed) in [("allowed", true), ("denied", false)] {
        for entry in std::fs::read_dir(root.join(dir)).expect("corpus dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("corpus file");
            let doc: Value = serde_saphyr::from_str(&text).expect("corpus YAML");
            out.push((format!("{dir}/{}", path.file_name().expect("name").to_string_lossy()), allowed, doc));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn api_server_and_offline_checker_agree_on_the_corpus() {
    let env = TestEnv::get();
    let ns = env.namespace("policy").await;
    env.install_crds(&ns.client).await;
    install_policies(&ns).await;

    let checker = Checker::with_embedded_policies().expect("policies load");
    let api_of = |kind: &str| {
        let plural = if kind == "SessionSchedule" { "sessionschedules" } else { "agenticsessions" };
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("vteam.ambient-code", "v1alpha1", kind),
            plural,
        );
        Api::<DynamicObject>::namespaced_with(ns.client.clone(), &ns.name, &ar)
    };
    let mut params = PatchParams::apply("acp-policy-test");
    params.dry_run = true;
    params.field_validation = Some(ValidationDirective::Strict);

    let files = corpus();
    assert!(files.len() >= 20);
    let mut mismatches = Vec::new();
    for (name, expected_allowed, mut doc) in files {
        doc["metadata"]["namespace"] = json!(ns.name);
        let object_name = doc["metadata"]["name"].as_str().expect("corpus files are named").to_string();
        let api = api_of(doc["kind"].as_str().unwrap_or_default());
        let server = api.patch(&object_name, &params, &Patch::Apply(&doc)).await;
        let findings = checker.check(&doc, &ns.name);
        let server_allowed = server.is_ok();
        let offline_allowed = findings.is_empty();
        if server_allowed != offline_allowed || server_allowed != expected_allowed {
            mismatches.push(format!(
                "{name}: expected allowed={expected_allowed}, server={:?}, offline={findings:?}",
                server.as_ref().err().map(ToString::to_string)
            ));
            continue;
        }
        // A policy denial reads the same in both places.
        if let (Err(error), Some(finding)) =
            (&server, findings.iter().find(|f| matches!(f.origin, Origin::Policy(_))))
        {
            let text = error.to_string();
            if !text.contains(&finding.message) {
                mismatches.push(format!("{name}: server said {text:?}, offline said {:?}", finding.message));
            }
        }
    }
    assert!(mismatches.is_empty(), "verdicts differ:\n{}", mismatches.join("\n"));
}

#[tokio::test]
async fn api_server_enforces_policies_on_real_writes() {
    let env = TestEnv::get();
    let ns = env.namespace("policy-enforce").await;
    env.install_crds(&ns.client).await;
    install_policies(&ns).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("vteam.ambient-code", "v1alpha1", "AgenticSession"),
        "agenticsessions",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let apply = PatchParams::apply("acp-policy-test");
    let mut session = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "real-write"},
        "spec": {"initialPrompt": "hi", "repos": [{"url": "https://github.com/acme/app"}]},
    });
    api.patch("real-write", &apply, &Patch::Apply(&session)).await.expect("a compliant session is created");

    // An update into violation is refused too, and the stored object is unchanged.
    session["spec"]["environmentVariables"] = json!({"AWS_SECRET_ACCESS_KEY": "x"});
    let error = api.patch("real-write", &apply, &Patch::Apply(&session)).await.expect_err("denied");
    assert!(error.to_string().contains("names a credential"), "{error}");
    let stored = api.get("real-write").await.expect("still there");
    assert!(stored.data["spec"].get("environmentVariables").is_none());
}
