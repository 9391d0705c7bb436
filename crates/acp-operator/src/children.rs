//! The children of a session, built as typed `k8s-openapi` objects (pure):
//! the runner's credentials Secret and the workspace PVC (the runner Job is
//! the `pod` module's), and how the operator shapes them ([`ChildConfig`]). The
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
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, ResourceRequirements, Secret,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource as _;
use kube::api::ObjectMeta;

pub use crate::names::{child_name, label_value, pvc_name, secret_name};

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
    /// Where runner pods may connect.
    pub egress: crate::egress::Egress,
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
            egress: crate::egress::Egress::default(),
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

/// Metadata of a child: its name, the session's labels (and the run's), the
/// session as controller owner.
pub(crate) fn meta(session: &AgenticSession, name: String, run: Option<i64>) -> ObjectMeta {
    let session_name = session.metadata.name.clone().unwrap_or_default();
    let mut labels = BTreeMap::from([
        (labels::MANAGED_BY.to_owned(), labels::MANAGED_BY_VALUE.to_owned()),
        (labels::SESSION.to_owned(), label_value(&session_name)),
    ]);
    if let Some(run) = run {
        labels.insert("ambient-code.io/run".into(), run.to_string());
    }
    // Children are watched in their session's shard.
    if let Some(shard) = session.metadata.labels.as_ref().and_then(|l| l.get(labels::SHARD)) {
        labels.insert(labels::SHARD.to_owned(), shard.clone());
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
}
