//! The generated CRDs against a real kube-apiserver: examples apply, invalid
//! sessions are rejected field by field, and manifests written for the existing
//! platform round-trip with the same server-side defaults.

use std::path::Path;

use acp_api::AgenticSession;
use acp_testenv::TestEnv;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn strict_apply() -> PatchParams {
    let mut params = PatchParams::apply("acp-test");
    params.field_validation = Some(ValidationDirective::Strict);
    params
}

#[tokio::test]
async fn server_reports_its_version() {
    let out = TestEnv::get().kubectl().args(["get", "--raw", "/version"]).output().expect("kubectl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version: Value = serde_json::from_slice(&out.stdout).expect("json");
    let git_version = version["gitVersion"].as_str().expect("gitVersion");
    assert!(git_version.starts_with("v1.3"), "unexpected server version {git_version}");
}

#[tokio::test]
async fn examples_apply_and_list_with_printer_columns() {
    let env = TestEnv::get();
    let ns = env.namespace("examples").await;
    env.install_crds(&ns.client).await;

    let examples = repo().join("examples/sessions");
    let out = env
        .kubectl()
        .args(["apply", "--server-side", "-n", &ns.name, "-f"])
        .arg(&examples)
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));

    let out = env.kubectl().args(["get", "as", "-n", &ns.name]).output().expect("kubectl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).expect("utf-8");
    let header: Vec<_> = table.lines().next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "MODEL", "AGE"], "{table}");
    let count = std::fs::read_dir(&examples).expect("examples").count();
    assert!(count >= 4, "at least four examples");
    assert_eq!(table.lines().count(), count + 1, "{table}");
    assert!(table.contains("fix-login-redirect") && table.contains("claude-sonnet-4-6"), "{table}");

    // Every example also parses into the Rust types, so the runner can read it.
    let sessions: Api<AgenticSession> = ns.api();
    let listed = sessions.list(&Default::default()).await.expect("list");
    assert_eq!(listed.items.len(), count);
    assert!(listed.items.iter().all(|s| !s.spec.repos.is_empty()));

    // The schedule examples apply too, and parse into the Rust types.
    let out = env
        .kubectl()
        .args(["apply", "--server-side", "-n", &ns.name, "-f"])
        .arg(repo().join("examples/schedules"))
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));
    let schedules: Api<acp_api::SessionSchedule> = ns.api();
    let listed = schedules.list(&Default::default()).await.expect("list");
    assert!(!listed.items.is_empty() && listed.items.iter().all(|s| s.spec.cron().is_ok()));
}

/// Applies `spec` as a session and returns the server's rejection message.
async fn rejection(api: &Api<DynamicObject>, name: &str, spec: Value) -> String {
    let object = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": name}, "spec": spec
    });
    match api.patch(name, &strict_apply(), &Patch::Apply(&object)).await {
        Ok(_) => panic!("server accepted invalid session {name}"),
        Err(kube::Error::Api(status)) => status.message,
        Err(other) => panic!("unexpected error for {name}: {other}"),
    }
}

fn session_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("vteam.ambient-code", "v1alpha1", "AgenticSession"),
        "agenticsessions",
    )
}

#[tokio::test]
async fn server_rejects_invalid_sessions_with_field_messages() {
    let env = TestEnv::get();
    let ns = env.namespace("invalid").await;
    env.install_crds(&ns.client).await;
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &session_resource());

    let msg = rejection(&api, "no-url", json!({"repos": [{"branch": "main"}]})).await;
    assert!(msg.contains("spec.repos[0].url: Required value"), "{msg}");

    let msg = rejection(&api, "negative-timeout", json!({"timeout": -5})).await;
    assert!(msg.contains("spec.timeout") && msg.contains("greater than or equal to 1"), "{msg}");

    let msg = rejection(&api, "unknown-field", json!({"initialPrompt": "x", "bogusField": 1})).await;
    assert!(msg.contains(".spec.bogusField: field not declared in schema"), "{msg}");

    let msg = rejection(&api, "bad-url", json!({"repos": [{"url": "not a url"}]})).await;
    assert!(msg.contains("spec.repos[0].url") && msg.contains("should match"), "{msg}");

    let msg = rejection(&api, "negative-inactivity", json!({"inactivityTimeout": -1})).await;
    assert!(msg.contains("spec.inactivityTimeout"), "{msg}");

    // Status is a subresource: a phase outside the enum is rejected there.
    let object = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "phase"}, "spec": {"initialPrompt": "x"}
    });
    api.patch("phase", &strict_apply(), &Patch::Apply(&object)).await.expect("valid session applies");
    let status = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "phase"}, "status": {"phase": "Exploding"}
    });
    let err = api
        .patch_status("phase", &strict_apply(), &Patch::Apply(&status))
        .await
        .expect_err("invalid phase rejected");
    let kube::Error::Api(status) = err else { panic!("unexpected error {err}") };
    assert_eq!(status.code, 422);
    assert!(status.message.contains("status.phase: Unsupported value: \"Exploding\""), "{}", status.message);
}

/// A schedule the operator could not follow (minute 61, a zone not in the
/// IANA database) is refused by the API server itself, not admitted to end
/// up InvalidSchedule in its status; the server and `acp validate` name the
/// same fields and ranges, all of them.
#[tokio::test]
async fn server_refuses_invalid_schedules_as_acp_validate_does() {
    let env = TestEnv::get();
    let ns = env.namespace("bad-schedule").await;
    env.install_crds(&ns.client).await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.yaml");
    let manifest = |schedule: &str, zone: &str| {
        format!(
            "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: nightly\nspec:\n  schedule: \"{schedule}\"\n  timeZone: {zone}\n  template:\n    spec:\n      initialPrompt: go\n"
        )
    };
    let apply = |text: String| {
        std::fs::write(&file, text).expect("write");
        let server = env
            .kubectl()
            .args(["apply", "--server-side", "-n", &ns.name, "-f"])
            .arg(&file)
            .output()
            .expect("kubectl runs");
        let validate = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
            .arg("validate")
            .arg(&file)
            .output()
            .expect("acp runs");
        (server, validate)
    };

    let (server, validate) = apply(manifest("61 * * * *", "Mars/Olympus"));
    let refused = String::from_utf8_lossy(&server.stderr).into_owned();
    let reported = String::from_utf8_lossy(&validate.stdout).into_owned();
    assert!(!server.status.success(), "the server admitted minute 61 in Mars/Olympus");
    assert_eq!(validate.status.code(), Some(1), "{reported}");
    for (field, message) in
        [("spec.schedule", "minute must be 0-59"), ("spec.timeZone", "unknown time zone \"Mars/Olympus\"")]
    {
        assert!(
            refused.lines().any(|l| l.contains(field) && l.contains(message)),
            "the server names {field} and {message:?}: {refused}"
        );
        assert!(
            reported.lines().any(|l| l.contains(&format!("error: {field}: {message}"))),
            "acp validate names {field} and {message:?}: {reported}"
        );
    }
    assert!(reported.contains("2 errors"), "{reported}");

    // Each of the other fields, with its range, in both.
    for (schedule, message) in [
        ("0 24 * * *", "hour must be 0-23"),
        ("0 0 32 * *", "day-of-month must be 1-31"),
        ("0 0 * 13 *", "month must be 1-12 or JAN-DEC"),
        ("0 0 * * 8", "day-of-week must be 0-7 or SUN-SAT"),
        ("0 0 * DEC-JAN *", "month range a-b must have a <= b"),
        ("0 3 * *", "it has 4 fields, not 5"),
    ] {
        let (server, validate) = apply(manifest(schedule, "Europe/Paris"));
        let refused = String::from_utf8_lossy(&server.stderr).into_owned();
        let reported = String::from_utf8_lossy(&validate.stdout).into_owned();
        assert!(!server.status.success(), "the server admitted {schedule:?}");
        assert!(refused.contains("spec.schedule") && refused.contains(message), "{schedule:?}: {refused}");
        assert!(reported.contains(&format!("error: spec.schedule: {message}")), "{schedule:?}: {reported}");
    }

    // What both accept, the server stores and the operator's parser reads.
    let (server, validate) = apply(manifest("0 9 ? * mon-fri", "America/Argentina/ComodRivadavia"));
    assert!(server.status.success(), "{}", String::from_utf8_lossy(&server.stderr));
    assert!(validate.status.success(), "{}", String::from_utf8_lossy(&validate.stdout));
    let schedules: Api<acp_api::SessionSchedule> = ns.api();
    let stored = schedules.get("nightly").await.expect("stored");
    assert!(stored.spec.cron().is_ok(), "{:?}", stored.spec.cron());
}

/// The existing platform's CRD, moved to a separate group so both can be
/// installed side by side.
fn upstream_crd() -> CustomResourceDefinition {
    let text = std::fs::read_to_string(
        repo().join("crates/acp-api/tests/fixtures/agenticsessions-crd.upstream.yaml"),
    )
    .expect("fixture");
    let mut crd: Value = serde_saphyr::from_str(&text).expect("fixture parses");
    crd["metadata"]["name"] = json!("agenticsessions.upstream.ambient-code");
    crd["spec"]["group"] = json!("upstream.ambient-code");
    crd["spec"]["names"]["shortNames"] = json!([]);
    serde_json::from_value(crd).expect("valid CRD")
}

/// A manifest as the existing platform's users write it; it sets some fields
/// and leaves others to the server's defaults.
fn platform_manifest(group: &str) -> Value {
    json!({
        "apiVersion": format!("{group}/v1alpha1"), "kind": "AgenticSession",
        "metadata": {"name": "platform-session"},
        "spec": {
            "displayName": "Fix flaky login test",
            "initialPrompt": "Find and fix the flaky login test.",
            "repos": [
                {"url": "https://github.com/org/app.git"},
                {"url": "https://github.com/org/lib.git", "branch": "develop", "autoPush": true},
                {"url": "https://github.com/org/docs.git", "branch": ""}
            ],
            "userContext": {"userId": "u-123", "displayName": "Ada", "groups": ["dev"]},
            "llmSettings": {"temperature": 0.2},
            "inactivityTimeout": 0,
            "stopOnRunFinished": true,
            "environmentVariables": {"RUNNER_TYPE": "claude-agent-sdk"},
            "mcpServers": {"custom": {"docs": {"type": "http", "url": "https://mcp.example/docs", "headers": {"x": "y"}}}, "disabled": ["web"]},
            "activeWorkflow": {"gitUrl": "https://github.com/org/workflows.git", "path": "triage"}
        }
    })
}

#[tokio::test]
async fn platform_manifest_round_trips_with_the_platforms_defaults() {
    let env = TestEnv::get();
    let ns = env.namespace("roundtrip").await;
    env.install_crds(&ns.client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    let upstream = upstream_crd();
    let name = upstream.metadata.name.clone().expect("named");
    crds.patch(&name, &PatchParams::apply("acp-test").force(), &Patch::Apply(&upstream))
        .await
        .expect("install upstream CRD");
    tokio::time::timeout(
        acp_testenv::DEFAULT_TIMEOUT,
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .expect("upstream CRD established in time")
    .expect("watch");

    let upstream_resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("upstream.ambient-code", "v1alpha1", "AgenticSession"),
        "agenticsessions",
    );
    let theirs: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &upstream_resource);
    let ours: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &session_resource());
    let applied_theirs = theirs
        .patch("platform-session", &strict_apply(), &Patch::Apply(platform_manifest("upstream.ambient-code")))
        .await
        .expect("the platform's CRD accepts its manifest");
    let applied_ours = ours
        .patch("platform-session", &strict_apply(), &Patch::Apply(platform_manifest("vteam.ambient-code")))
        .await
        .expect("acp's CRD accepts the platform's manifest unchanged");

    let spec_theirs = &applied_theirs.data["spec"];
    let spec_ours = &applied_ours.data["spec"];
    assert_eq!(spec_ours, spec_theirs, "server-side defaults differ from the platform's");
    // The defaults really were applied (not just equally absent).
    assert_eq!(spec_ours["timeout"], 300);
    assert_eq!(spec_ours["repos"][0]["branch"], "main");
    assert_eq!(spec_ours["repos"][2]["branch"], "", "an empty branch (the remote's default) is kept");
    assert_eq!(spec_ours["repos"][0]["autoPush"], false);
    assert_eq!(spec_ours["llmSettings"]["model"], "claude-sonnet-4-6");
    assert_eq!(spec_ours["llmSettings"]["maxTokens"], 4000);
    assert_eq!(spec_ours["activeWorkflow"]["branch"], "main");

    // The existing platform's status fields are kept by our status schema.
    let status = json!({
        "phase": "Running", "sdkSessionId": "s-1", "sdkRestartCount": 1,
        "reconciledRepos": [{"url": "https://github.com/org/app.git", "name": "app", "status": "Ready", "branches": ["main"]}],
        "reconciledWorkflow": {"gitUrl": "https://github.com/org/workflows.git", "status": "Active"},
        "stoppedReason": "user",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    });
    let mut status_theirs = None;
    for (api, group) in [(&theirs, "upstream.ambient-code"), (&ours, "vteam.ambient-code")] {
        let patch =
            json!({"apiVersion": format!("{group}/v1alpha1"), "kind": "AgenticSession", "status": status});
        let written = api
            .patch_status("platform-session", &strict_apply(), &Patch::Apply(&patch))
            .await
            .expect("status accepted");
        match &status_theirs {
            None => status_theirs = Some(written.data["status"].clone()),
            Some(theirs) => assert_eq!(&written.data["status"], theirs),
        }
    }

    // And it reads into acp's Rust types and back without losing a field.
    let typed: Api<AgenticSession> = ns.api();
    let session = typed.get("platform-session").await.expect("typed read");
    assert_eq!(serde_json::to_value(&session.spec).expect("serializable"), *spec_ours);
    assert_eq!(session.spec.timeout_seconds(), 300);
}
