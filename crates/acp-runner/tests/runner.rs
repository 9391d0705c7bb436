//! The runner against real parts: the real Claude Code CLI talking to a
//! scripted Messages API, real git over HTTP with token auth.

mod common;

use std::time::Duration;

use acp_api::session::{RunOutcome, StoppedReason};
use acp_runner::progress::Progress;
use acp_testenv::githttp::git;
use acp_testenv::model::{Block, Step};
use common::{API_KEY, Fixture, GIT_TOKEN, all_text};
use serde_json::json;

#[tokio::test]
async fn edits_a_file_and_pushes_exactly_that_change() {
    let mut steps = Vec::new();
    let mut fixture = Fixture::new(Vec::new()).await;
    let readme = fixture.repo_file("README.md");
    let notes = fixture.repo_file("docs/NOTES.md");
    steps.push(Step::tool("Read", json!({"file_path": readme})));
    steps.push(Step::tool(
        "Edit",
        json!({"file_path": readme, "old_string": "hello", "new_string": "hello, world"}),
    ));
    steps.push(Step::tool("Write", json!({"file_path": notes, "content": "Notes.\n"})));
    steps.push(Step::text("Updated the README greeting and added docs/NOTES.md."));
    fixture.model = acp_testenv::model::ScriptedModel::start(common::MODEL, steps).await;
    let url = fixture.model.url();
    fixture.set("ANTHROPIC_BASE_URL", &url).set("DISPLAY_NAME", "Greet the world");

    let (result, events) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    assert_eq!(result.summary.as_deref(), Some("Updated the README greeting and added docs/NOTES.md."));
    assert_eq!(result.num_turns, Some(4));
    assert!(result.total_cost_usd.is_some_and(|c| c > 0.0));
    assert!(result.usage.as_ref().is_some_and(|u| u.output_tokens > 0));
    assert!(result.sdk_session_id.is_some());
    assert_eq!(fixture.model.remaining(), 0, "every scripted step was used");

    // The tools really ran: the model got their results back without errors.
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.api_key.as_deref() == Some(API_KEY)));
    assert!(requests[1].tool_results()[0].1.contains("hello"), "Read saw the file");

    // The push: branch ambient/<session> with exactly the agent's change.
    let [pushed] = result.pushed_branches.as_slice() else { panic!("one pushed branch: {result:?}") };
    assert_eq!(pushed.branch, "ambient/fix-readme");
    let bare = fixture.bare("app");
    let tip = git(&bare, &["rev-parse", "refs/heads/ambient/fix-readme"]);
    assert_eq!(tip.trim(), pushed.commit);
    let changes = git(&bare, &["diff", "--name-status", "main", "ambient/fix-readme"]);
    assert_eq!(changes, "M\tREADME.md\nA\tdocs/NOTES.md\n");
    assert_eq!(git(&bare, &["show", "ambient/fix-readme:README.md"]), "hello, world\n");
    assert_eq!(git(&bare, &["rev-parse", "ambient/fix-readme~1"]), git(&bare, &["rev-parse", "main"]));
    let meta = git(&bare, &["log", "-1", "--format=%an <%ae>%n%s", "ambient/fix-readme"]);
    assert_eq!(meta, "Ambient Code Bot <bot@ambient-code.local>\nGreet the world\n");

    // Progress: clone, the tool calls, the push, the result.
    assert!(events.iter().any(|e| matches!(e, Progress::Cloned { name, .. } if name == "app")));
    assert!(events.iter().any(|e| matches!(e, Progress::ToolUse { tool, .. } if tool == "Edit")));
    assert!(events.iter().any(|e| matches!(e, Progress::Pushed { .. })));
    assert!(matches!(events.last(), Some(Progress::Result { .. })));

    // Results: bounded JSON on the termination path, the full one in the workspace.
    let message: acp_api::session::SessionResult =
        serde_json::from_str(&fixture.termination_message()).expect("termination message is JSON");
    assert_eq!(message, result);
    assert!(fixture.workspace().join(".acp/result.json").exists());
    let transcript =
        std::fs::read_to_string(fixture.workspace().join(".acp/transcript.jsonl")).expect("transcript");
    assert!(transcript.lines().count() >= 8 && transcript.contains("\"type\":\"result\""));
}

#[tokio::test]
async fn max_turns_is_honoured() {
    let bash = || Step::tool("Bash", json!({"command": "true", "description": "noop"}));
    let mut fixture = Fixture::new(vec![bash(), bash(), bash(), bash(), Step::text("never")]).await;
    fixture.set("MAX_TURNS", "2");
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::AgentError), "{result:?}");
    assert!(result.error.as_deref().is_some_and(|e| e.contains("maxTurns (2)")), "{result:?}");
    assert_eq!(fixture.model.requests().len(), 2, "the CLI stopped after two turns");
}

#[tokio::test]
async fn model_api_error_exits_1_with_a_clear_message() {
    let fixture =
        Fixture::new(vec![Step::error(400, "invalid_request_error", "messages.0: scripted failure 42"); 6])
            .await;
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::AgentError), "{result:?}");
    assert_eq!(result.outcome.map(RunOutcome::exit_code), Some(1));
    let error = result.error.expect("error message");
    assert!(error.contains("scripted failure 42"), "{error}");
    assert!(error.contains("400"), "{error}");
}

#[tokio::test]
async fn overloaded_model_is_retried() {
    let fixture = Fixture::new(vec![Step::overloaded(), Step::text("Done after a retry.")]).await;
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    assert_eq!(fixture.model.requests().len(), 2);
}

#[tokio::test]
async fn slow_stream_completes() {
    let fixture = Fixture::new(vec![Step::slow_text(
        &["Thinking ", "slowly ", "but done."],
        Duration::from_millis(300),
    )])
    .await;
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    assert!(result.summary.as_deref().is_some_and(|s| s.contains("but done.")), "{result:?}");
}

#[tokio::test]
async fn unreachable_repository_exits_2() {
    let mut fixture = Fixture::new(vec![Step::text("unused")]).await;
    let missing = fixture.git.url("does-not-exist");
    fixture.set("REPOS_JSON", &format!(r#"[{{"url":"{missing}"}}]"#));
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::PrerequisiteFailed), "{result:?}");
    assert_eq!(result.outcome.map(RunOutcome::exit_code), Some(2));
    assert!(result.error.as_deref().is_some_and(|e| e.contains("failed to clone")), "{result:?}");
    assert!(fixture.model.requests().is_empty(), "the agent never started");
}

/// A pinned session (an approved fork request) runs only on its commit, and
/// pushes to `pushUrl`, a branch of another repository (the base).
#[tokio::test]
async fn a_pinned_commit_must_be_the_branch_head_and_push_url_takes_the_push() {
    let mut fixture = Fixture::new(Vec::new()).await;
    let app = fixture.git.url("app");
    let head = git(&fixture.bare("app"), &["rev-parse", "main"]).trim().to_owned();
    fixture
        .set("REPOS_JSON", &format!(r#"[{{"url":"{app}","branch":"main","commit":"{}"}}]"#, "0".repeat(40)));
    let (moved, _) = fixture.run().await;
    assert_eq!(moved.outcome, Some(RunOutcome::PrerequisiteFailed), "{moved:?}");
    let error = moved.error.expect("error");
    assert!(error.contains(&format!("main is at {head}, not at {}", "0".repeat(40))), "{error}");
    assert!(fixture.model.requests().is_empty(), "the agent never started");

    fixture.git.create_repo("base", "main", &[("README.md", "base\n")]);
    let base = fixture.git.url("base");
    // A fresh workspace, as every run has.
    let ws2 = fixture.tmp.path().join("ws2");
    let notes = ws2.join("repos/app/NOTES.md").to_string_lossy().into_owned();
    fixture.set("WORKSPACE_PATH", &ws2.to_string_lossy());
    let repos = format!(
        r#"[{{"url":"{app}","branch":"main","commit":"{head}","autoPush":true,"pushUrl":"{base}","pushBranch":"acp/pr-8"}}]"#
    );
    fixture
        .script(vec![
            Step::tool("Write", json!({"file_path": notes, "content": "From the fork.\n"})),
            Step::text("Done."),
        ])
        .await
        .set("REPOS_JSON", &repos);
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let [pushed] = result.pushed_branches.as_slice() else { panic!("one push: {result:?}") };
    assert_eq!((pushed.repo.as_str(), pushed.branch.as_str()), (base.as_str(), "acp/pr-8"));
    assert_eq!(git(&fixture.bare("base"), &["show", "acp/pr-8:NOTES.md"]), "From the fork.\n");
    assert_eq!(
        git(&fixture.bare("app"), &["rev-parse", "main"]).trim(),
        head,
        "the fork's branch is untouched"
    );
}

#[tokio::test]
async fn rejected_credentials_exit_2_without_leaking_them() {
    let mut fixture = Fixture::new(vec![Step::text("unused")]).await;
    fixture.set("GIT_TOKEN", "wrong-token-987654");
    let (result, events) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::PrerequisiteFailed), "{result:?}");
    let error = result.error.expect("error");
    assert!(error.contains("credentials were rejected") || error.contains("authentication"), "{error}");
    assert!(!all_text(&events).contains("wrong-token-987654"));
}

#[tokio::test]
async fn inactivity_timeout_stops_the_agent() {
    let mut fixture = Fixture::new(vec![Step::Hang]).await;
    fixture.set("INACTIVITY_TIMEOUT", "2");
    let started = std::time::Instant::now();
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Stopped), "{result:?}");
    assert_eq!(result.stopped_reason, Some(StoppedReason::Inactivity));
    assert_eq!(result.outcome.map(RunOutcome::exit_code), Some(143));
    assert!(started.elapsed() < Duration::from_secs(30), "stopped promptly: {:?}", started.elapsed());
    assert!(fixture.bare("app").exists());
}

#[tokio::test]
async fn secrets_are_redacted_everywhere() {
    let leak = format!("The key is {API_KEY} and the token {GIT_TOKEN}.");
    let steps = vec![
        Step::tool("Bash", json!({"command": "echo key=$ANTHROPIC_API_KEY", "description": "print"})),
        Step::text(leak),
    ];
    let fixture = Fixture::new(steps).await;
    let (result, events) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let transcript =
        std::fs::read_to_string(fixture.workspace().join(".acp/transcript.jsonl")).expect("transcript");
    let full = std::fs::read_to_string(fixture.workspace().join(".acp/result.json")).expect("result");
    let everything = [all_text(&events), transcript, full, fixture.termination_message()].join("\n");
    for secret in [API_KEY, GIT_TOKEN] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(everything.contains("[REDACTED]"));
    assert!(result.summary.as_deref().is_some_and(|s| s.contains("The key is [REDACTED]")), "{result:?}");
}

#[tokio::test]
async fn huge_and_non_utf8_tool_output_is_handled() {
    let command = "head -c 3000000 /dev/zero | tr '\\0' 'x'; printf '\\377\\376 not utf-8 \\300\\n'";
    let steps = vec![
        Step::tool("Bash", json!({"command": command, "description": "flood"})),
        Step::text("Survived the flood."),
    ];
    let fixture = Fixture::new(steps).await;
    let (result, events) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let preview_ok = events.iter().all(|e| match e {
        Progress::ToolResult { preview, .. } => preview.len() <= 300,
        Progress::Text { text } => text.len() <= acp_runner::progress::PREVIEW_BYTES,
        _ => true,
    });
    assert!(preview_ok, "progress stays bounded");
    assert!(events.iter().any(|e| matches!(e, Progress::ToolResult { bytes, .. } if *bytes > 1000)));
}

#[tokio::test]
async fn oversized_result_is_truncated_on_utf8_boundaries() {
    let summary = "Résumé — ünïcödé ✓ ".repeat(600); // ~13 KB of multi-byte text
    let fixture = Fixture::new(vec![Step::text(summary.clone())]).await;
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let message = fixture.termination_message();
    assert!(message.len() <= 4096, "{} bytes", message.len());
    let parsed: acp_api::session::SessionResult = serde_json::from_str(&message).expect("valid JSON");
    let cut = parsed.summary.expect("summary kept");
    assert!(cut.ends_with('…'));
    assert!(summary.starts_with(cut.trim_end_matches('…')));
    let stored = result.summary.expect("stored summary");
    assert!(stored.len() <= 4096 && stored.ends_with('…'));
}

#[tokio::test]
async fn todo_list_and_workflow_startup_prompt() {
    let mut fixture = Fixture::new(Vec::new()).await;
    fixture.git.create_repo(
        "workflows",
        "main",
        &[(
            "triage/.ambient/ambient.json",
            r#"{"name":"triage","startupPrompt":"Follow the triage checklist."}"#,
        )],
    );
    let todos = json!({"todos": [
        {"content": "Reproduce", "status": "completed", "activeForm": "Reproducing"},
        {"content": "Fix", "status": "in_progress", "activeForm": "Fixing"}
    ]});
    fixture.model = acp_testenv::model::ScriptedModel::start(
        common::MODEL,
        vec![
            Step::blocks(vec![
                Block::Text("Planning.".into()),
                Block::ToolUse { name: "TodoWrite".into(), input: todos },
            ]),
            Step::text("Triaged."),
        ],
    )
    .await;
    let url = fixture.model.url();
    let workflow = fixture.git.url("workflows");
    fixture
        .set("ANTHROPIC_BASE_URL", &url)
        .set("ACTIVE_WORKFLOW_GIT_URL", &workflow)
        .set("ACTIVE_WORKFLOW_PATH", "triage");
    let (result, events) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let first = &fixture.model.requests()[0].body;
    let prompt = first["messages"].to_string();
    let (startup, initial) =
        (prompt.find("Follow the triage checklist."), prompt.find("Improve the README."));
    assert!(
        startup.is_some() && initial.is_some() && startup < initial,
        "startup prompt first: {prompt:.2000}"
    );
    let list = events.iter().find_map(|e| match e {
        Progress::Todos { todos } => Some(todos.clone()),
        _ => None,
    });
    let list = list.expect("todo list reported");
    assert_eq!(
        list.iter().map(|t| (t.content.as_str(), t.status.as_str())).collect::<Vec<_>>(),
        [("Reproduce", "completed"), ("Fix", "in_progress")]
    );
    assert!(fixture.workspace().join("workflows/workflows/triage/.ambient/ambient.json").exists());
}

#[tokio::test]
async fn the_cli_accepts_the_generated_mcp_config() {
    let mut fixture = Fixture::new(vec![Step::text("MCP configured.")]).await;
    let servers = json!({
        "custom": {
            "docs": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
            "disabled-one": {"type": "stdio", "command": "false"}
        },
        "disabled": ["disabled-one"]
    });
    fixture.set("CUSTOM_MCP_SERVERS", &servers.to_string());
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.workspace().join(".acp/mcp.json")).expect("mcp config written"),
    )
    .expect("json");
    assert_eq!(written, json!({"mcpServers": {"docs": {"type": "http", "url": "http://127.0.0.1:9/mcp"}}}));
    let init =
        std::fs::read_to_string(fixture.workspace().join(".acp/transcript.jsonl")).expect("transcript");
    let init: serde_json::Value =
        serde_json::from_str(init.lines().next().expect("init line")).expect("json");
    let names: Vec<&str> = init["mcp_servers"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["docs"], "the CLI loaded exactly the enabled server: {init}");
}

/// A follow-up continues its parent's conversation: given the parent's
/// workspace, the real CLI resumes the same conversation id and sends the
/// model the earlier turns as messages, and the agent is first told the
/// commits added to its branch since (fetched deeper than a plain run's
/// shallow clone).
#[tokio::test]
async fn a_follow_up_resumes_the_parents_conversation_and_is_told_the_new_commits() {
    let mut fixture = Fixture::new(Vec::new()).await;
    let notes = fixture.repo_file("NOTES.md");
    fixture
        .script(vec![
            Step::tool("Write", json!({"file_path": notes, "content": "Notes.\n"})),
            Step::text("Wrote the notes."),
        ])
        .await;
    let (first, _) = fixture.run().await;
    assert_eq!(first.outcome, Some(RunOutcome::Success), "{first:?}");
    let conversation = first.sdk_session_id.clone().expect("a conversation id");
    let [pushed] = first.pushed_branches.as_slice() else { panic!("one push: {first:?}") };

    // Someone pushes a review fix on top of the agent's commit.
    let bare = fixture.bare("app");
    let work = fixture.tmp.path().join("human");
    git(
        fixture.tmp.path(),
        &["clone", "-q", "-b", &pushed.branch, &bare.to_string_lossy(), &work.to_string_lossy()],
    );
    std::fs::write(work.join("README.md"), "hello, reviewers\n").expect("write");
    git(&work, &["-c", "user.name=Rita", "-c", "user.email=r@example.com", "commit", "-qam", "Review fix"]);
    git(&work, &["push", "-q", "origin", &pushed.branch]);

    // The follow-up, in a workspace of its own, on that branch.
    fixture.script(vec![Step::text("Noted the review fix.")]).await;
    let resume = acp_api::resume::Resume {
        parent: "fix-readme".into(),
        session_id: Some(conversation.clone()),
        from: Some(fixture.workspace().join(".acp/home").to_string_lossy().into_owned()),
        workspace: Some("fix-readme".into()),
        since: [(fixture.git.url("app"), pushed.commit.clone())].into(),
        turns: vec![acp_api::resume::Turn {
            session: "fix-readme".into(),
            summary: "Wrote the notes.".into(),
        }],
    };
    let repos =
        format!(r#"[{{"url":"{}","branch":"{}","autoPush":true}}]"#, fixture.git.url("app"), pushed.branch);
    let ws2 = fixture.tmp.path().join("ws2").to_string_lossy().into_owned();
    fixture
        .set("AGENTIC_SESSION_NAME", "fix-readme-2")
        .set("WORKSPACE_PATH", &ws2)
        .set("REPOS_JSON", &repos)
        .set("INITIAL_PROMPT", "Also mention the reviewers.")
        .set(acp_api::resume::RESUME_ENV, &serde_json::to_string(&resume).expect("json"));
    let (second, events) = fixture.run().await;
    assert_eq!(second.outcome, Some(RunOutcome::Success), "{second:?}");
    assert_eq!(second.sdk_session_id.as_deref(), Some(conversation.as_str()), "the same conversation");
    assert!(all_text(&events).contains("resuming the conversation of session fix-readme"));

    let requests = fixture.model.requests();
    let messages = requests[0].body["messages"].as_array().expect("messages").clone();
    let text = serde_json::to_string(&messages).expect("json");
    // The earlier turns are messages of the conversation, not a summary.
    assert!(messages.len() >= 4, "{text}");
    assert!(messages[0].to_string().contains("Improve the README."), "{text}");
    assert!(
        messages.iter().any(|m| m["role"] == "assistant" && m.to_string().contains("Wrote the notes.")),
        "{text}"
    );
    let last = messages.last().expect("a last message").to_string();
    assert!(last.contains("Also mention the reviewers.") && last.contains("Review fix (Rita)"), "{last}");
    assert!(!text.contains("cannot be resumed"), "{text}");

    // Without the parent's workspace: a fresh conversation that starts with
    // the earlier turns' summaries, and says why.
    fixture.script(vec![Step::text("Started over.")]).await;
    let gone = acp_api::resume::Resume { from: Some("/nonexistent".into()), ..resume };
    let ws3 = fixture.tmp.path().join("ws3").to_string_lossy().into_owned();
    fixture
        .set("WORKSPACE_PATH", &ws3)
        .set(acp_api::resume::RESUME_ENV, &serde_json::to_string(&gone).expect("json"));
    let (third, _) = fixture.run().await;
    assert_eq!(third.outcome, Some(RunOutcome::Success), "{third:?}");
    assert_ne!(third.sdk_session_id.as_deref(), Some(conversation.as_str()));
    let messages = fixture.model.requests()[0].body["messages"].clone();
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    let text = messages.to_string();
    assert!(text.contains("cannot be resumed (the earlier turn's transcript is gone)"), "{text}");
    assert!(text.contains("- fix-readme: Wrote the notes."), "{text}");
}
