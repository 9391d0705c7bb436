//! The runner Job and its pod (pure): two containers of the runner image,
//! and who holds what.
//!
//! - `credentials`, a native sidecar (an init container that keeps running),
//!   runs `acp runner credentials`. It alone gets the session Secret: its
//!   keys as environment variables and its files mounted. It listens on
//!   loopback only ([`runner_pod::CREDENTIALS_ADDR`]).
//! - `runner` runs `acp runner` (the image's entrypoint, no args) and the
//!   agent. Its environment is the session's configuration, the commit
//!   author, and the sidecar's address as both `ACP_CREDENTIALS_URL` and
//!   `ANTHROPIC_BASE_URL`, with a placeholder `ANTHROPIC_API_KEY`. No
//!   Secret is mounted in it; the containers share no process namespace;
//!   the pod mounts no ServiceAccount token.

use std::collections::BTreeMap;

use crate::children::{ChildConfig, Workspace, meta};
use crate::names::{job_name, pvc_name, secret_name};
use acp_api::AgenticSession;
use acp_api::constants::runner_pod;
use acp_api::resume::Resume;
use acp_api::runner::{DEFAULT_TERMINATION_MESSAGE_PATH, DEFAULT_WORKSPACE, Place, RunnerInput};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

/// Where the session Secret is mounted in the sidecar (for key files).
pub const SECRET_MOUNT: &str = "/var/run/acp/secrets";
/// Keys of the session Secret that are settings, not credentials: the runner
/// gets these too.
pub const SETTING_KEYS: &[&str] = &["GIT_USER_NAME", "GIT_USER_EMAIL"];
/// Keys mounted as files rather than passed as variables.
const FILE_KEYS: &[&str] = &["GIT_SSH_KEY", "GIT_KNOWN_HOSTS"];
/// Where the runner's workspace is mounted.
const WORKSPACE: &str = DEFAULT_WORKSPACE;
/// Where the runner writes its result.
const TERMINATION_MESSAGE_PATH: &str = DEFAULT_TERMINATION_MESSAGE_PATH;

fn value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.into()), ..EnvVar::default() }
}

fn from_secret(session_name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: key.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret_name(session_name),
                key: key.to_owned(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The session's configuration as the runner contract's variables
/// ([`RunnerInput`], no credentials) for a runner pod, and the agent's
/// `HOME`: both containers get these.
pub fn session_env(session: &AgenticSession, resume: Option<&Resume>) -> Vec<EnvVar> {
    let input = RunnerInput::for_session(
        session.metadata.name.as_deref().unwrap_or_default(),
        session.metadata.namespace.as_deref(),
        &session.spec,
        Place::default(),
        resume.cloned(),
    );
    let mut env: Vec<EnvVar> = input.to_env().into_iter().map(|(k, v)| value(k, v)).collect();
    env.push(value("HOME", "/tmp/home"));
    env
}

/// The sidecar's environment: the session's, and every credential.
pub fn credentials_env(
    session: &AgenticSession,
    secret_keys: &[String],
    resume: Option<&Resume>,
) -> Vec<EnvVar> {
    let name = session.metadata.name.as_deref().unwrap_or_default();
    let mut env = Vec::new();
    for key in secret_keys {
        if FILE_KEYS.contains(&key.as_str()) {
            env.push(value(&format!("{key}_FILE"), format!("{SECRET_MOUNT}/{key}")));
        } else {
            env.push(from_secret(name, key));
        }
    }
    // The contract last: of two variables of one name the kubelet sets the
    // last, so no key of the Secret can stand for one of the contract's.
    env.extend(session_env(session, resume));
    env
}

/// The runner's environment: the session's, the settings, and the sidecar in
/// place of every credential.
pub fn runner_env(session: &AgenticSession, secret_keys: &[String], resume: Option<&Resume>) -> Vec<EnvVar> {
    let name = session.metadata.name.as_deref().unwrap_or_default();
    let mut env = session_env(session, resume);
    env.extend(
        secret_keys.iter().filter(|k| SETTING_KEYS.contains(&k.as_str())).map(|k| from_secret(name, k)),
    );
    env.push(value(runner_pod::CREDENTIALS_URL_ENV, runner_pod::CREDENTIALS_URL));
    env.push(value("ANTHROPIC_BASE_URL", runner_pod::CREDENTIALS_URL));
    env.push(value("ANTHROPIC_API_KEY", runner_pod::PROXIED_API_KEY));
    env
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        ..SecurityContext::default()
    }
}

fn volume(name: &str) -> Volume {
    Volume { name: name.into(), ..Volume::default() }
}

/// Where a follow-up's runner finds its parent's workspace (read-only).
pub const RESUME_MOUNT: &str = "/resume";

/// The runner pod of `session`; a follow-up also gets what it continues
/// (`RESUME_JSON`, in both containers: the sidecar clones deep enough to
/// show the commits since the parent's turn) and, when `resume.from` is set,
/// the workspace claim of `resume.workspace` (the thread's latest turn that
/// ran) mounted read-only at [`RESUME_MOUNT`] in the runner container.
pub fn spec(
    session: &AgenticSession,
    config: &ChildConfig,
    secret_keys: &[String],
    resume: Option<&Resume>,
) -> PodSpec {
    let credentials = credentials_container(config, credentials_env(session, secret_keys, resume));
    let mut runner = runner_container(config, runner_env(session, secret_keys, resume));
    let mut volumes = volumes(session, config);
    // A follow-up reads the workspace of its thread's latest turn that ran.
    if let Some(earlier) = resume.filter(|r| r.from.is_some()).and_then(|r| r.workspace.as_ref()) {
        volumes.push(Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(earlier),
                read_only: Some(true),
            }),
            ..volume("resume")
        });
        runner.volume_mounts.get_or_insert_default().push(mount("resume", RESUME_MOUNT, true));
    }
    let uid = config.run_as_user;
    PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        share_process_namespace: Some(false),
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
        init_containers: Some(vec![credentials]),
        containers: vec![runner],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

/// A container of the runner image, hardened, with `env`.
fn container(name: &str, config: &ChildConfig, env: Vec<EnvVar>) -> Container {
    Container {
        name: name.into(),
        image: Some(config.runner_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        env: Some(env),
        security_context: Some(hardened()),
        ..Container::default()
    }
}

/// The credentials sidecar: every credential, loopback only.
fn credentials_container(config: &ChildConfig, env: Vec<EnvVar>) -> Container {
    Container {
        args: Some(vec!["credentials".into()]),
        // A native sidecar: started before the runner, stopped after it.
        restart_policy: Some("Always".into()),
        resources: Some(ResourceRequirements {
            requests: Some(
                [("cpu", "50m"), ("memory", "64Mi")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
                    .collect(),
            ),
            ..ResourceRequirements::default()
        }),
        // Its own /tmp, in memory: git writes the ssh key's private copy
        // there, where the runner and the agent cannot see it.
        volume_mounts: Some(vec![
            mount("workspace", WORKSPACE, false),
            mount("secrets", SECRET_MOUNT, true),
            mount("credentials-tmp", "/tmp", false),
        ]),
        ..container(runner_pod::CREDENTIALS_CONTAINER, config, env)
    }
}

/// The runner and its agent: no Secret, the sidecar in place of credentials.
fn runner_container(config: &ChildConfig, env: Vec<EnvVar>) -> Container {
    Container {
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: config.resources.clone(),
        volume_mounts: Some(vec![mount("workspace", WORKSPACE, false), mount("tmp", "/tmp", false)]),
        ..container(runner_pod::RUNNER_CONTAINER, config, env)
    }
}

/// The pod's volumes: the workspace, the two `/tmp`s, the session Secret.
fn volumes(session: &AgenticSession, config: &ChildConfig) -> Vec<Volume> {
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let workspace = match &config.workspace {
        Workspace::Pvc { .. } => Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(session_name),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..volume("workspace")
        },
        Workspace::EmptyDir => {
            Volume { empty_dir: Some(EmptyDirVolumeSource::default()), ..volume("workspace") }
        }
    };
    vec![
        workspace,
        Volume { empty_dir: Some(EmptyDirVolumeSource::default()), ..volume("tmp") },
        Volume {
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("16Mi".into())),
                ..EmptyDirVolumeSource::default()
            }),
            ..volume("credentials-tmp")
        },
        Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(session_name)),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..volume("secrets")
        },
    ]
}

/// The runner Job of run `run`: the runner pod ([`spec`]) with no
/// retries and the session's deadline.
pub fn job(
    session: &AgenticSession,
    run: i64,
    config: &ChildConfig,
    secret_keys: &[String],
    resume: Option<&Resume>,
) -> Job {
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let job_meta = meta(session, job_name(session_name, run), Some(run));
    Job {
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(session.spec.timeout_seconds()),
            ttl_seconds_after_finished: config.ttl_seconds_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: job_meta.labels.clone(),
                    annotations: Some(BTreeMap::from([
                        (acp_api::constants::annotations::SESSION_NAME.to_owned(), session_name.to_owned()),
                        (DEFAULT_CONTAINER.to_owned(), runner_pod::RUNNER_CONTAINER.to_owned()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(spec(session, config, secret_keys, resume)),
            },
            ..JobSpec::default()
        }),
        metadata: job_meta,
        ..Job::default()
    }
}

/// Which container `kubectl logs` and `kubectl exec` pick by default.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

#[cfg(test)]
mod tests {
    use acp_api::resume::RESUME_ENV;
    use serde_json::json;

    use super::*;

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
            &["ANTHROPIC_API_KEY".into(), "GIT_SSH_KEY".into(), "GIT_TOKEN".into(), "GIT_USER_NAME".into()],
            None,
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
        assert_eq!(pod["shareProcessNamespace"], false);
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            spec["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
            "runner"
        );
        let hardened = json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}});
        let names = |c: &serde_json::Value| -> Vec<String> {
            c["env"]
                .as_array()
                .expect("env")
                .iter()
                .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        };

        // The runner: the image's entrypoint, no Secret, the sidecar in place of credentials.
        let runner = &pod["containers"][0];
        assert_eq!(runner["name"], "runner");
        assert!(runner.get("command").is_none() && runner.get("args").is_none(), "{runner}");
        assert_eq!(runner["securityContext"], hardened);
        assert_eq!(
            runner["volumeMounts"],
            json!([{"name": "workspace", "mountPath": "/workspace"}, {"name": "tmp", "mountPath": "/tmp"}])
        );
        let env = runner["env"].as_array().expect("env");
        let get = |name: &str| env.iter().find(|e| e["name"] == name).cloned().unwrap_or_default();
        assert_eq!(get("ANTHROPIC_API_KEY")["value"], "held-by-the-acp-credentials-sidecar");
        assert_eq!(get("ANTHROPIC_BASE_URL")["value"], "http://127.0.0.1:4180");
        assert_eq!(get("ACP_CREDENTIALS_URL")["value"], "http://127.0.0.1:4180");
        assert_eq!(get("GIT_USER_NAME")["valueFrom"]["secretKeyRef"]["key"], "GIT_USER_NAME");
        assert!(
            env.iter().all(|e| e.get("valueFrom").is_none() || e["name"] == "GIT_USER_NAME"),
            "only settings come from the Secret: {env:?}"
        );
        assert!(!names(runner).iter().any(|n| n.contains("GIT_SSH") || n.contains("TOKEN")), "{env:?}");

        // The sidecar: every credential, the key files, loopback only.
        let sidecar = &pod["initContainers"][0];
        assert_eq!(sidecar["name"], "credentials");
        assert_eq!(
            (sidecar["restartPolicy"].clone(), sidecar["args"].clone()),
            (json!("Always"), json!(["credentials"]))
        );
        assert_eq!(sidecar["securityContext"], hardened);
        assert_eq!(
            sidecar["volumeMounts"],
            json!([{"name": "workspace", "mountPath": "/workspace"},
                   {"name": "secrets", "mountPath": "/var/run/acp/secrets", "readOnly": true},
                   {"name": "credentials-tmp", "mountPath": "/tmp"}])
        );
        let env = sidecar["env"].as_array().expect("env");
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
            !names(sidecar).contains(&"GIT_SSH_KEY".to_owned()),
            "key files are mounted, not in the environment"
        );
        assert_eq!(
            pod["volumes"],
            json!([{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}},
                   {"name": "credentials-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                   {"name": "secrets", "secret": {"secretName": "fix-runner", "defaultMode": 256}}])
        );
    }

    #[test]
    fn no_credential_key_is_named_as_a_contract_variable() {
        let contract: Vec<&str> = acp_api::runner::env::ALL
            .iter()
            .copied()
            .chain([acp_api::runner::env::SESSION_ID, "HOME", runner_pod::CREDENTIALS_URL_ENV])
            .collect();
        let keys: Vec<String> = crate::children::SECRET_KEYS
            .iter()
            .flat_map(|k| [(*k).to_owned(), format!("{k}_FILE")])
            .collect();
        let shared: Vec<&String> = keys.iter().filter(|k| contract.contains(&k.as_str())).collect();
        assert!(shared.is_empty(), "Secret keys named as contract variables: {shared:?}");
        // And in the sidecar the contract comes after every credential.
        let session: AgenticSession = serde_json::from_value(json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": "s", "namespace": "team"}, "spec": {"initialPrompt": "x"}
        }))
        .expect("session");
        let env = credentials_env(&session, &["ANTHROPIC_API_KEY".into(), "GIT_SSH_KEY".into()], None);
        let last_secret = env.iter().rposition(|e| e.value_from.is_some() || e.name.ends_with("_FILE"));
        let first_contract = env.iter().position(|e| e.name == acp_api::runner::env::SESSION_NAME);
        assert!(last_secret < first_contract, "{env:?}");
    }

    #[test]
    fn a_follow_up_reads_its_parents_workspace_read_only_in_the_runner_alone() {
        let session: AgenticSession = serde_json::from_value(json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": "next", "namespace": "team"}, "spec": {"initialPrompt": "More."}
        }))
        .expect("session");
        let resume = Resume {
            parent: "first".into(),
            session_id: Some("conv".into()),
            from: Some(format!("{RESUME_MOUNT}/.acp/home")),
            workspace: Some("first".into()),
            ..Resume::default()
        };
        let pod =
            serde_json::to_value(spec(&session, &ChildConfig::default(), &[], Some(&resume))).expect("json");
        let volumes = pod["volumes"].as_array().expect("volumes");
        let parent = volumes.iter().find(|v| v["name"] == "resume").expect("the parent's claim");
        assert_eq!(
            parent["persistentVolumeClaim"],
            json!({"claimName": "first-workspace", "readOnly": true})
        );
        let runner = &pod["containers"][0];
        assert!(
            runner["volumeMounts"]
                .as_array()
                .expect("mounts")
                .contains(&json!({"name": "resume", "mountPath": "/resume", "readOnly": true}))
        );
        let env = runner["env"].as_array().expect("env");
        let json = env
            .iter()
            .find(|e| e["name"] == RESUME_ENV)
            .and_then(|e| e["value"].as_str())
            .expect("RESUME_JSON");
        assert_eq!(serde_json::from_str::<Resume>(json).expect("parse"), resume);
        let sidecar = &pod["initContainers"][0];
        assert!(
            sidecar["env"].as_array().expect("env").iter().any(|e| e["name"] == RESUME_ENV),
            "it clones deeper"
        );
        assert!(!sidecar["volumeMounts"].to_string().contains("resume"), "the sidecar does not mount it");
        // No workspace to read: the JSON alone, no mount.
        let fresh = Resume { from: None, ..resume };
        let pod =
            serde_json::to_value(spec(&session, &ChildConfig::default(), &[], Some(&fresh))).expect("json");
        assert!(!pod["volumes"].to_string().contains("\"resume\""));
    }
}
