use serde_json::{Value, json};

use super::*;

const COMMIT: &str = "c0ffee0123456789";
const DASHBOARD: &str = "https://acp.example";

/// Session `name` of team-a, claiming source team-a/src, brought by
/// [`COMMIT`], in `phase` of `run`; `metadata` and `status` are merged in
/// (a null removes).
fn session(name: &str, phase: &str, run: i64, metadata: Value, status: Value) -> AgenticSession {
    let mut object = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": "team-a", "generation": 1,
            "labels": {"ambient-code.io/source-commit": COMMIT},
            "annotations": {"ambient-code.io/source": "team-a/src"}},
        "spec": {"initialPrompt": "Fix it"},
        "status": {"phase": phase, "run": run, "observedGeneration": 1},
    });
    merge(&mut object["metadata"], metadata);
    merge(&mut object["status"], status);
    serde_json::from_value(object).expect("session")
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                if value.is_null() {
                    into.remove(&key);
                } else {
                    merge(into.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// Source team-a/src with GitHub settings for acme/sessions, having applied
/// `fix` from `sessions/fix.yaml`; `spec` is merged in.
fn source(spec: Value) -> SessionSource {
    let mut object = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"name": "src", "namespace": "team-a"},
        "spec": {"url": "https://github.com/acme/sessions", "github": {"repository": "acme/sessions"}},
        "status": {"inventory": [
            {"kind": "AgenticSession", "namespace": "team-a", "name": "fix", "path": "sessions/fix.yaml", "revision": COMMIT},
            {"kind": "AgenticSession", "namespace": "team-a", "name": "webapp-pr7-1",
             "path": "acp/requests:acme/webapp/pr-7/webapp-pr7-1.yaml", "revision": COMMIT},
        ]},
    });
    merge(&mut object["spec"], spec);
    serde_json::from_value(object).expect("source")
}

fn claim(source: SessionSource, verdict: Provenance) -> Claim {
    Claim { namespace: "team-a".into(), name: "src".into(), source, verdict }
}

fn observe<'a>(session: &'a AgenticSession, claim: Option<Claim>, saved: BotState) -> Observation<'a> {
    Observation { session, claim, saved, todos: Vec::new(), dashboard: Some(DASHBOARD) }
}

/// The plan for `session` of `source`, confirmed, from `saved`.
fn plan_of(session: &AgenticSession, source: SessionSource, saved: BotState, check: impl FnOnce(&Plan<'_>)) {
    let obs = observe(session, Some(claim(source, Provenance::Confirmed)), saved);
    match decide(&obs) {
        Decision::Report(plan) => check(&plan),
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn github<'p>(plan: &'p Plan<'_>) -> &'p Post {
    plan.github.as_ref().expect("a GitHub report")
}

/// The state after everything was done for run 1 of `fix` while it ran.
fn reported(status: &str) -> BotState {
    BotState {
        run: Some(1),
        commit: Some(COMMIT.into()),
        pull: Some(7),
        comment: Some(41),
        posted: Some("d1".into()),
        posted_at: Some(1_000),
        status: Some(status.into()),
        written: None,
    }
}

#[test]
fn a_session_whose_source_is_not_verified_gets_no_report() {
    let fix = session("fix", "Running", 1, json!({}), json!({}));
    assert_eq!(
        decide(&observe(&fix, None, BotState::default())),
        Decision::Wait,
        "no claim, or no such source"
    );
    let not_yet = observe(&fix, Some(claim(source(json!({})), Provenance::NotYet)), BotState::default());
    assert_eq!(decide(&not_yet), Decision::Retry(NOT_YET));
    let refused = Provenance::Refused("the source's inventory does not list it".into());
    let refused = observe(&fix, Some(claim(source(json!({})), refused)), reported("pending"));
    assert_eq!(
        decide(&refused),
        Decision::Refuse {
            source: "team-a/src".into(),
            why: "the source's inventory does not list it".into()
        }
    );
}

#[test]
fn a_session_the_operator_has_not_caught_up_with_waits_unless_it_is_stopped() {
    let behind = session("fix", "Completed", 1, json!({"generation": 2}), json!({}));
    let obs = observe(&behind, Some(claim(source(json!({})), Provenance::Confirmed)), BotState::default());
    assert_eq!(decide(&obs), Decision::Wait, "the status is of the previous commit's run");
    let stopping = session(
        "fix",
        "Stopping",
        1,
        json!({"generation": 2, "annotations": {"ambient-code.io/desired-phase": "Stopped"}}),
        json!({}),
    );
    plan_of(&stopping, source(json!({})), BotState::default(), |plan| {
        assert_eq!(github(plan).status.as_ref().map(|s| s.state), Some("pending"));
    });
}

#[test]
fn a_terminal_session_is_written_back_once() {
    let done = session("fix", "Completed", 1, json!({}), json!({}));
    let mut written = None;
    plan_of(&done, source(json!({})), BotState::default(), |plan| {
        let commit = plan.write_back.as_ref().expect("a write-back commit");
        assert_eq!(commit.branch, "acp/status");
        assert_eq!(commit.path, "status/team-a/fix.yaml");
        assert_eq!(commit.message, "status: team-a/fix Completed");
        assert_eq!(commit.content, status_file(&plan.report));
        assert_eq!(commit.digest, digest(&commit.content));
        written = Some(commit.digest.clone());
    });
    // Once written (as act records it), not again.
    let saved = BotState { written, ..reported("success") };
    plan_of(&done, source(json!({})), saved, |plan| assert_eq!(plan.write_back, None));
    // The source's settings.
    let elsewhere = json!({"writeBack": {"branch": "results", "path": "/out/"}});
    plan_of(&done, source(elsewhere), BotState::default(), |plan| {
        let commit = plan.write_back.as_ref().expect("a write-back commit");
        assert_eq!((commit.branch.as_str(), commit.path.as_str()), ("results", "out/team-a/fix.yaml"));
    });
    let off = json!({"writeBack": {"enabled": false}});
    plan_of(&done, source(off), BotState::default(), |plan| assert_eq!(plan.write_back, None));
    // A running session has nothing final to write.
    let running = session("fix", "Running", 1, json!({}), json!({}));
    plan_of(&running, source(json!({})), BotState::default(), |plan| assert_eq!(plan.write_back, None));
}

#[test]
fn a_session_is_reported_on_the_pull_request_of_its_commit() {
    let running = session("fix", "Running", 1, json!({}), json!({}));
    plan_of(&running, source(json!({})), BotState::default(), |plan| {
        let github = github(plan);
        assert_eq!(github.repository, "acme/sessions");
        assert_eq!(github.thread, None);
        assert_eq!(
            github.status,
            Some(Status {
                on: Revision::Commit(COMMIT.into()),
                context: "acp/fix".into(),
                state: "pending",
                description: "fix is running".into(),
                target_url: Some(format!("{DASHBOARD}/sessions/team-a/fix")),
            })
        );
        let comment = Comment { pull: Pull::OfCommit(COMMIT.into()), marker: marker("team-a", "fix") };
        assert_eq!(github.comment, Some(comment));
        assert_eq!((plan.state.run, plan.state.commit.as_deref()), (Some(1), Some(COMMIT)));
    });
    // Once its pull request is known, it is not looked up again.
    let known = BotState { run: Some(1), commit: Some(COMMIT.into()), pull: Some(7), ..BotState::default() };
    plan_of(&running, source(json!({})), known, |plan| {
        assert_eq!(github(plan).comment.as_ref().map(|c| &c.pull), Some(&Pull::Known(7)));
    });
    let failed = session("fix", "Failed", 1, json!({}), json!({"message": "the agent gave up"}));
    plan_of(&failed, source(json!({})), reported("pending"), |plan| {
        let status = github(plan).status.as_ref().expect("a new status");
        assert_eq!((status.state, status.description.as_str()), ("failure", "fix: the agent gave up"));
    });
}

#[test]
fn a_request_is_reported_on_its_threads_pull_request() {
    let binding = json!({"pullRequests": {"repositories": ["acme/*"], "template": {"spec": {}}}});
    // A request is reported even without a commit of its own.
    let request = session(
        "webapp-pr7-1",
        "Running",
        1,
        json!({"labels": {"ambient-code.io/source-commit": null}}),
        json!({}),
    );
    plan_of(&request, source(binding), BotState::default(), |plan| {
        let github = github(plan);
        assert_eq!(github.repository, "acme/webapp");
        assert_eq!(github.thread, Some(ThreadPath::new("acme/webapp", 7)));
        assert_eq!(github.status.as_ref().map(|s| &s.on), Some(&Revision::Head(7)));
        let comment = Comment { pull: Pull::Known(7), marker: thread_marker("acme/webapp", 7, "team-a/src") };
        assert_eq!(github.comment, Some(comment));
    });
    // Without the binding, the same file is no request: reported as any
    // session, which has no commit here.
    plan_of(&request, source(json!({})), BotState::default(), |plan| assert_eq!(plan.github, None));
}

#[test]
fn without_github_settings_or_a_commit_nothing_goes_to_github() {
    let done = session("fix", "Completed", 1, json!({}), json!({}));
    let unset = json!({"github": null});
    plan_of(&done, source(unset), BotState::default(), |plan| {
        assert_eq!(plan.github, None);
        assert!(plan.write_back.is_some(), "the write-back does not need GitHub");
    });
    let uncommitted =
        session("fix", "Completed", 1, json!({"labels": {"ambient-code.io/source-commit": null}}), json!({}));
    plan_of(&uncommitted, source(json!({})), BotState::default(), |plan| assert_eq!(plan.github, None));
    let off = json!({"github": {"commitStatuses": false, "comments": false}});
    plan_of(&done, source(off), BotState::default(), |plan| {
        let github = github(plan);
        assert_eq!((&github.status, &github.comment), (&None, &None));
    });
}

#[test]
fn the_comment_waits_for_the_first_progress() {
    for phase in ["Pending", "Creating"] {
        let waiting = session("fix", phase, 1, json!({}), json!({}));
        plan_of(&waiting, source(json!({})), BotState::default(), |plan| {
            let github = github(plan);
            assert_eq!(github.status.as_ref().map(|s| s.state), Some("pending"));
            assert_eq!(github.comment, None, "{phase}");
        });
    }
}

#[test]
fn an_unchanged_state_posts_nothing() {
    let running = session("fix", "Running", 1, json!({}), json!({}));
    plan_of(&running, source(json!({})), reported("pending"), |plan| {
        assert_eq!(plan.state, plan.saved, "nothing new to save");
        let github = github(plan);
        assert_eq!(github.status, None, "the status is already set");
        assert_eq!(plan.write_back, None);
        // The comment's body decides last: the same body is not posted again.
        assert_eq!(github.comment.as_ref().map(|c| &c.pull), Some(&Pull::Known(7)));
        let posted = plan.state.posted.as_deref().expect("posted");
        assert_eq!(
            comment_now(&plan.state, posted, false, 5_000, Duration::from_secs(30)),
            CommentStep::Unchanged
        );
    });
}

#[test]
fn a_new_run_or_commit_starts_afresh() {
    let done = BotState { written: Some("w".into()), ..reported("success") };
    let rerun = session("fix", "Running", 2, json!({}), json!({}));
    plan_of(&rerun, source(json!({})), done.clone(), |plan| {
        assert_eq!(
            (plan.state.run, plan.state.status.as_deref(), plan.state.posted.as_deref()),
            (Some(2), None, None)
        );
        assert_ne!(plan.state, plan.saved, "the new run's state is saved");
        let github = github(plan);
        assert_eq!(github.status.as_ref().map(|s| s.state), Some("pending"));
        assert_eq!(github.comment.as_ref().map(|c| &c.pull), Some(&Pull::OfCommit(COMMIT.into())));
    });
    let recommitted = session(
        "fix",
        "Completed",
        1,
        json!({"labels": {"ambient-code.io/source-commit": "beef"}}),
        json!({}),
    );
    plan_of(&recommitted, source(json!({})), done, |plan| {
        assert!(plan.write_back.is_some());
        assert_eq!(github(plan).status.as_ref().map(|s| &s.on), Some(&Revision::Commit("beef".into())));
    });
}

#[test]
fn the_todo_list_is_reported() {
    let running = session("fix", "Running", 1, json!({}), json!({}));
    let todos = vec![Todo { content: "Fix the redirect".into(), status: "in_progress".into() }];
    let obs = Observation {
        todos: todos.clone(),
        ..observe(&running, Some(claim(source(json!({})), Provenance::Confirmed)), BotState::default())
    };
    let Decision::Report(plan) = decide(&obs) else { panic!("expected a plan") };
    assert_eq!(plan.report.todos, todos);
}

#[test]
fn a_running_sessions_comment_is_edited_at_most_once_per_debounce() {
    let debounce = Duration::from_secs(30);
    let fresh = BotState::default();
    assert_eq!(
        comment_now(&fresh, "d1", false, 1_000, debounce),
        CommentStep::Post,
        "the first comment at once"
    );
    let posted = reported("pending");
    assert_eq!(
        comment_now(&posted, "d2", false, 1_010, debounce),
        CommentStep::Later(Duration::from_secs(20))
    );
    assert_eq!(comment_now(&posted, "d2", false, 1_030, debounce), CommentStep::Post);
    assert_eq!(comment_now(&posted, "d2", true, 1_010, debounce), CommentStep::Post, "the final one at once");
    assert_eq!(comment_now(&posted, "d1", true, 1_010, debounce), CommentStep::Unchanged);
}
