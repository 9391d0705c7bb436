//! Which commit last changed a file: git-sync stamps each object it applies
//! with the commit that last changed the object's file (not the synced head),
//! so "the sessions of commit X" means the sessions X added or changed.
//!
//! Each path is followed back from the head through the history the mirror
//! holds, as `git log -1 -- <path>` does: through a parent holding the same
//! blob, until a commit whose every parent differs (or a root commit holding
//! it), for at most `limit` commits. At the mirror's shallow boundary the
//! parents are unknown, so the path is left unresolved (the caller decides).

use std::collections::HashMap;
use std::path::Path;

use git2::{Oid, Repository, Tree};

/// Commits looked at before giving up on the paths still open.
pub const DEFAULT_LIMIT: usize = 10_000;

/// The commit that last changed each of `paths` at or before `head`, for the
/// paths resolvable in the history of the bare repository at `dir`.
pub fn last_changes(
    dir: &Path,
    head: Oid,
    paths: &[&str],
    limit: usize,
) -> Result<HashMap<String, Oid>, git2::Error> {
    let repo = Repository::open_bare(dir)?;
    let mut found = HashMap::new();
    for path in paths {
        if let Some(commit) = last_change(&repo, head, path, limit)? {
            found.insert((*path).to_owned(), commit);
        }
    }
    Ok(found)
}

/// Follows `path` back from `head` as `git log -1 -- path` does: through a
/// parent holding the same blob (a merge that took that side), until a commit
/// whose every parent differs.
fn last_change(repo: &Repository, head: Oid, path: &str, limit: usize) -> Result<Option<Oid>, git2::Error> {
    let mut commit = repo.find_commit(head)?;
    for _ in 0..limit {
        let here = blob(&commit.tree()?, path);
        if here.is_none() {
            return Ok(None);
        }
        let parents: Vec<git2::Commit<'_>> =
            commit.parent_ids().filter_map(|id| repo.find_commit(id).ok()).collect();
        if parents.len() < commit.parent_count() {
            // The shallow boundary: without its parents, whether it changed the path is unknown.
            return Ok(None);
        }
        let mut same = None;
        for parent in parents {
            if blob(&parent.tree()?, path) == here {
                same = Some(parent);
                break;
            }
        }
        match same {
            Some(parent) => commit = parent,
            None => return Ok(Some(commit.id())),
        }
    }
    Ok(None)
}

fn blob(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path)).ok().map(|entry| entry.id())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@x", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> Oid {
        for (path, text) in files {
            std::fs::write(work.join(path), text).expect("write");
        }
        git(work, &["add", "-A"]);
        git(work, &["commit", "-qm", message]);
        Oid::from_str(&git(work, &["rev-parse", "HEAD"])).expect("oid")
    }

    #[test]
    fn each_path_gets_the_commit_that_last_changed_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q"]);
        let c1 = commit(&work, &[("a.yaml", "a1"), ("b.yaml", "b1"), ("c.yaml", "c1")], "one");
        let c2 = commit(&work, &[("a.yaml", "a2")], "two");
        git(&work, &["checkout", "-q", "-b", "side"]);
        let c3 = commit(&work, &[("b.yaml", "b2")], "side");
        git(&work, &["checkout", "-q", "main"]);
        commit(&work, &[("d.yaml", "d1")], "four");
        git(&work, &["merge", "-q", "--no-ff", "-m", "merge", "side"]);
        let head = Oid::from_str(&git(&work, &["rev-parse", "HEAD"])).expect("oid");
        let bare = tmp.path().join("bare.git");
        git(tmp.path(), &["clone", "-q", "--bare", work.to_str().expect("utf-8"), "bare.git"]);

        let found = last_changes(&bare, head, &["a.yaml", "b.yaml", "c.yaml", "gone.yaml"], DEFAULT_LIMIT)
            .expect("walk");
        assert_eq!(found.get("a.yaml"), Some(&c2));
        assert_eq!(found.get("b.yaml"), Some(&c3), "the merge took the side's version: the side changed it");
        assert_eq!(found.get("c.yaml"), Some(&c1), "the root commit added it");
        assert_eq!(found.get("gone.yaml"), None);
        let limited = last_changes(&bare, head, &["c.yaml"], 2).expect("walk");
        assert_eq!(limited.get("c.yaml"), None, "past the limit a path stays unresolved");
    }

    #[test]
    fn at_the_shallow_boundary_a_path_stays_unresolved() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q"]);
        commit(&work, &[("a.yaml", "a1"), ("b.yaml", "b1")], "one");
        let c2 = commit(&work, &[("a.yaml", "a2")], "two");
        let c3 = commit(&work, &[("c.yaml", "c1")], "three");
        let url = format!("file://{}", work.display());
        git(tmp.path(), &["clone", "-q", "--bare", "--depth", "2", &url, "shallow.git"]);
        let found = last_changes(&tmp.path().join("shallow.git"), c3, &["a.yaml", "b.yaml", "c.yaml"], 100)
            .expect("walk");
        assert_eq!(found.get("c.yaml"), Some(&c3));
        assert_eq!(found.get("a.yaml"), None, "c2 is the boundary: whether it changed a.yaml is unknown");
        assert_eq!(found.get("b.yaml"), None);
        let _ = c2;
    }
}
