//! A Kubernetes client that counts the requests it sends (the benchmarks'
//! and the operator's `api_requests` metric).

use prometheus_client::metrics::counter::Counter;

/// A client for `config` that increments `counter` on every request.
pub fn counting(config: kube::Config, counter: Counter) -> Result<kube::Client, kube::Error> {
    let layer = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        counter.inc();
        request
    });
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&layer).build())
}
