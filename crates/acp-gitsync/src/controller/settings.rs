//! What a sync takes from its source's spec, checked without I/O: the
//! namespace it applies into, the files it reads (the write-back path left
//! out), the requests branch it reads too, and the fetch timeout. A spec
//! that cannot be synced as it stands is `InvalidSource` (not retryable):
//! a branch that is also the write-back or requests branch, another
//! namespace without a ServiceAccount, a bad ignore pattern.

use std::time::Duration;

use acp_api::constants::{DEFAULT_WRITE_BACK_BRANCH, DEFAULT_WRITE_BACK_PATH, reasons};
use acp_api::source::SessionSourceSpec;

use crate::files::Filter;
use crate::plan;
use crate::status::Failed;

/// A source's spec, as a sync uses it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The namespace applied into.
    pub target: String,
    /// The files synced.
    pub filter: Filter,
    /// The requests branch (`spec.pullRequests`), read as well.
    pub requests: Option<String>,
    /// The fetch timeout.
    pub timeout: Duration,
}

impl Settings {
    /// The settings of `spec`, for a source in namespace `ns`.
    pub fn of(spec: &SessionSourceSpec, ns: &str) -> Result<Self, Failed> {
        let write_back = spec.write_back.clone().unwrap_or_default();
        let write_back_on = write_back.enabled.unwrap_or(true);
        let write_back_branch = write_back.branch.clone().unwrap_or_else(|| DEFAULT_WRITE_BACK_BRANCH.into());
        let branch = spec.git_ref.as_ref().and_then(|r| r.branch.clone());
        if write_back_on && branch.as_deref() == Some(write_back_branch.as_str()) {
            return Err(invalid(format!(
                "spec.ref.branch is the write-back branch {write_back_branch:?}; sync a different branch"
            )));
        }
        let synced = match &spec.git_ref {
            Some(r) if r.tag.is_some() || r.commit.is_some() => None,
            Some(r) => Some(r.branch.as_deref().unwrap_or(acp_git::mirror::DEFAULT_BRANCH)),
            None => Some(acp_git::mirror::DEFAULT_BRANCH),
        };
        let write_back_at = write_back_on.then_some(write_back_branch.as_str());
        if let Some(message) = spec
            .pull_requests
            .as_ref()
            .and_then(|b| crate::commands::branch::misplaced(b, synced, write_back_at))
        {
            return Err(invalid(message));
        }
        let target = plan::target_namespace(spec, ns).map_err(invalid)?;
        let excluded = if write_back_on {
            vec![write_back.path.clone().unwrap_or_else(|| DEFAULT_WRITE_BACK_PATH.into())]
        } else {
            Vec::new()
        };
        let filter = Filter::new(spec.path.as_deref().unwrap_or_default(), &spec.ignore, &excluded)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            target,
            filter,
            requests: spec.pull_requests.as_ref().map(|b| b.requests_branch().to_owned()),
            timeout: spec.timeout.map(Duration::from).unwrap_or(super::DEFAULT_TIMEOUT),
        })
    }
}

fn invalid(message: String) -> Failed {
    Failed { reason: reasons::INVALID_SOURCE, message, retryable: false }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn spec(extra: Value) -> SessionSourceSpec {
        let mut spec = json!({"url": "https://github.com/acme/sessions.git"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(spec).expect("spec")
    }

    fn refused(extra: Value) -> String {
        let failed = Settings::of(&spec(extra), "team").expect_err("refused");
        assert_eq!((failed.reason, failed.retryable), ("InvalidSource", false));
        failed.message
    }

    fn binding(requests: &str) -> Value {
        json!({"repositories": ["acme/*"], "requestsBranch": requests, "template": {"spec": {}}})
    }

    #[test]
    fn defaults_apply_in_the_sources_namespace_and_skip_the_write_back_files() {
        let settings = Settings::of(&spec(json!({})), "team").expect("settings");
        assert_eq!(settings.target, "team");
        assert_eq!(settings.requests, None);
        assert_eq!(settings.timeout, super::super::DEFAULT_TIMEOUT);
        assert!(settings.filter.wants("a.yaml"));
        assert!(!settings.filter.wants(&format!("{DEFAULT_WRITE_BACK_PATH}/a.yaml")));
        let off = json!({"writeBack": {"enabled": false}, "ref": {"branch": DEFAULT_WRITE_BACK_BRANCH},
                         "timeout": "5s", "pullRequests": binding("acp/requests")});
        let settings = Settings::of(&spec(off), "team").expect("settings");
        assert!(settings.filter.wants(&format!("{DEFAULT_WRITE_BACK_PATH}/a.yaml")), "write-back off");
        assert_eq!(settings.requests.as_deref(), Some("acp/requests"));
        assert_eq!(settings.timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_source_that_cannot_sync_as_it_stands_is_invalid() {
        let message = refused(json!({"ref": {"branch": DEFAULT_WRITE_BACK_BRANCH}}));
        assert!(message.contains("is the write-back branch"), "{message}");
        let message = refused(json!({"pullRequests": binding("main")}));
        assert!(message.contains("is the branch spec.ref syncs"), "{message}");
        let message = refused(json!({"pullRequests": binding(DEFAULT_WRITE_BACK_BRANCH)}));
        assert!(message.contains("is the write-back branch"), "{message}");
        let message = refused(json!({"targetNamespace": "other"}));
        assert!(message.contains("needs spec.serviceAccountName"), "{message}");
        let message = refused(json!({"ignore": ["[z-a]"]}));
        assert!(!message.is_empty());
    }

    #[test]
    fn a_tag_or_commit_may_share_a_name_with_the_requests_branch_and_another_namespace_needs_an_account() {
        let pinned = json!({"ref": {"tag": "acp/requests"}, "pullRequests": binding("acp/requests")});
        assert!(Settings::of(&spec(pinned), "team").is_ok());
        let other = json!({"targetNamespace": "other", "serviceAccountName": "deployer"});
        assert_eq!(Settings::of(&spec(other), "team").expect("settings").target, "other");
    }
}
