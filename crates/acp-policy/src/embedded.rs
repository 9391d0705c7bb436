//! The repository's `policies/`, compiled into the binary: the default policy
//! set of git-sync and `acp validate` when no `--policies` directory is given.

use crate::vap::{PolicyError, PolicySet};

/// `(file name, YAML text)` of every policy file shipped in `policies/`.
pub const FILES: &[(&str, &str)] = &[
    ("params.yaml", include_str!("../../../policies/params.yaml")),
    ("session-timeout.yaml", include_str!("../../../policies/session-timeout.yaml")),
    ("session-repos.yaml", include_str!("../../../policies/session-repos.yaml")),
    ("session-models.yaml", include_str!("../../../policies/session-models.yaml")),
    ("session-env-secrets.yaml", include_str!("../../../policies/session-env-secrets.yaml")),
    ("session-max-turns.yaml", include_str!("../../../policies/session-max-turns.yaml")),
    ("session-runner-secret.yaml", include_str!("../../../policies/session-runner-secret.yaml")),
    ("schedule-frequency.yaml", include_str!("../../../policies/schedule-frequency.yaml")),
    ("reserved-metadata.yaml", include_str!("../../../policies/reserved-metadata.yaml")),
];

/// The built-in policy set.
pub fn policies() -> Result<PolicySet, PolicyError> {
    PolicySet::from_files(FILES.iter().map(|(name, text)| (name.to_string(), text.to_string())))
}
