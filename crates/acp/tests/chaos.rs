//! Chaos for every controller, every part real: `acp git-sync`, `acp
//! operator` (Jobs on the real node, the runner image, the real Claude Code
//! CLI against a scripted model) and `acp statusbot` run as processes under
//! leader election, on the real control plane, with real git and a fake
//! GitHub (playing GitHub, unreachable here, and recording every request).
//!
//! 50 sessions in two SessionSources come in by two pull requests: the first
//! adds 35; the second adds 15, changes 4 (a second run), stops 4 (running)
//! and deletes 3. Meanwhile a seeded monkey SIGKILLs replicas, rolls them
//! (a second replica starts, then the first stops) and arms failpoints that
//! kill a process between two steps that must survive it: a Job created and
//! not yet recorded, a comment created and its id not yet saved, a status
//! posted and not yet saved, a write-back pushed and not yet saved, objects
//! applied and the inventory not yet written.
//!
//! At the end: exactly one Job per recorded run (each Job name seen with one
//! UID), no run nobody asked for, one bot comment per session per pull
//! request, no commit status repeated, one write-back commit per final state,
//! every final phase right. The seed is printed; `ACP_CHAOS_SEED=N` replays
//! one (the benchmark script loops over ten).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acp_api::session::SessionPhase;
use common::{BOT, Component, Executor, MODEL, REPO, Stack};
use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt as _;
use kube::runtime::{WatchStreamExt as _, watcher};

const FAILPOINTS: &str = "operator.job-created=0.15,operator.status-written=0.03,statusbot.comment-created=0.15,\
statusbot.status-set=0.05,statusbot.written-back=0.1,gitsync.applied=0.25";
const CHANGED: [usize; 4] = [1, 2, 26, 27];
const STOPPED: [usize; 4] = [5, 10, 15, 30];
const DELETED: [usize; 3] = [3, 4, 29];
const WAVE_1: std::ops::Range<usize> = 0..35;
const WAVE_2: std::ops::Range<usize> = 35..50;
const WAVE_DEADLINE: Duration = Duration::from_secs(480);

fn seed() -> u64 {
    std::env::var("ACP_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_130)
}

/// xorshift64, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn name(i: usize) -> String {
    format!("s-{i:02}")
}

fn path(i: usize) -> String {
    format!("{}/{}.yaml", if i < 25 { "team-a" } else { "team-b" }, name(i))
}

fn fails(i: usize) -> bool {
    i.is_multiple_of(7)
}

fn manifest(i: usize, version: u32, stopped: bool) -> String {
    let annotations =
        if stopped { "  annotations:\n    ambient-code.io/desired-phase: Stopped\n" } else { "" };
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {}\n{annotations}spec:\n  initialPrompt: \"chaos {} v{version}\"\n  llmSettings:\n    model: {MODEL}\n  timeout: 600\n",
        name(i),
        name(i)
    )
}

/// The model: sessions to be stopped never get an answer; every seventh
/// fails; the rest answer naming their session and version.
fn respond(body: &serde_json::Value) -> acp_testenv::model::Step {
    use acp_testenv::model::Step;
    let text = body.to_string();
    let Some(at) = text.find("chaos s-") else { return Step::text("(not a chaos task)") };
    let tail = &text[at + 6..];
    let i: usize = tail.get(2..4).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
    let version = tail.get(6..7).unwrap_or("1");
    if STOPPED.contains(&i) {
        Step::Hang
    } else if fails(i) {
        Step::error(400, "invalid_request_error", &format!("scripted failure {}", name(i)))
    } else {
        Step::text(format!("done {} v{version}", name(i)))
    }
}

/// What session `i` must end as after wave 2: `None` when deleted.
fn expected(i: usize) -> Option<(SessionPhase, i64)> {
    if DELETED.contains(&i) {
        None
    } else if STOPPED.contains(&i) {
        Some((SessionPhase::Stopped, 1))
    } else if CHANGED.contains(&i) {
        Some((SessionPhase::Completed, 2))
    } else if fails(i) {
        Some((SessionPhase::Failed, 1))
    } else {
        Some((SessionPhase::Completed, 1))
    }
}

fn commit_state(phase: SessionPhase) -> &'static str {
    match phase {
        SessionPhase::Completed => "success",
        SessionPhase::Failed => "failure",
        SessionPhase::Stopped => "error",
        _ => "pending",
    }
}

/// Per session: the phase and run it must show, and the commit (and pull
/// request) it must be reported on.
type Goal = BTreeMap<String, Option<(SessionPhase, i64, String, u64)>>;

/// `Ok` once every session of `goal` is as it says, and the status bot has
/// reported each: final commit status, a comment with the final phase on its
/// pull request, the final state written back; else what is missing.
async fn reached(stack: &Stack, goal: &Goal) -> Result<(), String> {
    let list = stack.sessions().list(&Default::default()).await.map_err(|e| e.to_string())?;
    let live: BTreeMap<String, &acp_api::AgenticSession> =
        list.items.iter().map(|s| (s.name_any(), s)).collect();
    let statuses = stack.github.statuses();
    for (name, want) in goal {
        let Some((phase, run, sha, pull)) = want else {
            if live.contains_key(name) {
                return Err(format!("{name} still exists"));
            }
            continue;
        };
        let Some(session) = live.get(name) else { return Err(format!("{name} does not exist")) };
        let status = session.status.clone().unwrap_or_default();
        if status.phase != Some(*phase) || status.run != Some(*run) {
            return Err(format!("{name} is {:?} run {:?}, not {phase} run {run}", status.phase, status.run));
        }
        if phase.is_terminal() {
            let context = format!("acp/{name}");
            let last = statuses.iter().rev().find(|s| s.sha == *sha && s.context == context);
            if last.map(|s| s.state.as_str()) != Some(commit_state(*phase)) {
                return Err(format!("{name}: latest status on {sha} is {last:?}"));
            }
            let marker = format!("<!-- acp:session {}/{name} -->", stack.ns.name);
            let headline = format!("**Phase:** {phase} (run {run})");
            if !stack
                .github
                .comments(REPO, *pull)
                .iter()
                .any(|c| c.body.contains(&marker) && c.body.contains(&headline))
            {
                return Err(format!("{name}: no comment saying {headline:?} on #{pull}"));
            }
            let file =
                stack.show(&format!("acp/status:status/{}/{name}.yaml", stack.ns.name)).unwrap_or_default();
            if !file.contains(&format!("phase: {phase}")) || !file.contains(&format!("run: {run}")) {
                return Err(format!("{name}: written back as {file:?}"));
            }
        }
    }
    Ok(())
}

/// The monkey's record.
#[derive(Default, Debug)]
struct Chaos {
    kills: u32,
    rollouts: u32,
    exits: Vec<(Component, String, Option<i32>)>,
    started: u32,
}

const COMPONENTS: [Component; 3] = [Component::GitSync, Component::Operator, Component::StatusBot];

fn start(stack: &mut Stack, chaos: &mut Chaos, rng: &mut Rng, component: Component) -> String {
    chaos.started += 1;
    let replica = format!("{}-{}", component.name(), chaos.started);
    stack.start_with(component, &replica, Some((FAILPOINTS, rng.next())));
    replica
}

/// Runs the monkey until `goal` is reached (or the deadline passes).
async fn chaos_until(stack: &mut Stack, chaos: &mut Chaos, rng: &mut Rng, goal: &Goal, what: &str) {
    let started = tokio::time::Instant::now();
    let deadline = started + WAVE_DEADLINE;
    let mut said = started;
    loop {
        // Whatever died by itself (a failpoint) is replaced.
        for exit in stack.reap() {
            chaos.exits.push(exit);
        }
        for component in COMPONENTS {
            if stack.replicas(component).is_empty() {
                start(stack, chaos, rng, component);
            }
        }
        let missing = match reached(stack, goal).await {
            Ok(()) => {
                eprintln!("chaos: {what} reached after {:?}", started.elapsed());
                return;
            }
            Err(missing) => missing,
        };
        if said.elapsed() > Duration::from_secs(20) {
            eprintln!("chaos: {what} after {:?}: {missing}", started.elapsed());
            said = tokio::time::Instant::now();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {missing}\n{}",
            stack.logs()
        );
        // The monkey's pace: a pseudo-random 0.5–2.5 s between acts.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2000))).await;
        let component = COMPONENTS[usize::try_from(rng.below(3)).unwrap_or(0)];
        let Some(old) = stack.replicas(component).first().cloned() else { continue };
        match rng.below(10) {
            0..=1 => {
                stack.kill(component, &old);
                chaos.kills += 1;
                start(stack, chaos, rng, component);
            }
            2 => {
                // A rollout: the new replica starts, both run for a
                // pseudo-random overlap, then the old one stops.
                start(stack, chaos, rng, component);
                tokio::time::sleep(Duration::from_millis(300 + rng.below(2000))).await;
                stack.terminate(component, &old).await;
                chaos.rollouts += 1;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_controller_crashing_and_rolling_loses_nothing_and_duplicates_nothing() {
    let seed = seed();
    eprintln!("chaos seed {seed} (replay with ACP_CHAOS_SEED={seed})");
    let mut rng = Rng(seed.max(1));
    let mut chaos = Chaos::default();
    let mut stack = Stack::with_executor("chaos-all", Arc::new(respond), Executor::Job).await;
    stack.leader_elect = true;

    // Every Job ever created, by name, with the UIDs seen under that name.
    let jobs: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
    let seen = jobs.clone();
    let watch = tokio::spawn(
        watcher(stack.ns.api::<Job>(), watcher::Config::default()).applied_objects().for_each(move |job| {
            if let Ok(job) = job
                && let Ok(mut seen) = seen.lock()
            {
                seen.entry(job.name_any()).or_default().insert(job.uid().unwrap_or_default());
            }
            async {}
        }),
    );

    let wave1: Vec<(String, Option<String>)> =
        WAVE_1.map(|i| (path(i), Some(manifest(i, 1, false)))).collect();
    let files: Vec<(&str, Option<&str>)> = wave1.iter().map(|(p, m)| (p.as_str(), m.as_deref())).collect();
    let c1 = stack.commit(&files, "Add 35 chaos sessions (#1)");
    stack.github.link(REPO, &c1, 1);
    for component in COMPONENTS {
        start(&mut stack, &mut chaos, &mut rng, component);
    }
    stack.create_source_named("team-a", "team-a").await;
    stack.create_source_named("team-b", "team-b").await;

    // Wave 1 settles: every session final (the ones to be stopped running),
    // and reported.
    let goal1: Goal = WAVE_1
        .map(|i| {
            let want = if STOPPED.contains(&i) {
                (SessionPhase::Running, 1, c1.clone(), 1)
            } else if fails(i) {
                (SessionPhase::Failed, 1, c1.clone(), 1)
            } else {
                (SessionPhase::Completed, 1, c1.clone(), 1)
            };
            (name(i), Some(want))
        })
        .collect();
    chaos_until(&mut stack, &mut chaos, &mut rng, &goal1, "wave 1").await;

    // A rollout of each controller, whatever the monkey picked: a second
    // replica starts, both run for a pseudo-random overlap (the chaos, not a
    // synchronisation), then the first stops.
    for component in COMPONENTS {
        let old = stack.replicas(component);
        start(&mut stack, &mut chaos, &mut rng, component);
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1500))).await;
        for replica in old {
            stack.terminate(component, &replica).await;
        }
        chaos.rollouts += 1;
    }

    // Wave 2: 15 new, 4 changed, 4 stopped, 3 deleted.
    let mut wave2: Vec<(String, Option<String>)> =
        WAVE_2.map(|i| (path(i), Some(manifest(i, 1, false)))).collect();
    wave2.extend(CHANGED.iter().map(|&i| (path(i), Some(manifest(i, 2, false)))));
    wave2.extend(STOPPED.iter().map(|&i| (path(i), Some(manifest(i, 1, true)))));
    wave2.extend(DELETED.iter().map(|&i| (path(i), None)));
    let files: Vec<(&str, Option<&str>)> = wave2.iter().map(|(p, m)| (p.as_str(), m.as_deref())).collect();
    let c2 = stack.commit(&files, "Change the chaos sessions (#2)");
    stack.github.link(REPO, &c2, 2);
    stack.sync().await;
    let touched: BTreeSet<usize> = WAVE_2.chain(CHANGED).chain(STOPPED).collect();
    let goal2: Goal = (0..50)
        .map(|i| {
            let (sha, pull) = if touched.contains(&i) { (c2.clone(), 2) } else { (c1.clone(), 1) };
            (name(i), expected(i).map(|(phase, run)| (phase, run, sha, pull)))
        })
        .collect();
    chaos_until(&mut stack, &mut chaos, &mut rng, &goal2, "wave 2").await;
    for exit in stack.reap() {
        chaos.exits.push(exit);
    }
    watch.abort();
    let logs = stack.log_text();
    let fired = |point: &str| logs.matches(&format!("failpoint {point} fired")).count();
    eprintln!(
        "chaos seed {seed}: {} processes started, {} SIGKILLed, {} rolled, failpoints fired: {:?}",
        chaos.started,
        chaos.kills,
        chaos.rollouts,
        FAILPOINTS
            .split(',')
            .filter_map(|p| p.split_once('=').map(|(n, _)| (n, fired(n))))
            .collect::<Vec<_>>()
    );

    // Exactly one Job per recorded run, and no run nobody asked for.
    let jobs = jobs.lock().expect("jobs").clone();
    let mut want_jobs = BTreeSet::new();
    for i in 0..50 {
        let runs = if CHANGED.contains(&i) { 2 } else { 1 };
        for run in 1..=runs {
            want_jobs.insert(format!("{}-{run}", name(i)));
        }
    }
    let names: BTreeSet<String> = jobs.keys().cloned().collect();
    assert_eq!(names, want_jobs, "the Jobs created are exactly the recorded runs");
    let recreated: Vec<_> = jobs.iter().filter(|(_, uids)| uids.len() != 1).collect();
    assert!(recreated.is_empty(), "Jobs created twice under one name: {recreated:?}");

    // One comment per session per pull request, all the bot's.
    let comments = stack.github.all_comments();
    assert!(comments.iter().all(|c| c.user == BOT), "only the bot comments");
    let mut per: BTreeMap<(u64, String), u32> = BTreeMap::new();
    for comment in &comments {
        let marker = comment.body.split("-->").next().unwrap_or_default().to_owned();
        *per.entry((comment.pull, marker)).or_default() += 1;
    }
    let doubled: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sessions with two comments on one pull request: {doubled:?}");

    // One commit status per state change.
    let mut by_context: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for status in stack.github.statuses() {
        by_context.entry((status.sha, status.context)).or_default().push(status.state);
    }
    let repeated: Vec<_> = by_context.iter().filter(|(_, s)| s.windows(2).any(|w| w[0] == w[1])).collect();
    assert!(repeated.is_empty(), "a commit status posted twice in a row: {repeated:?}");

    // One write-back commit per distinct final state.
    for i in 0..50 {
        let file = format!("status/{}/{}.yaml", stack.ns.name, name(i));
        let log = stack.git_log("acp/status", &file);
        let want = if CHANGED.contains(&i) { 2 } else { 1 };
        assert_eq!(log.len(), want, "write-back commits of {}: {log:?}", name(i));
    }
    let failpoint_deaths = chaos.exits.iter().filter(|(_, _, code)| *code == Some(137)).count();
    assert!(fired("operator.job-created") > 0, "the Job-created failpoint never fired");
    assert!(fired("statusbot.comment-created") > 0, "the comment-created failpoint never fired");
    assert!(failpoint_deaths > 0, "{:?}", chaos.exits);
}
