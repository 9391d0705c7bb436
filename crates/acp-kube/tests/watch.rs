//! Streaming lists against the real API server: the probe finds that it
//! serves them, and a watcher started that way sees every object that
//! existed before it, then later changes.

use acp_kube::watch;
use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, eventually};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};

fn map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_owned(), "watched".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn a_streaming_list_sees_what_existed_and_what_follows() {
    let ns = TestEnv::get().namespace("watch").await;
    let api: Api<ConfigMap> = ns.api();
    for i in 0..30 {
        api.create(&PostParams::default(), &map(&format!("before-{i}"))).await.expect("create");
    }
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta { name: Some("unlabelled".into()), ..ObjectMeta::default() },
            ..ConfigMap::default()
        },
    )
    .await
    .expect("create");

    assert!(watch::detect(&api).await, "the test cluster serves streaming lists");
    assert!(watch::streaming());
    let config = watch::all().labels("app=watched");
    assert!(matches!(config.initial_list_strategy, watcher::InitialListStrategy::StreamingList));

    let (store, writer) = reflector::store();
    let stream = watcher(api.clone(), config).default_backoff().reflect(writer).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    store.wait_until_ready().await.expect("the initial events end");
    assert_eq!(store.state().len(), 30, "every labelled object that existed, and no other");
    api.create(&PostParams::default(), &map("after")).await.expect("create");
    eventually("the later object", DEFAULT_TIMEOUT, || {
        let store = store.clone();
        async move { store.state().iter().any(|m| m.metadata.name.as_deref() == Some("after")).then_some(()) }
    })
    .await;
    task.abort();
}
