//! The dashboard's caches. Three kube-runtime reflectors (AgenticSessions,
//! SessionSources and SessionSchedules) hold every object; beside them, an index of list rows kept
//! in the default order and a broadcast of changes for the SSE watches. Every
//! page and API answer is read from here, never from one API call per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use acp_api::{AgenticSession, SessionSchedule, SessionSource};
use futures_util::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::broadcast;

use crate::view::{self, SessionRow};

/// Changes kept for slow watchers before they are told to start over.
const CHANGE_BUFFER: usize = 4096;

/// A cached object.
#[derive(Clone, Debug)]
pub enum Object {
    /// An AgenticSession.
    Session(Arc<AgenticSession>),
    /// A SessionSource.
    Source(Arc<SessionSource>),
    /// A SessionSchedule.
    Schedule(Arc<SessionSchedule>),
}

/// Which resource a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// AgenticSessions.
    Session,
    /// SessionSources.
    Source,
    /// SessionSchedules.
    Schedule,
}

/// What the watches broadcast.
#[derive(Clone, Debug)]
pub enum Change {
    /// An object was created or changed.
    Upsert(Object),
    /// An object was deleted.
    Delete(Object),
    /// The watch re-listed (after a disconnect): deletions may have been
    /// missed, so watchers start over from the cache.
    Resync(Kind),
}

/// Rows of the session list, by object reference, and their sorted order.
#[derive(Default)]
struct Rows {
    by_ref: HashMap<ObjectRef<AgenticSession>, Arc<SessionRow>>,
    /// Rows collected during a re-list, swapped in when it is done.
    relist: Option<HashMap<ObjectRef<AgenticSession>, Arc<SessionRow>>>,
    snapshot: Option<Arc<Snapshot>>,
}

/// Session rows in the default order, also by namespace.
pub type Snapshot = view::Index;

/// Everything the dashboard serves from.
pub struct Cache {
    /// Every AgenticSession (managedFields dropped).
    pub sessions: Store<AgenticSession>,
    /// Every SessionSource (managedFields dropped).
    pub sources: Store<SessionSource>,
    /// Every SessionSchedule (managedFields dropped).
    pub schedules: Store<SessionSchedule>,
    rows: RwLock<Rows>,
    changes: broadcast::Sender<Change>,
    sessions_ready: AtomicBool,
    sources_ready: AtomicBool,
    schedules_ready: AtomicBool,
}

impl Cache {
    /// True once every reflector has listed everything once.
    pub fn ready(&self) -> bool {
        self.sessions_ready.load(Ordering::Acquire)
            && self.sources_ready.load(Ordering::Acquire)
            && self.schedules_ready.load(Ordering::Acquire)
    }

    /// Subscribes to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Session rows, newest first (rebuilt after a change, at most once).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        if let Some(snapshot) = self.rows.read().unwrap_or_else(|e| e.into_inner()).snapshot.clone() {
            return snapshot;
        }
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = rows.snapshot.clone() {
            return snapshot;
        }
        let all: Vec<Arc<SessionRow>> = rows.by_ref.values().cloned().collect();
        let snapshot = Arc::new(view::Index::new(all));
        rows.snapshot = Some(snapshot.clone());
        snapshot
    }

    /// Every namespace holding a session, a source or a schedule.
    pub fn namespaces(&self) -> Vec<String> {
        let mut out: Vec<String> = self.snapshot().by_namespace.keys().cloned().collect();
        out.extend(self.sources.state().iter().filter_map(|s| s.namespace()));
        out.extend(self.schedules.state().iter().filter_map(|s| s.namespace()));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// One session.
    pub fn session(&self, namespace: &str, name: &str) -> Option<Arc<AgenticSession>> {
        self.sessions.get(&ObjectRef::new(name).within(namespace))
    }

    /// One source.
    pub fn source(&self, namespace: &str, name: &str) -> Option<Arc<SessionSource>> {
        self.sources.get(&ObjectRef::new(name).within(namespace))
    }

    /// One schedule.
    pub fn schedule(&self, namespace: &str, name: &str) -> Option<Arc<SessionSchedule>> {
        self.schedules.get(&ObjectRef::new(name).within(namespace))
    }

    /// The source that applied `session` (from git-sync's annotation).
    pub fn source_of(&self, session: &AgenticSession) -> Option<Arc<SessionSource>> {
        let key = session.annotations().get(acp_api::constants::annotations::SOURCE)?;
        let (ns, name) = key.split_once('/')?;
        self.source(ns, name)
    }

    fn send(&self, change: Change) {
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }

    fn on_session(&self, event: &Event<AgenticSession>) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(s) => {
                rows.by_ref.insert(ObjectRef::from_obj(s), Arc::new(SessionRow::new(s)));
                rows.snapshot = None;
            }
            Event::Delete(s) => {
                rows.by_ref.remove(&ObjectRef::from_obj(s));
                rows.snapshot = None;
            }
            Event::Init => rows.relist = Some(HashMap::new()),
            Event::InitApply(s) => {
                let row = Arc::new(SessionRow::new(s));
                rows.relist.get_or_insert_default().insert(ObjectRef::from_obj(s), row);
            }
            Event::InitDone => {
                rows.by_ref = rows.relist.take().unwrap_or_default();
                rows.snapshot = None;
            }
        }
        drop(rows);
        self.announce(event, Object::Session, &self.sessions_ready, Kind::Session);
    }

    fn on_source(&self, event: &Event<SessionSource>) {
        self.announce(event, Object::Source, &self.sources_ready, Kind::Source);
    }

    fn on_schedule(&self, event: &Event<SessionSchedule>) {
        self.announce(event, Object::Schedule, &self.schedules_ready, Kind::Schedule);
    }

    /// Broadcasts what `event` changed; marks `ready` once the first list is in.
    fn announce<K: Clone>(
        &self,
        event: &Event<K>,
        object: fn(Arc<K>) -> Object,
        ready: &AtomicBool,
        kind: Kind,
    ) {
        match event {
            Event::Apply(o) => self.send(Change::Upsert(object(Arc::new(o.clone())))),
            Event::Delete(o) => self.send(Change::Delete(object(Arc::new(o.clone())))),
            Event::InitDone => {
                ready.store(true, Ordering::Release);
                self.send(Change::Resync(kind));
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }
}

fn watch<K>(
    api: Api<K>,
    writer: Writer<K>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    // Pages of 1000 where the server streams no lists.
    watcher::watcher(api, acp_kube::watch::all().page_size(1000))
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None)
        .reflect(writer)
}

/// Starts the caches of `namespace` (all namespaces when `None`): returns the
/// cache and the future that keeps it current until it is dropped.
pub fn start(client: Client, namespace: Option<String>) -> (Arc<Cache>, impl Future<Output = ()> + Send) {
    let (sessions_api, sources_api, schedules_api): (
        Api<AgenticSession>,
        Api<SessionSource>,
        Api<SessionSchedule>,
    ) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), &ns),
            Api::namespaced(client.clone(), &ns),
            Api::namespaced(client, &ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone()), Api::all(client)),
    };
    let (sessions, session_writer) = reflector::store();
    let (sources, source_writer) = reflector::store();
    let (schedules, schedule_writer) = reflector::store();
    let cache = Arc::new(Cache {
        sessions,
        sources,
        schedules,
        rows: RwLock::default(),
        changes: broadcast::channel(CHANGE_BUFFER).0,
        sessions_ready: AtomicBool::new(false),
        sources_ready: AtomicBool::new(false),
        schedules_ready: AtomicBool::new(false),
    });
    let run = {
        let cache = cache.clone();
        async move {
            let sessions =
                watch(sessions_api, session_writer).map(|e| e.map(|e| Either::Session(Box::new(e))));
            let sources = watch(sources_api, source_writer).map(|e| e.map(|e| Either::Source(Box::new(e))));
            let schedules =
                watch(schedules_api, schedule_writer).map(|e| e.map(|e| Either::Schedule(Box::new(e))));
            let mut events = std::pin::pin!(futures_util::stream::select(
                futures_util::stream::select(sessions, sources),
                schedules
            ));
            while let Some(event) = events.next().await {
                match event {
                    Ok(Either::Session(e)) => cache.on_session(&e),
                    Ok(Either::Source(e)) => cache.on_source(&e),
                    Ok(Either::Schedule(e)) => cache.on_schedule(&e),
                    // The backoff retries; a malformed object is reported, not fatal.
                    Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
                }
            }
        }
    };
    (cache, run)
}

enum Either {
    Session(Box<Event<AgenticSession>>),
    Source(Box<Event<SessionSource>>),
    Schedule(Box<Event<SessionSchedule>>),
}
