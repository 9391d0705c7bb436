//! The push webhook against the real API server: a bad signature is refused
//! and syncs nothing; a good delivery syncs at once; a repeated delivery is
//! acknowledged once; pushes to other refs (the write-back branch) and
//! oversized bodies trigger nothing; limits are per source and after the
//! signature; a repository's own secret speaks only for it.

mod common;

use std::sync::Arc;

use acp_gitsync::webhook::{Config, Receiver, sign};
use axum::body::Body;
use common::{Fixture, session};
use http::{Request, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SECRET: &[u8] = b"webhook-s3cret";

async fn post(receiver: &Arc<Receiver>, body: &[u8], signature: &str, delivery: &str) -> (StatusCode, Value) {
    let request = Request::post("/hooks/github")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let response = receiver.clone().router().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A receiver for the fixture's namespace, once it holds its keys.
async fn receiver(f: &Fixture, client: kube::Client, max_body: usize, per_second: u32) -> Arc<Receiver> {
    let receiver = Receiver::new(
        client,
        Config { namespace: Some(f.ns.name.clone()), max_body, per_second, commands: None },
    );
    let ready = receiver.clone();
    acp_testenv::eventually("the receiver's keys", acp_testenv::DEFAULT_TIMEOUT, || {
        let ready = ready.clone();
        async move { ready.ready().then_some(()) }
    })
    .await;
    receiver
}

/// Secret `name` of the fixture's namespace holding `data` (`stringData`).
async fn hook_secret(f: &Fixture, name: &str, data: Value) {
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    f.ns.api::<Secret>()
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&secret))
        .await
        .expect("secret");
}

fn push(git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": git_ref, "after": after,
        "repository": {"full_name": "acme/sessions", "clone_url": "https://github.com/acme/sessions.git"},
    }))
    .expect("json")
}

#[tokio::test]
async fn deliveries_are_verified_deduplicated_and_trigger_syncs() {
    let f = Fixture::start("gitsync-webhook").await;
    hook_secret(&f, "hook", json!({"webhook-secret": std::str::from_utf8(SECRET).expect("utf-8")})).await;
    f.repo.write("a.yaml", &session("a", "x"));
    let rev1 = f.repo.commit("a");
    f.source(
        "repo",
        json!({"github": {"repository": "acme/sessions", "webhookSecretRef": {"name": "hook"}}}),
    )
    .await;
    f.synced("repo", &rev1, None).await;
    let receiver = receiver(&f, f.ns.client.clone(), 64 * 1024, 1000).await;

    f.repo.write("b.yaml", &session("b", "x"));
    let rev2 = f.repo.commit("b");
    let body = push("refs/heads/main", &rev2);

    // Bad signature: 401 and nothing happens.
    let (status, _) = post(&receiver, &body, &sign(b"wrong", &body), "d-bad").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&receiver, &body, "", "d-none").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let source = f.sources().get("repo").await.expect("source");
    assert!(
        !source
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(acp_api::constants::annotations::RECONCILE_REQUESTED_AT)
    );

    // A good delivery syncs the new commit at once (the interval is an hour).
    let (status, reply) = post(&receiver, &body, &sign(SECRET, &body), "d-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["triggered"], json!([format!("{}/repo", f.ns.name)]));
    let synced = f.synced("repo", &rev2, Some("d-1")).await;
    assert_eq!(f.names().await, ["a", "b"]);
    let history = synced.history.len();

    // The same delivery again is acknowledged and ignored.
    let (status, reply) = post(&receiver, &body, &sign(SECRET, &body), "d-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["duplicate"], true);
    let source = f.sources().get("repo").await.expect("source");
    assert_eq!(
        source.annotations().get(acp_api::constants::annotations::RECONCILE_REQUESTED_AT).map(String::as_str),
        Some("d-1")
    );
    assert_eq!(source.status.expect("status").history.len(), history, "synced once");

    // A push to the write-back branch concerns no source.
    let status_push = push("refs/heads/acp/status", "0000");
    let (status, reply) = post(&receiver, &status_push, &sign(SECRET, &status_push), "d-2").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(reply["triggered"], json!([]));

    // Oversized bodies are refused before anything else.
    let big = vec![b'x'; 128 * 1024];
    let (status, _) = post(&receiver, &big, &sign(SECRET, &big), "d-3").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    f.stop().await;
}

/// A flood of unsigned or wrongly signed deliveries never uses up a
/// source's limit (GitHub does not redeliver a refused delivery, so a lost
/// `closed` or `synchronize` would stay lost); a source's own deliveries
/// beyond its limit are refused, and another source's are not.
#[tokio::test]
async fn limits_are_per_source_and_after_the_signature() {
    let f = Fixture::start("gitsync-webhook-rate").await;
    for (name, secret) in [("hook-a", "secret-a"), ("hook-b", "secret-b")] {
        hook_secret(&f, name, json!({"webhook-secret": secret})).await;
    }
    for (name, hook) in [("a", "hook-a"), ("b", "hook-b")] {
        f.source(
            name,
            json!({"github": {"repository": "acme/sessions", "webhookSecretRef": {"name": hook}}}),
        )
        .await;
    }
    let receiver = receiver(&f, f.ns.client.clone(), 1024, 2).await;
    let body = push("refs/heads/other", "abc");
    let mut flood = Vec::new();
    for i in 0..200 {
        let signature = if i % 2 == 0 { "sha256=00".to_owned() } else { sign(b"guess", &body) };
        flood.push(post(&receiver, &body, &signature, &format!("flood-{i}")).await.0);
    }
    assert!(flood.iter().all(|c| *c == StatusCode::UNAUTHORIZED), "{flood:?}");
    // Source a's real deliveries: within its limit, then refused.
    let mut codes = Vec::new();
    for i in 0..4 {
        codes.push(post(&receiver, &body, &sign(b"secret-a", &body), &format!("a-{i}")).await.0);
    }
    assert_eq!(codes[0], StatusCode::ACCEPTED, "{codes:?}");
    assert!(codes.contains(&StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
    // Source b is not held up by a's deliveries.
    let (status, _) = post(&receiver, &body, &sign(b"secret-b", &body), "b-0").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    f.stop().await;
}

/// A Secret may hold a webhook secret per repository
/// (`webhook-secret.<owner>.<repo>`): a delivery about that repository is
/// accepted only with its own secret, and its secret speaks for no other.
#[tokio::test]
async fn a_repositorys_own_secret_speaks_only_for_it() {
    let f = Fixture::start("gitsync-webhook-per-repo").await;
    let secrets = json!({"webhook-secret": "shared", "webhook-secret.acme.sessions": "own",
                         "webhook-secret.acme.web.app": "web"});
    hook_secret(&f, "hook", secrets).await;
    f.source(
        "repo",
        json!({"github": {"repository": "acme/sessions", "webhookSecretRef": {"name": "hook"}}}),
    )
    .await;
    let receiver = receiver(&f, f.ns.client.clone(), 64 * 1024, 1000).await;
    let about = |repo: &str| {
        serde_json::to_vec(
            &json!({"ref": "refs/heads/other", "after": "abc", "repository": {"full_name": repo}}),
        )
        .expect("json")
    };
    let sessions = about("acme/sessions");
    // The shared secret no longer speaks for acme/sessions, which has its own.
    let (status, reply) = post(&receiver, &sessions, &sign(b"shared", &sessions), "p-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    let (status, reply) = post(&receiver, &sessions, &sign(b"own", &sessions), "p-2").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    // Another repository's own secret does not speak for acme/sessions (a
    // repository name with a dot is named whole).
    let (status, _) = post(&receiver, &sessions, &sign(b"web", &sessions), "p-3").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let web = about("acme/web.app");
    let (status, _) = post(&receiver, &web, &sign(b"web", &web), "p-4").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A repository without its own: the shared secret, and only it.
    let other = about("acme/other");
    let (status, _) = post(&receiver, &other, &sign(b"own", &other), "p-5").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&receiver, &other, &sign(b"shared", &other), "p-6").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    f.stop().await;
}

/// Forged deliveries (any event, any body) are refused from keys held in
/// memory: a thousand of them cost the API server nothing. Requests are
/// counted by the receiver's own client.
#[tokio::test]
async fn a_thousand_forged_deliveries_cost_no_api_request() {
    let f = Fixture::start("gitsync-webhook-forged").await;
    hook_secret(&f, "hook", json!({"webhook-secret": "real"})).await;
    f.source(
        "repo",
        json!({"github": {"repository": "acme/sessions", "webhookSecretRef": {"name": "hook"}}}),
    )
    .await;
    let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    let config = acp_testenv::TestEnv::get().config().await;
    let client = acp_kube::client::counting(config, counter.clone()).expect("client");
    let receiver = receiver(&f, client, 64 * 1024, 100_000).await;
    let before = counter.get();
    let body = push("refs/heads/main", "abc");
    for i in 0..1000 {
        let event = ["push", "issue_comment", "pull_request"][i % 3];
        let request = Request::post("/hooks/github")
            .header("x-github-event", event)
            .header("x-github-delivery", format!("forged-{i}"))
            .header("x-hub-signature-256", sign(format!("guess-{i}").as_bytes(), &body))
            .body(Body::from(body.clone()))
            .expect("request");
        let status = receiver.clone().router().oneshot(request).await.expect("response").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "delivery {i}");
    }
    assert_eq!(counter.get() - before, 0, "API requests for 1000 forged deliveries");
    // The real key still works, and a verified comment event is routed.
    let (status, reply) = {
        let request = Request::post("/hooks/github")
            .header("x-github-event", "issue_comment")
            .header("x-github-delivery", "real-1")
            .header("x-hub-signature-256", sign(b"real", &body))
            .body(Body::from(body.clone()))
            .expect("request");
        let response = receiver.clone().router().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    };
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["sources"], json!([format!("{}/repo", f.ns.name)]));
    f.stop().await;
}
