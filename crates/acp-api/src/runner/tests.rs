//! The runner contract round-trips, and reads what the platform's operator
//! writes.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::resume::Turn;

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    move |k| map.get(k).cloned()
}

fn spec(value: serde_json::Value) -> SessionSpec {
    serde_json::from_value(value).expect("spec")
}

#[test]
fn what_the_operator_writes_the_runner_reads() {
    let spec = spec(json!({
        "initialPrompt": "Fix it.", "displayName": "Fix", "timeout": 600, "inactivityTimeout": 30,
        "maxTurns": 7, "llmSettings": {"model": "claude-opus-4-1"},
        "repos": [
            {"url": "https://h/o/app.git", "branch": "dev", "autoPush": true, "pullRequest": true},
            {"url": "https://h/o/lib.git", "branch": "", "pushRef": "refs/acp/pr-1/2", "commit": "abc"}
        ],
        "activeWorkflow": {"gitUrl": "https://h/o/wf.git", "branch": "main", "path": "triage"},
        "environmentVariables": {"LOG_LEVEL": "debug"},
        "mcpServers": {"custom": {"docs": {"command": "docs-mcp"}}},
        "userContext": {"userId": "u1", "displayName": "Ada"}
    }));
    let resume = Resume {
        parent: "first".into(),
        turns: vec![Turn { session: "first".into(), summary: "Did it.".into() }],
        ..Resume::default()
    };
    let input = RunnerInput::for_session("fix", Some("team"), &spec, Place::default(), Some(resume));
    let env: BTreeMap<&str, String> = input.to_env().into_iter().collect();
    assert!(env.keys().all(|k| env::ALL.contains(k)), "only the contract's names: {env:?}");
    assert_eq!(env[env::REPOS].matches("\"url\"").count(), 2);
    assert_eq!(env[env::MAX_TURNS], "7");
    assert_eq!(env[env::TIMEOUT], "600");
    assert!(
        !env[env::REPOS].contains("\"branch\":\"\""),
        "an empty branch is not written: {}",
        env[env::REPOS]
    );
    let read = RunnerInput::from_env(&|k| env.get(k).cloned()).expect("valid");
    assert_eq!(read, input);
    assert_eq!(read.repos[1].branch, None, "an empty branch is the remote's default");
    assert_eq!(read.repos[1].dir_name(), "lib");
    assert_eq!(read.workspace, "/workspace");
}

#[test]
fn unset_fields_are_not_written_and_read_as_defaults() {
    let input = RunnerInput::for_session(
        "s",
        None,
        &spec(json!({"initialPrompt": "x"})),
        Place { workspace: "/tmp/ws".into(), termination_message_path: "/tmp/ws/.acp/t".into() },
        None,
    );
    let env = input.to_env();
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    for absent in
        [env::MAX_TURNS, env::INACTIVITY_TIMEOUT, env::AGENT_ENV, env::RESUME, env::WORKFLOW_GIT_URL]
    {
        assert!(!names.contains(&absent), "{absent} is unset: {names:?}");
    }
    let read =
        RunnerInput::from_env(&|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).expect("valid");
    assert_eq!(read, input);
    assert_eq!(read.model, DEFAULT_MODEL);
}

#[test]
fn reads_the_platforms_variables() {
    let get = lookup(&[
        ("SESSION_ID", "fix-bug"),
        ("INITIAL_PROMPT", "fix it"),
        (
            "REPOS_JSON",
            r#"[{"url":"https://h/o/app.git","branch":"dev","autoPush":true,"name":"main-app"},{"url":"https://h/o/lib.git","branch":""}]"#,
        ),
        ("INACTIVITY_TIMEOUT", "0"),
    ]);
    let input = RunnerInput::from_env(&get).expect("valid");
    assert_eq!(input.session_name, "fix-bug", "the platform's older name is read");
    assert_eq!(input.repos[0].dir_name(), "main-app");
    assert_eq!(input.repos[1].branch, None);
    assert_eq!(input.inactivity_timeout, None, "0 disables it");
    assert_eq!(input.max_turns, None);
}

#[test]
fn rejects_bad_input_with_the_variable_name() {
    let err = RunnerInput::from_env(&lookup(&[("INITIAL_PROMPT", "x")])).expect_err("no name");
    assert_eq!(err.to_string(), "failed to read configuration: AGENTIC_SESSION_NAME is not set");
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![("AGENTIC_SESSION_NAME", "s"), ("INITIAL_PROMPT", "x")];
        all.extend_from_slice(pairs);
        RunnerInput::from_env(&lookup(&all)).expect_err("invalid").to_string()
    };
    assert!(with(&[("REPOS_JSON", "[{")]).contains("REPOS_JSON is invalid"));
    assert!(with(&[("MAX_TURNS", "0")]).contains("MAX_TURNS is invalid: must be 1 or more"));
    assert!(with(&[("TIMEOUT", "soon")]).contains("TIMEOUT is invalid: not a non-negative integer"));
    let clash = with(&[("REPOS_JSON", r#"[{"url":"https://a/x/app"},{"url":"https://b/y/app.git"}]"#)]);
    assert!(clash.contains("both clone to repos/app"), "{clash}");
    let branch = with(&[("REPOS_JSON", r#"[{"url":"https://a/x/app","pushRef":"refs/heads/main"}]"#)]);
    assert!(branch.contains("is not a ref under refs/acp/"), "{branch}");
    let both = with(&[(
        "REPOS_JSON",
        r#"[{"url":"https://a/x/app","pushRef":"refs/acp/pr-1/2","pushBranch":"main"}]"#,
    )]);
    assert!(both.contains("both pushRef and pushBranch"), "{both}");
    let err = RunnerInput::from_env(&lookup(&[("AGENTIC_SESSION_NAME", "s")])).expect_err("nothing to do");
    assert!(err.to_string().contains("initialPrompt or an activeWorkflow"), "{err}");
}
