//! Runner overhead: `acp_runner::run` against the baseline of what it wraps,
//! bare `git clone --depth 1` plus `claude -p`, with the same scripted model
//! and repository, measured in one process run and reported as a ratio.
//!
//! Run: `cargo bench -p acp-runner --bench runner_overhead` (after scripts/setup).
//! Options (env): ACP_BENCH_ITERATIONS (default 7).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use acp_api::session::RunOutcome;
use acp_runner::config::RunnerConfig;
use acp_runner::progress::{Progress, Sink};
use acp_testenv::githttp::GitServer;
use acp_testenv::model::{ScriptedModel, Step};
use serde_json::json;

const MODEL: &str = "claude-sonnet-4-6";
const TOKEN: &str = "bench-token-0123456789";

/// When the run reached each milestone: cloned, the CLI's init event, its
/// result event.
struct Milestones {
    started: Instant,
    cloned: Option<Duration>,
    init: Option<Duration>,
    result: Option<Duration>,
}

impl Sink for Milestones {
    fn emit(&mut self, progress: &Progress) {
        let at = Some(self.started.elapsed());
        match progress {
            Progress::Cloned { .. } => self.cloned = self.cloned.or(at),
            Progress::AgentStarted { .. } => self.init = self.init.or(at),
            Progress::Result { .. } => self.result = self.result.or(at),
            _ => {}
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn script(file: &std::path::Path) -> Vec<Step> {
    vec![
        Step::tool("Write", json!({"file_path": file, "content": "benchmark\n"})),
        Step::text("Wrote the file."),
    ]
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let iterations: usize =
        std::env::var("ACP_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = GitServer::start(&tmp.path().join("git"), TOKEN).await;
    let files: Vec<(String, String)> = (0..200)
        .map(|i| (format!("src/mod{i}.rs"), format!("pub fn f{i}() -> u32 {{ {i} }}\n").repeat(20)))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    git.create_repo("app", "main", &refs);
    let claude = acp_testenv::claude_bin();
    let url = git.url("app");
    let authed = url.replacen("http://", &format!("http://x-access-token:{TOKEN}@"), 1);

    let (mut baseline, mut runner) = (Vec::new(), Vec::new());
    // Where each side's time goes: (clone, the rest) and (clone, to the
    // CLI's init, agent, after the result).
    let (mut base_clone, mut run_clone, mut run_init, mut run_agent, mut run_after) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations {
        // Baseline: bare git clone + claude -p, same flags as the runner.
        let dir = tmp.path().join(format!("base-{i}"));
        let model = ScriptedModel::start(MODEL, script(&dir.join("repo/BENCH.md"))).await;
        let started = Instant::now();
        let clone =
            Command::new("git").args(["clone", "-q", "--depth", "1", &authed]).arg(dir.join("repo")).status();
        assert!(clone.expect("git runs").success());
        base_clone.push(started.elapsed());
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let out = Command::new(&claude)
            .args(["-p", "Write BENCH.md", "--output-format", "stream-json", "--verbose", "--model", MODEL])
            .args([
                "--max-turns",
                "5",
                "--permission-mode",
                "acceptEdits",
                "--allowedTools",
                "Write,Edit,Read,Bash",
            ])
            .current_dir(dir.join("repo"))
            .env("HOME", &home)
            .env("ANTHROPIC_API_KEY", "sk-ant-bench")
            .env("ANTHROPIC_BASE_URL", model.url())
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .output()
            .expect("claude runs");
        assert!(out.status.success(), "baseline claude failed");
        baseline.push(started.elapsed());

        // acp runner: the same work through the full pipeline.
        let ws = tmp.path().join(format!("acp-{i}"));
        let model = ScriptedModel::start(MODEL, script(&ws.join("repos/app/BENCH.md"))).await;
        let vars: BTreeMap<&str, String> = BTreeMap::from([
            ("AGENTIC_SESSION_NAME", format!("bench-{i}")),
            ("INITIAL_PROMPT", "Write BENCH.md".into()),
            ("LLM_MODEL", MODEL.into()),
            ("MAX_TURNS", "5".into()),
            ("WORKSPACE_PATH", ws.to_string_lossy().into_owned()),
            ("TERMINATION_MESSAGE_PATH", ws.join("termination-log").to_string_lossy().into_owned()),
            ("ANTHROPIC_API_KEY", "sk-ant-bench".into()),
            ("ANTHROPIC_BASE_URL", model.url()),
            ("GIT_TOKEN", TOKEN.into()),
            ("CLAUDE_BIN", claude.to_string_lossy().into_owned()),
            ("REPOS_JSON", format!(r#"[{{"url":"{url}"}}]"#)),
        ]);
        let config = RunnerConfig::from_env(&|k| vars.get(k).cloned()).expect("config");
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let mut milestones = Milestones { started, cloned: None, init: None, result: None };
        let result = acp_runner::run(&config, &mut milestones, rx).await;
        let total = started.elapsed();
        runner.push(total);
        let (cloned, init, done) = (
            milestones.cloned.expect("cloned"),
            milestones.init.expect("init"),
            milestones.result.expect("result"),
        );
        run_clone.push(cloned);
        run_init.push(init - cloned);
        run_agent.push(done - init);
        run_after.push(total - done);
        assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    }
    // The clone alone, three ways: the git CLI, the runner's clone (the git
    // CLI with credentials through its environment) and, for reference,
    // libgit2's shallow clone, which the runner used before.
    let (mut cli, mut acp_clone, mut libgit2) = (Vec::new(), Vec::new(), Vec::new());
    let creds = acp_runner::config::Credentials { git_token: Some(TOKEN.into()), ..Default::default() };
    let repo = acp_api::runner::Repo { url: url.clone(), ..Default::default() };
    let basic = format!("Authorization: Basic {}", base64_encode(&format!("x-access-token:{TOKEN}")));
    for i in 0..iterations {
        let started = Instant::now();
        let dest = tmp.path().join(format!("cli-{i}"));
        let clone = Command::new("git").args(["clone", "-q", "--depth", "1", &authed]).arg(&dest).status();
        assert!(clone.expect("git runs").success());
        cli.push(started.elapsed());
        let started = Instant::now();
        acp_runner::git::clone(&repo, 0, &tmp.path().join(format!("acp-clone-{i}")), &creds)
            .await
            .expect("clone");
        acp_clone.push(started.elapsed());
        let started = Instant::now();
        let mut fetch = git2::FetchOptions::new();
        fetch.depth(1).custom_headers(&[&basic]);
        git2::build::RepoBuilder::new()
            .fetch_options(fetch)
            .clone(&url, &tmp.path().join(format!("libgit2-{i}")))
            .expect("libgit2 clone");
        libgit2.push(started.elapsed());
    }
    println!(
        "  clone alone: git CLI {:.0} ms, the runner's clone {:.0} ms, libgit2 shallow clone {:.0} ms (medians)",
        ms(median(cli)),
        ms(median(acp_clone)),
        ms(median(libgit2))
    );
    let (b, r) = (median(baseline.clone()), median(runner));
    let rest: Vec<Duration> = baseline.iter().zip(&base_clone).map(|(all, clone)| *all - *clone).collect();
    println!("runner_overhead: iterations={iterations} repo_files=200");
    println!("  baseline (git clone --depth 1 + claude -p): median {:.0} ms", b.as_secs_f64() * 1000.0);
    println!("  acp runner (clone + agent + result):        median {:.0} ms", r.as_secs_f64() * 1000.0);
    println!("  ratio runner/baseline: {:.2}", r.as_secs_f64() / b.as_secs_f64());
    println!(
        "  baseline: clone {:.0} ms, claude -p {:.0} ms (medians)",
        ms(median(base_clone)),
        ms(median(rest))
    );
    println!(
        "  runner: clone {:.0} ms, to the CLI's init {:.0} ms, agent {:.0} ms, after the result {:.0} ms (medians)",
        ms(median(run_clone)),
        ms(median(run_init)),
        ms(median(run_agent)),
        ms(median(run_after))
    );
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
