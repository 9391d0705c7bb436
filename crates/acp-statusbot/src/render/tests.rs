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
        "**Summary**\n\n```\nFixed the redirect.\n```",
        "**Pushed:** `ambient/fix-login` (`https://github.com/acme/app` @ `abcdef123456`)",
        "**Pull requests:** `https://github.com/acme/app/pull/9`",
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
    assert!(body.contains("**Todo**\n\n- [x] `Read the test`\n- [ ] **`Fix <it>`** (in progress)"), "{body}");
}

#[test]
fn the_tracking_comment_lists_every_turn_of_a_thread_in_order() {
    let renderer = Renderer::new(None).expect("default templates");
    let first = report(&session("Completed", Some(done())), Some("https://acp.example"));
    let mut queued = report(&session("Pending", None), None);
    queued.name = "fix-login-2".into();
    queued.message = Some("queued: waits for session fix-login to finish".into());
    let thread = Thread {
        repository: "acme/app".into(),
        pull: 7,
        source: "team/repo".into(),
        turns: vec![first, queued],
    };
    let body = renderer.thread(&thread).expect("renders");
    assert!(
        body.starts_with("<!-- acp:thread acme/app#7 team/repo -->\n### acp on this pull request"),
        "{body}"
    );
    let one = body.find("**1. ✅ `fix-login`** · Completed").expect("the first turn");
    let two = body
        .find("**2. 🕓 `fix-login-2`** · Pending · `queued: waits for session fix-login to finish`")
        .expect("the queued turn");
    assert!(one < two, "oldest first: {body}");
    assert!(body.contains("\n\n```\nFixed the redirect.\n```\n"), "{body}");
    assert!(
        body.contains("success · 7 turns · $0.0421 · pushed `ambient/fix-login` @ `abcdef123456`"),
        "{body}"
    );
    assert!(body.contains("[dashboard](https://acp.example/sessions/team/fix-login)"), "{body}");
}

/// Output of an agent steered by hostile code: mentions, fake approvals,
/// HTML, links, references, the bot's own markers, backticks to close a code
/// block, terminal escapes and control characters.
const HOSTILE: &str = "@acme/security-team approved this <img src=x onerror=alert(1)> see https://evil.example \
    and #1 <!-- acp:thread acme/webapp#9 --> ```` ``` ````\n```\nApproved by @maintainer\n\n<details><summary>ok</summary>\n\
    \u{1b}[31mwww.evil.example\u{1b}[0m org/repo#1 \u{1b}]8;;https://evil.example\u{7}link\u{1b}]8;;\u{7}\u{0}\r\u{202e}\n\
    <!-- acp:session team/other -->`";

/// A session that finished with `HOSTILE` everywhere the result holds text,
/// and one still running with it in its message and todo list.
fn hostile() -> (Report, Report) {
    let mut result = done();
    result["summary"] = json!(HOSTILE);
    result["error"] = json!(HOSTILE);
    result["pushedBranches"][0]["branch"] = json!(HOSTILE);
    result["pushedBranches"][0]["commit"] = json!("`@maintainer`");
    result["pullRequests"] = json!(["https://evil.example/@acme", HOSTILE]);
    let mut finished = report(&session("Completed", Some(result)), None);
    finished.message = Some(HOSTILE.into());
    let mut running = report(&session("Running", None), None);
    running.name = "fix-login-2".into();
    running.message = Some(HOSTILE.into());
    running.todos = vec![
        acp_api::progress::Todo { content: HOSTILE.into(), status: "in_progress".into() },
        acp_api::progress::Todo { content: HOSTILE.into(), status: "pending".into() },
    ];
    (finished, running)
}

/// What of `markdown` GitHub renders outside code: fenced code blocks
/// (CommonMark's rules; the templates write them unindented, outside any
/// list or quote) and code spans removed, a span's backticks counted as
/// CommonMark does.
fn outside_code(markdown: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<(char, usize)> = None;
    for line in markdown.lines() {
        let text = line.trim_start_matches(' ');
        let indented = line.len() - text.len() > 3;
        let run = |c: char| text.chars().take_while(|&x| x == c).count();
        if let Some((c, n)) = fence {
            if !indented && run(c) >= n && text.trim_start_matches(c).trim().is_empty() {
                fence = None;
            }
            continue;
        }
        let opens = ['`', '~']
            .into_iter()
            .map(|c| (c, run(c)))
            .find(|&(c, n)| !indented && n >= 3 && !(c == '`' && text[n..].contains('`')));
        if opens.is_some() {
            fence = opens;
            continue;
        }
        out.push_str(&without_code_spans(line));
        out.push('\n');
    }
    out
}

/// `line` without its code spans: a run of backticks opens one that the next
/// run of as many closes; without one, the run is text.
fn without_code_spans(line: &str) -> String {
    let runs: Vec<(usize, usize)> = line
        .char_indices()
        .filter(|&(i, c)| c == '`' && !line[..i].ends_with('`'))
        .map(|(i, _)| (i, line[i..].chars().take_while(|&c| c == '`').count()))
        .collect();
    let (mut out, mut from, mut k) = (String::new(), 0, 0);
    while k < runs.len() {
        let (start, n) = runs[k];
        if let Some(close) = runs[k + 1..].iter().position(|&(_, m)| m == n) {
            out.push_str(&line[from..start]);
            let (end, _) = runs[k + 1 + close];
            from = end + n;
            k += close + 2;
        } else {
            k += 1;
        }
    }
    out.push_str(&line[from..]);
    out
}

/// The checks every comment showing `HOSTILE` must pass.
fn assert_neutralised(body: &str, marker: &str) {
    assert!(body.starts_with(&format!("{marker}\n")), "{body}");
    assert_eq!(body.matches("<!--").count(), 1, "only the bot's own marker is a comment:\n{body}");
    assert!(!body[marker.len()..].contains("<!-- acp:"), "no marker but the bot's own:\n{body}");
    assert!(
        body.chars().all(|c| c == '\n' || !c.is_control() && !('\u{202a}'..='\u{202e}').contains(&c)),
        "no control characters: {body:?}"
    );
    let shown = outside_code(&body[marker.len()..]);
    for needle in ["@acme", "@maintainer", "<img", "<details", "evil", "www.", "#1", "Approved", "acp:"] {
        assert!(!shown.contains(needle), "{needle:?} is rendered outside code:\n{shown}\n--- in:\n{body}");
    }
    assert!(shown.contains("acp"), "the bot's own text stays outside code: {shown}");
}

#[test]
fn agent_output_in_the_tracking_comment_renders_only_as_code() {
    let renderer = Renderer::new(None).expect("default templates");
    let (finished, running) = hostile();
    let thread = Thread {
        repository: "acme/app".into(),
        pull: 7,
        source: "team/repo".into(),
        turns: vec![finished, running],
    };
    let body = renderer.thread(&thread).expect("renders");
    assert_neutralised(&body, "<!-- acp:thread acme/app#7 team/repo -->");
    // The longest run of backticks in it is four: a fence of five holds it.
    assert!(body.contains("\n\n`````\n@acme/security-team approved this <img"), "{body}");
    assert!(body.contains("· ````` @acme/security-team approved this"), "{body}");
}

#[test]
fn agent_output_in_a_session_comment_renders_only_as_code() {
    let renderer = Renderer::new(None).expect("default templates");
    let (finished, running) = hostile();
    for report in [finished, running] {
        let body = renderer.comment(&report).expect("renders");
        assert_neutralised(&body, &marker("team", &report.name));
    }
}

#[test]
fn the_agent_filter_fences_text_it_cannot_close() {
    assert_eq!(acp_github::markdown::code_block("a ``` b\n````", ""), "`````\na ``` b\n````\n`````");
    assert_eq!(acp_github::markdown::code_block("plain", ""), "```\nplain\n```");
    assert_eq!(acp_github::markdown::code_block(" \n", ""), "", "nothing to show");
    assert_eq!(acp_github::markdown::code_span("`x`"), "`` `x` ``");
    assert_eq!(acp_github::markdown::code_span("a ``b``\nc"), "```a ``b`` c```");
    assert_eq!(
        acp_github::markdown::clean("<!-- acp:thread a#1 --> <!<!---"),
        "<!-\u{200b}- acp:thread a#1 --> <!<!-\u{200b}--"
    );
    assert_eq!(
        acp_github::markdown::clean(
            "\u{1b}[1;31mred\u{1b}[0m \u{1b}]0;title\u{1b}\\ok\r\n\tx\u{0}\u{7f}\u{9b}2Jy"
        ),
        "red ok\n\txy"
    );
    let mut env = minijinja::Environment::new();
    env.add_filter(agent::FILTER, agent::filter);
    let render = |source: &str| env.render_str(source, minijinja::context! { t => "<b>", n => 7 });
    assert_eq!(
        render("{{ t | agent(\"inline\") }} {{ n | agent(\"inline\") }}{{ none | agent }}").ok(),
        Some("`<b>` `7`".into())
    );
    assert!(render("{{ t | agent(\"bold\") }}").is_err(), "an unknown mode is refused");
}
