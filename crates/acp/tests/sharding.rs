//! Sharding for real: three operator shards and three git-sync shards, each
//! an `acp` process under leader election, on the real control plane
//! (kube-apiserver, etcd, kube-controller-manager; no node, so runs are Jobs
//! whose pods never start; a Job's existence is a session's progress). The
//! shards are `--shard-unlabelled`, `--shard 1` and `--shard 2`; each
//! operator shard names its runner image after itself, so a Job says which
//! shard created it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acp_api::constants::{annotations, labels};
use acp_api::{AgenticSession, SessionSource};
use acp_testenv::githttp::git;
use acp_testenv::{TestEnv, TestNamespace, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);
/// The shards: their flag, and the key their objects carry.
const SHARDS: [(&str, Option<&str>); 3] = [("unlabelled", None), ("1", Some("1")), ("2", Some("2"))];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// The controller processes; killed when dropped.
struct Shards {
    env: &'static TestEnv,
    ns: String,
    dir: tempfile::TempDir,
    running: BTreeMap<(String, String), Child>,
}

impl Drop for Shards {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    eprintln!(
                        "--- {}:\n{}",
                        entry.path().display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
    }
}

impl Shards {
    /// Starts `component` (`operator` or `git-sync`) of shard `shard`.
    fn start(&mut self, component: &str, shard: &str) {
        let log =
            std::fs::File::create(self.dir.path().join(format!("{component}-{shard}.log"))).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acp"));
        cmd.args([
            component,
            "--namespace",
            &self.ns,
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
        ]);
        match component {
            "operator" => cmd.args(["--runner-image", &format!("shard-{shard}:test")]).args([
                "--workspace",
                "emptydir",
                "--runner-egress",
                "off",
            ]),
            _ => cmd
                .args(["--webhook-addr", &format!("127.0.0.1:{}", free_port())])
                .arg("--cache-dir")
                .arg(self.dir.path().join(format!("cache-{shard}"))),
        };
        match shard {
            "unlabelled" => cmd.arg("--shard-unlabelled"),
            key => cmd.args(["--shard", key]),
        };
        let child = cmd
            .args([
                "--leader-elect",
                "--leader-election-namespace",
                &self.ns,
                "--lease-duration-seconds",
                "3",
            ])
            .env("KUBECONFIG", self.env.kubeconfig())
            .env("POD_NAME", format!("{component}-{shard}"))
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("acp starts");
        self.running.insert((component.to_owned(), shard.to_owned()), child);
    }

    /// SIGKILLs `component` of shard `shard`.
    fn kill(&mut self, component: &str, shard: &str) {
        if let Some(mut child) = self.running.remove(&(component.to_owned(), shard.to_owned())) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn session(name: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: shard me\n  repos:\n  - url: https://github.com/acme/app.git\n"
    )
}

fn commit(work: &Path, files: &[String]) -> String {
    for path in files {
        let name = Path::new(path).file_stem().and_then(|s| s.to_str()).expect("name");
        std::fs::create_dir_all(work.join(path).parent().expect("parent")).expect("mkdir");
        std::fs::write(work.join(path), session(name)).expect("write");
    }
    git(work, &["add", "-A"]);
    git(work, &["-c", "user.name=D", "-c", "user.email=d@example.invalid", "commit", "-qm", "sessions"]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"]).trim().to_owned()
}

/// The image of each session's Jobs, by session.
async fn job_images(ns: &TestNamespace) -> BTreeMap<String, Vec<String>> {
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in ns.api::<Job>().list(&ListParams::default()).await.expect("jobs").items {
        let session =
            job.metadata.labels.unwrap_or_default().get(labels::SESSION).cloned().unwrap_or_default();
        let image = job
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers.into_iter().find(|c| c.name == "runner"))
            .and_then(|c| c.image)
            .unwrap_or_default();
        images.entry(session).or_default().push(image);
    }
    images
}

/// Waits until each of `sessions` (name, shard) has exactly one Job, made by its shard.
async fn handled_by_their_shards(ns: &TestNamespace, sessions: &[(String, &str)]) {
    let want: BTreeMap<String, Vec<String>> =
        sessions.iter().map(|(name, shard)| (name.clone(), vec![format!("shard-{shard}:test")])).collect();
    eventually("each session's Job, from its own shard", WAIT, || {
        let want = &want;
        async move {
            let images = job_images(ns).await;
            want.iter().all(|(name, image)| images.get(name) == Some(image)).then_some(())
        }
    })
    .await;
}

async fn request_sync(ns: &TestNamespace, token: &str) {
    let patch = json!({"metadata": {"annotations": {annotations::RECONCILE_REQUESTED_AT: token}}});
    let sources = ns.api::<SessionSource>();
    for (shard, _) in SHARDS {
        sources
            .patch(&format!("src-{shard}"), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("sync");
    }
}

async fn applied_revision(ns: &TestNamespace, shard: &str) -> Option<String> {
    let source = ns.api::<SessionSource>().get(&format!("src-{shard}")).await.expect("source");
    source.status.and_then(|s| s.last_applied_revision)
}

async fn create_direct(ns: &TestNamespace, name: &str, key: &str) {
    let session: AgenticSession = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"name": name, "labels": {labels::SHARD: key}},
        "spec": {"initialPrompt": "direct", "repos": [{"url": "https://github.com/acme/app.git"}]},
    }))
    .expect("session");
    ns.api::<AgenticSession>().create(&PostParams::default(), &session).await.expect("create");
}

#[tokio::test]
async fn each_session_is_run_by_its_own_shard_and_a_dead_shard_stops_only_its_own() {
    let env = TestEnv::control_plane_only();
    let ns = env.namespace("shards").await;
    env.install_crds(&ns.client).await;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "ambient-runner-secrets"}, "stringData": {"ANTHROPIC_API_KEY": "sk-shard"}}),
    )
    .expect("secret");
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.expect("secret");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, work) = (dir.path().join("repo.git"), dir.path().join("work"));
    git(dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
    git(dir.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
    git(&work, &["remote", "add", "origin", bare.to_str().expect("utf-8")]);
    let files: Vec<String> =
        SHARDS.iter().flat_map(|(s, _)| ["a", "b"].map(|n| format!("sessions/{s}/s{s}-{n}.yaml"))).collect();
    let first = commit(&work, &files);

    // One source per shard, each labelled with its shard's key (none for the unlabelled shard).
    for (shard, key) in SHARDS {
        let mut source = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
            "metadata": {"name": format!("src-{shard}")},
            "spec": {"url": format!("file://{}", bare.display()), "path": format!("sessions/{shard}"), "interval": "1h", "prune": true}});
        if let Some(key) = key {
            source["metadata"]["labels"] = json!({labels::SHARD: key});
        }
        ns.api::<SessionSource>()
            .patch(&format!("src-{shard}"), &PatchParams::apply("test"), &Patch::Apply(&source))
            .await
            .expect("source");
    }
    let mut shards = Shards { env, ns: ns.name.clone(), dir, running: BTreeMap::new() };
    for (shard, _) in SHARDS {
        shards.start("git-sync", shard);
        shards.start("operator", shard);
    }

    let expected: Vec<(String, &str)> =
        SHARDS.iter().flat_map(|(s, _)| ["a", "b"].map(|n| (format!("s{s}-{n}"), *s))).collect();
    handled_by_their_shards(&ns, &expected).await;
    for (shard, key) in SHARDS {
        assert_eq!(applied_revision(&ns, shard).await.as_deref(), Some(first.as_str()), "src-{shard} synced");
        let session = ns.api::<AgenticSession>().get(&format!("s{shard}-a")).await.expect("session");
        assert_eq!(
            session.metadata.labels.unwrap_or_default().get(labels::SHARD).map(String::as_str),
            key,
            "git-sync stamps the source's shard on what it applies"
        );
    }
    let leases: Vec<String> = ns
        .api::<Lease>()
        .list(&ListParams::default())
        .await
        .expect("leases")
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    for (shard, _) in SHARDS {
        for component in ["acp-operator", "acp-git-sync"] {
            let lease = format!("{component}-shard-{shard}");
            assert!(leases.contains(&lease), "{lease} is held: {leases:?}");
        }
    }

    // Shard 1 dies, git-sync and operator alike: the other shards go on.
    shards.kill("git-sync", "1");
    shards.kill("operator", "1");
    let added: Vec<String> = SHARDS.iter().map(|(s, _)| format!("sessions/{s}/s{s}-c.yaml")).collect();
    let second = commit(&work, &added);
    request_sync(&ns, "after-the-kill").await;
    create_direct(&ns, "direct-1", "1").await;
    create_direct(&ns, "direct-2", "2").await;
    let progressed: Vec<(String, &str)> =
        vec![("sunlabelled-c".into(), "unlabelled"), ("s2-c".into(), "2"), ("direct-2".into(), "2")];
    handled_by_their_shards(&ns, &progressed).await;
    for shard in ["unlabelled", "2"] {
        eventually("the live shards' sources at the new commit", WAIT, || {
            let (ns, second) = (&ns, &second);
            async move { (applied_revision(ns, shard).await.as_deref() == Some(second.as_str())).then_some(()) }
        })
        .await;
    }
    // What the live shards did by now, shard 1 would have done too.
    assert_eq!(
        applied_revision(&ns, "1").await.as_deref(),
        Some(first.as_str()),
        "src-1 waits for its shard"
    );
    assert!(ns.api::<AgenticSession>().get_opt("s1-c").await.expect("get").is_none(), "s1-c is not applied");
    let images = job_images(&ns).await;
    assert!(!images.contains_key("direct-1"), "no other shard ran shard 1's session: {images:?}");

    // Shard 1 returns and catches up.
    shards.start("git-sync", "1");
    shards.start("operator", "1");
    let caught_up: Vec<(String, &str)> = vec![("s1-c".into(), "1"), ("direct-1".into(), "1")];
    handled_by_their_shards(&ns, &caught_up).await;
    let mut all = expected;
    all.extend(progressed);
    all.extend(caught_up);
    handled_by_their_shards(&ns, &all).await;
    assert_eq!(job_images(&ns).await.len(), all.len(), "one Job per session, none for anything else");

    // A source moves from shard 2 to shard 1: its sessions follow, and their
    // runs (recorded, still waiting for a node) are adopted, not lost or rerun.
    let moved = json!({"metadata": {"labels": {labels::SHARD: "1"}}});
    ns.api::<SessionSource>()
        .patch("src-2", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect("move");
    request_sync(&ns, "after-the-move").await;
    eventually("src-2's runs relabelled into shard 1", WAIT, || {
        let ns = &ns;
        async move {
            let jobs =
                ns.api::<Job>().list(&ListParams::default().labels(&format!("{}=1", labels::SHARD))).await;
            let names: Vec<String> =
                jobs.expect("jobs").items.into_iter().filter_map(|j| j.metadata.name).collect();
            ["s2-a-1", "s2-b-1", "s2-c-1"].iter().all(|n| names.contains(&(*n).to_owned())).then_some(())
        }
    })
    .await;
    for name in ["s2-a", "s2-b", "s2-c"] {
        let session = ns.api::<AgenticSession>().get(name).await.expect("session");
        let status = session.status.expect("status");
        assert_eq!(status.run, Some(1), "{name} is not run again");
        assert_ne!(
            status.phase,
            Some(acp_api::SessionPhase::Failed),
            "{name} is not lost: {:?}",
            status.message
        );
    }
    assert_eq!(job_images(&ns).await.len(), all.len(), "no Job was created for the move");
}
