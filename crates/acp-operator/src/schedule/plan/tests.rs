//! The scheduler's decisions with an injected clock: no test waits for a minute.

use acp_api::condition::find;
use acp_api::schedule::{SessionTemplate, TemplateMetadata};

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

fn spec(schedule: &str) -> SessionScheduleSpec {
    SessionScheduleSpec {
        schedule: schedule.into(),
        time_zone: None,
        template: SessionTemplate { metadata: TemplateMetadata::default(), spec: Default::default() },
        concurrency_policy: ConcurrencyPolicy::Forbid,
        starting_deadline_seconds: None,
        suspend: false,
        successful_runs_history_limit: None,
        failed_runs_history_limit: None,
        mode: ScheduleMode::New,
    }
}

fn run(name: &str, scheduled: &str, phase: Option<SessionPhase>) -> Run {
    Run { name: name.into(), scheduled: at(scheduled), phase, triggered: false, stopping: false }
}

struct Case {
    spec: SessionScheduleSpec,
    status: SessionScheduleStatus,
    trigger: Option<&'static str>,
    runs: Vec<Run>,
}

impl Case {
    fn new(schedule: &str) -> Self {
        Self {
            spec: spec(schedule),
            status: SessionScheduleStatus::default(),
            trigger: None,
            runs: Vec::new(),
        }
    }

    fn at(&self, now: &str) -> Decision {
        decide(&Input {
            name: "nightly",
            generation: Some(1),
            created: at("2026-11-30T10:00:30Z"),
            spec: &self.spec,
            status: &self.status,
            trigger: self.trigger,
            runs: &self.runs,
            now: at(now),
        })
    }
}

fn creates(decision: &Decision) -> Vec<&str> {
    decision
        .actions
        .iter()
        .filter_map(|a| if let Action::Create { name, .. } = a { Some(name.as_str()) } else { None })
        .collect()
}

#[test]
fn a_due_time_creates_its_run_named_by_the_minute_and_wakes_at_the_next() {
    let case = Case::new("* * * * *");
    let early = case.at("2026-11-30T10:00:45Z");
    assert!(early.actions.is_empty(), "{early:?}");
    assert_eq!(early.wake_at, Some(at("2026-11-30T10:01:00Z")));
    let due = case.at("2026-11-30T10:01:02Z");
    let minute = at("2026-11-30T10:01:00Z").as_second() / 60;
    assert_eq!(creates(&due), vec![format!("nightly-{minute}").as_str()]);
    assert_eq!(due.status.last_schedule_time, Some(Time(at("2026-11-30T10:01:00Z"))));
    assert_eq!(due.status.next_run_time, Some(Time(at("2026-11-30T10:02:00Z"))));
    assert_eq!(due.status.active, vec![format!("nightly-{minute}")]);
    assert_eq!(due.status.runs.len(), 1);
    assert!(find(&due.status.conditions, "Ready").is_some_and(|c| c.is_true()));
}

#[test]
fn a_run_that_exists_is_never_created_again_even_when_the_status_was_lost() {
    let mut case = Case::new("* * * * *");
    case.runs = vec![run(&run_name("nightly", at("2026-11-30T10:01:00Z")), "2026-11-30T10:01:00Z", None)];
    let decision = case.at("2026-11-30T10:01:30Z");
    assert!(creates(&decision).is_empty(), "{decision:?}");
    assert_eq!(decision.status.last_schedule_time, Some(Time(at("2026-11-30T10:01:00Z"))));
    // And once recorded, the same minute is not due again.
    case.status = decision.status;
    assert!(case.at("2026-11-30T10:01:59Z").actions.is_empty());
}

#[test]
fn after_downtime_only_the_latest_missed_run_starts_and_the_others_are_counted() {
    let mut case = Case::new("*/5 * * * *");
    case.status.last_schedule_time = Some(Time(at("2026-11-30T10:05:00Z")));
    let decision = case.at("2026-11-30T10:31:00Z");
    assert_eq!(creates(&decision), vec![run_name("nightly", at("2026-11-30T10:30:00Z")).as_str()]);
    assert_eq!(decision.status.missed_runs, 4, "10:10, 10:15, 10:20, 10:25");
    assert!(
        decision.notes.iter().any(|n| n.reason == reasons::MISSED_SCHEDULE && n.message.contains("missed 4"))
    );
}

#[test]
fn a_start_later_than_the_deadline_is_skipped_and_counted() {
    let mut case = Case::new("*/5 * * * *");
    case.spec.starting_deadline_seconds = Some(60);
    case.status.last_schedule_time = Some(Time(at("2026-11-30T10:05:00Z")));
    let late = case.at("2026-11-30T10:11:30Z");
    assert!(creates(&late).is_empty(), "{late:?}");
    assert_eq!(late.status.missed_runs, 1);
    assert_eq!(late.status.last_schedule_time, Some(Time(at("2026-11-30T10:10:00Z"))));
    let in_time = case.at("2026-11-30T10:10:59Z");
    assert_eq!(creates(&in_time).len(), 1);
}

#[test]
fn forbid_skips_while_a_run_is_active_allow_runs_alongside_replace_stops_it() {
    let mut case = Case::new("* * * * *");
    case.status.last_schedule_time = Some(Time(at("2026-11-30T10:01:00Z")));
    case.runs = vec![run("nightly-old", "2026-11-30T10:01:00Z", Some(SessionPhase::Running))];
    let forbid = case.at("2026-11-30T10:02:01Z");
    assert!(creates(&forbid).is_empty());
    assert_eq!(forbid.status.missed_runs, 1);
    assert_eq!(forbid.status.last_schedule_time, Some(Time(at("2026-11-30T10:02:00Z"))));
    assert!(
        forbid.notes.iter().any(|n| n.reason == reasons::RUN_SKIPPED && n.message.contains("nightly-old"))
    );

    case.spec.concurrency_policy = ConcurrencyPolicy::Allow;
    let allow = case.at("2026-11-30T10:02:01Z");
    assert_eq!(creates(&allow).len(), 1);
    assert!(!allow.actions.contains(&Action::Stop("nightly-old".into())));
    assert_eq!(allow.status.active.len(), 2);

    case.spec.concurrency_policy = ConcurrencyPolicy::Replace;
    let replace = case.at("2026-11-30T10:02:01Z");
    assert_eq!(replace.actions[0], Action::Stop("nightly-old".into()), "stop before create");
    assert_eq!(creates(&replace).len(), 1);
    // A run already asked to stop is not asked again.
    case.runs[0].stopping = true;
    assert!(!case.at("2026-11-30T10:02:01Z").actions.contains(&Action::Stop("nightly-old".into())));
    // A finished run is not active: Forbid starts the next one.
    case.spec.concurrency_policy = ConcurrencyPolicy::Forbid;
    case.runs[0].phase = Some(SessionPhase::Completed);
    assert_eq!(creates(&case.at("2026-11-30T10:02:01Z")).len(), 1);
}

#[test]
fn suspend_starts_nothing_but_a_trigger_still_runs_once_per_value() {
    let mut case = Case::new("* * * * *");
    case.spec.suspend = true;
    let suspended = case.at("2026-11-30T10:05:00Z");
    assert!(suspended.actions.is_empty());
    assert_eq!(suspended.status.next_run_time, None);
    assert_eq!(suspended.wake_at, None);
    let ready = find(&suspended.status.conditions, "Ready").expect("Ready");
    assert_eq!((ready.is_true(), ready.reason.as_deref()), (false, Some(reasons::SUSPENDED)));
    assert_eq!(suspended.status.last_schedule_time, None, "suspended time is not decided about");

    case.trigger = Some("2026-11-30T10:05:00Z");
    let triggered = case.at("2026-11-30T10:05:00Z");
    let name = trigger_name("nightly", "2026-11-30T10:05:00Z");
    assert_eq!(creates(&triggered), vec![name.as_str()]);
    assert_eq!(triggered.status.last_trigger.as_deref(), Some("2026-11-30T10:05:00Z"));
    assert!(triggered.status.runs[0].triggered);
    // Handled: the same value never runs again, even if the run was deleted.
    case.status = triggered.status;
    assert!(case.at("2026-11-30T10:06:00Z").actions.is_empty());
    // Recorded in the run but not in the status (a lost write): not again.
    case.status.last_trigger = None;
    case.runs = vec![Run { triggered: true, ..run(&name, "2026-11-30T10:05:00Z", None) }];
    assert!(creates(&case.at("2026-11-30T10:06:00Z")).is_empty());
    // A new value runs again, with another stable name.
    case.trigger = Some("again");
    let again = case.at("2026-11-30T10:07:00Z");
    assert_eq!(creates(&again), vec![trigger_name("nightly", "again").as_str()]);
    assert_ne!(trigger_name("nightly", "again"), name);
    assert_eq!(trigger_name("nightly", "again"), trigger_name("nightly", "again"));
}

#[test]
fn history_limits_delete_the_oldest_finished_runs_and_never_an_active_one() {
    let mut case = Case::new("0 0 1 1 *");
    let done = Some(SessionPhase::Completed);
    let failed = Some(SessionPhase::Failed);
    case.runs = vec![
        run("r1", "2026-11-30T10:01:00Z", done),
        run("r2", "2026-11-30T10:02:00Z", failed),
        run("r3", "2026-11-30T10:03:00Z", done),
        run("r4", "2026-11-30T10:04:00Z", Some(SessionPhase::Stopped)),
        run("r5", "2026-11-30T10:05:00Z", done),
        run("r6", "2026-11-30T10:06:00Z", done),
        run("r0", "2026-11-30T09:00:00Z", Some(SessionPhase::Running)),
    ];
    let decision = case.at("2026-11-30T10:07:00Z");
    let deleted: Vec<&Action> = decision.actions.iter().filter(|a| matches!(a, Action::Delete(_))).collect();
    assert_eq!(deleted, vec![&Action::Delete("r2".into()), &Action::Delete("r1".into())]);
    assert_eq!(
        decision.status.runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["r6", "r5", "r4", "r3", "r0"]
    );
    assert_eq!(decision.status.active, vec!["r0".to_string()]);
    case.spec.successful_runs_history_limit = Some(0);
    case.spec.failed_runs_history_limit = Some(0);
    assert_eq!(case.at("2026-11-30T10:07:00Z").actions.len(), 6);
}

#[test]
fn an_invalid_schedule_is_a_condition_not_a_crash() {
    let case = Case::new("every day at nine");
    let decision = case.at("2026-11-30T10:07:00Z");
    assert!(decision.actions.is_empty());
    let ready = find(&decision.status.conditions, "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some(reasons::INVALID_SCHEDULE));
    assert!(ready.message.as_deref().is_some_and(|m| m.contains("4 fields, not 5")), "{ready:?}");
    // Past admission (the CRD refuses it), the status still names the field and its range.
    let decision = Case::new("61 * * * *").at("2026-11-30T10:07:00Z");
    let ready = find(&decision.status.conditions, "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some(reasons::INVALID_SCHEDULE));
    assert!(
        ready.message.as_deref().is_some_and(|m| m.ends_with(": minute 61 is out of range 0-59")),
        "{ready:?}"
    );
}

#[test]
fn deciding_again_changes_nothing_in_status() {
    let mut case = Case::new("0 * * * *");
    let first = case.at("2026-11-30T10:10:00Z");
    case.status = first.status.clone();
    let again = case.at("2026-11-30T10:20:00Z");
    assert_eq!(again.status, first.status, "no wall-clock churn between due times");
}

#[test]
fn time_zones_move_the_due_minute() {
    let mut case = Case::new("0 11 * * *");
    case.spec.time_zone = Some("Europe/Paris".into());
    // 11:00 in Paris is 10:00 UTC in winter.
    let decision = case.at("2026-12-01T10:00:05Z");
    assert_eq!(creates(&decision), vec![run_name("nightly", at("2026-12-01T10:00:00Z")).as_str()]);
}

#[test]
fn a_name_too_long_for_a_label_is_refused_and_trigger_times_are_whole_seconds() {
    let case = Case::new("* * * * *");
    let long = "n".repeat(64);
    let decision = decide(&Input {
        name: &long,
        generation: Some(1),
        created: at("2026-11-30T10:00:30Z"),
        spec: &case.spec,
        status: &case.status,
        trigger: None,
        runs: &[],
        now: at("2026-11-30T10:05:00Z"),
    });
    assert!(decision.actions.is_empty());
    let ready = find(&decision.status.conditions, "Ready").expect("Ready");
    assert!(ready.message.as_deref().is_some_and(|m| m.contains("64 characters")), "{ready:?}");

    let mut case = Case::new("0 0 1 1 *");
    case.trigger = Some("now");
    let decision = case.at("2026-11-30T10:05:07.123456789Z");
    assert_eq!(
        decision.status.runs[0].scheduled_time,
        Time(at("2026-11-30T10:05:07Z")),
        "no fraction to churn status"
    );
}

#[test]
fn continue_links_each_run_to_the_newest_and_keeps_that_one() {
    let mut case = Case::new("0 * * * *");
    case.spec.mode = ScheduleMode::Continue;
    case.spec.successful_runs_history_limit = Some(0);
    case.status.last_schedule_time = Some(Time(at("2026-11-30T11:00:00Z")));
    case.runs = vec![
        run("nightly-a", "2026-11-30T10:00:00Z", Some(SessionPhase::Completed)),
        run("nightly-b", "2026-11-30T11:00:00Z", Some(SessionPhase::Completed)),
    ];
    let due = case.at("2026-11-30T12:00:05Z");
    let parents: Vec<Option<&str>> = due
        .actions
        .iter()
        .filter_map(|a| if let Action::Create { parent, .. } = a { Some(parent.as_deref()) } else { None })
        .collect();
    assert_eq!(parents, [Some("nightly-b")], "{:?}", due.actions);
    // The limit of 0 prunes the older run, never the one being continued.
    let deleted: Vec<&Action> = due.actions.iter().filter(|a| matches!(a, Action::Delete(_))).collect();
    assert_eq!(deleted, [&Action::Delete("nightly-a".into())]);
    let ready = find(&due.status.conditions, "Ready").expect("Ready");
    assert!(ready.is_true(), "{ready:?}");

    // `new` links nothing.
    case.spec.mode = ScheduleMode::New;
    let fresh = case.at("2026-11-30T12:00:05Z");
    assert!(
        fresh.actions.iter().all(|a| !matches!(a, Action::Create { parent: Some(_), .. })),
        "{:?}",
        fresh.actions
    );
}
