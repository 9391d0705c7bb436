//! Unit tests of the schedule view: defaults, the scheduler's status, selection
//! and visibility, which sessions count as runs, paths and future times.

use std::sync::Arc;

use acp_api::{AgenticSession, SessionSchedule};
use serde_json::json;

use super::*;

fn schedule(ns: &str, name: &str, extra: serde_json::Value) -> SessionSchedule {
    let mut value = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
        "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}")},
        "spec": {"schedule": "0 9 * * MON-FRI", "template": {"spec": {"initialPrompt": "triage"}}}
    });
    crate::view::tests::merge(&mut value, extra);
    serde_json::from_value(value).expect("a valid schedule")
}

fn run_of(owner: serde_json::Value, label: Option<&str>) -> AgenticSession {
    let labels = label.map_or_else(|| json!({}), |l| json!({"ambient-code.io/schedule": l}));
    serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"namespace": "team-a", "name": "nightly-29000000", "labels": labels, "ownerReferences": owner},
        "spec": {"initialPrompt": "x"}
    }))
    .expect("a valid session")
}

fn owner(kind: &str, api_version: &str, name: &str, controller: bool) -> serde_json::Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": "u1", "controller": controller}])
}

#[test]
fn view_defaults_without_status() {
    let view = ScheduleView::new(&schedule("team-a", "nightly", json!({})));
    assert_eq!(view.schedule, "0 9 * * MON-FRI");
    assert_eq!(view.time_zone, "UTC", "UTC when spec.timeZone is unset");
    assert_eq!(view.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert!(!view.suspend);
    assert_eq!((view.last_schedule_time, view.next_run_time, view.ready.as_ref()), (None, None, None));
    assert!(view.runs.is_empty() && view.active.is_empty());
    assert_eq!(view.missed_runs, 0);
    assert_eq!(view.latest(), None);
    let json = serde_json::to_value(&view).expect("serializes");
    assert_eq!(json["timeZone"], "UTC");
    assert_eq!(json["concurrencyPolicy"], "Forbid");
    assert_eq!(json["runs"], json!([]));
    assert!(json.get("nextRunTime").is_none(), "absent, not null: {json}");
}

#[test]
fn view_reads_the_schedulers_status() {
    let s = schedule(
        "team-a",
        "nightly",
        json!({
            "spec": {"timeZone": "Europe/Paris", "suspend": true, "concurrencyPolicy": "Replace"},
            "status": {
                "lastScheduleTime": "2026-11-24T08:00:00Z", "nextRunTime": "2026-11-25T08:00:00Z",
                "active": ["nightly-29400480"], "missedRuns": 2,
                "runs": [
                    {"name": "nightly-29400480", "scheduledTime": "2026-11-24T08:00:00Z", "phase": "Running"},
                    {"name": "nightly-manual", "scheduledTime": "2026-11-23T12:00:00Z", "triggered": true},
                    {"name": "nightly-29399040", "scheduledTime": "2026-11-23T08:00:00Z", "phase": "Failed"}
                ],
                "conditions": [
                    {"type": "Other", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "InvalidSchedule", "message": "bad <zone>",
                     "lastTransitionTime": "2026-11-24T08:00:00Z"}
                ]
            }
        }),
    );
    let view = ScheduleView::new(&s);
    assert_eq!(view.time_zone, "Europe/Paris");
    assert!(view.suspend);
    assert_eq!(view.concurrency_policy, ConcurrencyPolicy::Replace);
    assert_eq!(view.next_run_time, Some("2026-11-25T08:00:00Z".parse().expect("time")));
    assert_eq!(view.last_schedule_time, Some("2026-11-24T08:00:00Z".parse().expect("time")));
    assert_eq!(view.active, ["nightly-29400480"]);
    assert_eq!(view.missed_runs, 2);
    let names: Vec<&str> = view.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["nightly-29400480", "nightly-manual", "nightly-29399040"],
        "newest first, as recorded"
    );
    assert_eq!(view.latest().and_then(|r| r.phase), Some(SessionPhase::Running));
    assert_eq!(view.runs[1].phase, None, "a phase not seen yet stays unknown");
    assert!(view.runs[1].triggered && !view.runs[0].triggered);
    let ready = view.ready.as_ref().expect("Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("InvalidSchedule"));
    assert_eq!(ready.message.as_deref(), Some("bad <zone>"));
    let json = serde_json::to_value(&view).expect("serializes");
    assert_eq!(
        json["ready"],
        json!({"status": "False", "reason": "InvalidSchedule", "message": "bad <zone>"})
    );
    assert_eq!(
        json["runs"][1],
        json!({"name": "nightly-manual", "scheduledTime": "2026-11-23T12:00:00Z", "triggered": true})
    );
    assert_eq!(json["nextRunTime"], "2026-11-25T08:00:00Z");
}

#[test]
fn select_sorts_filters_and_respects_visibility() {
    let all: Vec<Arc<SessionSchedule>> = [("team-b", "z"), ("team-a", "b"), ("team-c", "a"), ("team-a", "a")]
        .into_iter()
        .map(|(ns, name)| Arc::new(schedule(ns, name, json!({}))))
        .collect();
    let keys = |views: Vec<ScheduleView>| -> Vec<String> {
        views.into_iter().map(|v| format!("{}/{}", v.namespace, v.name)).collect()
    };
    assert_eq!(keys(select(&all, None, |_| true)), ["team-a/a", "team-a/b", "team-b/z", "team-c/a"]);
    assert_eq!(keys(select(&all, Some("team-a"), |_| true)), ["team-a/a", "team-a/b"]);
    assert_eq!(keys(select(&all, None, |ns| ns != "team-a")), ["team-b/z", "team-c/a"]);
    assert!(
        select(&all, Some("team-a"), |ns| ns == "team-b").is_empty(),
        "a namespace filter does not widen access"
    );
    assert!(select(&all, Some("nowhere"), |_| true).is_empty());
}

#[test]
fn empty_namespace_filter_means_any() {
    let query: ScheduleQuery = serde_json::from_value(json!({"namespace": ""})).expect("parses");
    assert_eq!(query.namespace, None);
    let query: ScheduleQuery = serde_json::from_value(json!({"namespace": "team-a"})).expect("parses");
    assert_eq!(query.namespace.as_deref(), Some("team-a"));
}

#[test]
fn a_run_needs_the_label_and_the_schedules_controller_reference() {
    let ours = owner("SessionSchedule", "vteam.ambient-code/v1alpha1", "nightly", true);
    assert_eq!(schedule_of(&run_of(ours.clone(), Some("nightly"))).as_deref(), Some("nightly"));
    assert_eq!(schedule_of(&run_of(ours, None)), None, "no label");
    assert_eq!(schedule_of(&run_of(json!([]), Some("nightly"))), None, "a label alone is not trusted");
    let not_controller = owner("SessionSchedule", "vteam.ambient-code/v1alpha1", "nightly", false);
    assert_eq!(schedule_of(&run_of(not_controller, Some("nightly"))), None, "not the controller");
    let other_kind = owner("SessionSource", "vteam.ambient-code/v1alpha1", "nightly", true);
    assert_eq!(schedule_of(&run_of(other_kind, Some("nightly"))), None, "another kind");
    let other_group = owner("SessionSchedule", "example.com/v1", "nightly", true);
    assert_eq!(schedule_of(&run_of(other_group, Some("nightly"))), None, "another group");
    let other_name = owner("SessionSchedule", "vteam.ambient-code/v1alpha1", "weekly", true);
    assert_eq!(schedule_of(&run_of(other_name, Some("nightly"))), None, "the label names another schedule");
}

#[test]
fn paths_are_percent_encoded() {
    assert_eq!(schedule_path("team-a", "nightly"), "/schedules/team-a/nightly");
    assert_eq!(crate::view::session_path("team-a", "nightly-1"), "/sessions/team-a/nightly-1");
    assert_eq!(schedule_path("a/b", "x\"y"), "/schedules/a%2Fb/x%22y");
    assert_eq!(crate::view::session_path("a b", "<x>"), "/sessions/a%20b/%3Cx%3E");
}

#[test]
fn future_times_for_people() {
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().expect("time");
    let at = |s: &str| s.parse::<Timestamp>().expect("time");
    assert_eq!(from_now(at("2026-11-24T12:00:05Z"), now), "due now");
    assert_eq!(from_now(at("2026-11-24T12:00:42Z"), now), "in 42 s");
    assert_eq!(from_now(at("2026-11-24T12:05:00Z"), now), "in 5 min");
    assert_eq!(from_now(at("2026-11-24T15:00:00Z"), now), "in 3 h");
    assert_eq!(from_now(at("2026-11-26T12:00:00Z"), now), "in 2 d");
    assert_eq!(from_now(at("2026-11-24T11:55:00Z"), now), "5 min ago", "a time past reads as ago");
}
