//! The children of a session, built as typed `k8s-openapi` objects (pure):
//! the runner's credentials Secret, the workspace PVC and the runner Job. The
//! controller applies them with server-side apply; each has the session as
//! controller owner, so deleting the session deletes them.
//!
//! Names are deterministic ([`crate::names`]): `<session>-runner`,
//! `<session>-workspace`, `<session>-<run>`, shortened with a hash when the
//! session name is long.

use std::collections::BTreeMap;

use acp_api::AgenticSession;
use acp_api::constants::{RUNNER_SECRETS, labels};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource as _;
use kube::api::ObjectMeta;
use serde_json::json;

use crate::names::job_name;
pub use crate::names::{child_name, label_value, pvc_name, secret_name};
use crate::observe::RUNNER_CONTAINER;

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
        let secret = secret.ok_or_else(|| format!("secret {name} (spec.runnerSecret) not found"))?;
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
    Some(PersistentVolumeClaim {
        metadata: meta(session, name, None),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

fn value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.into()), ..EnvVar::default() }
}

/// The runner's environment for `session` (the runner contract's variables):
/// plain values, then the credentials from the session Secret, key by key.
pub fn runner_env(session: &AgenticSession, secret_keys: &[String]) -> Vec<EnvVar> {
    let spec = &session.spec;
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let repos: Vec<serde_json::Value> = spec
        .repos
        .iter()
        .map(|r| json!({"url": r.url, "branch": r.branch, "autoPush": r.auto_push(), "pullRequest": r.pull_request.unwrap_or(false)}))
        .collect();
    let mut env: Vec<(&str, Option<String>)> = vec![
        ("AGENTIC_SESSION_NAME", session.metadata.name.clone()),
        ("AGENTIC_SESSION_NAMESPACE", session.metadata.namespace.clone()),
        ("WORKSPACE_PATH", Some(WORKSPACE.into())),
        ("TERMINATION_MESSAGE_PATH", Some(TERMINATION_MESSAGE_PATH.into())),
        ("INITIAL_PROMPT", spec.initial_prompt.clone()),
        ("DISPLAY_NAME", spec.display_name.clone()),
        ("REPOS_JSON", Some(json!(repos).to_string())),
        ("LLM_MODEL", Some(spec.model().to_owned())),
        ("MAX_TURNS", spec.max_turns.map(|t| t.to_string())),
        ("INACTIVITY_TIMEOUT", spec.inactivity_timeout.map(|t| t.to_string())),
        ("TIMEOUT", Some(spec.timeout_seconds().to_string())),
        ("CUSTOM_MCP_SERVERS", spec.mcp_servers.as_ref().map(|m| json!(m).to_string())),
        (
            "SESSION_ENV_JSON",
            (!spec.environment_variables.is_empty()).then(|| json!(spec.environment_variables).to_string()),
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
    let mut out: Vec<EnvVar> = env.into_iter().filter_map(|(k, v)| v.map(|v| value(k, v))).collect();
    let secret = secret_name(session_name);
    for key in secret_keys.iter().filter(|k| !matches!(k.as_str(), "GIT_SSH_KEY" | "GIT_KNOWN_HOSTS")) {
        out.push(EnvVar {
            name: key.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: key.clone(),
                    ..SecretKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    out
}

/// Where the runner's workspace is mounted.
const WORKSPACE: &str = "/workspace";
/// Where the runner writes its result.
const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The runner Job of run `run`: the runner image with its own entrypoint
/// (`acp runner`), no command or args.
pub fn job(session: &AgenticSession, run: i64, config: &ChildConfig, secret_keys: &[String]) -> Job {
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let workspace = match &config.workspace {
        Workspace::Pvc { .. } => Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(session_name),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..Volume::default()
        },
        Workspace::EmptyDir => Volume {
            name: "workspace".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    };
    let job_meta = meta(session, job_name(session_name, run), Some(run));
    let uid = config.run_as_user;
    let container = Container {
        name: RUNNER_CONTAINER.into(),
        image: Some(config.runner_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        env: Some(runner_env(session, secret_keys)),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: config.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("workspace", WORKSPACE, false),
            mount("tmp", "/tmp", false),
            mount("secrets", SECRET_MOUNT, true),
        ]),
        ..Container::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(uid),
            run_as_group: Some(uid),
            fs_group: Some(uid),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            workspace,
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            Volume {
                name: "secrets".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret_name(session_name)),
                    default_mode: Some(0o400),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    Job {
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(session.spec.timeout_seconds()),
            ttl_seconds_after_finished: config.ttl_seconds_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: job_meta.labels.clone(),
                    annotations: Some(BTreeMap::from([(
                        acp_api::constants::annotations::SESSION_NAME.to_owned(),
                        session_name.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        metadata: job_meta,
        ..Job::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_job_is_the_runner_contract() {
        let session: AgenticSession = serde_json::from_value(json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": "fix", "namespace": "team", "uid": "u-1"},
            "spec": {"initialPrompt": "Fix it.", "timeout": 600, "repos": [{"url": "https://github.com/a/b.git"}]}
        }))
        .expect("session");
        let config = ChildConfig { workspace: Workspace::EmptyDir, ..ChildConfig::default() };
        let job = serde_json::to_value(job(
            &session,
            2,
            &config,
            &["ANTHROPIC_API_KEY".into(), "GIT_SSH_KEY".into()],
        ))
        .expect("json");
        assert_eq!(job["metadata"]["name"], "fix-2");
        assert_eq!(job["metadata"]["labels"]["ambient-code.io/run"], "2");
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let spec = &job["spec"];
        assert_eq!(
            (spec["backoffLimit"].clone(), spec["activeDeadlineSeconds"].clone()),
            (json!(0), json!(600))
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(spec["template"]["metadata"]["annotations"]["ambient-code.io/session-name"], "fix");
        assert_eq!(
            pod["securityContext"],
            json!({"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                   "seccompProfile": {"type": "RuntimeDefault"}})
        );
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "runner");
        assert!(container.get("command").is_none() && container.get("args").is_none(), "{container}");
        assert_eq!(
            container["securityContext"],
            json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
        );
        assert_eq!(
            container["volumeMounts"],
            json!([{"name": "workspace", "mountPath": "/workspace"}, {"name": "tmp", "mountPath": "/tmp"},
                   {"name": "secrets", "mountPath": "/var/run/acp/secrets", "readOnly": true}])
        );
        assert_eq!(
            pod["volumes"],
            json!([{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}},
                   {"name": "secrets", "secret": {"secretName": "fix-runner", "defaultMode": 256}}])
        );
        let env = container["env"].as_array().expect("env");
        let key = env.iter().find(|e| e["name"] == "ANTHROPIC_API_KEY").expect("key");
        assert_eq!(
            key["valueFrom"],
            json!({"secretKeyRef": {"name": "fix-runner", "key": "ANTHROPIC_API_KEY"}})
        );
        assert!(
            env.iter()
                .any(|e| e["name"] == "GIT_SSH_KEY_FILE" && e["value"] == "/var/run/acp/secrets/GIT_SSH_KEY")
        );
        assert!(
            !env.iter().any(|e| e["name"] == "GIT_SSH_KEY"),
            "key files are mounted, not in the environment"
        );
    }
}
