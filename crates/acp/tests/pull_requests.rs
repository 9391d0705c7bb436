//! What a pull request sees, with every component real: sessions committed to
//! git are applied by `acp git-sync`, run by `acp operator` (process executor:
//! the real runner and Claude Code CLI against a scripted model) and reported
//! by `acp statusbot` to a fake GitHub (playing GitHub, unreachable here). No
//! fixture writes a label, annotation or status: each comes from the
//! component that owns it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acp_api::session::SessionPhase;
use acp_testenv::eventually;
use acp_testenv::github::Comment;
use acp_testenv::model::{Responder, Step};
use common::{BOT, REPO, Stack, finished, session};
use kube::ResourceExt as _;

const RUN: Duration = Duration::from_secs(180);
const REPORT: Duration = Duration::from_secs(60);

/// The bot's comment on pull request `pull` containing `text`, once there.
async fn bot_comment(stack: &Stack, pull: u64, text: &str) -> Comment {
    eventually(&format!("the bot's comment on #{pull} saying {text:?}"), REPORT, || async {
        stack.github.comments(REPO, pull).into_iter().find(|c| c.user == BOT && c.body.contains(text))
    })
    .await
}

/// The commit states posted on `sha` for session `name`, in order.
fn states(stack: &Stack, sha: &str, name: &str) -> Vec<String> {
    let context = format!("acp/{name}");
    stack
        .github
        .statuses()
        .into_iter()
        .filter(|s| s.sha == sha && s.context == context)
        .map(|s| s.state)
        .collect()
}

/// A session changed by a second pull request runs again; its result goes to
/// that pull request (commit status on its commit, a comment of its own),
/// and the first pull request's comment is never touched again.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_brought_in_by_another_pull_request_is_reported_there_and_the_first_is_left_alone() {
    let responder: Responder = Arc::new(|body: &serde_json::Value| {
        if body.to_string().contains("attempt two") {
            Step::text("Second attempt done.")
        } else {
            Step::text("First attempt done.")
        }
    });
    let mut stack = Stack::new("pr-rerun", responder).await;
    let c1 = stack
        .commit(&[("sessions/fix.yaml", Some(&session("fix", "Fix the login, attempt one")))], "Add fix");
    stack.github.link(REPO, &c1, 7);
    stack.start_all();
    stack.create_source().await;

    let run1 = stack.wait_session("fix", "run 1 finished", RUN, |s| finished(s, 1)).await;
    assert_eq!(run1.status.as_ref().and_then(|s| s.phase), Some(SessionPhase::Completed), "{}", stack.logs());
    assert_eq!(run1.labels().get("ambient-code.io/source-commit"), Some(&c1), "git-sync's provenance label");
    let first = bot_comment(&stack, 7, "First attempt done.").await;
    eventually("run 1's success on its commit", REPORT, || async {
        (states(&stack, &c1, "fix").last().map(String::as_str) == Some("success")).then_some(())
    })
    .await;

    let c2 = stack
        .commit(&[("sessions/fix.yaml", Some(&session("fix", "Fix the login, attempt two")))], "Retry fix");
    stack.github.link(REPO, &c2, 8);
    stack.sync().await;
    let run2 = stack.wait_session("fix", "run 2 finished", RUN, |s| finished(s, 2)).await;
    assert_eq!(run2.status.as_ref().and_then(|s| s.phase), Some(SessionPhase::Completed), "{}", stack.logs());
    assert_eq!(run2.labels().get("ambient-code.io/source-commit"), Some(&c2));
    bot_comment(&stack, 8, "Second attempt done.").await;
    eventually("run 2's success on its commit", REPORT, || async {
        (states(&stack, &c2, "fix").last().map(String::as_str) == Some("success")).then_some(())
    })
    .await;

    assert_eq!(stack.github.comments(REPO, 7), vec![first], "the first pull request's comment is left alone");
    assert_eq!(stack.github.comments(REPO, 8).len(), 1, "one comment on the second pull request");
    for sha in [&c1, &c2] {
        let posted = states(&stack, sha, "fix");
        assert!(posted.windows(2).all(|w| w[0] != w[1]), "one status per change on {sha}: {posted:?}");
        assert_eq!(posted.last().map(String::as_str), Some("success"));
    }
    let written = stack.show(&format!("acp/status:status/{}/fix.yaml", stack.ns.name)).expect("write-back");
    assert!(written.contains("Second attempt done."), "{written}");
    assert!(written.contains("run: 2"), "{written}");
}
