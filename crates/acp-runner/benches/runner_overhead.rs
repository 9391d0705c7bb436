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

struct Discard;
impl Sink for Discard {
    fn emit(&mut self, _: &Progress) {}
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
    for i in 0..iterations {
        // Baseline: bare git clone + claude -p, same flags as the runner.
        let dir = tmp.path().join(format!("base-{i}"));
        let model = ScriptedModel::start(MODEL, script(&dir.join("repo/BENCH.md"))).await;
        let started = Instant::now();
        let clone =
            Command::new("git").args(["clone", "-q", "--depth", "1", &authed]).arg(dir.join("repo")).status();
        assert!(clone.expect("git runs").success());
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
        let result = acp_runner::run(&config, &mut Discard, rx).await;
        runner.push(started.elapsed());
        assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    }
    let (b, r) = (median(baseline), median(runner));
    println!("runner_overhead: iterations={iterations} repo_files=200");
    println!("  baseline (git clone --depth 1 + claude -p): median {:.0} ms", b.as_secs_f64() * 1000.0);
    println!("  acp runner (clone + agent + result):        median {:.0} ms", r.as_secs_f64() * 1000.0);
    println!("  ratio runner/baseline: {:.2}", r.as_secs_f64() / b.as_secs_f64());
}
