//! Operator at scale, against the real control plane:
//! - N sessions applied (operator stopped), then the operator started → time
//!   until N Jobs exist, against the baseline of `kubectl apply --server-side`
//!   of the same N Jobs directly; also end to end, the operator running while
//!   kubectl applies the sessions; the CPU the operator, kube-apiserver and
//!   etcd used;
//!   API requests the operator made; its peak RSS; and against the floor,
//!   `kubectl apply --server-side` of exactly the Secrets, PVCs and Jobs the
//!   operator writes;
//! - RSS with M sessions in the operator's cache (sessions held Stopped, so
//!   no Jobs are made).
//!
//! Run: `cargo bench -p acp --bench operator_scale` (after scripts/setup).
//! Env: ACP_BENCH_SESSIONS (1000), ACP_BENCH_CACHED (10000).

use std::fmt::Write as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use acp_api::AgenticSession;
use acp_operator::children::ChildConfig;
use acp_operator::pod::job;
use acp_testenv::bench::{env_usize, free_port, status_kib, wait_until};
use acp_testenv::{TestEnv, TestNamespace};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn session_doc(name: &str, stopped: bool) -> String {
    let annotations = if stopped { "\n  annotations: {ambient-code.io/desired-phase: Stopped}" } else { "" };
    format!(
        "---\napiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}{annotations}\nspec:\n  initialPrompt: benchmark {name}\n  repos:\n  - url: https://github.com/acme/app.git\n"
    )
}

fn kubectl_apply(env: &TestEnv, ns: &str, file: &std::path::Path) {
    let out =
        env.kubectl().args(["apply", "--server-side", "-n", ns, "-f"]).arg(file).output().expect("kubectl");
    assert!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
}

async fn count_jobs(ns: &TestNamespace) -> usize {
    let jobs: Api<Job> = ns.api();
    jobs.list_metadata(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0)
}

fn start_operator(env: &TestEnv, ns: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["operator", "--namespace", ns, "--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("acp operator starts")
}

async fn wait_healthy(port: u16) {
    wait_until("operator metrics", Duration::from_secs(60), async || {
        Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{port}/healthz")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
}

fn api_requests(port: u16) -> u64 {
    acp_testenv::bench::metric(port, "acp_operator_api_requests_total", "") as u64
}

#[tokio::main]
async fn main() {
    let n = env_usize("ACP_BENCH_SESSIONS", 1000);
    let cached = env_usize("ACP_BENCH_CACHED", 10_000);
    let env = TestEnv::control_plane_only();
    let tmp = tempfile::tempdir().expect("tempdir");

    // Baseline: the same N Jobs, applied directly.
    let base = env.namespace("bench-base").await;
    env.install_crds(&base.client).await;
    let mut jobs = String::new();
    for i in 0..n {
        let mut session = AgenticSession::new(&format!("s-{i:05}"), Default::default());
        session.metadata.namespace = Some(base.name.clone());
        session.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
        let mut j = job(&session, 1, &ChildConfig::default(), &["ANTHROPIC_API_KEY".into()], None);
        j.metadata.owner_references = None;
        let _ = writeln!(jobs, "---\n{}", serde_json::to_string(&j).expect("json"));
    }
    let jobs_file = tmp.path().join("jobs.yaml");
    std::fs::write(&jobs_file, jobs).expect("write");
    let started = Instant::now();
    kubectl_apply(env, &base.name, &jobs_file);
    wait_until("baseline jobs", Duration::from_secs(600), async || count_jobs(&base).await >= n).await;
    let baseline = started.elapsed();

    // The floor: exactly the objects the operator writes (Secret, PVC, Job), applied directly.
    let floor_ns = env.namespace("bench-floor").await;
    env.install_crds(&floor_ns.client).await;
    let mut children = String::new();
    for i in 0..n {
        let mut session = AgenticSession::new(&format!("s-{i:05}"), Default::default());
        session.metadata.namespace = Some(floor_ns.name.clone());
        let data = std::collections::BTreeMap::from([(
            "ANTHROPIC_API_KEY".to_owned(),
            k8s_openapi::ByteString(b"sk-bench".to_vec()),
        )]);
        let objects = [
            serde_json::to_value(acp_operator::children::secret(&session, data)).expect("json"),
            serde_json::to_value(acp_operator::children::pvc(&session, &ChildConfig::default()))
                .expect("json"),
            serde_json::to_value(job(
                &session,
                1,
                &ChildConfig::default(),
                &["ANTHROPIC_API_KEY".into()],
                None,
            ))
            .expect("json"),
        ];
        for mut object in objects {
            // No owner: the sessions do not exist in this namespace.
            object["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
            let _ = writeln!(children, "---\n{object}");
        }
    }
    let children_file = tmp.path().join("children.yaml");
    std::fs::write(&children_file, children).expect("write");
    let started = Instant::now();
    kubectl_apply(env, &floor_ns.name, &children_file);
    wait_until("floor jobs", Duration::from_secs(600), async || count_jobs(&floor_ns).await >= n).await;
    let floor = started.elapsed();

    // The operator, end to end: running while N sessions are applied at once
    // (the clock includes kubectl applying the sessions).
    let runner_secret: Secret = serde_json::from_value(json!({"metadata": {"name": "ambient-runner-secrets"}, "stringData": {"ANTHROPIC_API_KEY": "sk-bench"}})).expect("secret");
    let ns = env.namespace("bench-op").await;
    ns.api::<Secret>().create(&PostParams::default(), &runner_secret).await.expect("secret");
    let sessions_file = tmp.path().join("sessions.yaml");
    std::fs::write(
        &sessions_file,
        (0..n).map(|i| session_doc(&format!("s-{i:05}"), false)).collect::<String>(),
    )
    .expect("write");
    let port = free_port();
    let mut operator = start_operator(env, &ns.name, port);
    wait_healthy(port).await;
    let started = Instant::now();
    kubectl_apply(env, &ns.name, &sessions_file);
    wait_until("operator jobs", Duration::from_secs(900), async || count_jobs(&ns).await >= n).await;
    let end_to_end = started.elapsed();
    let _ = operator.kill();
    let _ = operator.wait();

    // The operator alone: N sessions already applied, the clock starts with
    // the operator (start-up and cache sync included) and stops at N Jobs.
    let ns = env.namespace("bench-op-warm").await;
    ns.api::<Secret>().create(&PostParams::default(), &runner_secret).await.expect("secret");
    kubectl_apply(env, &ns.name, &sessions_file);
    let server: Vec<u32> = ["kube-apiserver", "etcd"]
        .iter()
        .flat_map(|name| acp_testenv::bench::pids_named(name, "-bench/"))
        .collect();
    let server_cpu = || server.iter().map(|&p| acp_testenv::bench::cpu_seconds(p)).sum::<f64>();
    let port = free_port();
    let server_before = server_cpu();
    let started = Instant::now();
    let mut operator = start_operator(env, &ns.name, port);
    wait_until("operator jobs", Duration::from_secs(900), async || count_jobs(&ns).await >= n).await;
    let with_operator = started.elapsed();
    let requests = api_requests(port);
    let operator_cpu = acp_testenv::bench::cpu_seconds(operator.id());
    let server_used = server_cpu() - server_before;
    let peak = status_kib(operator.id(), "VmHWM");
    let _ = operator.kill();
    let _ = operator.wait();

    // RSS with M sessions cached (held Stopped: no Jobs).
    let big = env.namespace("bench-cache").await;
    let cached_file = tmp.path().join("cached.yaml");
    std::fs::write(
        &cached_file,
        (0..cached).map(|i| session_doc(&format!("c-{i:05}"), true)).collect::<String>(),
    )
    .expect("write");
    kubectl_apply(env, &big.name, &cached_file);
    let port = free_port();
    let mut operator = start_operator(env, &big.name, port);
    let sessions: Api<AgenticSession> = big.api();
    let settle = wait_until("cached sessions to settle", Duration::from_secs(1200), async || {
        let list = sessions.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.iter().filter(|s| s.status.as_ref().is_some_and(|st| st.phase.is_some())).count() >= cached
    })
    .await;
    let rss = status_kib(operator.id(), "VmRSS");
    let peak_cached = status_kib(operator.id(), "VmHWM");
    let _ = operator.kill();
    let _ = operator.wait();

    println!("operator_scale: sessions={n} cached={cached}");
    println!("  baseline kubectl apply --server-side of {n} Jobs: {:.1} s", baseline.as_secs_f64());
    println!(
        "  {n} sessions (already applied) -> {n} Jobs, operator start-up included: {:.1} s",
        with_operator.as_secs_f64()
    );
    println!("  ratio operator/baseline: {:.2}", with_operator.as_secs_f64() / baseline.as_secs_f64());
    println!(
        "  end to end (operator running while kubectl applies the {n} sessions): {:.1} s",
        end_to_end.as_secs_f64()
    );
    println!(
        "  CPU while the operator worked: operator {operator_cpu:.1} s, kube-apiserver + etcd {server_used:.1} s ({} processes) in {:.1} s of 2 cores",
        server.len(),
        with_operator.as_secs_f64()
    );
    println!(
        "  floor: kubectl apply --server-side of the {} Secrets, PVCs and Jobs the operator writes: {:.1} s (operator/floor {:.2})",
        n,
        floor.as_secs_f64(),
        with_operator.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  operator API requests, start-up watches included: {requests} ({:.1} per session)",
        requests as f64 / n as f64
    );
    println!("  operator peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    println!(
        "  {cached} sessions cached: settled in {:.1} s, RSS {:.1} MiB (peak {:.1} MiB)",
        settle.as_secs_f64(),
        rss as f64 / 1024.0,
        peak_cached as f64 / 1024.0
    );
}
