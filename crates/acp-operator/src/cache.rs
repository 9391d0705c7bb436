//! The operator's watch caches: everything a reconcile reads besides the
//! session itself, so that a reconcile sends no GET or LIST and a child is
//! written only when it differs from what the cluster holds.
//!
//! - runner Jobs and their pods (label `app.kubernetes.io/managed-by=acp`),
//!   pods indexed by their Job's name;
//! - each namespace's shared runner secret (`ambient-runner-secrets`);
//! - the children the operator writes: session Secrets, workspace claims and
//!   the namespace's egress NetworkPolicy.
//!
//! Objects are slimmed on the way in: managed fields go, Job and pod specs go
//! (status and metadata say everything the state machine reads), a session
//! Secret's data is replaced by its digest, a claim keeps its metadata only.
//!
//! **Expectations.** A Job this process just created may not be in the cache
//! yet when the next reconcile of its session runs (the session's own status
//! write triggers one). Like kube-controller-manager's `ControllerExpectations`,
//! the created Job is remembered (until its deletion is seen, or a minute
//! passes; the store is always read first) and reads as created meanwhile,
//! so it is neither created twice nor taken for lost.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use acp_api::constants::{RUNNER_SECRETS, labels, runner_pod};
use acp_api::shard::Shard;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::{ByteString, NamespaceResourceScope};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

/// In the cache only (never sent): a session Secret's data digest.
const DATA_DIGEST: &str = "acp.internal/data-sha256";
/// How long a created Job reads as existing without the watch showing it.
const EXPECTATION_TTL: Duration = Duration::from_secs(60);
/// The Job controller's label on a Job's pods.
pub(crate) const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// A stream of changed objects that drives one cache (and triggers reconciles).
pub type Changes<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The streams that fill the caches; the controller polls them (as its
/// triggers), so the caches live exactly as long as the controller.
pub struct Streams {
    /// Runner Jobs.
    pub jobs: Changes<Job>,
    /// Runner pods.
    pub pods: Changes<Pod>,
    /// Namespaces' runner secrets.
    pub runner_secrets: Changes<Secret>,
    /// Session Secrets.
    pub session_secrets: Changes<Secret>,
    /// Workspace claims.
    pub claims: Changes<PersistentVolumeClaim>,
    /// Egress policies.
    pub egress: Changes<NetworkPolicy>,
}

/// Jobs this process created and the watch has not shown yet, with when.
type Expected = Arc<Mutex<HashMap<ObjectRef<Job>, Instant>>>;

/// The caches, shared by every reconcile.
pub struct Caches {
    jobs: Store<Job>,
    pods: Store<Pod>,
    pods_by_job: Arc<RwLock<JobPods>>,
    runner_secrets: Store<Secret>,
    session_secrets: Store<Secret>,
    claims: Store<PersistentVolumeClaim>,
    /// Only when the operator writes an egress policy.
    egress: Option<Store<NetworkPolicy>>,
    expected: Expected,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A reflected, slimmed watch of `api`: its store and its stream of changes.
/// `seen` sees each event before the store does.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    seen: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (Store<K>, Changes<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let changes = watcher(api, config)
        .default_backoff()
        .modify(move |object| {
            object.managed_fields_mut().clear();
            slim(object);
        })
        .inspect_ok(seen)
        .reflect(writer)
        .touched_objects()
        .boxed();
    (store, changes)
}

/// Runner Jobs, and what this process expects to see among them. A Job is
/// read from the store first; an expectation matters only until it is
/// there, and must not outlive its deletion.
fn watch_jobs(
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
) -> (Store<Job>, Changes<Job>, Expected) {
    let expected: Expected = Arc::default();
    let forget = expected.clone();
    let (jobs, changes) = reflect(
        api::<Job>(client, namespace),
        config,
        |job| job.spec = None,
        move |event| {
            if let (watcher::Event::Delete(job), Ok(mut expected)) = (event, forget.lock()) {
                expected.remove(&ObjectRef::from(job));
            }
        },
    );
    (jobs, changes, expected)
}

/// Runner pods, indexed by Job. The index learns of a pod before the store
/// does: a reconcile may miss a pod for a moment, never find a name without it.
fn watch_pods(
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
) -> (Store<Pod>, Changes<Pod>, Arc<RwLock<JobPods>>) {
    let pods_by_job: Arc<RwLock<JobPods>> = Arc::default();
    let index = pods_by_job.clone();
    let (pods, changes) = reflect(
        api::<Pod>(client, namespace),
        config,
        |pod| pod.spec = None,
        move |event| {
            if let Ok(mut index) = index.write() {
                index.apply(event);
            }
        },
    );
    (pods, changes, pods_by_job)
}

impl Caches {
    /// Caches for one namespace (or all when `None`) and one shard, and the
    /// streams that fill them.
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        shard: &Shard,
        egress: bool,
    ) -> (Arc<Self>, Streams) {
        // Children carry their session's shard label.
        let managed = shard.narrow(&format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE));
        let by_label = || acp_kube::watch::all().labels(&managed);
        let by_name = |name: &str| acp_kube::watch::all().fields(&format!("metadata.name={name}"));

        let (jobs, job_changes, expected) = watch_jobs(client, namespace, by_label());
        let (pods, pod_changes, pods_by_job) = watch_pods(client, namespace, by_label());
        let (runner_secrets, runner_secret_changes) =
            reflect(api::<Secret>(client, namespace), by_name(RUNNER_SECRETS), |_| {}, |_| {});
        let (session_secrets, session_secret_changes) =
            reflect(api::<Secret>(client, namespace), by_label(), slim_secret, |_| {});
        let (claims, claim_changes) = reflect(
            api::<PersistentVolumeClaim>(client, namespace),
            by_label(),
            |claim| {
                claim.spec = None;
                claim.status = None;
            },
            |_| {},
        );
        let (egress, egress_changes) = if egress {
            let (store, changes) = reflect(
                api::<NetworkPolicy>(client, namespace),
                by_name(runner_pod::EGRESS_POLICY),
                |_| {},
                |_| {},
            );
            (Some(store), changes)
        } else {
            (None, futures_util::stream::empty().boxed())
        };
        let caches =
            Self { jobs, pods, pods_by_job, runner_secrets, session_secrets, claims, egress, expected };
        let streams = Streams {
            jobs: job_changes,
            pods: pod_changes,
            runner_secrets: runner_secret_changes,
            session_secrets: session_secret_changes,
            claims: claim_changes,
            egress: egress_changes,
        };
        (Arc::new(caches), streams)
    }

    /// True once every cache holds a complete first list (before that, a
    /// missing object proves nothing).
    pub fn ready(&self) -> bool {
        fn listed<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> bool {
            store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
        }
        listed(&self.jobs)
            && listed(&self.pods)
            && listed(&self.runner_secrets)
            && listed(&self.session_secrets)
            && listed(&self.claims)
            && self.egress.as_ref().is_none_or(listed)
    }

    /// Job `name` in `ns`.
    pub fn job(&self, ns: &str, name: &str) -> Option<Arc<Job>> {
        self.jobs.get(&ObjectRef::new(name).within(ns))
    }

    /// True while a Job this process created has not shown up in the watch.
    pub fn expected(&self, ns: &str, name: &str) -> bool {
        let Ok(mut expected) = self.expected.lock() else { return false };
        expected.retain(|_, at| at.elapsed() < EXPECTATION_TTL);
        expected.contains_key(&ObjectRef::new(name).within(ns))
    }

    /// Records that Job `name` in `ns` is being created.
    pub fn expect(&self, ns: &str, name: &str) {
        if let Ok(mut expected) = self.expected.lock() {
            expected.insert(ObjectRef::new(name).within(ns), Instant::now());
        }
    }

    /// Withdraws [`Caches::expect`] (the create failed).
    pub fn forget(&self, ns: &str, name: &str) {
        if let Ok(mut expected) = self.expected.lock() {
            expected.remove(&ObjectRef::new(name).within(ns));
        }
    }

    /// The newest pod of Job `job` in `ns`.
    pub fn newest_pod(&self, ns: &str, job: &str) -> Option<Arc<Pod>> {
        let names = self.pods_by_job.read().ok()?.names(ns, job);
        names
            .iter()
            .filter_map(|name| self.pods.get(&ObjectRef::new(name).within(ns)))
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
    }

    /// The data of `ns`'s shared runner secret; `None` when it does not exist.
    pub fn runner_secret(&self, ns: &str) -> Option<Arc<Secret>> {
        self.runner_secrets.get(&ObjectRef::new(RUNNER_SECRETS).within(ns))
    }

    /// True when session Secret `name` exists with exactly `data`, owned by
    /// the session of UID `owner`.
    pub fn secret_holds(
        &self,
        ns: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, ByteString>,
        owner: &str,
    ) -> bool {
        self.session_secrets.get(&ObjectRef::new(name).within(ns)).is_some_and(|s| {
            owned_by(s.as_ref(), owner) && s.annotations().get(DATA_DIGEST) == Some(&digest(data.iter()))
        })
    }

    /// True when claim `name` exists, owned by the session of UID `owner` (a
    /// claim's spec cannot change).
    pub fn claim_owned(&self, ns: &str, name: &str, owner: &str) -> bool {
        self.claims.get(&ObjectRef::new(name).within(ns)).is_some_and(|c| owned_by(c.as_ref(), owner))
    }

    /// True when `ns`'s egress policy has exactly `desired`'s spec and labels.
    pub fn egress_holds(&self, ns: &str, desired: &NetworkPolicy) -> bool {
        let Some(egress) = &self.egress else { return false };
        egress.get(&ObjectRef::new(runner_pod::EGRESS_POLICY).within(ns)).is_some_and(|p| {
            p.spec == desired.spec && desired.labels().iter().all(|(k, v)| p.labels().get(k) == Some(v))
        })
    }
}

/// Whether `child` is controlled by the object of UID `owner` and not being deleted.
fn owned_by<K: Resource>(child: &K, owner: &str) -> bool {
    child.meta().deletion_timestamp.is_none()
        && child.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == owner)
}

/// A digest of a Secret's data (keys and values, in key order).
fn digest<'a>(data: impl Iterator<Item = (&'a String, &'a ByteString)>) -> String {
    let mut hash = Sha256::new();
    for (key, value) in data {
        for part in [key.as_bytes(), &value.0] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps a session Secret's digest, not its data.
fn slim_secret(secret: &mut Secret) {
    let digest = digest(secret.data.take().unwrap_or_default().iter());
    secret.string_data = None;
    secret.annotations_mut().insert(DATA_DIGEST.into(), digest);
}

/// Pod names by `(namespace, Job name)`, kept from the pod watch's events
/// (a re-list builds a new index and swaps it in when complete, as the
/// reflector does with its store).
#[derive(Default)]
struct JobPods {
    current: HashMap<(String, String), BTreeSet<String>>,
    building: Option<HashMap<(String, String), BTreeSet<String>>>,
}

impl JobPods {
    fn key(pod: &Pod) -> Option<((String, String), String)> {
        let job = pod.labels().get(JOB_NAME_LABEL)?;
        Some(((pod.namespace()?, job.clone()), pod.name_any()))
    }

    fn apply(&mut self, event: &watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.building = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(building), Some((key, name))) = (self.building.as_mut(), Self::key(pod)) {
                    building.entry(key).or_default().insert(name);
                }
            }
            watcher::Event::InitDone => {
                if let Some(built) = self.building.take() {
                    self.current = built;
                }
            }
            watcher::Event::Apply(pod) => {
                if let Some((key, name)) = Self::key(pod) {
                    self.current.entry(key).or_default().insert(name);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some((key, name)) = Self::key(pod)
                    && let Some(names) = self.current.get_mut(&key)
                {
                    names.remove(&name);
                    if names.is_empty() {
                        self.current.remove(&key);
                    }
                }
            }
        }
    }

    fn names(&self, ns: &str, job: &str) -> Vec<String> {
        self.current
            .get(&(ns.to_owned(), job.to_owned()))
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, job: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "ns", "labels": {JOB_NAME_LABEL: job}}}),
        )
        .expect("pod")
    }

    #[test]
    fn the_pod_index_follows_adds_deletes_and_relists() {
        let mut index = JobPods::default();
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(pod("a-1-x", "a-1")));
        assert!(index.names("ns", "a-1").is_empty(), "a re-list shows nothing until it is complete");
        index.apply(&watcher::Event::InitDone);
        assert_eq!(index.names("ns", "a-1"), ["a-1-x"]);
        index.apply(&watcher::Event::Apply(pod("a-1-y", "a-1")));
        index.apply(&watcher::Event::Apply(pod("b-1-x", "b-1")));
        assert_eq!(index.names("ns", "a-1"), ["a-1-x", "a-1-y"]);
        index.apply(&watcher::Event::Delete(pod("a-1-x", "a-1")));
        assert_eq!(index.names("ns", "a-1"), ["a-1-y"]);
        assert!(index.names("other", "a-1").is_empty(), "namespaces are apart");
        // A re-list without b's pod forgets it.
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(pod("a-1-y", "a-1")));
        index.apply(&watcher::Event::InitDone);
        assert!(index.names("ns", "b-1").is_empty());
        assert_eq!(index.names("ns", "a-1"), ["a-1-y"]);
    }

    #[test]
    fn a_secret_is_cached_as_the_digest_of_its_data() {
        let data = std::collections::BTreeMap::from([("K".to_owned(), ByteString(b"v".to_vec()))]);
        let mut secret = Secret { data: Some(data.clone()), ..Secret::default() };
        slim_secret(&mut secret);
        assert!(secret.data.is_none(), "no credentials kept in the cache");
        assert_eq!(secret.annotations().get(DATA_DIGEST), Some(&digest(data.iter())));
        let other = std::collections::BTreeMap::from([("K".to_owned(), ByteString(b"w".to_vec()))]);
        assert_ne!(digest(data.iter()), digest(other.iter()));
        // Key/value boundaries count: "ab"+"c" is not "a"+"bc".
        let a = std::collections::BTreeMap::from([("ab".to_owned(), ByteString(b"c".to_vec()))]);
        let b = std::collections::BTreeMap::from([("a".to_owned(), ByteString(b"bc".to_vec()))]);
        assert_ne!(digest(a.iter()), digest(b.iter()));
    }
}
