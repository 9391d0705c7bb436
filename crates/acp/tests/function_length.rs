//! No production function runs over [`LIMIT`] lines, counted from its `fn`
//! line to its closing brace, so that each reads as one step: a reconcile or
//! pipeline observes, decides and acts through named steps rather than
//! doing all three inline. The exceptions are named in [`EXCEPTIONS`], each
//! with its reason; an exception that no longer needs to be one fails too,
//! so the list stays true.
//!
//! Production code is `crates/*/src`, up to a file's first `#[cfg(test)]`;
//! files named `tests.rs` (unit-test modules) are left out, and so are
//! `tests/`, `benches/` and `examples/`.

use std::path::{Path, PathBuf};

/// Most lines a function may take.
const LIMIT: usize = 60;

/// Functions allowed to be longer: (file under `crates/`, function, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// A function found in a source file.
#[derive(Debug, PartialEq)]
struct Function {
    name: String,
    line: usize,
    lines: usize,
}

/// The name of the function `line` declares, if it declares one.
fn declares(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe ", "extern \"C\" "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let name = rest.strip_prefix("fn ")?;
    let end = name.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}

/// The functions of `text` with their lengths: each ends at the first line
/// after it that is its own indentation followed by `}`.
fn functions(text: &str) -> Vec<Function> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(name) = declares(line) else { continue };
        // A declaration without a body (a trait method) ends with `;`.
        if line.trim_end().ends_with(';') {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent}}}");
        let end = if line.trim_end().ends_with('}') {
            Some(at)
        } else {
            lines[at + 1..].iter().position(|l| l.trim_end() == close).map(|n| at + 1 + n)
        };
        if let Some(end) = end {
            found.push(Function { name: name.to_owned(), line: at + 1, lines: end - at + 1 });
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn no_function_runs_over_the_limit_but_the_named_exceptions() {
    let crates = acp_testenv::env::repo_root().join("crates");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("crates").flatten() {
        rust_files(&entry.path().join("src"), &mut files);
    }
    assert!(files.len() > 100, "the scan found {} files", files.len());
    let mut long = Vec::new();
    let mut used = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source file");
        let rel = file.strip_prefix(&crates).expect("under crates/").to_string_lossy().into_owned();
        for f in functions(&text).into_iter().filter(|f| f.lines > LIMIT) {
            match EXCEPTIONS.iter().find(|(path, name, _)| *path == rel && *name == f.name) {
                Some(exception) => used.push(*exception),
                None => long.push(format!("{rel}:{} {} ({} lines)", f.line, f.name, f.lines)),
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LIMIT} lines (split them, or name them with a reason): {long:#?}"
    );
    let stale: Vec<_> = EXCEPTIONS.iter().filter(|e| !used.contains(e)).collect();
    assert!(stale.is_empty(), "exceptions that are no longer over {LIMIT} lines: {stale:#?}");
}

#[test]
fn functions_are_measured_from_fn_to_their_closing_brace() {
    let text = "\
pub async fn short() {
    body();
}

impl Thing {
    pub(crate) fn method(
        &self,
    ) -> u32 {
        if x {
        }
        1
    }
    fn one_line(&self) -> u32 { 2 }
    fn declared(&self);
}

#[cfg(test)]
fn in_tests() {
}
";
    let found = functions(text);
    let summary: Vec<(&str, usize, usize)> =
        found.iter().map(|f| (f.name.as_str(), f.line, f.lines)).collect();
    assert_eq!(summary, [("short", 1, 3), ("method", 6, 7), ("one_line", 13, 1)]);
    assert_eq!(declares("    const fn limit() -> usize {"), Some("limit"));
    assert_eq!(declares("    let fn_name = 1;"), None);
}
