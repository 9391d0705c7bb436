//! Shared fixture for runner tests: a git server, a scripted model, a config.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use acp_api::session::SessionResult;
use acp_runner::config::RunnerConfig;
use acp_runner::progress::{Progress, Sink};
use acp_testenv::githttp::GitServer;
use acp_testenv::model::{ScriptedModel, Step};
use tokio::sync::watch;

pub const MODEL: &str = "claude-sonnet-4-6";
pub const API_KEY: &str = "sk-ant-test-0123456789abcdef";
pub const GIT_TOKEN: &str = "git-token-abcdef123456";

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub git: GitServer,
    pub model: ScriptedModel,
    pub vars: BTreeMap<String, String>,
}

impl Fixture {
    /// A git server with repo `app` (README.md "hello\n" on main) and a model
    /// following `steps`.
    pub async fn new(steps: Vec<Step>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let git = GitServer::start(&tmp.path().join("git"), GIT_TOKEN).await;
        git.create_repo("app", "main", &[("README.md", "hello\n"), ("src/lib.rs", "pub fn f() {}\n")]);
        let model = ScriptedModel::start(MODEL, steps).await;
        let vars = BTreeMap::from([
            ("AGENTIC_SESSION_NAME".to_owned(), "fix-readme".to_owned()),
            ("AGENTIC_SESSION_NAMESPACE".to_owned(), "team-a".to_owned()),
            ("INITIAL_PROMPT".to_owned(), "Improve the README.".to_owned()),
            ("LLM_MODEL".to_owned(), MODEL.to_owned()),
            ("WORKSPACE_PATH".to_owned(), tmp.path().join("ws").to_string_lossy().into_owned()),
            (
                "TERMINATION_MESSAGE_PATH".to_owned(),
                tmp.path().join("termination-log").to_string_lossy().into_owned(),
            ),
            ("ANTHROPIC_API_KEY".to_owned(), API_KEY.to_owned()),
            ("ANTHROPIC_BASE_URL".to_owned(), model.url()),
            ("GIT_TOKEN".to_owned(), GIT_TOKEN.to_owned()),
            ("CLAUDE_BIN".to_owned(), acp_testenv::claude_bin().to_string_lossy().into_owned()),
            (
                "REPOS_JSON".to_owned(),
                format!(r#"[{{"url":"{}","branch":"main","autoPush":true}}]"#, git.url("app")),
            ),
        ]);
        Self { tmp, git, model, vars }
    }

    /// A new scripted model following `steps`, which the next run talks to.
    pub async fn script(&mut self, steps: Vec<Step>) -> &mut Self {
        self.model = ScriptedModel::start(MODEL, steps).await;
        let url = self.model.url();
        self.set("ANTHROPIC_BASE_URL", &url)
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn workspace(&self) -> PathBuf {
        self.tmp.path().join("ws")
    }

    /// Absolute path of `rel` inside cloned repo `app`.
    pub fn repo_file(&self, rel: &str) -> String {
        self.workspace().join("repos/app").join(rel).to_string_lossy().into_owned()
    }

    pub fn config(&self) -> RunnerConfig {
        let vars = self.vars.clone();
        RunnerConfig::from_env(&move |k| vars.get(k).cloned()).expect("valid config")
    }

    /// Runs the runner in-process; returns the result and every progress event.
    pub async fn run(&self) -> (SessionResult, Vec<Progress>) {
        let (_tx, rx) = watch::channel(false);
        self.run_with_stop(rx).await
    }

    pub async fn run_with_stop(&self, stop: watch::Receiver<bool>) -> (SessionResult, Vec<Progress>) {
        let mut sink = Collect::default();
        let result = acp_runner::run(&self.config(), &mut sink, stop).await;
        let events = sink.0.lock().expect("lock").clone();
        (result, events)
    }

    pub fn termination_message(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("termination-log")).expect("termination message written")
    }

    pub fn bare(&self, name: &str) -> PathBuf {
        self.git.root().join(format!("{name}.git"))
    }
}

/// Collects progress events.
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Progress>>>);

impl Sink for Collect {
    fn emit(&mut self, progress: &Progress) {
        self.0.lock().expect("lock").push(progress.clone());
    }
}

pub fn all_text(events: &[Progress]) -> String {
    events.iter().map(|e| serde_json::to_string(e).expect("serializable")).collect::<Vec<_>>().join("\n")
}

/// A git server of an attacker: records the credentials it is offered and
/// asks for them (401 with a Basic challenge). Returns its base URL.
pub async fn credential_trap() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::http::{HeaderMap, StatusCode};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                record.lock().expect("lock").push(auth.to_owned());
            }
            (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"trap\"")], "")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}
