//! Which files of a source are manifests: `*.yaml` / `*.yml` under the
//! source's `path`, minus the source's `ignore` patterns (gitignore semantics,
//! by the `ignore` crate: anchoring, `dir/`, `**`, `!` re-includes) and the
//! write-back path; read from a git tree (git-sync, `acp plan --base`) or from
//! a directory (`acp validate`). Symlinks are never followed and oversized
//! files are never read.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Files larger than this are refused unread.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A candidate manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file and its content.
    File {
        /// Path relative to the repository root, `/`-separated.
        path: String,
        /// Content.
        bytes: Vec<u8>,
    },
    /// A symlink (reported, never followed).
    Symlink {
        /// Path relative to the repository root.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A file over [`MAX_FILE_BYTES`].
    TooLarge {
        /// Path relative to the repository root.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
}

impl Entry {
    /// The same entry at the path `rename` makes of its path.
    pub fn with_path(self, rename: impl FnOnce(String) -> String) -> Self {
        match self {
            Entry::File { path, bytes } => Entry::File { path: rename(path), bytes },
            Entry::Symlink { path, target } => Entry::Symlink { path: rename(path), target },
            Entry::TooLarge { path, size } => Entry::TooLarge { path: rename(path), size },
        }
    }

    /// The same entry, its path prefixed with `branch:` (a file of another
    /// branch than the source's ref, such as the requests branch).
    pub fn within(self, branch: &str) -> Self {
        self.with_path(|path| format!("{branch}:{path}"))
    }
}

impl Entry {
    /// The entry's path.
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Symlink { path, .. } | Entry::TooLarge { path, .. } => path,
        }
    }
}

/// A bad ignore pattern.
#[derive(Debug, thiserror::Error)]
#[error("failed to parse ignore pattern {pattern:?}: {source}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// The gitignore parser's error.
    pub source: ignore::Error,
}

/// Selects manifest files.
#[derive(Clone, Debug)]
pub struct Filter {
    root: String,
    ignore: Gitignore,
    excluded: Vec<String>,
}

fn normalize(path: &str) -> String {
    path.split('/').filter(|s| !s.is_empty() && *s != ".").collect::<Vec<_>>().join("/")
}

impl Filter {
    /// Files under `root` (repository-relative; empty for all), minus the
    /// gitignore-style `ignore` patterns and the `excluded` directories.
    pub fn new(root: &str, ignore: &[String], excluded: &[String]) -> Result<Self, PatternError> {
        // Patterns are matched against repository-relative paths, as if they
        // were one .gitignore at the repository root.
        let mut builder = GitignoreBuilder::new("");
        for pattern in ignore {
            builder
                .add_line(None, pattern)
                .map_err(|source| PatternError { pattern: pattern.clone(), source })?;
        }
        let ignore = builder.build().map_err(|source| PatternError { pattern: ignore.join(", "), source })?;
        Ok(Self {
            root: normalize(root),
            ignore,
            excluded: excluded.iter().map(|e| normalize(e)).filter(|e| !e.is_empty()).collect(),
        })
    }

    /// Whether `path` (repository-relative) is a manifest to read.
    pub fn wants(&self, path: &str) -> bool {
        let under = |dir: &str| dir.is_empty() || path == dir || path.starts_with(&format!("{dir}/"));
        (path.ends_with(".yaml") || path.ends_with(".yml"))
            && under(&self.root)
            && !self.excluded.iter().any(|e| under(e))
            && !self.ignore.matched_path_or_any_parents(path, false).is_ignore()
    }
}

/// The manifest files of commit `tree` in `repo`, sorted by path.
pub fn from_tree(
    repo: &git2::Repository,
    tree: &git2::Tree<'_>,
    filter: &Filter,
) -> Result<Vec<Entry>, git2::Error> {
    let odb = repo.odb()?;
    let mut wanted = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let path = format!("{dir}{}", entry.name().unwrap_or_default());
            if filter.wants(&path) {
                wanted.push((path, entry.id(), entry.filemode()));
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    let mut entries = Vec::with_capacity(wanted.len());
    for (path, id, mode) in wanted {
        let (size, _) = odb.read_header(id)?;
        let size = size as u64;
        if mode == i32::from(git2::FileMode::Link) {
            let target = String::from_utf8_lossy(repo.find_blob(id)?.content()).into_owned();
            entries.push(Entry::Symlink { path, target });
        } else if size > MAX_FILE_BYTES {
            entries.push(Entry::TooLarge { path, size });
        } else {
            entries.push(Entry::File { path, bytes: repo.find_blob(id)?.content().to_vec() });
        }
    }
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(entries)
}

/// The manifest files under directory `root` (the repository root), sorted.
pub fn from_dir(root: &Path, filter: &Filter) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir)? {
            let item = item?;
            let full = item.path();
            let rel = full.strip_prefix(root).unwrap_or(&full).to_string_lossy().replace('\\', "/");
            let file_type = item.file_type()?;
            if file_type.is_dir() {
                if rel != ".git" {
                    stack.push(full);
                }
                continue;
            }
            if !filter.wants(&rel) {
                continue;
            }
            if file_type.is_symlink() {
                let target = std::fs::read_link(&full)?.to_string_lossy().into_owned();
                entries.push(Entry::Symlink { path: rel, target });
                continue;
            }
            let size = item.metadata()?.len();
            if size > MAX_FILE_BYTES {
                entries.push(Entry::TooLarge { path: rel, size });
            } else {
                entries.push(Entry::File { path: rel, bytes: std::fs::read(&full)? });
            }
        }
    }
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_selects_yaml_under_root_minus_ignores_and_write_back() {
        let ignore = ["drafts/".to_string(), "*.tmpl.yaml".to_string(), "/top-only.yaml".to_string()];
        let filter = Filter::new("sessions", &ignore, &["sessions/status".to_string()]).expect("patterns");
        assert!(filter.wants("sessions/a.yaml"));
        assert!(filter.wants("sessions/team/b.yml"));
        assert!(!filter.wants("sessions/readme.md"));
        assert!(!filter.wants("other/a.yaml"));
        assert!(!filter.wants("sessions-old/a.yaml"));
        assert!(!filter.wants("sessions/drafts/c.yaml"));
        assert!(!filter.wants("sessions/x/y.tmpl.yaml"));
        assert!(!filter.wants("sessions/status/s.yaml"));
        let all = Filter::new("", &ignore, &[]).expect("patterns");
        assert!(!all.wants("top-only.yaml"));
        assert!(all.wants("sub/top-only.yaml"));
    }

    #[test]
    fn negations_re_include_and_double_stars_match_any_depth() {
        let ignore = ["*.tmpl.yaml".to_string(), "!keep.tmpl.yaml".to_string(), "**/wip/**".to_string()];
        let filter = Filter::new("", &ignore, &[]).expect("patterns");
        assert!(!filter.wants("a/x.tmpl.yaml"));
        assert!(filter.wants("a/keep.tmpl.yaml"), "a later ! pattern re-includes");
        assert!(!filter.wants("team/wip/deep/s.yaml"));
        assert!(filter.wants("team/s.yaml"));
    }
}
