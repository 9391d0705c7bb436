//! The sessions sources applied, from a watch cache: every AgenticSession
//! carrying a source label (in git-sync's namespace and shard), slimmed to
//! what a diff reads (no managed fields, no status). A sync compares against
//! it instead of listing the target namespace: at 10,000 sessions that list
//! was most of a one-file commit's sync time and of git-sync's memory.
//!
//! The cache holds only labelled sessions, so a desired session it does not
//! hold may still exist without a label (someone else's, of the same name):
//! those few are read with a GET before the diff, and a sync that would
//! create many lists the namespace as before. Syncs applying as a source's
//! ServiceAccount list with that identity as before, so what they see is
//! what their RBAC allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use acp_api::constants::labels;
use acp_api::shard::Shard;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt as _};
use serde_json::Value;

use crate::apply;

/// Most sessions read one by one before a sync lists the namespace instead.
pub const MAX_READS: usize = 32;
/// Reads in flight at once.
const READS_IN_FLIGHT: usize = 8;

/// The cache of labelled sessions.
pub struct Live {
    store: Store<DynamicObject>,
    ready: AtomicBool,
}

impl Live {
    /// The cache for `namespace` (all when `None`) and `shard`, and the
    /// stream that fills it (to be polled for as long as it is used).
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        shard: &Shard,
        on_ready: impl Fn() + Send + 'static,
    ) -> (Arc<Self>, futures_util::stream::BoxStream<'static, ()>) {
        let resource = apply::session_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let config = acp_kube::watch::in_shard(shard, labels::SOURCE_NAME);
        let writer = reflector::store::Writer::new(resource);
        let store = writer.as_reader();
        let live = Arc::new(Self { store, ready: AtomicBool::new(false) });
        let flag = live.clone();
        let stream = watcher::watcher(api, config)
            .default_backoff()
            .modify(|object: &mut DynamicObject| {
                object.managed_fields_mut().clear();
                if let Some(map) = object.data.as_object_mut() {
                    map.remove("status");
                }
            })
            .inspect_ok(move |event| {
                if matches!(event, Event::InitDone) && !flag.ready.swap(true, Ordering::AcqRel) {
                    on_ready();
                }
            })
            .inspect_err(|error| tracing::warn!(%error, "failed to watch the sessions sources applied"))
            .reflect(writer)
            .map(|_| ())
            .boxed();
        (live, stream)
    }

    /// Whether the cache holds its first full list.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The live sessions of `namespace` that a diff against `desired` (names)
    /// needs: the cached ones, plus those of `desired` the cache does not
    /// hold, read one by one; `None` when more than [`MAX_READS`] would be
    /// read (the caller lists instead).
    pub async fn sessions(
        &self,
        api: &Api<DynamicObject>,
        namespace: &str,
        desired: &[&str],
    ) -> Option<Result<Vec<Value>, kube::Error>> {
        let cached: Vec<Arc<DynamicObject>> =
            self.store.state().into_iter().filter(|o| o.namespace().as_deref() == Some(namespace)).collect();
        let held: std::collections::HashSet<String> = cached.iter().map(|o| o.name_any()).collect();
        let missing: Vec<&str> = desired.iter().copied().filter(|name| !held.contains(*name)).collect();
        if missing.len() > MAX_READS {
            return None;
        }
        let mut live: Vec<Value> = cached.iter().filter_map(|o| serde_json::to_value(&**o).ok()).collect();
        let missing: Vec<String> = missing.into_iter().map(str::to_owned).collect();
        let read: Result<Vec<Option<DynamicObject>>, kube::Error> = stream::iter(missing)
            .map(|name| async move { api.get_opt(&name).await })
            .buffer_unordered(READS_IN_FLIGHT)
            .try_collect()
            .await;
        match read {
            Ok(found) => {
                live.extend(found.into_iter().flatten().filter_map(|o| serde_json::to_value(o).ok()));
                Some(Ok(live))
            }
            Err(error) => Some(Err(error)),
        }
    }
}

/// Polls `stream` until it ends (it does not, short of a shutdown).
pub async fn fill(stream: futures_util::stream::BoxStream<'static, ()>) {
    stream.for_each(|()| async {}).await;
}
