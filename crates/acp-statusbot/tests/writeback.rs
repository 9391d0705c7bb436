//! Write-back commits against real git: created on first write, one commit per
//! change and none for the same content, other branches untouched, a refused
//! (non-fast-forward) push rebased and retried, and two writers racing on the
//! branch without losing or rewriting anything.

use std::path::{Path, PathBuf};

use acp_statusbot::writeback::{WriteBack, Written, read, status_file};
use acp_testenv::githttp::git;

fn bare_repo(dir: &Path) -> PathBuf {
    let bare = dir.join("repo.git");
    let work = dir.join("seed");
    git(dir, &["init", "-q", "--bare", "-b", "main", bare.to_str().expect("utf-8")]);
    git(dir, &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]);
    std::fs::write(work.join("session.yaml"), "kind: AgenticSession\n").expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", "commit", "-qm", "seed"]);
    git(&work, &["push", "-q", bare.to_str().expect("utf-8"), "main"]);
    bare
}

fn writer(dir: &Path, bare: &Path, mirror: &str) -> WriteBack {
    WriteBack {
        dir: dir.join(mirror),
        url: format!("file://{}", bare.display()),
        branch: "acp/status".into(),
        credentials: Default::default(),
        author_name: "acp status bot".into(),
        author_email: "acp@example.invalid".into(),
    }
}

fn commits(bare: &Path, branch: &str) -> Vec<String> {
    git(bare, &["rev-list", branch]).lines().map(String::from).collect()
}

#[test]
fn one_commit_per_change_and_none_for_the_same_content() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = bare_repo(tmp.path());
    let main_before = commits(&bare, "main");
    let bot = writer(tmp.path(), &bare, "mirror");
    let path = status_file("status", "team", "fix-login");
    assert_eq!(path, "status/team/fix-login.yaml");

    let first = bot
        .write(&[(path.clone(), b"phase: Running\n".to_vec())], "status: team/fix-login Running")
        .expect("write");
    assert!(matches!(first, Written::Committed { retries: 0, .. }), "{first:?}");
    assert_eq!(read(&bare, "acp/status", &path).as_deref(), Some(&b"phase: Running\n"[..]));
    assert_eq!(
        bot.write(&[(path.clone(), b"phase: Running\n".to_vec())], "again").expect("write"),
        Written::Unchanged
    );
    bot.write(&[(path.clone(), b"phase: Completed\n".to_vec())], "status: Completed").expect("write");
    assert_eq!(commits(&bare, "acp/status").len(), 2, "two distinct contents, two commits");
    assert_eq!(commits(&bare, "main"), main_before, "main untouched");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "acp/status"]).trim(),
        "acp status bot <acp@example.invalid>"
    );
}

#[test]
fn a_refused_push_is_rebased_onto_the_new_tip_and_retried() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = bare_repo(tmp.path());
    let ours = writer(tmp.path(), &bare, "ours");
    let theirs = writer(tmp.path(), &bare, "theirs");
    ours.write(&[("status/team/a.yaml".into(), b"a: 1\n".to_vec())], "a").expect("seed the branch");
    let before = commits(&bare, "acp/status");

    // Between our commit and our push, another writer moves the branch.
    let written = ours
        .write_with(&[("status/team/a.yaml".into(), b"a: 2\n".to_vec())], "a again", |attempt| {
            if attempt == 0 {
                theirs.write(&[("status/team/b.yaml".into(), b"b: 1\n".to_vec())], "b").expect("their write");
            }
        })
        .expect("write");
    assert!(matches!(written, Written::Committed { retries: 1, .. }), "{written:?}");
    let after = commits(&bare, "acp/status");
    assert_eq!(after.len(), before.len() + 2, "their commit and ours, nothing lost");
    assert!(after.ends_with(&before), "history only grows: {after:?}");
    assert_eq!(read(&bare, "acp/status", "status/team/a.yaml").as_deref(), Some(&b"a: 2\n"[..]));
    assert_eq!(read(&bare, "acp/status", "status/team/b.yaml").as_deref(), Some(&b"b: 1\n"[..]));
}

/// Racing writers through a real git server (`git http-backend`, whose
/// receive-pack updates refs with a compare-and-swap, as GitHub does).
/// (libgit2's file:// transport does not lock refs, so racing writers there
/// can overwrite each other whatever the client does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = acp_testenv::githttp::GitServer::start(&tmp.path().join("srv"), "tok").await;
    server.create_repo("acme/sessions", "main", &[("session.yaml", "kind: AgenticSession\n")]);
    let bare = server.root().join("acme/sessions.git");
    let handles: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|who| {
            let mut bot = writer(tmp.path(), &bare, who);
            bot.url = server.url("acme/sessions");
            bot.credentials.basic = Some(("x-access-token".into(), "tok".into()));
            tokio::task::spawn_blocking(move || {
                (0..10)
                    .map(|i| {
                        let path = format!("status/{who}/s-{i}.yaml");
                        bot.write(&[(path, format!("n: {i}\n").into_bytes())], &format!("{who} {i}"))
                            .expect("write")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.extend(handle.await.expect("writer task"));
    }
    assert!(results.iter().all(|r| matches!(r, Written::Committed { .. })));
    assert_eq!(commits(&bare, "acp/status").len(), 20, "one commit per write");
    for who in ["left", "right"] {
        for i in 0..10 {
            let content = read(&bare, "acp/status", &format!("status/{who}/s-{i}.yaml"));
            assert_eq!(content, Some(format!("n: {i}\n").into_bytes()), "{who} {i}");
        }
    }
    // Linear: no merge commits, nothing force-pushed.
    let merges = git(&bare, &["rev-list", "--min-parents=2", "acp/status"]);
    assert!(merges.trim().is_empty());
    let retries: u32 =
        results.iter().map(|r| if let Written::Committed { retries, .. } = r { *retries } else { 0 }).sum();
    eprintln!("racing writers: {retries} refused pushes retried");
}
