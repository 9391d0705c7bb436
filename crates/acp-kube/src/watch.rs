//! How every controller lists and watches: narrowed to a label selector and
//! to its shard, and started with a streaming list where the API server
//! serves one.
//!
//! A streaming list (`sendInitialEvents`, Kubernetes' WatchList) sends the
//! initial objects as watch events from the watch cache, which the client
//! decodes while the server is still encoding. A paged list instead waits
//! for each page of 500 in turn: at 100,000 sessions that is 200 round trips
//! and most of a restart (kube sends no `resourceVersion=0` with a page
//! size, so each page is a consistent read). What a server serves is asked
//! once per process ([`detect`]), with the resource the component watches
//! anyway, so no extra permission is needed; until then, and on servers
//! without WatchList, lists are paged.

use std::sync::OnceLock;
use std::time::Duration;

use acp_api::shard::Shard;
use futures_util::TryStreamExt as _;
use kube::Api;
use kube::api::{WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

/// How initial lists are made, decided once per process.
static STREAMING: OnceLock<bool> = OnceLock::new();

/// The annotation on the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A label no object carries: the probe's watch matches nothing.
const NO_OBJECT: &str = "acp.invalid/streaming-list-probe";

/// How long the probe waits for the server's answer (a server older than
/// WatchList ignores the request and sends nothing for a watch of nothing).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A list-and-watch of `shard`'s objects matching `selector` (may be empty).
pub fn in_shard(shard: &Shard, selector: &str) -> watcher::Config {
    let selector = shard.narrow(selector);
    let config = all();
    if selector.is_empty() { config } else { config.labels(&selector) }
}

/// A list-and-watch of every object: [`in_shard`] without a selector.
pub fn all() -> watcher::Config {
    if streaming() {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default().any_semantic()
    }
}

/// Whether lists are streamed (after [`detect`] found the server serves them).
pub fn streaming() -> bool {
    STREAMING.get().copied().unwrap_or(false)
}

/// Asks the API server, with a watch of `api` that matches no object,
/// whether it serves streaming lists, and makes every later [`in_shard`] and
/// [`all`] use them if so. The first answer in a process stands (it is a
/// property of the server), unless it was no answer (a timeout or a
/// connection failure: lists are paged, and the next call asks again).
/// Returns it.
pub async fn detect<K>(api: &Api<K>) -> bool
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    if let Some(known) = STREAMING.get() {
        return *known;
    }
    match tokio::time::timeout(PROBE_TIMEOUT, serves_streaming_lists(api)).await {
        Ok(Some(answer)) => {
            tracing::info!(streaming_lists = answer, "asked the API server how to list");
            *STREAMING.get_or_init(|| answer)
        }
        Ok(None) | Err(_) => {
            tracing::info!("the API server did not say whether it streams lists: lists are paged");
            false
        }
    }
}

/// `Some` when the server answered: the initial events ended (yes), or it
/// refused the request (no).
async fn serves_streaming_lists<K>(api: &Api<K>) -> Option<bool>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let params = WatchParams::streaming_lists().labels(NO_OBJECT).timeout(10);
    let stream = match api.watch(&params, "0").await {
        Ok(stream) => stream,
        Err(kube::Error::Api(_)) => return Some(false),
        Err(_) => return None,
    };
    let mut stream = std::pin::pin!(stream.into_stream());
    match stream.try_next().await {
        Ok(Some(WatchEvent::Bookmark(mark))) => {
            Some(mark.metadata.annotations.contains_key(INITIAL_EVENTS_END))
        }
        // An error event, or objects: the server ignored the request.
        Ok(Some(_)) => Some(false),
        Ok(None) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_paged_until_the_server_was_asked() {
        // No test in this binary calls `detect`.
        assert!(!streaming());
        let config = in_shard(&Shard::All, "app=x");
        assert_eq!(config.label_selector.as_deref(), Some("app=x"));
        assert!(matches!(config.initial_list_strategy, watcher::InitialListStrategy::ListWatch));
    }
}
