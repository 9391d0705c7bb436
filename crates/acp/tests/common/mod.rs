//! A whole acp on this machine, for tests of contracts between components:
//! the real `acp git-sync`, `acp operator` (process executor: the real runner
//! and Claude Code CLI against a scripted model) and `acp statusbot`, each its
//! own process (killable, restartable, in replicas under leader election), on
//! the real control plane, with real git (a bare repository and a work clone)
//! and a fake GitHub, which plays GitHub (unreachable from here).
//!
//! Nothing here writes a field a component owns: sessions reach the cluster
//! only through commits that git-sync applies, statuses come from the
//! operator, comments and statuses from the status bot.
#![allow(dead_code, reason = "each test binary uses its own part of the harness")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::constants::annotations;
use acp_testenv::bench::free_port;
use acp_testenv::githttp::{GitServer, git};
use acp_testenv::github::FakeGitHub;
use acp_testenv::model::{Responder, ScriptedModel};
use acp_testenv::proc::curl;
use acp_testenv::{TestEnv, TestNamespace, eventually};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The sessions repository on (fake) GitHub.
pub const REPO: &str = "acme/sessions";
/// The status bot's login on GitHub.
pub const BOT: &str = "acp-bot";
const BOT_TOKEN: &str = "ghs_acp_bot_token";
const GIT_TOKEN: &str = "git-stack-token";
/// The model every session uses.
pub const MODEL: &str = "claude-sonnet-4-6";

/// One of the three controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// `acp git-sync`.
    GitSync,
    /// `acp operator --executor process`.
    Operator,
    /// `acp statusbot`.
    StatusBot,
    /// `acp dashboard` (read-only; started by [`Stack::start_dashboard`]).
    Dashboard,
}

impl Component {
    /// The `acp` subcommand.
    pub fn name(self) -> &'static str {
        match self {
            Self::GitSync => "git-sync",
            Self::Operator => "operator",
            Self::StatusBot => "statusbot",
            Self::Dashboard => "dashboard",
        }
    }
}

struct Running {
    component: Component,
    replica: String,
    child: Child,
}

/// Where the operator runs sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// `acp runner` processes on this machine.
    Process,
    /// Jobs on the real node, from the runner image built from `images/`.
    Job,
}

/// The stack; every process it started is killed when it is dropped.
pub struct Stack {
    pub env: &'static TestEnv,
    pub ns: TestNamespace,
    pub github: FakeGitHub,
    pub model: ScriptedModel,
    pub dir: tempfile::TempDir,
    /// Run replicas under leader election (short leases).
    pub leader_elect: bool,
    /// How the operator runs sessions.
    pub executor: Executor,
    bare: PathBuf,
    work: PathBuf,
    git: GitServer,
    running: Vec<Running>,
    starts: usize,
    /// Extra arguments for the next start.
    extra: Vec<String>,
    /// The last git-sync replica's webhook address.
    webhook: Option<String>,
    /// A policies directory for git-sync (`ACP_POLICIES`), instead of the built-in ones.
    pub policies: Option<PathBuf>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for mut r in self.running.drain(..) {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        if std::thread::panicking()
            && let Ok(spare) = tempfile::tempdir()
        {
            // Keep the logs, repositories and runs of a failed test.
            let kept = std::mem::replace(&mut self.dir, spare).keep();
            eprintln!("the stack's files are kept in {}", kept.display());
        }
    }
}

/// A session manifest.
pub fn session(name: &str, prompt: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: {prompt:?}\n  llmSettings:\n    model: {MODEL}\n  timeout: 300\n"
    )
}

impl Stack {
    /// A namespace with the runner's and GitHub's secrets, an empty sessions
    /// repository, a model answering with `responder`; no controller yet.
    pub async fn new(prefix: &str, responder: Responder) -> Self {
        Self::with_executor(prefix, responder, Executor::Process).await
    }

    /// [`Stack::new`], running sessions with `executor`.
    pub async fn with_executor(prefix: &str, responder: Responder, executor: Executor) -> Self {
        let env = TestEnv::get();
        let ns = env.namespace(prefix).await;
        env.install_crds(&ns.client).await;
        let dir = tempfile::tempdir().expect("tempdir");
        // Served over HTTP by a server of its own (git http-backend), so that
        // a controller killed mid-push cannot leave the remote's refs locked,
        // as a crash could not on GitHub.
        let git_server = GitServer::start(&dir.path().join("git"), GIT_TOKEN).await;
        let bare = git_server.root().join("sessions.git");
        let work = dir.path().join("work");
        git(dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
        git(dir.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
        // Runner pods reach this machine at the node's host address.
        let ip = match executor {
            Executor::Process => std::net::Ipv4Addr::LOCALHOST.into(),
            Executor::Job => env.host_address(),
        };
        let model = ScriptedModel::start_responding(ip, MODEL, responder).await;
        let github = FakeGitHub::start().await;
        github.token(BOT_TOKEN, BOT);
        let secrets: Api<Secret> = ns.api();
        for secret in [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ambient-runner-secrets"},
                   "stringData": {"ANTHROPIC_API_KEY": "sk-ant-stack", "ANTHROPIC_BASE_URL": model.url(), "GIT_TOKEN": GIT_TOKEN}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"}, "stringData": {"token": BOT_TOKEN}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git"}, "stringData": {"token": GIT_TOKEN}}),
        ] {
            let name = secret["metadata"]["name"].as_str().expect("name").to_owned();
            secrets.patch(&name, &PatchParams::apply("test"), &Patch::Apply(&secret)).await.expect("secret");
        }
        Self {
            env,
            ns,
            github,
            model,
            dir,
            leader_elect: false,
            executor,
            bare,
            work,
            git: git_server,
            running: Vec::new(),
            starts: 0,
            extra: Vec::new(),
            webhook: None,
            policies: None,
        }
    }

    /// Commits `files` (`None` deletes) to main and pushes; returns the commit.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            let file = self.work.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
                    std::fs::write(&file, text).expect("write");
                }
                None => std::fs::remove_file(&file).expect("remove"),
            }
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", "commit", "-qm", message],
        );
        git(&self.work, &["push", "-q", self.bare.to_str().expect("utf-8"), "main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// The SessionSource `repo`: this repository's `sessions/`, reporting to
    /// [`REPO`] on GitHub, writing back to `acp/status`.
    pub async fn create_source(&self) {
        self.create_source_named("repo", "sessions").await;
    }

    /// SessionSource `name` for directory `path` of this repository.
    pub async fn create_source_named(&self, name: &str, path: &str) {
        let source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": name},
            "spec": {"url": self.git.url("sessions"), "secretRef": {"name": "git"}, "path": path, "interval": "1h", "prune": true,
                     "github": {"repository": REPO, "tokenSecretRef": {"name": "gh"}}}});
        self.ns
            .api::<acp_api::SessionSource>()
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(&source))
            .await
            .expect("source");
    }

    /// Asks git-sync to sync every source now, as its webhook does on a push.
    pub async fn sync(&self) {
        let token = format!(
            "{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
        );
        let patch = json!({"metadata": {"annotations": {annotations::RECONCILE_REQUESTED_AT: token}}});
        let sources = self.ns.api::<acp_api::SessionSource>();
        for source in sources.list(&Default::default()).await.expect("sources").items {
            let name = source.metadata.name.clone().unwrap_or_default();
            sources
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("request a sync");
        }
    }

    /// A code repository `name` on the stack's git server with `branch`
    /// holding `files`; returns its clone URL.
    pub fn code_repo(&self, name: &str, branch: &str, files: &[(&str, &str)]) -> String {
        self.git.create_repo(name, branch, files);
        self.git.url(name)
    }

    /// Posts a GitHub webhook delivery to the git-sync replica started last,
    /// signed with `secret`; returns the HTTP status and the JSON answer.
    pub fn deliver(
        &self,
        event: &str,
        delivery: &str,
        secret: &str,
        payload: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = payload.to_string();
        let signature = acp_gitsync::webhook::sign(secret.as_bytes(), body.as_bytes());
        let url = format!("http://{}/hooks/github", self.webhook.as_deref().expect("git-sync started"));
        let mut child = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", &url])
            .args(["-H", "content-type: application/json"])
            .args(["-H", &format!("x-github-event: {event}")])
            .args(["-H", &format!("x-github-delivery: {delivery}")])
            .args(["-H", &format!("x-hub-signature-256: {signature}")])
            .args(["--data-binary", "@-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl runs");
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("send the body");
        let out = child.wait_with_output().expect("curl ends");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (answer, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(answer).unwrap_or(serde_json::Value::Null))
    }

    /// The full message of commit `sha` of the bare repository.
    pub fn commit_message(&self, sha: &str) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.bare)
            .args(["show", "--no-patch", "--format=%B", sha])
            .output()
            .expect("git show");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The bare repository's `ref` as text (for write-back checks).
    pub fn show(&self, spec: &str) -> Option<String> {
        let out = Command::new("git").arg("-C").arg(&self.bare).args(["show", spec]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Reverts commit `sha` on `branch` of the sessions repository, as a
    /// person would (a clone, `git revert`, a push).
    pub fn revert(&self, branch: &str, sha: &str) {
        let work = self.dir.path().join(format!("revert-{sha}"));
        let (bare, into) = (self.bare.to_string_lossy(), work.to_string_lossy());
        git(self.dir.path(), &["clone", "-q", "-b", branch, &bare, &into]);
        git(
            &work,
            &["-c", "user.name=Rita", "-c", "user.email=rita@example.com", "revert", "--no-edit", sha],
        );
        git(&work, &["push", "-q", "origin", branch]);
    }

    /// The commits of `reference` that touched `file`, newest first.
    pub fn git_log(&self, reference: &str, file: &str) -> Vec<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.bare)
            .args(["log", "--format=%H", reference, "--", file])
            .output()
            .expect("git log");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }

    /// Starts replica `replica` of `component`.
    pub fn start(&mut self, component: Component, replica: &str) {
        self.start_with(component, replica, None);
    }

    /// Starts replica `replica` of `component` with failpoints armed
    /// (`ACP_FAILPOINTS` and its seed).
    pub fn start_with(&mut self, component: Component, replica: &str, failpoints: Option<(&str, u64)>) {
        self.starts += 1;
        let root = self.dir.path();
        let log_path = root.join(format!("{}-{replica}-{}.log", component.name(), self.starts));
        let log = std::fs::File::create(&log_path).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acp"));
        cmd.arg(component.name()).args(["--namespace", &self.ns.name]);
        let metrics = format!("127.0.0.1:{}", free_port());
        match component {
            Component::GitSync => {
                let webhook = format!("127.0.0.1:{}", free_port());
                cmd.args(["--webhook-addr", &webhook, "--metrics-addr", &metrics])
                    .args(["--github-api-url", &self.github.url()])
                    .arg("--cache-dir")
                    .arg(root.join(format!("git-sync-{replica}")));
                if let Some(policies) = &self.policies {
                    cmd.env("ACP_POLICIES", policies);
                }
                self.webhook = Some(webhook);
            }
            Component::Operator => match self.executor {
                Executor::Process => {
                    cmd.args(["--executor", "process", "--metrics-addr", &metrics])
                        .arg("--process-root")
                        .arg(root.join("runs"))
                        .arg("--claude-bin")
                        .arg(acp_testenv::claude_bin());
                }
                Executor::Job => {
                    cmd.args(["--metrics-addr", &metrics, "--runner-image", &self.env.node().runner_image])
                        .args([
                            "--image-pull-policy",
                            "IfNotPresent",
                            "--workspace",
                            "emptydir",
                            "--runner-egress",
                            "off",
                        ]);
                }
            },
            Component::StatusBot => {
                cmd.args(["--github-api-url", &self.github.url(), "--debounce-seconds", "0"])
                    .args(["--dashboard-url", "https://acp.example"])
                    .arg("--cache-dir")
                    .arg(root.join(format!("statusbot-{replica}")));
                if self.executor == Executor::Process {
                    cmd.arg("--runs-dir").arg(root.join("runs"));
                }
            }
            Component::Dashboard => {
                cmd.args(["--auth", "none", "--metrics-addr", &metrics]);
                if self.executor == Executor::Process {
                    cmd.arg("--runs-dir").arg(root.join("runs"));
                }
            }
        }
        if self.leader_elect {
            cmd.args([
                "--leader-elect",
                "--leader-election-namespace",
                &self.ns.name,
                "--lease-duration-seconds",
                "3",
            ]);
        }
        cmd.args(&self.extra);
        if let Some((spec, seed)) = failpoints {
            cmd.env("ACP_FAILPOINTS", spec).env("ACP_FAILPOINTS_SEED", seed.to_string());
        }
        let child = cmd
            .env("KUBECONFIG", self.env.kubeconfig())
            .env("POD_NAME", replica)
            .env("RUST_LOG", "info,kube=warn")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("acp starts");
        self.running.push(Running { component, replica: replica.to_owned(), child });
    }

    /// Starts one replica of each controller.
    pub fn start_all(&mut self) {
        for component in [Component::GitSync, Component::Operator, Component::StatusBot] {
            self.start(component, "a");
        }
    }

    /// Starts the dashboard (no auth, this namespace); returns its URL once
    /// it is ready.
    pub async fn start_dashboard(&mut self) -> String {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let leader_elect = std::mem::replace(&mut self.leader_elect, false);
        self.extra = vec!["--listen".into(), format!("127.0.0.1:{port}")];
        self.start(Component::Dashboard, "dashboard");
        self.extra.clear();
        self.leader_elect = leader_elect;
        eventually("the dashboard to be ready", Duration::from_secs(30), || async {
            curl(&format!("{url}/readyz"), &[]).map(|_| ())
        })
        .await;
        url
    }

    /// SIGKILLs replica `replica` of `component` (a crash).
    pub fn kill(&mut self, component: Component, replica: &str) {
        if let Some(i) = self.running.iter().position(|r| r.component == component && r.replica == replica) {
            let mut r = self.running.remove(i);
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// SIGTERMs replica `replica` of `component` (a rollout's graceful stop)
    /// and waits for it to exit.
    pub async fn terminate(&mut self, component: Component, replica: &str) {
        let Some(i) = self.running.iter().position(|r| r.component == component && r.replica == replica)
        else {
            return;
        };
        let mut r = self.running.remove(i);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(r.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let child = &mut r.child;
        let exited = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                // Waiting for another process to exit: nothing to subscribe to.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        if exited.is_err() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// Forgets the processes that exited by themselves (a failpoint, a lost
    /// lease); returns them with their exit codes.
    pub fn reap(&mut self) -> Vec<(Component, String, Option<i32>)> {
        let mut gone = Vec::new();
        self.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                gone.push((r.component, r.replica.clone(), status.code()));
                false
            }
            _ => true,
        });
        gone
    }

    /// Text of every process log so far.
    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        out
    }

    /// The replicas of `component` that run.
    pub fn replicas(&self, component: Component) -> Vec<String> {
        self.running.iter().filter(|r| r.component == component).map(|r| r.replica.clone()).collect()
    }

    /// The sessions of the namespace.
    pub fn sessions(&self) -> Api<AgenticSession> {
        self.ns.api()
    }

    /// Waits until session `name` satisfies `done` (a status bound to its run).
    pub async fn wait_session(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&AgenticSession) -> bool,
    ) -> AgenticSession {
        let api = self.sessions();
        let done = Arc::new(done);
        eventually(&format!("session {name}: {what}"), timeout, || {
            let (api, done) = (api.clone(), done.clone());
            async move { api.get_opt(name).await.ok().flatten().filter(|s| done(s)) }
        })
        .await
    }

    /// The logs of every process started so far (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out.push_str(&format!("--- {}\n", entry.path().display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// True when `session` is at run `run` and finished.
pub fn finished(session: &AgenticSession, run: i64) -> bool {
    session.status.as_ref().is_some_and(|s| s.run == Some(run) && s.phase.is_some_and(|p| p.is_terminal()))
}
