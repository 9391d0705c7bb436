//! Pushing to a shared branch (a pull request's head) with the real git CLI
//! on both sides: a fast-forward lands; a branch that moved since the clone
//! is never overwritten, while the session's own branch is force-pushed.

use std::path::Path;
use std::process::Command;

use acp_git::Credentials;
use acp_git::push::push_branch;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit(dir: &Path, file: &str, text: &str) -> String {
    std::fs::write(dir.join(file), text).expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", file]);
    git(dir, &["rev-parse", "HEAD"])
}

#[test]
fn a_shared_branch_is_only_fast_forwarded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (remote, ours, theirs) =
        (tmp.path().join("remote.git"), tmp.path().join("ours"), tmp.path().join("theirs"));
    git(tmp.path(), &["init", "-q", "--bare", "-b", "fix", remote.to_str().expect("utf-8")]);
    let url = format!("file://{}", remote.display());
    git(tmp.path(), &["clone", "-q", &url, ours.to_str().expect("utf-8")]);
    git(&ours, &["checkout", "-q", "-b", "fix"]);
    commit(&ours, "a.txt", "a\n");
    git(&ours, &["push", "-q", "origin", "fix"]);
    git(tmp.path(), &["clone", "-q", "-b", "fix", &url, theirs.to_str().expect("utf-8")]);

    // Our commit on top of the head the remote still has: it lands.
    let mine = commit(&ours, "b.txt", "b\n");
    push_branch(&ours, &url, "fix", &Credentials::default(), false).expect("a fast-forward");
    assert_eq!(git(&remote, &["rev-parse", "fix"]), mine);

    // Someone pushes meanwhile; our next commit (on the old tip) is refused.
    git(&theirs, &["pull", "-q", "origin", "fix"]);
    let theirs_commit = commit(&theirs, "c.txt", "c\n");
    git(&theirs, &["push", "-q", "origin", "fix"]);
    commit(&ours, "d.txt", "d\n");
    let error =
        push_branch(&ours, &url, "fix", &Credentials::default(), false).expect_err("not a fast-forward");
    assert!(error.message.contains("moved on the remote") || error.message.contains("rejected"), "{error}");
    assert_eq!(git(&remote, &["rev-parse", "fix"]), theirs_commit, "their commit is kept");

    // The session's own branch is replaced.
    let forced = push_branch(&ours, &url, "fix", &Credentials::default(), true);
    assert!(forced.is_ok(), "{forced:?}");
    assert_ne!(git(&remote, &["rev-parse", "fix"]), theirs_commit);
}
