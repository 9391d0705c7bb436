//! git-sync fetching over the network with credentials from the source's
//! secret: https with a token (git http-backend), ssh with a key and
//! known_hosts (a real sshd); wrong credentials end in FetchFailed, with the
//! last good state kept.

mod common;

use acp_api::condition::find;
use acp_testenv::githttp::GitServer;
use acp_testenv::sshd::SshServer;
use common::{Fixture, session};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::json;

async fn secret(f: &Fixture, name: &str, data: serde_json::Value) {
    let object =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    f.ns.api::<Secret>()
        .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&object))
        .await
        .expect("secret");
}

#[tokio::test]
async fn https_with_a_token_and_a_rejected_token() {
    let f = Fixture::start("gitsync-https").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let server = GitServer::start(&tmp.path().join("git"), "s3cret-token").await;
    server.create_repo("acme/sessions", "main", &[("a.yaml", &session("a", "over https"))]);
    let revision =
        acp_testenv::githttp::git(&server.root().join("acme/sessions.git"), &["rev-parse", "main"])
            .trim()
            .to_string();
    secret(&f, "git", json!({"token": "s3cret-token"})).await;
    f.source("repo", json!({"url": server.url("acme/sessions"), "secretRef": {"name": "git"}})).await;
    f.synced("repo", &revision, None).await;
    assert_eq!(f.names().await, ["a"]);

    secret(&f, "git", json!({"token": "wrong"})).await;
    f.trigger("repo", "bad-token").await;
    let status = f
        .wait_status("repo", "fetch failure", |s| {
            find(&s.conditions, "Ready")
                .filter(|c| c.reason.as_deref() == Some("FetchFailed"))
                .map(|_| s.clone())
        })
        .await;
    let message = find(&status.conditions, "Ready").and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("authentication") || message.contains("401"), "{message}");
    assert_eq!(status.last_applied_revision.as_deref(), Some(revision.as_str()), "last good state kept");
    assert_eq!(status.inventory.len(), 1);
    f.stop().await;
}

#[tokio::test]
async fn ssh_with_a_key_and_known_hosts() {
    let f = Fixture::start("gitsync-ssh").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let sshd = SshServer::start(&tmp.path().join("sshd"));
    f.repo.write("a.yaml", &session("a", "over ssh"));
    let revision = f.repo.commit("a");
    let key = std::fs::read_to_string(sshd.client_key()).expect("key");
    let known_hosts = std::fs::read_to_string(sshd.known_hosts()).expect("known_hosts");
    secret(&f, "ssh", json!({"identity": key, "known_hosts": known_hosts})).await;
    f.source("repo", json!({"url": sshd.url(&f.repo.bare), "secretRef": {"name": "ssh"}})).await;
    f.synced("repo", &revision, None).await;
    assert_eq!(f.names().await, ["a"]);

    // An unknown host key is refused.
    secret(&f, "ssh", json!({"identity": key, "known_hosts": "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n"})).await;
    f.trigger("repo", "unknown-host").await;
    f.wait_status("repo", "host key refused", |s| {
        find(&s.conditions, "Ready")
            .filter(|c| c.reason.as_deref() == Some("FetchFailed"))
            .filter(|c| c.message.as_deref().unwrap_or_default().contains("host"))
            .map(|_| ())
    })
    .await;
    f.stop().await;
}
