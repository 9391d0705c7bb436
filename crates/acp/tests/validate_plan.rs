//! `acp validate` and `acp plan` as users run them: exit codes, positions,
//! GitHub annotations, and a plan against a git base revision.

use std::path::Path;
use std::process::Command;

use acp_testenv::githttp::git;

fn acp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acp"))
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn session(name: &str, prompt: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: {prompt}\n"
    )
}

#[test]
fn validate_passes_the_examples_and_fails_the_denied_corpus() {
    let out = acp().arg("validate").arg(repo().join("examples/sessions")).output().expect("acp runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 sessions valid, 0 errors"));

    let denied = repo().join("crates/acp-policy/tests/corpus/denied");
    let out = acp().arg("validate").arg(&denied).args(["--format", "github"]).output().expect("acp runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let files = std::fs::read_dir(&denied).expect("corpus").count();
    let annotated: std::collections::HashSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::error file="))
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(annotated.len(), files, "every denied file is annotated:\n{stdout}");
    assert!(
        stdout.contains(
            "max-turns.yaml,line=8,col=13,title=acp validate::spec.maxTurns is 500; set it to at most 200"
        ),
        "{stdout}"
    );

    let out = acp()
        .arg("validate")
        .arg(denied.join("unknown-field.yaml"))
        .args(["--format", "json"])
        .output()
        .expect("acp runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["errors"][0]["line"], 7);
    assert!(
        report["errors"][0]["message"].as_str().unwrap_or_default().contains("unknown field \"spec.prompt\"")
    );
}

#[test]
fn validate_with_a_policies_directory_uses_those_policies() {
    let dir = tempfile::tempdir().expect("tmp");
    let params = std::fs::read_to_string(repo().join("policies/params.yaml")).expect("params");
    std::fs::write(dir.path().join("params.yaml"), params.replace("maxTurns: \"200\"", "maxTurns: \"1000\""))
        .expect("write");
    std::fs::copy(repo().join("policies/session-max-turns.yaml"), dir.path().join("turns.yaml"))
        .expect("copy");
    let manifest = repo().join("crates/acp-policy/tests/corpus/denied/max-turns.yaml");
    let out =
        acp().arg("validate").arg(&manifest).arg("--policies").arg(dir.path()).output().expect("acp runs");
    assert!(
        out.status.success(),
        "500 turns allowed under a 1000 bound: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A schedule with several errors gets all of them, each at its line and
/// naming the field and its range: the cron's (the CRD's rules, as the API
/// server applies them), the zone's, and the rest of the schema's.
#[test]
fn validate_reports_every_error_of_a_schedule() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: nightly\nspec:\n  schedule: \"61 24 * * *\"\n  timeZone: Mars/Olympus\n  concurrency: Forbid\n  template:\n    spec:\n      initialPrompt: go\n",
    )
    .expect("write");
    let out = acp().arg("validate").arg(&bad).output().expect("acp runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let at = |line: u32, text: &str| {
        stdout.lines().any(|l| l.starts_with(&format!("{}:{line}:", bad.display())) && l.contains(text))
    };
    assert!(at(6, "error: spec.schedule: minute must be 0-59"), "{stdout}");
    assert!(at(6, "error: spec.schedule: hour must be 0-23"), "{stdout}");
    assert!(at(7, "error: spec.timeZone: unknown time zone \"Mars/Olympus\""), "{stdout}");
    assert!(at(8, "unknown field \"spec.concurrency\""), "{stdout}");
    assert!(stdout.contains("0 sessions valid, 4 errors"), "{stdout}");
}

#[test]
fn plan_against_a_base_revision_lists_create_update_prune() {
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path();
    git(work, &["init", "-q", "-b", "main"]);
    std::fs::create_dir(work.join("sessions")).expect("mkdir");
    for (name, prompt) in [("keep", "same"), ("edit", "before"), ("gone", "bye")] {
        std::fs::write(work.join(format!("sessions/{name}.yaml")), session(name, prompt)).expect("write");
    }
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-qm", "base"]);
    std::fs::write(work.join("sessions/edit.yaml"), session("edit", "after")).expect("write");
    std::fs::remove_file(work.join("sessions/gone.yaml")).expect("rm");
    std::fs::write(work.join("sessions/new.yaml"), session("new", "hello")).expect("write");

    let out = acp()
        .current_dir(work)
        .args(["plan", "sessions", "--base", "HEAD", "--format", "json"])
        .output()
        .expect("acp runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = |key: &str| {
        plan[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().split(' ').next().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(first("create"), ["new"]);
    assert_eq!(first("update"), ["edit"]);
    assert_eq!(first("unchanged"), ["keep"]);
    assert_eq!(first("prune"), ["gone"]);

    let out = acp()
        .current_dir(work)
        .args(["plan", "sessions", "--base", "HEAD", "--format", "markdown"])
        .output()
        .expect("acp runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("**Plan:** 1 to create, 1 to update, 1 to prune, 1 unchanged."), "{text}");
}

#[tokio::test]
async fn plan_against_the_cluster_dry_runs_on_the_api_server() {
    let env = acp_testenv::TestEnv::get();
    let ns = env.namespace("plan-cluster").await;
    env.install_crds(&ns.client).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("live.yaml"), session("live", "same")).expect("write");
    let out = env
        .kubectl()
        .args(["apply", "--server-side", "-n", &ns.name, "-f"])
        .arg(dir.path())
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.path().join("new.yaml"), session("new", "hello")).expect("write");
    let out = acp()
        .args(["plan", "--cluster", "--namespace", &ns.name, "--format", "json"])
        .arg(dir.path())
        .env("KUBECONFIG", env.kubeconfig())
        .output()
        .expect("acp runs");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(out.status.success(), "{plan}");
    assert_eq!(plan["create"].as_array().map(Vec::len), Some(1), "{plan}");
    assert!(plan["create"][0].as_str().unwrap_or_default().starts_with("new "));
    assert_eq!(plan["update"].as_array().map(Vec::len), Some(1), "live lacks git-sync's stamps: {plan}");
    // The dry run created nothing.
    let sessions = acp_gitsync::apply::sessions(ns.client.clone(), &ns.name);
    assert!(sessions.get_opt("new").await.expect("get").is_none());
}

/// A schedule is checked like a session (its template against the session
/// policies, with positions in the file), and validate and plan show its
/// next three due times.
#[test]
fn validate_and_plan_check_schedules_and_show_their_next_runs() {
    let out = acp().arg("validate").arg(repo().join("examples/schedules")).output().expect("acp runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 schedules valid, 0 sessions valid, 0 errors"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("schedule weekly-dependency-bump"))
        .expect("the schedule's line");
    assert!(line.contains("\"30 6 * * MON\" in Europe/Paris: next runs"), "{line}");
    assert_eq!(line.matches(" 06:30 CE").count(), 3, "three Mondays at 06:30 Paris time: {line}");

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: SessionSchedule\nmetadata:\n  name: too-often\nspec:\n  schedule: \"*/5 * * * *\"\n  template:\n    spec:\n      llmSettings:\n        model: gpt-4\n",
    )
    .expect("write");
    let out = acp().arg("validate").arg(&bad).output().expect("acp runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let at = |line: u32| format!("{}:{line}:", bad.display());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&at(6)) && l.contains("may run more often than every 15 minutes")),
        "the frequency policy, at spec.schedule: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with(&at(10)) && l.contains("gpt-4 is not allowed")),
        "the session policy, at the template's model: {stdout}"
    );

    let out = acp()
        .arg("plan")
        .arg(repo().join("examples/schedules"))
        .args(["--format", "json"])
        .output()
        .expect("acp runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        plan["create"][0].as_str().map(|s| s.starts_with("schedule weekly-dependency-bump (")),
        Some(true)
    );
    assert_eq!(plan["schedules"][0]["nextRuns"].as_array().map(Vec::len), Some(3), "{plan}");
}
