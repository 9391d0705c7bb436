//! SessionSchedules from git to results, every component real: `acp git-sync`
//! applies the schedule, the scheduler in `acp operator` creates its runs,
//! the operator runs them (process executor: the real runner and Claude Code
//! CLI against a scripted model), and `acp statusbot` writes each result back
//! to git. The trigger annotation, committed to git, starts the runs, so no
//! test waits for a due minute (the scheduler's clock is injected in
//! `acp-operator`'s own tests).

mod common;

use std::sync::Arc;
use std::time::Duration;

use acp_api::SessionSchedule;
use acp_api::constants::labels;
use acp_api::session::SessionPhase;
use acp_operator::schedule::plan::trigger_name;
use acp_testenv::eventually;
use acp_testenv::model::{Responder, Step};
use common::{MODEL, Stack};
use kube::ResourceExt as _;
use kube::api::ListParams;

const RUN: Duration = Duration::from_secs(180);

/// A schedule due on January 1st only (not during a test), run now by `trigger`.
fn schedule(trigger: &str) -> String {
    schedule_in_mode(trigger, "new")
}

fn schedule_in_mode(trigger: &str, mode: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: nightly\n  annotations:\n    ambient-code.io/trigger-requested-at: {trigger:?}\nspec:\n  schedule: \"0 3 1 1 *\"\n  timeZone: Europe/Paris\n  mode: {mode}\n  successfulRunsHistoryLimit: 1\n  template:\n    metadata:\n      labels:\n        team: web\n    spec:\n      initialPrompt: \"Nightly triage\"\n      llmSettings:\n        model: {MODEL}\n      timeout: 300\n"
    )
}

async fn run_names(stack: &Stack) -> Vec<String> {
    let list = stack
        .sessions()
        .list(&ListParams::default().labels(&format!("{}=nightly", labels::SCHEDULE)))
        .await
        .expect("list runs");
    list.items.iter().map(|s| s.name_any()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_from_git_runs_is_written_back_keeps_its_history_and_is_pruned_with_its_runs() {
    let responder: Responder = Arc::new(|_: &serde_json::Value| Step::text("Triage done: 2 flaky tests."));
    let mut stack = Stack::new("schedules", responder).await;
    stack.commit(&[("sessions/nightly.yaml", Some(&schedule("first")))], "Add the nightly triage");
    stack.start_all();
    stack.create_source().await;

    // git-sync applied the schedule; the scheduler ran the trigger once.
    let first = trigger_name("nightly", "first");
    let run = stack
        .wait_session(&first, "the triggered run finished", RUN, |s| {
            s.status.as_ref().and_then(|st| st.phase).is_some_and(SessionPhase::is_terminal)
        })
        .await;
    assert_eq!(run.status.as_ref().and_then(|s| s.phase), Some(SessionPhase::Completed), "{}", stack.logs());
    assert_eq!(run.labels().get("team").map(String::as_str), Some("web"));
    assert_eq!(run.labels().get(labels::SOURCE_NAME).map(String::as_str), Some("repo"));
    let schedules = stack.ns.api::<SessionSchedule>();
    let applied = schedules.get("nightly").await.expect("the schedule");
    assert_eq!(
        applied.labels().get(labels::SOURCE_NAME).map(String::as_str),
        Some("repo"),
        "applied by git-sync"
    );
    assert_eq!(run.owner_references()[0].uid, applied.uid().expect("uid"));

    // The status bot wrote the run's result back, as for any session.
    let path = format!("acp/status:status/{}/{first}.yaml", stack.ns.name);
    let written = eventually("the run's status written back", Duration::from_secs(60), || async {
        stack.show(&path).filter(|text| text.contains("Completed"))
    })
    .await;
    assert!(written.contains("Triage done: 2 flaky tests."), "{written}");

    // A new trigger value, committed: one more run; the history keeps one success.
    stack.commit(&[("sessions/nightly.yaml", Some(&schedule("second")))], "Run the triage again");
    stack.sync().await;
    let second = trigger_name("nightly", "second");
    stack
        .wait_session(&second, "the second run finished", RUN, |s| {
            s.status.as_ref().and_then(|st| st.phase) == Some(SessionPhase::Completed)
        })
        .await;
    eventually("the older run deleted by the history limit", Duration::from_secs(60), || async {
        (run_names(&stack).await == vec![second.clone()]).then_some(())
    })
    .await;
    let status = schedules.get("nightly").await.expect("schedule").status.expect("status");
    assert_eq!(status.last_trigger.as_deref(), Some("second"));

    // The dashboard shows what the scheduler wrote and links the run.
    let url = stack.start_dashboard().await;
    let api = format!("{url}/api/v1/schedules/{}/nightly", stack.ns.name);
    let view = eventually("the dashboard's view of the schedule", Duration::from_secs(30), || async {
        let body = acp_testenv::proc::curl(&api, &[])?;
        let view: serde_json::Value = serde_json::from_str(&body).ok()?;
        (view["runs"][0]["phase"] == "Completed").then_some(view)
    })
    .await;
    assert_eq!(view["runs"][0]["name"], second.as_str(), "{view}");
    assert_eq!(view["runs"][0]["triggered"], true, "{view}");
    assert_eq!(view["timeZone"], "Europe/Paris", "{view}");
    assert_eq!(
        status.next_run_time.map(|t| t.0.to_string()),
        Some("2027-01-01T02:00:00Z".into()),
        "03:00 in Paris"
    );

    // The schedule leaves git: git-sync prunes it, the garbage collector its runs.
    stack.commit(&[("sessions/nightly.yaml", None)], "Drop the nightly triage");
    stack.sync().await;
    eventually("the schedule pruned", Duration::from_secs(60), || async {
        schedules.get_opt("nightly").await.ok().and_then(|s| s.is_none().then_some(()))
    })
    .await;
    eventually("its runs garbage-collected", Duration::from_secs(60), || async {
        run_names(&stack).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(stack.github.statuses().len(), 0, "a scheduled run has no commit to report on");
}

/// `mode: continue`: each run resumes the previous run's conversation.
#[tokio::test(flavor = "multi_thread")]
async fn a_continue_schedules_runs_are_one_conversation() {
    let turns = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = turns.clone();
    let responder: Responder = Arc::new(move |_: &serde_json::Value| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Step::text(format!("Triage {n} done."))
    });
    let mut stack = Stack::new("schedules-continue", responder).await;
    stack
        .commit(&[("sessions/nightly.yaml", Some(&schedule_in_mode("first", "continue")))], "Add the triage");
    stack.start_all();
    stack.create_source().await;
    let finished = |s: &acp_api::AgenticSession| {
        s.status.as_ref().and_then(|st| st.phase) == Some(SessionPhase::Completed)
    };
    let first = trigger_name("nightly", "first");
    let one = stack.wait_session(&first, "the first run finished", RUN, finished).await;

    stack.commit(&[("sessions/nightly.yaml", Some(&schedule_in_mode("second", "continue")))], "Again");
    stack.sync().await;
    let second = trigger_name("nightly", "second");
    let two = stack.wait_session(&second, "the second run finished", RUN, finished).await;
    assert_eq!(
        two.annotations().get("vteam.ambient-code/parent-session-id").map(String::as_str),
        Some(first.as_str())
    );
    let conversation =
        |s: &acp_api::AgenticSession| s.status.as_ref().and_then(|st| st.sdk_session_id.clone());
    assert!(conversation(&one).is_some());
    assert_eq!(conversation(&two), conversation(&one), "one conversation");
    // The model got the first run's turn back as messages of the conversation.
    let requests = stack.model.requests();
    let last = requests.last().expect("the second run's request");
    let messages = last.body["messages"].as_array().expect("messages");
    assert!(
        messages.iter().any(|m| m["role"] == "assistant" && m.to_string().contains("Triage 1 done.")),
        "{messages:?}"
    );
    // The history limit of one success still keeps the run being continued.
    let names = run_names(&stack).await;
    assert!(names.contains(&first) && names.contains(&second), "{names:?}");
}
