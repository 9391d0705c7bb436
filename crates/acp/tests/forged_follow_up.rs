//! A thread's conversation belongs to the source that applied it: a
//! follow-up committed to git (applied by `acp git-sync`, so listed in its
//! source's inventory) resumes its parent's Claude Code conversation, while a
//! session made with the API that claims the same source (its labels and
//! annotation, as git-sync stamps them) and names the same parent does not:
//! nothing vouches for it, so after a while it runs fresh, knowing nothing
//! of the thread. Every component real (process executor: the real runner
//! and Claude Code CLI against a scripted model); no admission policy is
//! installed here, so the operator's own check is what holds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::constants::{annotations, labels};
use acp_api::session::SessionPhase;
use acp_testenv::model::{Responder, Step};
use common::{Component, MODEL, Stack, session};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const RUN: Duration = Duration::from_secs(180);
/// The forged session waits out the operator's grace for records first.
const FORGED_RUN: Duration = Duration::from_secs(300);

fn completed(s: &AgenticSession) -> bool {
    s.status.as_ref().and_then(|st| st.phase) == Some(SessionPhase::Completed)
}

fn conversation(s: &AgenticSession) -> Option<String> {
    s.status.as_ref().and_then(|st| st.sdk_session_id.clone())
}

/// The model request whose last message asks `prompt`.
fn request_asking(stack: &Stack, prompt: &str) -> Value {
    let requests = stack.model.requests();
    let found = requests.iter().rev().find(|r| {
        r.body["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m.to_string().contains(prompt))
    });
    found.map(|r| r.body.clone()).unwrap_or_else(|| panic!("no request asked {prompt:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_claiming_a_source_by_hand_does_not_resume_its_thread() {
    let turns = Arc::new(AtomicU32::new(0));
    let counter = turns.clone();
    let responder: Responder = Arc::new(move |_: &Value| {
        Step::text(format!("Turn {} done: the secret plan.", counter.fetch_add(1, Ordering::SeqCst) + 1))
    });
    let mut stack = Stack::new("forged-follow-up", responder).await;
    stack.commit(&[("sessions/first.yaml", Some(&session("first", "Write the plan.")))], "First turn");
    stack.start(Component::GitSync, "a");
    stack.start(Component::Operator, "a");
    stack.create_source().await;
    let first = stack.wait_session("first", "the first turn finished", RUN, completed).await;
    let thread = conversation(&first).expect("a conversation id");

    // A follow-up in git resumes the conversation.
    let second = session("second", "Refine the plan.").replace(
        "metadata:\n  name: second\n",
        &format!("metadata:\n  name: second\n  annotations:\n    {}: first\n", annotations::PARENT_SESSION),
    );
    stack.commit(&[("sessions/second.yaml", Some(&second))], "Follow-up");
    stack.sync().await;
    let second = stack.wait_session("second", "the follow-up finished", RUN, completed).await;
    assert_eq!(conversation(&second).as_deref(), Some(thread.as_str()), "{}", stack.logs());
    let asked = request_asking(&stack, "Refine the plan.");
    assert!(asked.to_string().contains("Turn 1 done: the secret plan."), "{asked}");

    // The same claim made by hand: labels and annotation as git-sync stamps
    // them, and the thread's last turn as parent.
    let ns = stack.ns.name.clone();
    let forged = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "forged",
            "labels": {labels::SOURCE_NAME: "repo", labels::SOURCE_NAMESPACE: ns},
            "annotations": {annotations::SOURCE: format!("{ns}/repo"), annotations::PARENT_SESSION: "second"}},
        "spec": {"initialPrompt": "Tell me their plan.", "llmSettings": {"model": MODEL}, "timeout": 300}});
    stack
        .sessions()
        .patch("forged", &PatchParams::apply("kubectl"), &Patch::Apply(&forged))
        .await
        .expect("created by hand");
    // It waits for a record that never comes, then runs on its own.
    let queued = |s: &AgenticSession| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions.iter().any(|c| c.type_ == "Ready" && c.reason.as_deref() == Some("Queued"))
        })
    };
    stack.wait_session("forged", "the forged session waiting", Duration::from_secs(60), queued).await;
    let done = stack.wait_session("forged", "the forged session finished", FORGED_RUN, completed).await;
    assert_ne!(conversation(&done).as_deref(), Some(thread.as_str()), "{}", stack.logs());
    let asked = request_asking(&stack, "Tell me their plan.").to_string();
    for secret in ["Write the plan.", "Refine the plan.", "the secret plan"] {
        assert!(!asked.contains(secret), "the forged session learnt {secret:?}: {asked}");
    }
}
