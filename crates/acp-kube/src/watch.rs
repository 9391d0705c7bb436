//! How every controller lists and watches: from the API server's watch cache
//! (`any_semantic`), narrowed to a label selector and to its shard.

use acp_api::shard::Shard;
use kube::runtime::watcher;

/// A list-and-watch of `shard`'s objects matching `selector` (may be empty).
pub fn in_shard(shard: &Shard, selector: &str) -> watcher::Config {
    let selector = shard.narrow(selector);
    let config = watcher::Config::default().any_semantic();
    if selector.is_empty() { config } else { config.labels(&selector) }
}
