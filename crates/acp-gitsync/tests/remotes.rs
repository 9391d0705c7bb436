//! git-sync fetching over the network with credentials from the source's
//! secret: https with a token (git http-backend), ssh with a key and
//! known_hosts (a real sshd); wrong credentials end in FetchFailed, with the
//! last good state kept; and the provenance label, which depends on what the
//! network fetch brings.

mod common;

use acp_api::condition::find;
use acp_api::constants::labels;
use acp_testenv::githttp::GitServer;
use acp_testenv::sshd::SshServer;
use common::{Fixture, session};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{DynamicObject, Patch, PatchParams};
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

/// Provenance: each session carries, as a label, the commit that last changed
/// its file; not the synced head. Over https, from the first sync on (the
/// mirror holds the history), and every later fetch brings the commits in
/// between.
#[tokio::test]
async fn each_session_is_labelled_with_the_commit_that_last_changed_its_file() {
    use acp_testenv::githttp::git;
    let f = Fixture::start("gitsync-provenance").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let server = GitServer::start(&tmp.path().join("git"), "prov-token").await;
    let bare = server.create_repo("prov", "main", &[("b.yaml", &session("b", "older"))]);
    let work = tmp.path().join("work");
    git(tmp.path(), &["clone", "-q", bare.to_str().expect("utf-8"), "work"]);
    let commit = |files: &[(&str, &str)], message: &str| {
        for (path, text) in files {
            std::fs::write(work.join(path), text).expect("write");
        }
        git(&work, &["add", "-A"]);
        git(&work, &["-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", message]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        git(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    };
    let c0 = git(&work, &["rev-parse", "HEAD"]).trim().to_owned();
    let c1 = commit(&[("a.yaml", &session("a", "first"))], "add a");
    secret(&f, "git", json!({"token": "prov-token"})).await;
    f.source("repo", json!({"url": server.url("prov"), "secretRef": {"name": "git"}})).await;
    f.synced("repo", &c1, None).await;
    let label = |o: &DynamicObject| o.labels().get(labels::SOURCE_COMMIT).cloned().unwrap_or_default();
    let get = |name: &'static str| {
        let api = f.sessions();
        async move { api.get(name).await.expect("session") }
    };
    assert_eq!(label(&get("a").await), c1);
    assert_eq!(label(&get("b").await), c0, "a file older than the synced head: the commit that changed it");
    let b_version = get("b").await.metadata.resource_version;

    // Three commits, one sync: each changed file gets its own commit.
    let c2 = commit(&[("a.yaml", &session("a", "edited"))], "edit a");
    let c3 = commit(&[("c.yaml", &session("c", "new"))], "add c");
    let c4 = commit(&[("README.md", "not a manifest\n")], "docs");
    f.trigger("repo", "three").await;
    f.synced("repo", &c4, Some("three")).await;
    assert_eq!(label(&get("a").await), c2);
    assert_eq!(label(&get("c").await), c3);
    let b = get("b").await;
    assert_eq!((label(&b), b.metadata.resource_version), (c0.clone(), b_version), "b untouched");

    // Selectable: the sessions of one commit.
    let of_c3 = f
        .sessions()
        .list(&kube::api::ListParams::default().labels(&format!("{}={c3}", labels::SOURCE_COMMIT)))
        .await
        .expect("list");
    assert_eq!(of_c3.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(), ["c"]);
    f.stop().await;
}
