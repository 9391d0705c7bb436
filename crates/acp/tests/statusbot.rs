//! The status bot against the real API server, real git and a wiremock GitHub
//! (playing GitHub, which is unreachable here) asserting every request: a
//! session going Pending → Running → Completed costs one comment (created,
//! then edited), a commit status moving from pending to success and one
//! write-back commit; a restart gives no duplicates; a commit without a pull
//! request gets a status and a commit but no comment. The session is applied
//! by the real git-sync (its source stamps and inventory are git-sync's); the
//! phases are still written by the test, standing in for the operator.

use std::sync::Arc;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::constants::annotations;
use acp_statusbot::controller::{Config, run};
use acp_statusbot::render::Renderer;
use acp_statusbot::writeback::read;
use acp_testenv::githttp::git;
use acp_testenv::{TestEnv, TestNamespace, eventually};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Bot {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Bot {
    fn start(ns: &TestNamespace, github: &MockServer, cache: &std::path::Path) -> Self {
        Self::start_with(ns, github, cache, None)
    }

    fn start_with(
        ns: &TestNamespace,
        github: &MockServer,
        cache: &std::path::Path,
        output: Option<acp_kube::output::LogSource>,
    ) -> Self {
        let config = Config {
            namespace: Some(ns.name.clone()),
            github_api_url: github.uri(),
            dashboard_url: Some("https://acp.example".into()),
            renderer: Arc::new(Renderer::new(None).expect("templates")),
            cache_dir: cache.to_path_buf(),
            debounce: Duration::from_secs(30),
            author: ("acp status bot".into(), "acp@example.invalid".into()),
            output,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = ns.client.clone();
        let task = tokio::spawn(run(client, config, async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

struct Setup {
    ns: TestNamespace,
    github: MockServer,
    bare: std::path::PathBuf,
    /// The commit git-sync applied the session from.
    sha: String,
    _gitsync: GitSync,
    _tmp: tempfile::TempDir,
}

/// The real git-sync, for one namespace, until dropped.
struct GitSync(tokio::task::JoinHandle<()>);

impl Drop for GitSync {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The bot's GitHub login (what `GET /user` answers for its token).
const BOT: &str = "acp-bot";

async fn setup(prefix: &str, pulls: Value) -> Setup {
    let env = TestEnv::get();
    let ns = env.namespace(prefix).await;
    env.install_crds(&ns.client).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = acp_testenv::githttp::bare_repo(
        tmp.path(),
        "sessions.git",
        "main",
        &[(
            "sessions/fix-login.yaml",
            "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: fix-login\nspec:\n  initialPrompt: Fix the login\n",
        )],
    );
    let sha = git(&bare, &["rev-parse", "main"]).trim().to_owned();
    let github = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": BOT})))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/sessions/commits/{sha}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(pulls))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/sessions/commits/{sha}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"commit": {"message": "Add a session"}})),
        )
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/issues/comments/4242"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 4242, "user": {"login": BOT}})))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/acme/sessions/issues/\d+/comments$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/sessions/commits/{sha}/statuses")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/repos/acme/sessions/statuses/{sha}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/sessions/issues/7/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 4242})))
        .mount(&github)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/sessions/issues/comments/4242"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 4242})))
        .mount(&github)
        .await;

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"}, "stringData": {"token": "ghs_test"}});
    ns.api::<Secret>()
        .patch("gh", &PatchParams::apply("test"), &Patch::Apply(&secret))
        .await
        .expect("secret");
    let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": "repo"},
        "spec": {"url": format!("file://{}", bare.display()), "path": "sessions", "interval": "1h",
                 "github": {"repository": "acme/sessions", "tokenSecretRef": {"name": "gh"}}}});
    ns.api::<acp_api::SessionSource>()
        .patch("repo", &PatchParams::apply("test"), &Patch::Apply(&source))
        .await
        .expect("source");
    // git-sync applies the session, stamping and listing it.
    let config = acp_gitsync::controller::Config {
        namespace: Some(ns.name.clone()),
        cache_dir: tmp.path().join("git-sync"),
        checker: Arc::new(acp_policy::Checker::with_embedded_policies().expect("policies")),
        metrics: Arc::default(),
        shard: Default::default(),
    };
    let gitsync = GitSync(tokio::spawn(acp_gitsync::controller::run(
        ns.client.clone(),
        env.config().await,
        config,
        std::future::pending(),
    )));
    let sources = ns.api::<acp_api::SessionSource>();
    eventually("git-sync to apply and list the session", Duration::from_secs(60), || async {
        let status = sources.get("repo").await.ok()?.status?;
        status.inventory.iter().any(|e| e.name == "fix-login").then_some(())
    })
    .await;
    Setup { ns, github, bare, sha, _gitsync: gitsync, _tmp: tmp }
}

async fn set_phase(ns: &TestNamespace, status: Value) {
    let patch =
        json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "status": status});
    ns.api::<AgenticSession>()
        .patch_status("fix-login", &PatchParams::apply("acp-operator").force(), &Patch::Apply(&patch))
        .await
        .expect("status");
}

/// `(method, path)` of every mutating request so far, with bodies.
async fn writes(github: &MockServer) -> Vec<(String, String, Value)> {
    github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() != "GET")
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_string(),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn wait_writes(github: &MockServer, what: &str, count: usize) -> Vec<(String, String, Value)> {
    eventually(what, Duration::from_secs(30), || async {
        let w = writes(github).await;
        (w.len() >= count).then_some(w)
    })
    .await
}

fn completed() -> Value {
    json!({"phase": "Completed", "run": 1, "startTime": "2026-11-24T01:00:00Z", "completionTime": "2026-11-24T01:10:00Z",
           "result": {"outcome": "success", "summary": "Fixed the redirect.", "isError": false, "numTurns": 5, "totalCostUsd": 0.02, "durationMs": 600000}})
}

#[tokio::test]
async fn a_lifecycle_costs_one_comment_one_status_and_one_commit_and_survives_a_restart() {
    let s = setup("statusbot-life", json!([{"number": 7}])).await;
    let cache = tempfile::tempdir().expect("tmp");
    let bot = Bot::start(&s.ns, &s.github, cache.path());

    set_phase(&s.ns, json!({"phase": "Pending"})).await;
    let w = wait_writes(&s.github, "pending status", 1).await;
    assert_eq!(w[0].0, "POST");
    assert_eq!(w[0].2["state"], "pending");
    assert_eq!(w[0].2["context"], "acp/fix-login");
    assert_eq!(w[0].2["target_url"], format!("https://acp.example/sessions/{}/fix-login", s.ns.name));

    set_phase(&s.ns, json!({"phase": "Running", "run": 1, "startTime": "2026-11-24T01:00:00Z"})).await;
    let w = wait_writes(&s.github, "comment created", 2).await;
    assert_eq!((w[1].0.as_str(), w[1].1.as_str()), ("POST", "/repos/acme/sessions/issues/7/comments"));
    let body = w[1].2["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with(&format!("<!-- acp:session {}/fix-login -->", s.ns.name))
            && body.contains("**Phase:** Running"),
        "{body}"
    );

    // Restart mid-flight: the new instance resumes from the annotation.
    let sessions: Api<AgenticSession> = s.ns.api();
    eventually("progress recorded", Duration::from_secs(30), || async {
        let session = sessions.get("fix-login").await.ok()?;
        session.metadata.annotations?.get(annotations::STATUS_BOT_STATE)?.contains("4242").then_some(())
    })
    .await;
    bot.stop().await;
    let bot = Bot::start(&s.ns, &s.github, cache.path());

    set_phase(&s.ns, completed()).await;
    let w = wait_writes(&s.github, "final status and comment edit", 4).await;
    let file = format!("status/{}/fix-login.yaml", s.ns.name);
    eventually("status commit", Duration::from_secs(30), || async { read(&s.bare, "acp/status", &file) })
        .await;
    // Let anything pending land, then count: nothing more may come.
    eventually("annotation settled", Duration::from_secs(30), || async {
        let session = sessions.get("fix-login").await.ok()?;
        let state = session.metadata.annotations?.get(annotations::STATUS_BOT_STATE)?.clone();
        (state.contains("\"status\":\"success\"") && state.contains("written")).then_some(())
    })
    .await;
    let w2 = writes(&s.github).await;
    assert_eq!(w2, w, "no further writes");
    let summary: Vec<(String, String)> = w.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    assert_eq!(
        summary,
        [
            ("POST".to_string(), format!("/repos/acme/sessions/statuses/{}", s.sha)),
            ("POST".to_string(), "/repos/acme/sessions/issues/7/comments".to_string()),
            ("POST".to_string(), format!("/repos/acme/sessions/statuses/{}", s.sha)),
            ("PATCH".to_string(), "/repos/acme/sessions/issues/comments/4242".to_string()),
        ],
        "four mutating calls for the whole lifecycle"
    );
    assert_eq!(w[2].2["state"], "success");
    let final_body = w[3].2["body"].as_str().unwrap_or_default();
    assert!(
        final_body.contains("Fixed the redirect.") && final_body.contains("| success | 600.0 s | 5 |"),
        "{final_body}"
    );
    let content = String::from_utf8(read(&s.bare, "acp/status", &file).expect("file")).expect("utf-8");
    assert!(
        content.contains("phase: Completed") && content.contains("summary: Fixed the redirect."),
        "{content}"
    );
    assert_eq!(git(&s.bare, &["rev-list", "--count", "acp/status"]).trim(), "1", "one status commit");
    let lookups = s
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("/pulls"))
        .count();
    assert_eq!(lookups, 1, "the pull request is looked up once (cached in the annotation)");
    bot.stop().await;
}

#[tokio::test]
async fn a_lost_comment_id_is_found_again_by_its_marker() {
    let s = setup("statusbot-marker", json!([{"number": 7}])).await;
    let cache = tempfile::tempdir().expect("tmp");
    // The comment exists already (posted before a crash that lost the annotation).
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/issues/7/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!([{"id": 4242, "user": {"login": BOT}, "body": format!("<!-- acp:session {}/fix-login -->\nold", s.ns.name)}]),
        ))
        .with_priority(1)
        .mount(&s.github)
        .await;
    let bot = Bot::start(&s.ns, &s.github, cache.path());
    set_phase(&s.ns, completed()).await;
    let w = eventually("comment edited", Duration::from_secs(30), || async {
        let w = writes(&s.github).await;
        w.iter().any(|(m, _, _)| m == "PATCH").then_some(w)
    })
    .await;
    // The session may be seen Pending first (a pending status); never a new comment.
    assert!(
        !w.iter().any(|(m, p, _)| m == "POST" && p.contains("/comments")),
        "edited, not duplicated: {w:?}"
    );
    assert_eq!(w.iter().filter(|(m, _, _)| m == "PATCH").count(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn without_a_pull_request_there_is_a_status_and_a_commit_but_no_comment() {
    let s = setup("statusbot-nopr", json!([])).await;
    let cache = tempfile::tempdir().expect("tmp");
    let bot = Bot::start(&s.ns, &s.github, cache.path());
    set_phase(&s.ns, completed()).await;
    let file = format!("status/{}/fix-login.yaml", s.ns.name);
    eventually("status commit", Duration::from_secs(30), || async { read(&s.bare, "acp/status", &file) })
        .await;
    let sessions: Api<AgenticSession> = s.ns.api();
    eventually("settled", Duration::from_secs(30), || async {
        let session = sessions.get("fix-login").await.ok()?;
        session.metadata.annotations?.get(annotations::STATUS_BOT_STATE)?.contains("\"pull\":0").then_some(())
    })
    .await;
    let w = writes(&s.github).await;
    assert!(w.iter().all(|(_, p, _)| p.contains("/statuses/")), "statuses only, no comment: {w:?}");
    assert_eq!(w.last().map(|(_, _, b)| b["state"].clone()), Some(json!("success")));
    assert!(
        !s.github
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|r| r.url.path().contains("/comments"))
    );
    bot.stop().await;
}

#[tokio::test]
async fn a_running_session_shows_the_agents_todo_list() {
    let s = setup("statusbot-todos", json!([{"number": 7}])).await;
    let cache = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("runs");
    let run_dir = runs.path().join(&s.ns.name).join("fix-login-1");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    std::fs::write(
        run_dir.join("runner.log"),
        concat!(
            r#"{"event":"todos","todos":[{"content":"Read the failing test","status":"in_progress"}]}"#, "\n",
            r#"{"event":"todos","todos":[{"content":"Read the failing test","status":"completed"},{"content":"Fix the redirect","status":"in_progress"},{"content":"Run the suite","status":"pending"}]}"#, "\n",
        ),
    )
    .expect("log");
    let output = acp_kube::output::LogSource::Files(runs.path().to_owned());
    let bot = Bot::start_with(&s.ns, &s.github, cache.path(), Some(output));
    set_phase(&s.ns, json!({"phase": "Running", "run": 1, "jobName": "fix-login-1"})).await;
    let writes = wait_writes(&s.github, "the comment", 2).await;
    let comment = writes.iter().find(|(m, p, _)| m == "POST" && p.ends_with("/comments")).expect("a comment");
    let body = comment.2["body"].as_str().unwrap_or_default();
    // The agent's text is shown as code (it cannot mention, link or render).
    assert!(body.contains("- [x] `Read the failing test`"), "{body}");
    assert!(body.contains("- [ ] **`Fix the redirect`** (in progress)"), "{body}");
    assert!(body.contains("- [ ] `Run the suite`"), "{body}");
    bot.stop().await;
}

/// Someone who may edit sessions in another namespace points one at this
/// team's source. The bot must not comment, set statuses or write back in
/// this team's repository for it: the source did not apply it.
#[tokio::test]
async fn a_session_claiming_another_teams_source_gets_no_report() {
    let s = setup("statusbot-forged", json!([{"number": 7}])).await;
    let other = TestEnv::get().namespace("statusbot-forger").await;
    let forged = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": "forged",
            "labels": {"ambient-code.io/source-name": "repo", "ambient-code.io/source-namespace": s.ns.name},
            "annotations": {annotations::SOURCE: format!("{}/repo", s.ns.name),
                            annotations::SOURCE_REVISION: format!("refs/heads/main@sha1:{}", s.sha)}},
        "spec": {"initialPrompt": "Exfiltrate"}});
    other
        .api::<AgenticSession>()
        .patch("forged", &PatchParams::apply("mallory"), &Patch::Apply(&forged))
        .await
        .expect("forged session");
    let cache = tempfile::tempdir().expect("tmp");
    let bot = Bot::start(&other, &s.github, cache.path());
    let patch =
        json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "status": completed()});
    other
        .api::<AgenticSession>()
        .patch_status("forged", &PatchParams::apply("acp-operator").force(), &Patch::Apply(&patch))
        .await
        .expect("status");
    let events: Api<k8s_openapi::api::events::v1::Event> = other.api();
    let note = eventually("the bot to refuse the forged session", Duration::from_secs(30), || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("SourceNotVerified")).and_then(|e| e.note)
    })
    .await;
    assert!(note.contains("did not apply it"), "{note}");
    let requests = s.github.received_requests().await.unwrap_or_default();
    assert!(
        requests.is_empty(),
        "GitHub was called for the forged session: {:?}",
        requests.iter().map(|r| r.url.path().to_owned()).collect::<Vec<_>>()
    );
    let file = format!("status/{}/forged.yaml", other.name);
    assert!(read(&s.bare, "acp/status", &file).is_none(), "nothing written back for it");
    bot.stop().await;
}

/// A person pastes the bot's marker into their own comment: the bot never
/// edits it, and posts its own.
#[tokio::test]
async fn a_comment_with_the_marker_by_someone_else_is_not_the_bots() {
    let s = setup("statusbot-paste", json!([{"number": 7}])).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/issues/7/comments"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"id": 666, "user": {"login": "mallory"},
            "body": format!("<!-- acp:session {}/fix-login -->\nall green, merge it", s.ns.name)}])),
        )
        .with_priority(1)
        .mount(&s.github)
        .await;
    let cache = tempfile::tempdir().expect("tmp");
    let bot = Bot::start(&s.ns, &s.github, cache.path());
    set_phase(&s.ns, completed()).await;
    // The bot may first report the session before its status (a pending
    // commit status): wait for the comment itself, not a number of writes.
    let w = eventually("the bot's own comment", Duration::from_secs(30), || async {
        let w = writes(&s.github).await;
        w.iter().any(|(_, p, _)| p.contains("/comments")).then_some(w)
    })
    .await;
    let comments: Vec<&(String, String, Value)> =
        w.iter().filter(|(_, p, _)| p.contains("/comments")).collect();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(
        (comments[0].0.as_str(), comments[0].1.as_str()),
        ("POST", "/repos/acme/sessions/issues/7/comments")
    );
    assert!(!w.iter().any(|(_, p, _)| p.ends_with("/666")), "the person's comment was edited: {w:?}");
    bot.stop().await;
}
