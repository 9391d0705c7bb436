//! Every transition of the state machine.

use acp_api::condition::find;
use acp_api::session::{SessionPhase as P, SessionStatus, StoppedReason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;

fn at(s: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + s).expect("valid"))
}

fn obs<'a>(status: &'a SessionStatus, generation: i64, run: Option<RunState>) -> Observation<'a> {
    Observation {
        session: "fix",
        generation,
        desired: None,
        status,
        secrets: Secrets::Ready,
        run,
        timeout_seconds: 300,
        waiting_for: None,
        now: at(10),
    }
}

fn running(run: i64) -> Option<RunState> {
    Some(RunState { run, name: job_name("fix", run), progress: Progress::Running { started: Some(at(5)) } })
}

fn exited(run: i64, code: i32, message: &str) -> Option<RunState> {
    Some(RunState {
        run,
        name: job_name("fix", run),
        progress: Progress::Exited {
            code,
            message: Some(message.into()),
            started: Some(at(5)),
            finished: Some(at(9)),
        },
    })
}

/// The status of a session whose run 1 ran and exited with `code`.
fn finished(code: i32) -> SessionStatus {
    let created = decide(&obs(&SessionStatus::default(), 1, None)).status;
    step(&created, &obs(&created, 1, exited(1, code, "{}"))).status
}

/// Status after applying decisions in sequence.
fn step(status: &SessionStatus, o: &Observation<'_>) -> Decision {
    let mut o = o.clone();
    o.status = status;
    decide(&o)
}

#[test]
fn a_new_session_starts_run_1_and_creates_its_job() {
    let status = SessionStatus::default();
    let d = decide(&obs(&status, 1, None));
    assert_eq!(d.actions, [Action::Ensure { run: 1 }]);
    assert_eq!(d.status.phase, Some(P::Creating));
    assert_eq!(d.status.run, Some(1));
    assert_eq!(d.status.job_name.as_deref(), Some("fix-1"));
    assert_eq!(d.status.observed_generation, Some(1));
    assert!(find(&d.status.conditions, "SecretsReady").is_some_and(|c| c.is_true()));
    let created = find(&d.status.conditions, "JobCreated").expect("JobCreated");
    assert!(!created.is_true(), "the run is recorded before its Job exists");
}

#[test]
fn a_recorded_run_whose_job_was_never_created_is_created() {
    // The operator recorded run 1, then crashed before creating the Job.
    let recorded = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let d = step(&recorded, &obs(&recorded, 1, None));
    assert_eq!(d.actions, [Action::Ensure { run: 1 }]);
    assert_eq!(d.status.run, Some(1), "the same run, not a new one");
}

#[test]
fn a_created_job_that_vanishes_without_a_verdict_is_run_lost_and_not_rerun() {
    let mut created = decide(&obs(&SessionStatus::default(), 1, None)).status;
    job_created(&mut created, 1, &at(10));
    let live = step(&created, &obs(&created, 1, running(1))).status;
    assert_eq!(live.phase, Some(P::Running));
    for gone in [None, Some(RunState { run: 1, name: "fix-1".into(), progress: Progress::Terminating })] {
        let d = step(&live, &obs(&live, 1, gone));
        assert!(d.actions.is_empty(), "no second run of the same work: {:?}", d.actions);
        assert_eq!(d.status.phase, Some(P::Failed));
        assert_eq!(d.status.run, Some(1));
        let failed = find(&d.status.conditions, "Failed").expect("Failed");
        assert_eq!(failed.reason.as_deref(), Some("RunLost"));
        assert!(d.events.iter().any(|e| e.warning && e.reason == "RunLost"), "{:?}", d.events);
        // It stays failed on every later look.
        let again = step(&d.status, &obs(&d.status, 1, None));
        assert!(again.actions.is_empty());
        assert_eq!(again.status, d.status);
        // The user asks for a run: exactly one new run.
        let mut ask = obs(&d.status, 1, None);
        ask.desired = Some(DESIRED_RUNNING);
        let rerun = step(&d.status, &ask);
        assert_eq!(rerun.actions, [Action::Ensure { run: 2 }]);
        let created = find(&rerun.status.conditions, "JobCreated").expect("JobCreated");
        assert!(!created.is_true(), "run 2's Job is not created yet");
    }
}

#[test]
fn missing_secret_keeps_the_session_pending_then_recovers() {
    let status = SessionStatus::default();
    let mut o = obs(&status, 1, None);
    o.secrets = Secrets::Missing("secret ambient-runner-secrets not found".into());
    let d = decide(&o);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(P::Pending));
    let c = find(&d.status.conditions, "SecretsReady").expect("condition");
    assert!(!c.is_true());
    assert_eq!(c.reason.as_deref(), Some("SecretMissing"));
    assert_eq!(c.message.as_deref(), Some("secret ambient-runner-secrets not found"));
    assert!(d.events.iter().any(|e| e.warning && e.reason == "SecretMissing"));
    let mut again = o.clone();
    again.status = &d.status;
    assert!(!decide(&again).events.iter().any(|e| e.reason == "SecretMissing"), "warned once, not per retry");

    o.secrets = Secrets::Ready;
    let d2 = step(&d.status, &o);
    assert_eq!(d2.actions, [Action::Ensure { run: 1 }], "same run, no new run for a retry");
    assert_eq!(d2.status.run, Some(1));
}

#[test]
fn pod_running_gives_running_with_a_stable_start_time() {
    let status = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let d = step(&status, &obs(&status, 1, running(1)));
    assert_eq!(d.status.phase, Some(P::Running));
    assert_eq!(d.status.start_time, Some(at(5)));
    assert!(d.actions.is_empty());
    let mut later = obs(&d.status, 1, running(1));
    later.now = at(500);
    let again = step(&d.status, &later);
    assert_eq!(again.status, d.status, "re-observing changes nothing (no churn)");
    assert!(again.events.is_empty());
}

#[test]
fn exit_codes_map_to_phases_and_reasons() {
    let base = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let ok =
        step(&base, &obs(&base, 1, exited(1, 0, r#"{"outcome":"success","summary":"done","numTurns":4}"#)));
    assert_eq!(ok.status.phase, Some(P::Completed));
    assert_eq!(ok.status.result.as_ref().and_then(|r| r.num_turns), Some(4));
    assert_eq!(ok.status.completion_time, Some(at(9)));
    assert!(find(&ok.status.conditions, "Ready").is_some_and(|c| c.is_true()));

    let agent =
        step(&base, &obs(&base, 1, exited(1, 1, r#"{"outcome":"agentError","error":"model API error"}"#)));
    assert_eq!(agent.status.phase, Some(P::Failed));
    assert_eq!(
        find(&agent.status.conditions, "Failed").and_then(|c| c.reason.clone()).as_deref(),
        Some("AgentError")
    );
    assert!(agent.status.message.as_deref().is_some_and(|m| m.contains("model API error")));
    assert!(agent.events.iter().any(|e| e.warning && e.reason == "Failed"));

    let prereq = step(
        &base,
        &obs(&base, 1, exited(1, 2, r#"{"outcome":"prerequisiteFailed","error":"failed to clone"}"#)),
    );
    assert_eq!(
        find(&prereq.status.conditions, "Failed").and_then(|c| c.reason.clone()).as_deref(),
        Some("PrerequisiteFailed")
    );

    let odd = step(&base, &obs(&base, 1, exited(1, 137, "")));
    assert_eq!(
        find(&odd.status.conditions, "Failed").and_then(|c| c.reason.clone()).as_deref(),
        Some("RunnerError")
    );
    assert!(
        odd.status.result.as_ref().is_some_and(|r| r.error.as_deref() == Some("the runner wrote no result"))
    );
}

#[test]
fn inactivity_exit_is_stopped_with_its_reason() {
    let base = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let msg = r#"{"outcome":"stopped","stoppedReason":"inactivity","error":"no activity"}"#;
    let d = step(&base, &obs(&base, 1, exited(1, 143, msg)));
    assert_eq!(d.status.phase, Some(P::Stopped));
    assert_eq!(d.status.stopped_reason, Some(StoppedReason::Inactivity));
}

#[test]
fn deadline_exceeded_is_failed_with_reason_timeout() {
    let base = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let run = Some(RunState { run: 1, name: "fix-1".into(), progress: Progress::DeadlineExceeded });
    let d = step(&base, &obs(&base, 1, run));
    assert_eq!(d.status.phase, Some(P::Failed));
    let c = find(&d.status.conditions, "Failed").expect("failed");
    assert_eq!(c.reason.as_deref(), Some("Timeout"));
    assert_eq!(c.message.as_deref(), Some("exceeded spec.timeout (300s)"));
}

#[test]
fn pod_problems_surface_as_conditions_and_warnings() {
    let base = decide(&obs(&SessionStatus::default(), 1, None)).status;
    for reason in ["ImagePullBackOff", "CrashLoopBackOff", "Unschedulable"] {
        let run = Some(RunState {
            run: 1,
            name: "fix-1".into(),
            progress: Progress::Waiting {
                reason: Some(reason.into()),
                message: Some(format!("{reason}: details")),
            },
        });
        let d = step(&base, &obs(&base, 1, run));
        let c = find(&d.status.conditions, "RunnerStarted").expect("condition");
        assert_eq!((c.is_true(), c.reason.as_deref()), (false, Some(reason)));
        assert!(d.events.iter().any(|e| e.warning && e.reason == reason));
    }
}

#[test]
fn stop_deletes_the_job_then_ends_stopped() {
    let created = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let base = step(&created, &obs(&created, 1, running(1))).status;
    let mut o = obs(&base, 1, running(1));
    o.desired = Some(DESIRED_STOPPED);
    let d = step(&base, &o);
    assert_eq!(d.actions, [Action::Delete { name: "fix-1".into() }]);
    assert_eq!(d.status.phase, Some(P::Stopping));

    let mut gone = obs(&d.status, 1, None);
    gone.desired = Some(DESIRED_STOPPED);
    let d2 = step(&d.status, &gone);
    assert!(d2.actions.is_empty());
    assert_eq!(d2.status.phase, Some(P::Stopped));
    assert_eq!(d2.status.stopped_reason, Some(StoppedReason::User));

    // While the annotation stays, nothing restarts, even on a spec change.
    let mut changed = obs(&d2.status, 2, None);
    changed.desired = Some(DESIRED_STOPPED);
    assert!(step(&d2.status, &changed).actions.is_empty());
}

#[test]
fn restart_request_starts_exactly_one_new_run() {
    let done = finished(0);
    assert_eq!(done.phase, Some(P::Completed));
    let mut o = obs(&done, 1, exited(1, 0, "{}"));
    o.desired = Some(DESIRED_RUNNING);
    let d = step(&done, &o);
    assert_eq!(d.actions, [Action::Ensure { run: 2 }]);
    assert_eq!(d.status.run, Some(2));
    assert_eq!(d.status.result, None, "the old result is cleared");

    // The new run completes; the annotation is still there: no third run.
    let mut o2 = obs(&d.status, 1, exited(2, 0, "{}"));
    o2.desired = Some(DESIRED_RUNNING);
    let done2 = step(&d.status, &o2);
    assert_eq!(done2.status.phase, Some(P::Completed));
    let again = step(&done2.status, &o2);
    assert!(again.actions.is_empty());
    assert_eq!(again.status.run, Some(2));
}

#[test]
fn spec_change_reruns_a_terminal_session_but_metadata_changes_do_not() {
    let done = finished(0);
    let same = step(&done, &obs(&done, 1, exited(1, 0, "{}")));
    assert!(same.actions.is_empty(), "an unchanged generation never re-runs");
    let changed = step(&done, &obs(&done, 2, exited(1, 0, "{}")));
    assert_eq!(changed.actions, [Action::Ensure { run: 2 }]);
    assert_eq!(changed.status.observed_generation, Some(2));
}

#[test]
fn spec_change_while_running_supersedes_the_run() {
    let created = decide(&obs(&SessionStatus::default(), 1, None)).status;
    let live = step(&created, &obs(&created, 1, running(1))).status;
    let d = step(&live, &obs(&live, 2, running(1)));
    assert_eq!(d.actions, [Action::Delete { name: "fix-1".into() }, Action::Ensure { run: 2 }]);
    assert!(d.events.iter().any(|e| e.reason == "Superseded"));
    assert_eq!(d.status.start_time, None, "the new run has not started");
}

#[test]
fn a_stop_withdrawn_or_turned_into_a_restart_while_stopping_ends_right() {
    let mut created = decide(&obs(&SessionStatus::default(), 1, None)).status;
    job_created(&mut created, 1, &at(10));
    let live = step(&created, &obs(&created, 1, running(1))).status;
    let mut stop = obs(&live, 1, running(1));
    stop.desired = Some(DESIRED_STOPPED);
    let stopping = step(&live, &stop).status;
    assert_eq!(stopping.phase, Some(P::Stopping));
    let terminating = Some(RunState { run: 1, name: "fix-1".into(), progress: Progress::Terminating });

    // The annotation is removed before the Job is gone: Stopped, not RunLost.
    for gone in [None, terminating.clone()] {
        let d = step(&stopping, &obs(&stopping, 1, gone));
        assert_eq!(d.status.phase, Some(P::Stopped), "{:?}", d.status);
        assert!(d.actions.is_empty());
        assert!(d.events.iter().all(|e| e.reason != "RunLost"), "{:?}", d.events);
    }
    // It becomes a restart: exactly one new run.
    let mut restart = obs(&stopping, 1, terminating);
    restart.desired = Some(DESIRED_RUNNING);
    let d = step(&stopping, &restart);
    assert!(d.actions.contains(&Action::Ensure { run: 2 }), "{:?}", d.actions);
    assert_eq!(d.status.run, Some(2));
}

#[test]
fn a_session_waits_for_its_unfinished_parent_then_starts() {
    let fresh = SessionStatus::default();
    let queued = step(&fresh, &Observation { waiting_for: Some("fix-parent"), ..obs(&fresh, 1, None) });
    assert!(queued.actions.is_empty(), "no Job while the parent runs: {queued:?}");
    assert_eq!(queued.status.phase, Some(P::Pending));
    let ready = find(&queued.status.conditions, ct::READY).expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some(reasons::QUEUED));
    assert!(ready.message.as_deref().is_some_and(|m| m.contains("fix-parent")), "{ready:?}");
    // Waiting again changes nothing.
    let again = step(
        &queued.status,
        &Observation { waiting_for: Some("fix-parent"), ..obs(&queued.status, 1, None) },
    );
    assert_eq!(again.status, queued.status);
    // The parent finished: the run starts.
    let started = step(&queued.status, &obs(&queued.status, 1, None));
    assert_eq!(started.actions, vec![Action::Ensure { run: 1 }]);
    // A run already under way is never held back by a parent.
    let mut running_status = started.status.clone();
    job_created(&mut running_status, 1, &at(10));
    let held = step(
        &running_status,
        &Observation { waiting_for: Some("fix-parent"), ..obs(&running_status, 1, running(1)) },
    );
    assert_eq!(held.status.phase, Some(P::Running));
    // A stop request wins over the queue.
    let stopped = step(
        &queued.status,
        &Observation {
            waiting_for: Some("fix-parent"),
            desired: Some("Stopped"),
            ..obs(&queued.status, 1, None)
        },
    );
    assert_eq!(stopped.status.phase, Some(P::Stopped));
}

#[test]
fn a_settled_session_decides_the_same_without_credentials() {
    let done = finished(0);
    let missing = Secrets::Missing("secret ambient-runner-secrets not found".into());
    // (status, generation, desired phase, run, settled)
    type Case<'a> = (&'a SessionStatus, i64, Option<&'a str>, Option<RunState>, bool);
    let cases: [Case; 6] = [
        (&done, 1, None, exited(1, 0, "{}"), true),
        (&done, 1, None, None, true),
        (&done, 1, Some(DESIRED_STOPPED), None, true),
        // A spec change or a restart request starts a run: credentials count.
        (&done, 2, None, None, false),
        (&done, 1, Some(DESIRED_RUNNING), None, false),
        (&SessionStatus::default(), 1, None, None, false),
    ];
    for (status, generation, desired, run, want) in cases {
        assert_eq!(settled(status, generation, desired), want, "{desired:?} generation {generation}");
        let mut with = obs(status, generation, run);
        with.desired = desired;
        let without = Observation { secrets: missing.clone(), ..with.clone() };
        if want {
            assert_eq!(decide(&with), decide(&without), "settled: credentials change nothing");
            assert!(!decide(&without).actions.iter().any(|a| matches!(a, Action::Ensure { .. })));
        } else {
            assert_ne!(decide(&with), decide(&without), "unsettled: credentials decide");
        }
    }
}
