use acp_api::AgenticSession;
use serde_json::json;

use super::*;
use crate::report::{commit_status, report, status_file};

fn session(phase: &str, result: Option<serde_json::Value>) -> AgenticSession {
    let mut status = json!({"phase": phase, "run": 1, "startTime": "2026-11-24T01:00:00Z"});
    if let Some(result) = result {
        status["result"] = result;
        status["completionTime"] = json!("2026-11-24T01:10:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "fix-login", "namespace": "team",
            "annotations": {"ambient-code.io/source-path": "sessions/fix-login.yaml", "ambient-code.io/source-revision": "0123456789abcdef0123"}},
        "spec": {"initialPrompt": "Fix it", "displayName": "Fix the login"},
        "status": status,
    }))
    .expect("session")
}

fn done() -> serde_json::Value {
    json!({"outcome": "success", "summary": "Fixed the redirect.", "isError": false, "numTurns": 7, "totalCostUsd": 0.0421,
           "durationMs": 61234, "usage": {"input_tokens": 1200, "output_tokens": 340},
           "pushedBranches": [{"repo": "https://github.com/acme/app", "branch": "ambient/fix-login", "commit": "abcdef1234567890"}],
           "pullRequests": ["https://github.com/acme/app/pull/9"]})
}

#[test]
fn every_phase_renders_with_its_marker() {
    let renderer = Renderer::new(None).expect("default template");
    for phase in ["Pending", "Creating", "Running", "Stopping", "Stopped", "Completed", "Failed"] {
        let result = matches!(phase, "Completed" | "Failed" | "Stopped").then(done);
        let body =
            renderer.comment(&report(&session(phase, result), Some("https://acp.example"))).expect(phase);
        assert!(body.starts_with("<!-- acp:session team/fix-login -->\n"), "{phase}: {body}");
        assert!(body.contains(&format!("**Phase:** {phase} (run 1)")), "{phase}: {body}");
        assert!(body.contains("from `sessions/fix-login.yaml` at 0123456789ab"), "{body}");
        assert!(body.contains("https://acp.example/sessions/team/fix-login"));
    }
}

#[test]
fn the_final_comment_holds_the_result_and_how_to_rerun() {
    let renderer = Renderer::new(None).expect("default template");
    let body = renderer.comment(&report(&session("Completed", Some(done())), None)).expect("renders");
    for part in [
        "| success | 61.2 s | 7 | $0.0421 | 1540 |",
        "Fixed the redirect.",
        "`ambient/fix-login`",
        "https://github.com/acme/app/pull/9",
        "desired-phase=Running",
    ] {
        assert!(body.contains(part), "missing {part:?} in:\n{body}");
    }
    let running = renderer.comment(&report(&session("Running", None), None)).expect("renders");
    assert!(running.contains("desired-phase=Stopped") && !running.contains("| outcome"), "{running}");
}

#[test]
fn a_result_without_figures_still_renders() {
    let renderer = Renderer::new(None).expect("default template");
    let bare = json!({"outcome": "success", "isError": false, "summary": "done"});
    let body = renderer
        .comment(&report(&session("Completed", Some(bare)), None))
        .expect("renders without cost or turns");
    assert!(body.contains("| success | – | – | – | – |"), "{body}");
}

#[test]
fn an_override_replaces_the_template_but_not_the_marker() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(COMMENT), "custom {{ name }} is {{ phase }}").expect("write");
    let renderer = Renderer::new(Some(dir.path())).expect("override");
    let body = renderer.comment(&report(&session("Running", None), None)).expect("renders");
    assert_eq!(body, "<!-- acp:session team/fix-login -->\ncustom fix-login is Running\n");
    std::fs::write(dir.path().join(COMMENT), "{% if %}").expect("write");
    assert!(Renderer::new(Some(dir.path())).is_err(), "a broken override is refused at start");
}

#[test]
fn commit_status_and_status_file_follow_the_phase() {
    assert_eq!(commit_status(&report(&session("Running", None), None)).0, "pending");
    assert_eq!(commit_status(&report(&session("Completed", Some(done())), None)).0, "success");
    let mut failed = done();
    failed["outcome"] = json!("agentError");
    assert_eq!(commit_status(&report(&session("Failed", Some(failed)), None)).0, "failure");
    let file = status_file(&report(&session("Completed", Some(done())), None));
    assert!(file.contains("phase: Completed") && file.contains("numTurns: 7"), "{file}");
    assert_eq!(file, status_file(&report(&session("Completed", Some(done())), None)), "stable");
}

#[test]
fn a_todo_list_renders_as_a_checklist() {
    let renderer = Renderer::new(None).expect("templates");
    let mut running = report(&session("Running", None), None);
    let body = renderer.comment(&running).expect("render");
    assert!(!body.contains("**Todo**"), "no list without todos");
    running.todos = vec![
        acp_api::progress::Todo { content: "Read the test".into(), status: "completed".into() },
        acp_api::progress::Todo { content: "Fix <it>".into(), status: "in_progress".into() },
    ];
    let body = renderer.comment(&running).expect("render");
    assert!(body.contains("**Todo**\n\n- [x] Read the test\n- [ ] **Fix <it>** (in progress)"), "{body}");
}

#[test]
fn the_tracking_comment_lists_every_turn_of_a_thread_in_order() {
    let renderer = Renderer::new(None).expect("default templates");
    let first = report(&session("Completed", Some(done())), Some("https://acp.example"));
    let mut queued = report(&session("Pending", None), None);
    queued.name = "fix-login-2".into();
    queued.message = Some("queued: waits for session fix-login to finish".into());
    let thread = Thread { repository: "acme/app".into(), pull: 7, turns: vec![first, queued] };
    let body = renderer.thread(&thread).expect("renders");
    assert!(body.starts_with("<!-- acp:thread acme/app#7 -->\n### acp on this pull request"), "{body}");
    let one = body.find("**1. ✅ `fix-login`** · Completed").expect("the first turn");
    let two = body
        .find("**2. 🕓 `fix-login-2`** · Pending · queued: waits for session fix-login to finish")
        .expect("the queued turn");
    assert!(one < two, "oldest first: {body}");
    assert!(body.contains("> Fixed the redirect."), "{body}");
    assert!(
        body.contains("success · 7 turns · $0.0421 · pushed `ambient/fix-login` @ abcdef123456"),
        "{body}"
    );
    assert!(body.contains("[dashboard](https://acp.example/sessions/team/fix-login)"), "{body}");
}
