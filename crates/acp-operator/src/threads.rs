//! The watch caches of what vouches for a thread (the proof itself is pure,
//! in [`crate::resume`]): SessionSources, whose inventory git-sync alone
//! writes, and SessionSchedules, whose status the scheduler alone writes, of
//! the operator's namespace (or all). A reconcile reads them from memory,
//! never with a request of its own; managed fields are dropped on the way
//! in, and so are a source's sync history and file errors. An operator
//! watching one namespace sees that namespace's sources only: a follow-up a
//! source of another namespace applied there (`targetNamespace`) is not
//! vouched for, and starts without its thread.

use std::sync::Arc;

use acp_api::constants::labels;
use acp_api::{AgenticSession, SessionPhase, SessionSchedule, SessionSource};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, StreamExt as _};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::resume::Lookup;

/// A stream of changed objects that fills one cache.
pub type Changes<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The streams that fill the caches; the controller polls them (as its
/// triggers), so the caches live exactly as long as the controller.
pub struct Streams {
    /// SessionSources.
    pub sources: Changes<SessionSource>,
    /// SessionSchedules.
    pub schedules: Changes<SessionSchedule>,
}

/// The caches.
pub struct Vouchers {
    sources: Store<SessionSource>,
    schedules: Store<SessionSchedule>,
}

fn reflect<K>(client: &Client, namespace: Option<&str>, slim: fn(&mut K)) -> (Store<K>, Changes<K>)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api = match namespace {
        Some(ns) => Api::<K>::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let changes = watcher(api, acp_kube::watch::all())
        .default_backoff()
        .modify(move |object: &mut K| {
            object.managed_fields_mut().clear();
            slim(object);
        })
        .reflect(writer)
        .touched_objects()
        .boxed();
    (store, changes)
}

impl Vouchers {
    /// The caches of `namespace` (all when `None`) and the streams that fill them.
    pub fn watch(client: &Client, namespace: Option<&str>) -> (Arc<Self>, Streams) {
        let (sources, source_changes) = reflect(client, namespace, |source: &mut SessionSource| {
            if let Some(status) = source.status.as_mut() {
                status.history.clear();
                status.errors.clear();
            }
        });
        let (schedules, schedule_changes) = reflect(client, namespace, |_: &mut SessionSchedule| {});
        let streams = Streams { sources: source_changes, schedules: schedule_changes };
        (Arc::new(Self { sources, schedules }), streams)
    }

    /// True once both caches hold a complete first list (before that, a
    /// missing record proves nothing).
    pub fn ready(&self) -> bool {
        let listed = |ready: Option<Result<(), _>>| ready.is_some_and(|r| r.is_ok());
        listed(self.sources.wait_until_ready().now_or_never())
            && listed(self.schedules.wait_until_ready().now_or_never())
    }

    /// The threads of namespace `ns`: its sessions from `sessions`, the
    /// sources and schedules from these caches.
    pub fn lookup<'a>(&'a self, sessions: &'a Store<AgenticSession>, ns: &'a str) -> Lookup<'a> {
        Lookup {
            session: Box::new(move |name| sessions.get(&ObjectRef::new(name).within(ns))),
            source: Box::new(|ns, name| self.sources.get(&ObjectRef::new(name).within(ns))),
            schedule: Box::new(move |name| self.schedules.get(&ObjectRef::new(name).within(ns))),
        }
    }
}

/// The follow-ups in `sessions` that have not started and that `of` picks:
/// those a new record may let go.
fn unstarted(
    sessions: &Store<AgenticSession>,
    of: impl Fn(&AgenticSession) -> bool,
) -> Vec<ObjectRef<AgenticSession>> {
    let unstarted = |s: &AgenticSession| {
        s.status.as_ref().and_then(|st| st.phase).is_none_or(|p| p == SessionPhase::Pending)
    };
    sessions
        .state()
        .iter()
        .filter(|s| crate::resume::parent_of(s).is_some() && unstarted(s) && of(s))
        .map(|s| ObjectRef::from(&**s))
        .collect()
}

/// The unstarted follow-ups claiming `source`.
pub fn follow_ups_of_source(
    sessions: &Store<AgenticSession>,
    source: &SessionSource,
) -> Vec<ObjectRef<AgenticSession>> {
    let (ns, name) = (source.namespace(), Some(source.name_any()));
    unstarted(sessions, |s| {
        s.labels().get(labels::SOURCE_NAMESPACE) == ns.as_ref()
            && s.labels().get(labels::SOURCE_NAME) == name.as_ref()
    })
}

/// The unstarted runs of `schedule` that follow an earlier run.
pub fn follow_ups_of_schedule(
    sessions: &Store<AgenticSession>,
    schedule: &SessionSchedule,
) -> Vec<ObjectRef<AgenticSession>> {
    let (ns, name) = (schedule.namespace(), Some(schedule.name_any()));
    unstarted(sessions, |s| s.namespace() == ns && s.labels().get(labels::SCHEDULE) == name.as_ref())
}
