//! The children of a session, built as plain objects (pure): the runner's
//! credentials Secret, the workspace PVC and the runner Job. The controller
//! applies them with server-side apply; each has the session as controller
//! owner, so deleting the session deletes them.
//!
//! Names are deterministic: `<session>-runner`, `<session>-workspace`,
//! `<session>-<run>`, shortened with a hash when the session name is long.

use std::collections::BTreeMap;

use acp_api::AgenticSession;
use acp_api::constants::{RUNNER_SECRETS, labels};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ResourceRequirements, Secret};
use kube::Resource as _;
use kube::api::ObjectMeta;
use serde_json::json;

/// Keys copied from the namespace's runner secret (and a per-session override
/// secret) into the session's Secret. `ANTHROPIC_API_KEY` is required.
pub const SECRET_KEYS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GIT_TOKEN",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "GIT_SSH_KEY",
    "GIT_KNOWN_HOSTS",
    "GIT_USER_NAME",
    "GIT_USER_EMAIL",
    "GITHUB_API_URL",
    "GITHUB_HOST",
];
/// Annotation naming a Secret whose keys override the namespace's for one session.
pub const RUNNER_SECRET_ANNOTATION: &str = "ambient-code.io/runner-secret";
/// Where the session Secret is mounted in the runner (for key files).
pub const SECRET_MOUNT: &str = "/var/run/acp/secrets";

/// The runner image of this release (built from `images/runner`).
pub const DEFAULT_RUNNER_IMAGE: &str = concat!("ghcr.io/acp-dev/acp-runner:", env!("CARGO_PKG_VERSION"));

/// How the operator shapes runner Jobs.
#[derive(Clone, Debug)]
pub struct ChildConfig {
    /// Runner image (its entrypoint is `acp runner`; it holds git, node and the claude CLI).
    pub runner_image: String,
    /// Image pull policy.
    pub image_pull_policy: Option<String>,
    /// Workspace storage.
    pub workspace: Workspace,
    /// Runner container resources.
    pub resources: Option<ResourceRequirements>,
    /// `ttlSecondsAfterFinished` of runner Jobs.
    pub ttl_seconds_after_finished: Option<i32>,
    /// UID the runner runs as.
    pub run_as_user: i64,
}

impl Default for ChildConfig {
    fn default() -> Self {
        Self {
            runner_image: DEFAULT_RUNNER_IMAGE.into(),
            image_pull_policy: None,
            workspace: Workspace::Pvc { size: "5Gi".into(), storage_class: None },
            resources: None,
            ttl_seconds_after_finished: Some(86_400),
            run_as_user: 1000,
        }
    }
}

/// Workspace storage for runners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workspace {
    /// A PersistentVolumeClaim per session (kept across runs).
    Pvc {
        /// Requested size.
        size: String,
        /// Storage class; the cluster default when unset.
        storage_class: Option<String>,
    },
    /// An emptyDir per run (nothing kept after the pod).
    EmptyDir,
}

/// `<name>-<suffix>`, at most 63 characters (a label value), unique per input.
pub fn child_name(name: &str, suffix: &str) -> String {
    let full = format!("{name}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let keep = 63 - suffix.len() - 10;
    let mut end = keep.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{:08x}-{suffix}", name[..end].trim_end_matches('-'), hash as u32)
}

/// `name` as a label value: itself when it fits in 63 characters, else a
/// shortened, hashed form (the pod annotation keeps the full name).
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 { name.to_owned() } else { child_name(&name[..name.len() - 2], "s") }
}

/// Name of the session's credentials Secret.
pub fn secret_name(session: &str) -> String {
    child_name(session, "runner")
}

/// Name of the session's workspace PVC.
pub fn pvc_name(session: &str) -> String {
    child_name(session, "workspace")
}

/// Builds the session Secret's data from the namespace secret and an optional
/// override; `Err` names what is missing.
pub fn secret_data(
    namespace_secret: Option<&BTreeMap<String, ByteString>>,
    override_secret: Option<(&str, Option<&BTreeMap<String, ByteString>>)>,
) -> Result<BTreeMap<String, ByteString>, String> {
    let mut data: BTreeMap<String, ByteString> = namespace_secret
        .into_iter()
        .flatten()
        .filter(|(k, _)| SECRET_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some((name, secret)) = override_secret {
        let secret = secret
            .ok_or_else(|| format!("secret {name} (annotation {RUNNER_SECRET_ANNOTATION}) not found"))?;
        data.extend(
            secret
                .iter()
                .filter(|(k, _)| SECRET_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    if data.get("ANTHROPIC_API_KEY").is_none_or(|v| v.0.is_empty()) {
        return Err(match namespace_secret {
            None => format!("secret {RUNNER_SECRETS} not found: create it with key ANTHROPIC_API_KEY"),
            Some(_) => format!("secret {RUNNER_SECRETS} has no ANTHROPIC_API_KEY"),
        });
    }
    Ok(data)
}

fn meta(session: &AgenticSession, name: String, run: Option<i64>) -> ObjectMeta {
    let session_name = session.metadata.name.clone().unwrap_or_default();
    let mut labels = BTreeMap::from([
        (labels::MANAGED_BY.to_owned(), labels::MANAGED_BY_VALUE.to_owned()),
        (labels::SESSION.to_owned(), label_value(&session_name)),
    ]);
    if let Some(run) = run {
        labels.insert("ambient-code.io/run".into(), run.to_string());
    }
    ObjectMeta {
        name: Some(name),
        namespace: session.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: session.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The session's credentials Secret.
pub fn secret(session: &AgenticSession, data: BTreeMap<String, ByteString>) -> Secret {
    let name = secret_name(session.metadata.name.as_deref().unwrap_or_default());
    Secret {
        metadata: meta(session, name, None),
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The session's workspace claim, when the workspace is a PVC.
pub fn pvc(session: &AgenticSession, config: &ChildConfig) -> Option<PersistentVolumeClaim> {
    let Workspace::Pvc { size, storage_class } = &config.workspace else { return None };
    let name = pvc_name(session.metadata.name.as_deref().unwrap_or_default());
    let mut claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    }))
    .ok()?;
    claim.metadata = meta(session, name, None);
    if let Some(spec) = claim.spec.as_mut() {
        spec.storage_class_name.clone_from(storage_class);
    }
    Some(claim)
}

/// The runner's environment for `session` (the runner contract's variables).
pub fn runner_env(session: &AgenticSession, secret_keys: &[String]) -> Vec<serde_json::Value> {
    let spec = &session.spec;
    let json_string = |v: serde_json::Value| v.to_string();
    let repos: Vec<serde_json::Value> = spec
        .repos
        .iter()
        .map(|r| json!({"url": r.url, "branch": r.branch, "autoPush": r.auto_push(), "pullRequest": r.pull_request.unwrap_or(false)}))
        .collect();
    let mut env: Vec<(&str, Option<String>)> = vec![
        ("AGENTIC_SESSION_NAME", session.metadata.name.clone()),
        ("AGENTIC_SESSION_NAMESPACE", session.metadata.namespace.clone()),
        ("WORKSPACE_PATH", Some("/workspace".into())),
        ("TERMINATION_MESSAGE_PATH", Some("/dev/termination-log".into())),
        ("INITIAL_PROMPT", spec.initial_prompt.clone()),
        ("DISPLAY_NAME", spec.display_name.clone()),
        ("REPOS_JSON", Some(json_string(json!(repos)))),
        ("LLM_MODEL", Some(spec.model().to_owned())),
        ("MAX_TURNS", spec.max_turns.map(|t| t.to_string())),
        ("INACTIVITY_TIMEOUT", spec.inactivity_timeout.map(|t| t.to_string())),
        ("TIMEOUT", Some(spec.timeout_seconds().to_string())),
        ("CUSTOM_MCP_SERVERS", spec.mcp_servers.as_ref().map(|m| json_string(json!(m)))),
        (
            "SESSION_ENV_JSON",
            (!spec.environment_variables.is_empty()).then(|| json_string(json!(spec.environment_variables))),
        ),
        ("USER_ID", spec.user_context.as_ref().and_then(|u| u.user_id.clone())),
        ("USER_NAME", spec.user_context.as_ref().and_then(|u| u.display_name.clone())),
        ("HOME", Some("/tmp/home".into())),
    ];
    if let Some(w) = &spec.active_workflow {
        env.push(("ACTIVE_WORKFLOW_GIT_URL", w.git_url.clone()));
        env.push(("ACTIVE_WORKFLOW_BRANCH", w.branch.clone()));
        env.push(("ACTIVE_WORKFLOW_PATH", w.path.clone()));
    }
    if secret_keys.iter().any(|k| k == "GIT_SSH_KEY") {
        env.push(("GIT_SSH_KEY_FILE", Some(format!("{SECRET_MOUNT}/GIT_SSH_KEY"))));
    }
    if secret_keys.iter().any(|k| k == "GIT_KNOWN_HOSTS") {
        env.push(("GIT_KNOWN_HOSTS_FILE", Some(format!("{SECRET_MOUNT}/GIT_KNOWN_HOSTS"))));
    }
    let mut out: Vec<serde_json::Value> =
        env.into_iter().filter_map(|(k, v)| v.map(|v| json!({"name": k, "value": v}))).collect();
    // Credentials come from the session Secret, key by key.
    for key in secret_keys.iter().filter(|k| !matches!(k.as_str(), "GIT_SSH_KEY" | "GIT_KNOWN_HOSTS")) {
        let secret = secret_name(session.metadata.name.as_deref().unwrap_or_default());
        out.push(json!({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}));
    }
    out
}

/// The runner Job of run `run`.
pub fn job(session: &AgenticSession, run: i64, config: &ChildConfig, secret_keys: &[String]) -> Option<Job> {
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let workspace = match &config.workspace {
        Workspace::Pvc { .. } => {
            json!({"name": "workspace", "persistentVolumeClaim": {"claimName": pvc_name(session_name)}})
        }
        Workspace::EmptyDir => json!({"name": "workspace", "emptyDir": {}}),
    };
    let job_meta = meta(session, crate::state::job_name(session_name, run), Some(run));
    let pod_labels = job_meta.labels.clone();
    let mut job: Job = serde_json::from_value(json!({
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": session.spec.timeout_seconds(),
            "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {acp_api::constants::annotations::SESSION_NAME: session_name}
                },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": config.run_as_user, "runAsGroup": config.run_as_user,
                        "fsGroup": config.run_as_user, "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "containers": [{
                        "name": "runner",
                        "image": config.runner_image,
                        "imagePullPolicy": config.image_pull_policy,
                        "env": runner_env(session, secret_keys),
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "resources": config.resources,
                        "securityContext": {
                            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}
                        },
                        "volumeMounts": [
                            {"name": "workspace", "mountPath": "/workspace"},
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "secrets", "mountPath": SECRET_MOUNT, "readOnly": true}
                        ]
                    }],
                    "volumes": [
                        workspace,
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "secrets", "secret": {"secretName": secret_name(session_name), "defaultMode": 0o400}}
                    ]
                }
            }
        }
    }))
    .ok()?;
    job.metadata = job_meta;
    Some(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_bounded() {
        assert_eq!(child_name("fix-bug", "3"), "fix-bug-3");
        let long = "a".repeat(100);
        let name = child_name(&long, "workspace");
        assert!(name.len() <= 63, "{name}");
        assert_eq!(name, child_name(&long, "workspace"));
        assert_ne!(name, child_name(&"a".repeat(99), "workspace"));
    }

    #[test]
    fn secret_data_requires_the_api_key_and_applies_overrides() {
        let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
        let ns = BTreeMap::from([
            ("ANTHROPIC_API_KEY".to_owned(), bytes("k")),
            ("GITHUB_TOKEN".to_owned(), bytes("ns")),
            ("UNRELATED".to_owned(), bytes("x")),
        ]);
        let over = BTreeMap::from([("GITHUB_TOKEN".to_owned(), bytes("mine"))]);
        let data = secret_data(Some(&ns), Some(("mine", Some(&over)))).expect("complete");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"]);
        assert_eq!(data["GITHUB_TOKEN"], bytes("mine"));
        assert_eq!(
            secret_data(None, None).expect_err("missing"),
            "secret ambient-runner-secrets not found: create it with key ANTHROPIC_API_KEY"
        );
        let err = secret_data(Some(&ns), Some(("gone", None))).expect_err("override missing");
        assert!(err.contains("secret gone"), "{err}");
    }
}
