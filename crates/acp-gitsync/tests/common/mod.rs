//! Shared fixtures of the git-sync tests: a working clone of a bare repository
//! (real git), a SessionSource in a fresh namespace, git-sync running in
//! process, and waits on the source's status.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use acp_api::SessionSource;
use acp_api::constants::annotations;
use acp_api::source::SessionSourceStatus;
use acp_testenv::githttp::git;
use acp_testenv::{TestEnv, TestNamespace, eventually};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

/// A bare repository and a working clone to commit into.
pub struct Repo {
    pub bare: PathBuf,
    pub work: PathBuf,
    _dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = dir.path().join("repo.git");
        let work = dir.path().join("work");
        git(dir.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
        git(dir.path(), &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
        git(&work, &["remote", "add", "origin", bare.to_str().expect("utf-8")]);
        Self { bare, work, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    pub fn write(&self, path: &str, content: &str) {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.work.join(path)).expect("remove");
    }

    /// Commits everything and pushes `main`; returns the commit.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.invalid",
                "commit",
                "-qm",
                message,
                "--allow-empty",
            ],
        );
        git(&self.work, &["push", "-q", "-f", "origin", "HEAD:main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }

    pub fn path(&self) -> &Path {
        &self.work
    }
}

pub fn session(name: &str, prompt: &str) -> String {
    format!(
        "apiVersion: vteam.ambient-code/v1alpha1\nkind: AgenticSession\nmetadata:\n  name: {name}\nspec:\n  initialPrompt: {prompt}\n  repos:\n    - url: https://github.com/acme/app\n"
    )
}

/// A namespace with CRDs and git-sync running for it.
pub struct Fixture {
    pub ns: TestNamespace,
    pub repo: Repo,
    pub metrics: Arc<acp_gitsync::metrics::Metrics>,
    cache: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    pub async fn start(prefix: &str) -> Self {
        Self::start_in(TestEnv::get(), prefix).await
    }

    /// [`Fixture::start`] on `env` (the control plane alone, for scale tests).
    pub async fn start_in(env: &'static TestEnv, prefix: &str) -> Self {
        let ns = env.namespace(prefix).await;
        env.install_crds(&ns.client).await;
        let cache = tempfile::tempdir().expect("tempdir");
        let config = acp_gitsync::controller::Config {
            namespace: Some(ns.name.clone()),
            cache_dir: cache.path().to_path_buf(),
            checker: Arc::new(acp_policy::Checker::with_embedded_policies().expect("policies")),
            metrics: Arc::default(),
            shard: Default::default(),
        };
        let metrics = config.metrics.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = ns.client.clone();
        let kube_config = env.config().await;
        let task = tokio::spawn(async move {
            acp_gitsync::controller::run(client, kube_config, config, async move {
                let _ = stopped.await;
            })
            .await;
        });
        Self { ns, repo: Repo::new(), metrics, cache, stop: Some(stop), task: Some(task) }
    }

    pub fn sources(&self) -> Api<SessionSource> {
        self.ns.api()
    }

    pub fn sessions(&self) -> Api<DynamicObject> {
        acp_gitsync::apply::sessions(self.ns.client.clone(), &self.ns.name)
    }

    /// Creates SessionSource `name` for the fixture's repository, with `extra` spec fields.
    pub async fn source(&self, name: &str, extra: Value) {
        let mut spec = json!({"url": self.repo.url(), "interval": "1h", "prune": true});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let object = json!({"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource", "metadata": {"name": name}, "spec": spec});
        self.sources()
            .patch(name, &PatchParams::apply("test"), &Patch::Apply(&object))
            .await
            .expect("source applied");
    }

    /// Asks for an immediate sync, as the webhook does.
    pub async fn trigger(&self, name: &str, token: &str) {
        let patch = json!({"metadata": {"annotations": {annotations::RECONCILE_REQUESTED_AT: token}}});
        self.sources().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("trigger");
    }

    /// Waits until `check` holds for the source's status.
    pub async fn wait_status<T>(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&SessionSourceStatus) -> Option<T>,
    ) -> T {
        self.wait_status_within(name, what, Duration::from_secs(60), check).await
    }

    /// [`Fixture::wait_status`] with a deadline of `timeout`.
    pub async fn wait_status_within<T>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&SessionSourceStatus) -> Option<T>,
    ) -> T {
        let api = self.sources();
        eventually(what, timeout, || {
            let api = api.clone();
            let check = &check;
            async move { api.get(name).await.ok().and_then(|s| s.status).and_then(|s| check(&s)) }
        })
        .await
    }

    /// Waits until the source has synced `revision` for trigger `token`.
    pub async fn synced(&self, name: &str, revision: &str, token: Option<&str>) -> SessionSourceStatus {
        self.wait_status(name, &format!("sync of {revision}"), |s| {
            let handled = token.is_none_or(|t| s.last_handled_reconcile_at.as_deref() == Some(t));
            (s.last_attempted_revision.as_deref() == Some(revision) && handled).then(|| s.clone())
        })
        .await
    }

    /// The namespace's sessions, sorted by name.
    pub async fn listed(&self) -> Vec<DynamicObject> {
        let mut items = self.sessions().list(&Default::default()).await.expect("list").items;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        items
    }

    pub async fn names(&self) -> Vec<String> {
        self.listed().await.into_iter().filter_map(|o| o.metadata.name).collect()
    }

    pub async fn resource_versions(&self) -> Vec<Option<String>> {
        self.listed().await.into_iter().map(|o| o.metadata.resource_version).collect()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        drop(self.cache);
    }
}
