//! Whether the status bot may act for a session: the source its annotation
//! names must really have applied it (or, for a schedule's run, applied the
//! schedule, whose status lists the run). Annotations and owner references
//! are only claims: anyone who may edit a session may set them.

use acp_api::{AgenticSession, SessionSchedule, SessionSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt as _;

/// Whether a session's claimed source really applied it.
#[derive(Debug, PartialEq, Eq)]
pub enum Provenance {
    /// The source targets the session's namespace and lists it in its inventory.
    Confirmed,
    /// The source targets the namespace but has not recorded the session yet
    /// (git-sync writes the inventory after applying), and the session is
    /// new: look again soon.
    NotYet,
    /// The source could not have applied it.
    Refused(String),
}

/// Checks the claim that `source` applied `kind` `namespace/name` (the
/// session, created `recent`ly, so the inventory may still be on its way).
pub fn provenance(
    source: &SessionSource,
    namespace: &str,
    kind: &str,
    name: &str,
    recent: bool,
) -> Provenance {
    let source_ns = source.metadata.namespace.as_deref().unwrap_or_default();
    let target = source.spec.target_namespace.as_deref().unwrap_or(source_ns);
    if target != namespace {
        return Provenance::Refused(format!("the source applies into {target:?}, not {namespace:?}"));
    }
    let listed = source.status.as_ref().is_some_and(|s| {
        s.inventory.iter().any(|e| e.kind == kind && e.namespace == namespace && e.name == name)
    });
    match (listed, recent) {
        (true, _) => Provenance::Confirmed,
        (false, true) => Provenance::NotYet,
        (false, false) => Provenance::Refused("the source's inventory does not list it".into()),
    }
}

/// The SessionSchedule that claims to control `session`, if any.
pub fn scheduled_by(session: &AgenticSession) -> Option<OwnerReference> {
    session
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "SessionSchedule")
        .cloned()
}

/// Whether `schedule` (with `uid`, as the owner reference says) lists run
/// `name` in its status; a `recent` run may not be recorded yet.
pub fn schedule_vouches(
    schedule: Option<&SessionSchedule>,
    uid: &str,
    name: &str,
    recent: bool,
) -> Provenance {
    let Some(schedule) = schedule.filter(|s| s.metadata.uid.as_deref() == Some(uid)) else {
        return Provenance::Refused("its schedule does not exist (any more)".into());
    };
    let status = schedule.status.clone().unwrap_or_default();
    let listed = status.active.iter().any(|n| n == name) || status.runs.iter().any(|r| r.name == name);
    match (listed, recent) {
        (true, _) => Provenance::Confirmed,
        (false, true) => Provenance::NotYet,
        (false, false) => Provenance::Refused("its schedule's status does not list it".into()),
    }
}

#[cfg(test)]
mod tests {
    use acp_api::pull_requests::ThreadPath;

    use super::*;

    fn source(namespace: &str, target: Option<&str>, inventory: &[(&str, &str)]) -> SessionSource {
        let entries: Vec<serde_json::Value> = inventory
            .iter()
            .map(|(ns, name)| {
                serde_json::json!({"kind": "AgenticSession", "namespace": ns, "name": name, "path": "s.yaml", "revision": "r"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
            "metadata": {"name": "src", "namespace": namespace},
            "spec": {"url": "https://github.com/acme/sessions", "targetNamespace": target},
            "status": {"inventory": entries}
        }))
        .expect("source")
    }

    #[test]
    fn only_a_source_that_applied_the_session_vouches_for_it() {
        let own = source("team-a", None, &[("team-a", "fix")]);
        assert_eq!(provenance(&own, "team-a", "AgenticSession", "fix", false), Provenance::Confirmed);
        // Another team's session claiming team-a's source.
        assert!(matches!(provenance(&own, "team-b", "AgenticSession", "fix", true), Provenance::Refused(_)));
        // Same namespace, not in the inventory: new sessions get a grace period.
        assert_eq!(provenance(&own, "team-a", "AgenticSession", "other", true), Provenance::NotYet);
        assert!(matches!(
            provenance(&own, "team-a", "AgenticSession", "other", false),
            Provenance::Refused(_)
        ));
        let cross = source("team-a", Some("team-b"), &[("team-b", "fix")]);
        assert_eq!(provenance(&cross, "team-b", "AgenticSession", "fix", false), Provenance::Confirmed);
        assert!(matches!(
            provenance(&cross, "team-a", "AgenticSession", "fix", false),
            Provenance::Refused(_)
        ));
        // A session is not vouched for by a schedule's inventory entry of the same name.
        assert!(matches!(
            provenance(&own, "team-a", "SessionSchedule", "fix", false),
            Provenance::Refused(_)
        ));
    }

    fn schedule(uid: &str, runs: &[&str], active: &[&str]) -> SessionSchedule {
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .map(|n| serde_json::json!({"name": n, "scheduledTime": "2026-11-30T10:00:00Z"}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
            "metadata": {"name": "nightly", "namespace": "team-a", "uid": uid},
            "spec": {"schedule": "@daily", "template": {"spec": {}}},
            "status": {"runs": runs, "active": active}
        }))
        .expect("schedule")
    }

    #[test]
    fn a_request_is_reported_on_the_pull_request_its_file_names() {
        let mut own = source("team-a", None, &[("team-a", "webapp-pr7-1")]);
        own.status.as_mut().expect("status").inventory[0].path =
            "acp/requests:acme/webapp/pr-7/webapp-pr7-1.yaml".into();
        assert_eq!(own.pull_request_of("team-a", "webapp-pr7-1"), None, "no binding: not a request");
        own.spec.pull_requests = Some(
            serde_json::from_value(serde_json::json!({"repositories": ["acme/*"], "template": {"spec": {}}}))
                .expect("binding"),
        );
        assert_eq!(own.pull_request_of("team-a", "webapp-pr7-1"), Some(ThreadPath::new("acme/webapp", 7)));
        // A file of the source's own ref, or of a repository the binding does not serve.
        own.status.as_mut().expect("status").inventory[0].path = "acme/webapp/pr-7/webapp-pr7-1.yaml".into();
        assert_eq!(own.pull_request_of("team-a", "webapp-pr7-1"), None);
        own.status.as_mut().expect("status").inventory[0].path =
            "acp/requests:evil/webapp/pr-7/x.yaml".into();
        assert_eq!(own.pull_request_of("team-a", "webapp-pr7-1"), None);
    }

    #[test]
    fn a_thread_is_the_requests_of_one_pull_request_oldest_first() {
        let sessions = [
            ("team-a", "webapp-pr7-1001"),
            ("team-a", "webapp-pr7-999"),
            ("team-a", "webapp-pr8-5"),
            ("team-a", "other"),
        ];
        let mut own = source("team-a", None, &sessions);
        let paths = [
            "acp/requests:acme/webapp/pr-7/webapp-pr7-1001.yaml",
            "acp/requests:acme/webapp/pr-7/webapp-pr7-999.yaml",
            "acp/requests:acme/webapp/pr-8/webapp-pr8-5.yaml",
            "sessions/other.yaml",
        ];
        for (entry, path) in own.status.as_mut().expect("status").inventory.iter_mut().zip(paths) {
            entry.path = path.into();
        }
        let binding = serde_json::json!({"repositories": ["acme/*"], "template": {"spec": {}}});
        own.spec.pull_requests = Some(serde_json::from_value(binding).expect("binding"));
        assert_eq!(
            own.thread_of("team-a", &ThreadPath::new("acme/webapp", 7)),
            ["webapp-pr7-999", "webapp-pr7-1001"]
        );
        assert!(own.thread_of("team-b", &ThreadPath::new("acme/webapp", 7)).is_empty());
    }

    #[test]
    fn a_schedule_vouches_only_for_the_runs_its_status_lists() {
        let nightly = schedule("u-1", &["nightly-1"], &["nightly-2"]);
        assert_eq!(schedule_vouches(Some(&nightly), "u-1", "nightly-1", false), Provenance::Confirmed);
        assert_eq!(schedule_vouches(Some(&nightly), "u-1", "nightly-2", false), Provenance::Confirmed);
        // A session made by hand with an owner reference to the schedule.
        assert!(matches!(schedule_vouches(Some(&nightly), "u-1", "forged", false), Provenance::Refused(_)));
        assert_eq!(schedule_vouches(Some(&nightly), "u-1", "forged", true), Provenance::NotYet);
        // A schedule of the same name recreated since: another uid.
        assert!(matches!(
            schedule_vouches(Some(&nightly), "u-0", "nightly-1", false),
            Provenance::Refused(_)
        ));
        assert!(matches!(schedule_vouches(None, "u-1", "nightly-1", false), Provenance::Refused(_)));
    }
}
