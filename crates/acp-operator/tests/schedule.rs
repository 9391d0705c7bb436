//! The scheduler on the real control plane, with an injected clock: each test
//! moves the clock to a due time and waits for the scheduler to act, so none
//! waits for a wall-clock minute. The scheduler runs in this process (its
//! task aborted to play a crash or a restart); sessions are real objects on
//! the real API server, and their owner references are followed by the real
//! garbage collector.

use std::sync::Arc;
use std::time::Duration;

use acp_api::constants::{annotations, labels};
use acp_api::{AgenticSession, SessionSchedule};
use acp_operator::metrics::Metrics;
use acp_operator::schedule::clock::ManualClock;
use acp_operator::schedule::controller;
use acp_operator::schedule::plan::{run_name, trigger_name};
use acp_testenv::env::TestNamespace;
use acp_testenv::{TestEnv, eventually};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt as _;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

/// One scheduler instance (a replica of the operator, as far as schedules go).
fn start(ns: &TestNamespace, clock: &Arc<ManualClock>, metrics: &Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(controller::run(
        ns.client.clone(),
        Some(ns.name.clone()),
        Default::default(),
        clock.clone(),
        metrics.clone(),
        std::future::pending(),
    ))
}

/// Applies SessionSchedule `name` as a user would (the spec is theirs).
async fn apply_schedule(ns: &TestNamespace, name: &str, spec: Value, annotations: Value) -> SessionSchedule {
    let object = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    });
    ns.api::<SessionSchedule>()
        .patch(name, &PatchParams::apply("a-user").force(), &Patch::Apply(&object))
        .await
        .expect("apply the schedule")
}

async fn runs(ns: &TestNamespace, schedule: &str) -> Vec<AgenticSession> {
    let list = ns
        .api::<AgenticSession>()
        .list(&ListParams::default().labels(&format!("{}={schedule}", labels::SCHEDULE)))
        .await
        .expect("list runs");
    let mut items = list.items;
    items.sort_by_key(|s| s.name_any());
    items
}

async fn names(ns: &TestNamespace, schedule: &str) -> Vec<String> {
    runs(ns, schedule).await.iter().map(|s| s.name_any()).collect()
}

/// Waits until the scheduler has finished `n` more reconciles than `since`.
async fn reconciled(metrics: &Metrics, since: u64, n: u64) {
    eventually("the scheduler to reconcile", WAIT, || async move {
        (metrics.schedule_reconciles.get() >= since + n).then_some(())
    })
    .await;
}

/// The first whole minute after `t`.
fn next_minute(t: Timestamp) -> Timestamp {
    Timestamp::from_second((t.as_second() / 60 + 1) * 60).expect("a time")
}

fn template() -> Value {
    json!({"metadata": {"labels": {"team": "web"}}, "spec": {"initialPrompt": "Triage the flaky tests."}})
}

#[tokio::test]
async fn one_session_per_due_time_across_restarts_and_two_replicas() {
    let env = TestEnv::control_plane_only();
    let ns = env.namespace("schedule-restart").await;
    env.install_crds(&ns.client).await;
    let clock = ManualClock::new(Timestamp::now());
    let metrics = Arc::new(Metrics::default());
    let schedule = apply_schedule(
        &ns,
        "triage",
        json!({"schedule": "* * * * *", "concurrencyPolicy": "Allow", "template": template()}),
        json!({}),
    )
    .await;
    let created = schedule.metadata.creation_timestamp.as_ref().expect("created").0;
    let first = next_minute(created);
    let scheduler = start(&ns, &clock, &metrics);

    clock.set(first + SignedDuration::from_secs(1));
    let want = vec![run_name("triage", first)];
    eventually("the first due time's run", WAIT, || {
        let (ns, want) = (&ns, &want);
        async move { (names(ns, "triage").await == *want).then_some(()) }
    })
    .await;
    let run = &runs(&ns, "triage").await[0];
    assert_eq!(run.labels().get("team").map(String::as_str), Some("web"));
    assert_eq!(run.owner_references()[0].uid, schedule.uid().expect("uid"));
    assert_eq!(run.spec.initial_prompt.as_deref(), Some("Triage the flaky tests."));

    // A restart between two due times starts nothing.
    scheduler.abort();
    let before = metrics.schedule_reconciles.get();
    let scheduler = start(&ns, &clock, &metrics);
    reconciled(&metrics, before, 1).await;
    let before = metrics.schedule_reconciles.get();
    clock.set(first + SignedDuration::from_secs(30));
    reconciled(&metrics, before, 1).await;
    assert_eq!(names(&ns, "triage").await, want, "no run between due times");

    // The next due time, while the scheduler is down: one run when it is back.
    scheduler.abort();
    let second = first + SignedDuration::from_secs(60);
    clock.set(second + SignedDuration::from_secs(5));
    let scheduler = start(&ns, &clock, &metrics);
    let want = vec![run_name("triage", first), run_name("triage", second)];
    eventually("the second due time's run", WAIT, || {
        let (ns, want) = (&ns, &want);
        async move { (names(ns, "triage").await == *want).then_some(()) }
    })
    .await;

    // Two replicas at once (a deposed leader still running): still one run.
    let before = metrics.schedule_reconciles.get();
    let other = start(&ns, &clock, &metrics);
    reconciled(&metrics, before, 1).await;
    let third = second + SignedDuration::from_secs(60);
    let before = metrics.schedule_reconciles.get();
    clock.set(third + SignedDuration::from_secs(1));
    reconciled(&metrics, before, 2).await;
    let want = vec![run_name("triage", first), run_name("triage", second), run_name("triage", third)];
    eventually("the third due time's run", WAIT, || {
        let (ns, want) = (&ns, &want);
        async move { (names(ns, "triage").await == *want).then_some(()) }
    })
    .await;
    let status = ns.api::<SessionSchedule>().get("triage").await.expect("schedule").status.expect("status");
    assert_eq!(status.last_schedule_time.map(|t| t.0), Some(third));
    assert_eq!(status.next_run_time.map(|t| t.0), Some(third + SignedDuration::from_secs(60)));
    assert_eq!(status.runs.len(), 3);
    assert_eq!(status.active.len(), 3, "nothing ran them: all still active");
    scheduler.abort();
    other.abort();
}

#[tokio::test]
async fn forbid_skips_while_a_run_is_active_and_replace_stops_it() {
    let env = TestEnv::control_plane_only();
    let ns = env.namespace("schedule-policy").await;
    env.install_crds(&ns.client).await;
    let clock = ManualClock::new(Timestamp::now());
    let metrics = Arc::new(Metrics::default());
    let spec =
        |policy: &str| json!({"schedule": "* * * * *", "concurrencyPolicy": policy, "template": template()});
    let schedule = apply_schedule(&ns, "bump", spec("Forbid"), json!({})).await;
    let first = next_minute(schedule.metadata.creation_timestamp.as_ref().expect("created").0);
    let scheduler = start(&ns, &clock, &metrics);
    clock.set(first + SignedDuration::from_secs(1));
    let one = vec![run_name("bump", first)];
    eventually("the first run", WAIT, || {
        let (ns, one) = (&ns, &one);
        async move { (names(ns, "bump").await == *one).then_some(()) }
    })
    .await;

    // No operator runs it here, so the first run stays active: Forbid skips.
    let second = first + SignedDuration::from_secs(60);
    clock.set(second + SignedDuration::from_secs(1));
    let api = ns.api::<SessionSchedule>();
    eventually("the skipped run counted", WAIT, || {
        let api = &api;
        async move {
            let status = api.get("bump").await.ok()?.status?;
            (status.missed_runs == 1 && status.last_schedule_time.map(|t| t.0) == Some(second)).then_some(())
        }
    })
    .await;
    assert_eq!(names(&ns, "bump").await, one, "Forbid started nothing");

    // Replace: the active run is asked to stop and the new one starts.
    apply_schedule(&ns, "bump", spec("Replace"), json!({})).await;
    let third = second + SignedDuration::from_secs(60);
    clock.set(third + SignedDuration::from_secs(1));
    let two = vec![run_name("bump", first), run_name("bump", third)];
    eventually("the replacing run", WAIT, || {
        let (ns, two) = (&ns, &two);
        async move { (names(ns, "bump").await == *two).then_some(()) }
    })
    .await;
    let old = ns.api::<AgenticSession>().get(&one[0]).await.expect("first run");
    assert_eq!(old.annotations().get(annotations::DESIRED_PHASE).map(String::as_str), Some("Stopped"));
    let new = ns.api::<AgenticSession>().get(&two[1]).await.expect("new run");
    assert!(!new.annotations().contains_key(annotations::DESIRED_PHASE));
    scheduler.abort();
}

#[tokio::test]
async fn suspend_stops_new_runs_and_a_trigger_runs_exactly_one_per_value() {
    let env = TestEnv::control_plane_only();
    let ns = env.namespace("schedule-suspend").await;
    env.install_crds(&ns.client).await;
    let clock = ManualClock::new(Timestamp::now());
    let metrics = Arc::new(Metrics::default());
    let spec = json!({"schedule": "* * * * *", "suspend": true, "template": template()});
    let schedule = apply_schedule(&ns, "nightly", spec.clone(), json!({})).await;
    let first = next_minute(schedule.metadata.creation_timestamp.as_ref().expect("created").0);
    let before = metrics.schedule_reconciles.get();
    let scheduler = start(&ns, &clock, &metrics);
    reconciled(&metrics, before, 1).await;
    let before = metrics.schedule_reconciles.get();
    clock.set(first + SignedDuration::from_secs(125));
    reconciled(&metrics, before, 1).await;
    assert!(names(&ns, "nightly").await.is_empty(), "suspended: no run");
    let status = ns.api::<SessionSchedule>().get("nightly").await.expect("schedule").status.expect("status");
    assert_eq!(status.next_run_time, None);
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some("Suspended"));

    // A trigger runs once, even while suspended (like kubectl create job --from).
    let trigger = |value: &str| json!({annotations::TRIGGER_REQUESTED_AT: value});
    apply_schedule(&ns, "nightly", spec.clone(), trigger("2026-11-30T10:00:00Z")).await;
    let one = vec![trigger_name("nightly", "2026-11-30T10:00:00Z")];
    eventually("the triggered run", WAIT, || {
        let (ns, one) = (&ns, &one);
        async move { (names(ns, "nightly").await == *one).then_some(()) }
    })
    .await;
    // The same value again, a restart and time passing: still one.
    scheduler.abort();
    let before = metrics.schedule_reconciles.get();
    let scheduler = start(&ns, &clock, &metrics);
    reconciled(&metrics, before, 1).await;
    let before = metrics.schedule_reconciles.get();
    clock.advance(SignedDuration::from_secs(120));
    reconciled(&metrics, before, 1).await;
    assert_eq!(names(&ns, "nightly").await, one);
    // A new value: one more.
    apply_schedule(&ns, "nightly", spec, trigger("again")).await;
    eventually("the second triggered run", WAIT, || {
        let ns = &ns;
        async move { (names(ns, "nightly").await.len() == 2).then_some(()) }
    })
    .await;
    assert!(names(&ns, "nightly").await.contains(&trigger_name("nightly", "again")));
    scheduler.abort();
}
