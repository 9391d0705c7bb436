//! `acp runner` and `acp run` as processes: signals, exit codes, examples.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acp_testenv::githttp::GitServer;
use acp_testenv::model::{ScriptedModel, Step};
use acp_testenv::{DEFAULT_TIMEOUT, eventually};
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-6";
const TOKEN: &str = "cli-test-token-123456";

fn acp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acp"))
}

/// Pids whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle)
        })
        .collect()
}

#[tokio::test]
async fn sigterm_stops_within_two_seconds_and_leaves_no_orphan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = GitServer::start(&tmp.path().join("git"), TOKEN).await;
    git.create_repo("app", "main", &[("README.md", "hi\n")]);
    // Unique process names (argv[0]) identify the agent's processes: one in
    // the background, one in the foreground of the Bash tool.
    let marker = format!("acp-orphan-{}-", std::process::id());
    let command = format!("(exec -a {marker}1 tail -f /dev/null) & exec -a {marker}2 tail -f /dev/null");
    let model = ScriptedModel::start(
        MODEL,
        vec![Step::tool("Bash", json!({"command": command, "description": "wait"}))],
    )
    .await;
    let termination = tmp.path().join("termination-log");
    let mut child = acp()
        .arg("runner")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AGENTIC_SESSION_NAME", "stop-me")
        .env("INITIAL_PROMPT", "wait")
        .env("WORKSPACE_PATH", tmp.path().join("ws"))
        .env("TERMINATION_MESSAGE_PATH", &termination)
        .env("REPOS_JSON", format!(r#"[{{"url":"{}"}}]"#, git.url("app")))
        .env("LLM_MODEL", MODEL)
        .env("ANTHROPIC_API_KEY", "sk-ant-cli-test-key")
        .env("ANTHROPIC_BASE_URL", model.url())
        .env("GIT_TOKEN", TOKEN)
        .env("CLAUDE_BIN", acp_testenv::claude_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("acp runner starts");

    eventually("the agent's sleep to start", DEFAULT_TIMEOUT, || async {
        (!processes_with(&format!("{marker}2")).is_empty()).then_some(())
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let signalled = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let status = eventually("acp runner to exit", Duration::from_secs(5), || {
        let status = child.try_wait().expect("try_wait");
        async move { status }
    })
    .await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(143), "exit code");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let left: Vec<u32> =
        [processes_with(&format!("{marker}1")), processes_with(&format!("{marker}2"))].concat();
    assert!(left.is_empty(), "orphans left: {left:?}");

    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&termination).expect("termination message"))
            .expect("json");
    assert_eq!(result["outcome"], "stopped");
    assert_eq!(result["stoppedReason"], "user");
    let stdout = std::io::read_to_string(child.stdout.take().expect("stdout")).expect("read stdout");
    let last: Value =
        serde_json::from_str(stdout.lines().last().expect("progress lines")).expect("json line");
    assert_eq!(last["event"], "result");
}

fn write_git_config(home: &Path, git: &GitServer) {
    // Route the example's GitHub URLs to the local server, the way a mirror is
    // configured for real (url.<base>.insteadOf, honoured by libgit2).
    let base = git.url("x");
    let base = base.trim_end_matches("x.git");
    std::fs::create_dir_all(home).expect("home");
    std::fs::write(
        home.join(".gitconfig"),
        format!("[url \"{base}\"]\n\tinsteadOf = https://github.com/example-org/\n"),
    )
    .expect("gitconfig");
}

#[tokio::test]
async fn acp_run_runs_an_example_against_the_scripted_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = GitServer::start(&tmp.path().join("git"), TOKEN).await;
    git.create_repo("webapp", "main", &[("src/session.js", "redirect('/login')\n")]);
    let home = tmp.path().join("home");
    write_git_config(&home, &git);
    let workspace = tmp.path().join("ws");
    let file = workspace.join("repos/webapp/src/session.js");
    let model = ScriptedModel::start(
        MODEL,
        vec![
            Step::tool(
                "Edit",
                json!({"file_path": file, "old_string": "redirect('/login')", "new_string": "redirect(next ?? '/')"}),
            ),
            Step::text("Fixed the redirect loop in src/session.js."),
        ],
    )
    .await;
    // The example, pushing: through the machine's own URL rewrite (trusted,
    // unlike one in the workspace the agent can write).
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sessions/fix-login-bug.yaml"),
    )
    .expect("example");
    let pushing = text.replace("branch: main ", "autoPush: true\n      branch: main ");
    assert_ne!(pushing, text, "the example's repo entry moved");
    let example = tmp.path().join("fix-login-bug.yaml");
    std::fs::write(&example, pushing).expect("write the manifest");
    let out = tokio::task::spawn_blocking(move || {
        acp()
            .args(["run", "--json", "--workspace"])
            .arg(&workspace)
            .arg(&example)
            .env("HOME", &home)
            .env("ANTHROPIC_API_KEY", "sk-ant-cli-test-key")
            .env("ANTHROPIC_BASE_URL", model.url())
            .env("GIT_TOKEN", TOKEN)
            .env("CLAUDE_BIN", acp_testenv::claude_bin())
            .output()
            .expect("acp run")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().expect("lines")).expect("json");
    assert_eq!(result["event"], "result");
    assert_eq!(result["result"]["outcome"], "success");
    assert_eq!(result["result"]["summary"], "Fixed the redirect loop in src/session.js.");
    let edited = std::fs::read_to_string(tmp.path().join("ws/repos/webapp/src/session.js")).expect("edited");
    assert_eq!(edited, "redirect(next ?? '/')\n");
    let bare = git.root().join("webapp.git");
    assert_eq!(
        acp_testenv::githttp::git(&bare, &["show", "ambient/fix-login-redirect:src/session.js"]),
        "redirect(next ?? '/')\n"
    );
}

#[test]
fn acp_run_rejects_a_bad_manifest_with_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("bad.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").expect("write");
    let out = acp().arg("run").arg(&file).output().expect("acp run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("expected apiVersion vteam.ambient-code/v1alpha1"),
        "{stderr}"
    );
}
