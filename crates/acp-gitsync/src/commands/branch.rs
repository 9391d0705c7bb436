//! What git-sync takes from a source's requests branch, without I/O.
//!
//! Only what the command handler writes is applied from there: an
//! AgenticSession at `owner/repo/pr-N/<file>.yaml` for a repository the
//! binding serves. Anything else on the branch (another kind, another place)
//! is reported, not applied: the branch is written by acp, and is not where
//! arbitrary manifests get in. A branch that went missing keeps what was
//! applied from it (reported), rather than pruning every request session.

use acp_api::pull_requests::{PullRequestBinding, ThreadPath};
use acp_api::source::{FileError, InventoryEntry};

use crate::plan::{Kind, Manifests};

/// Why `binding`'s requests branch cannot be used, when it is the branch
/// the source syncs (`synced`; its `pending/` requests would be applied
/// unapproved, and any file there would be taken as a manifest) or the
/// write-back branch (`write_back`, when on).
pub fn misplaced(
    binding: &PullRequestBinding,
    synced: Option<&str>,
    write_back: Option<&str>,
) -> Option<String> {
    let requests = binding.requests_branch();
    if synced == Some(requests) {
        return Some(format!(
            "spec.pullRequests.requestsBranch {requests:?} is the branch spec.ref syncs; requests waiting for approval would be applied unapproved: use another branch (default {:?})",
            acp_api::pull_requests::DEFAULT_REQUESTS_BRANCH
        ));
    }
    (write_back == Some(requests)).then(|| {
        format!("spec.pullRequests.requestsBranch {requests:?} is the write-back branch; use another branch")
    })
}

/// Checks the requests-branch part of `manifests` in place. `present` is
/// whether the branch exists; `inventory` is the source's current one.
pub fn check(
    binding: &PullRequestBinding,
    manifests: &mut Manifests,
    present: bool,
    inventory: &[InventoryEntry],
) {
    let prefix = format!("{}:", binding.requests_branch());
    if !present {
        for entry in inventory.iter().filter(|e| e.path.starts_with(&prefix)) {
            manifests.errors.push(FileError {
                path: entry.path.clone(),
                line: None,
                column: None,
                message: format!(
                    "the requests branch {} is missing; {} {:?} applied from it is kept until the branch returns or spec.pullRequests is removed",
                    binding.requests_branch(),
                    entry.kind,
                    entry.name
                ),
            });
        }
    }
    let (requests, rest): (Vec<_>, Vec<_>) =
        std::mem::take(&mut manifests.desired).into_iter().partition(|d| d.path.starts_with(&prefix));
    manifests.desired = rest;
    for desired in requests {
        let served = ThreadPath::parse(&desired.path[prefix.len()..]).is_some_and(|(thread, file)| {
            binding.serves(&thread.repository) && !file.contains('/') && file.ends_with(".yaml")
        });
        if desired.kind == Kind::Session && served {
            manifests.desired.push(desired);
        } else {
            manifests.errors.push(FileError {
                path: desired.path.clone(),
                line: Some(desired.line.into()),
                column: Some(1),
                message: format!(
                    "{} {:?} is not applied: the requests branch holds only AgenticSessions at owner/repo/pr-N/<name>.yaml of a repository spec.pullRequests serves",
                    desired.kind, desired.name
                ),
            });
        }
    }
    manifests.desired.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::files::Entry;

    #[test]
    fn a_requests_branch_that_is_synced_or_written_back_is_refused() {
        let binding = |branch: Option<&str>| PullRequestBinding {
            requests_branch: branch.map(str::to_owned),
            ..PullRequestBinding::default()
        };
        let message = misplaced(&binding(Some("main")), Some("main"), Some("acp/status")).expect("refused");
        assert!(message.contains("would be applied unapproved"), "{message}");
        assert!(misplaced(&binding(None), Some("acp/requests"), None).is_some(), "the default, synced");
        assert!(misplaced(&binding(Some("acp/status")), Some("main"), Some("acp/status")).is_some());
        assert_eq!(misplaced(&binding(None), Some("main"), Some("acp/status")), None);
        assert_eq!(misplaced(&binding(Some("main")), None, None), None, "a tag or commit is synced");
    }
    use crate::plan::{self, SourceRef};

    fn binding() -> PullRequestBinding {
        serde_json::from_value(json!({"repositories": ["acme/*"], "template": {"spec": {}}}))
            .expect("binding")
    }

    fn manifests(files: &[(&str, &str)]) -> Manifests {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(path, text)| Entry::File { path: (*path).into(), bytes: text.as_bytes().to_vec() })
            .collect();
        let checker = acp_policy::Checker::with_embedded_policies().expect("policies");
        plan::manifests(&entries, &SourceRef::new("team", "repo"), Some("team"), &checker)
    }

    fn session(name: &str) -> String {
        format!(
            "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: go\n"
        )
    }

    #[test]
    fn only_request_sessions_in_their_place_are_applied_from_the_requests_branch() {
        let schedule = "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: sneaky\nspec:\n  schedule: \"0 3 * * *\"\n  template:\n    spec: {}\n";
        let mut m = manifests(&[
            ("sessions/main.yaml", &session("main")),
            ("acp/requests:acme/webapp/pr-7/webapp-pr7-1.yaml", &session("webapp-pr7-1")),
            ("acp/requests:evil/webapp/pr-7/x.yaml", &session("other-org")),
            ("acp/requests:loose.yaml", &session("loose")),
            ("acp/requests:acme/webapp/pr-7/s.yaml", schedule),
        ]);
        check(&binding(), &mut m, true, &[]);
        let names: Vec<&str> = m.desired.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["main", "webapp-pr7-1"]);
        for path in [
            "acp/requests:evil/webapp/pr-7/x.yaml",
            "acp/requests:loose.yaml",
            "acp/requests:acme/webapp/pr-7/s.yaml",
        ] {
            assert!(
                m.errors.iter().any(|e| e.path == path && e.message.contains("is not applied")),
                "{path}: {:?}",
                m.errors
            );
        }
    }

    #[test]
    fn a_missing_requests_branch_keeps_what_was_applied_from_it() {
        let mut m = manifests(&[("sessions/main.yaml", &session("main"))]);
        let inventory = [
            InventoryEntry {
                kind: "AgenticSession".into(),
                namespace: "team".into(),
                name: "webapp-pr7-1".into(),
                path: "acp/requests:acme/webapp/pr-7/webapp-pr7-1.yaml".into(),
                revision: "r".into(),
            },
            InventoryEntry {
                kind: "AgenticSession".into(),
                namespace: "team".into(),
                name: "main".into(),
                path: "sessions/main.yaml".into(),
                revision: "r".into(),
            },
        ];
        check(&binding(), &mut m, false, &inventory);
        assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
        assert_eq!(
            m.errors[0].path, "acp/requests:acme/webapp/pr-7/webapp-pr7-1.yaml",
            "a broken path is never pruned"
        );
        assert!(m.errors[0].message.contains("requests branch acp/requests is missing"));
    }
}
