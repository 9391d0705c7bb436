//! The AgenticSession a schedule creates for one due time: the template's
//! spec, labels and annotations (minus keys reserved for acp's components),
//! the schedule's label and due time, the schedule's source (so the status
//! bot writes its result back), the schedule as controlling owner (so
//! deleting the schedule deletes its runs) and, with `mode: continue`, the
//! previous run as its parent (whose conversation it resumes).

use std::collections::BTreeMap;

use acp_api::constants::{annotations, is_reserved, labels};
use acp_api::{AgenticSession, SessionSchedule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource as _, ResourceExt as _};

/// The session `name` of `schedule`, due at `scheduled`; with `parent`
/// (`mode: continue`), linked to the run whose conversation it resumes.
pub fn session(
    schedule: &SessionSchedule,
    name: &str,
    scheduled: Timestamp,
    parent: Option<&str>,
) -> AgenticSession {
    let template = &schedule.spec.template;
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .labels
        .iter()
        .filter(|(k, _)| !is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut annotations: BTreeMap<String, String> = template
        .metadata
        .annotations
        .iter()
        .filter(|(k, _)| !is_reserved(k) && k.as_str() != annotations::TRIGGER_REQUESTED_AT)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(labels::SCHEDULE.into(), schedule.name_any());
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
    annotations.insert(annotations::SCHEDULED_AT.into(), scheduled.to_string());
    if let Some(parent) = parent {
        annotations.insert(annotations::PARENT_SESSION.into(), parent.to_owned());
    }
    // The source that applied the schedule also answers for its runs.
    for key in [labels::SOURCE_NAME, labels::SOURCE_NAMESPACE, labels::SHARD] {
        if let Some(value) = schedule.labels().get(key) {
            labels.insert(key.into(), value.clone());
        }
    }
    if let Some(source) = schedule.annotations().get(annotations::SOURCE) {
        annotations.insert(annotations::SOURCE.into(), source.clone());
    }
    AgenticSession {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: schedule.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner(schedule).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

fn owner(schedule: &SessionSchedule) -> Option<OwnerReference> {
    let mut owner = schedule.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// The schedule that controls `session`, by name, if its owner reference
/// names a SessionSchedule with `uid`.
pub fn controlled_by(session: &AgenticSession, uid: &str) -> bool {
    session
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == SessionSchedule::kind(&()) && o.uid == uid)
}

#[cfg(test)]
mod tests {
    use acp_api::schedule::{SessionScheduleSpec, SessionTemplate, TemplateMetadata};

    use super::*;

    #[test]
    fn a_run_carries_the_template_its_schedule_and_nothing_reserved() {
        let mut schedule = SessionSchedule::new(
            "nightly",
            SessionScheduleSpec {
                schedule: "@daily".into(),
                time_zone: None,
                template: SessionTemplate {
                    metadata: TemplateMetadata {
                        labels: [
                            ("team".to_string(), "a".to_string()),
                            (labels::SOURCE_COMMIT.into(), "f00".into()),
                        ]
                        .into(),
                        annotations: [(annotations::STATUS_BOT_STATE.to_string(), "{}".to_string())].into(),
                    },
                    spec: acp_api::SessionSpec {
                        initial_prompt: Some("bump deps".into()),
                        ..Default::default()
                    },
                },
                concurrency_policy: Default::default(),
                starting_deadline_seconds: None,
                suspend: false,
                successful_runs_history_limit: None,
                failed_runs_history_limit: None,
                mode: Default::default(),
            },
        );
        schedule.metadata.namespace = Some("team-a".into());
        schedule.metadata.uid = Some("u-1".into());
        schedule.metadata.labels = Some(
            [
                (labels::SOURCE_NAME.to_string(), "repo".to_string()),
                (labels::SHARD.to_string(), "one".to_string()),
            ]
            .into(),
        );
        schedule.metadata.annotations =
            Some([(annotations::SOURCE.to_string(), "team-a/repo".to_string())].into());
        let at: Timestamp = "2026-11-30T10:00:00Z".parse().expect("a timestamp");
        let run = session(&schedule, "nightly-29411400", at, None);
        assert_eq!(run.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(run.spec.initial_prompt.as_deref(), Some("bump deps"));
        let labels_of = run.labels();
        assert_eq!(labels_of.get("team").map(String::as_str), Some("a"));
        assert_eq!(labels_of.get(labels::SCHEDULE).map(String::as_str), Some("nightly"));
        assert_eq!(labels_of.get(labels::SOURCE_NAME).map(String::as_str), Some("repo"));
        assert_eq!(labels_of.get(labels::SHARD).map(String::as_str), Some("one"), "a run stays in its shard");
        assert!(
            !labels_of.contains_key(labels::SOURCE_COMMIT),
            "reserved keys are not copied from the template"
        );
        assert!(!run.annotations().contains_key(annotations::STATUS_BOT_STATE));
        assert_eq!(
            run.annotations().get(annotations::SCHEDULED_AT).map(String::as_str),
            Some("2026-11-30T10:00:00Z")
        );
        assert_eq!(run.annotations().get(annotations::SOURCE).map(String::as_str), Some("team-a/repo"));
        assert!(controlled_by(&run, "u-1"));
        assert!(!controlled_by(&run, "u-2"));
        assert!(!run.annotations().contains_key(annotations::PARENT_SESSION));
        let next = session(&schedule, "nightly-29412840", at, Some("nightly-29411400"));
        assert_eq!(
            next.annotations().get(annotations::PARENT_SESSION).map(String::as_str),
            Some("nightly-29411400"),
            "mode: continue links the previous run"
        );
    }
}
