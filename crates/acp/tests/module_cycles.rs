//! No crate has a module cycle at any depth: the children of every module
//! (the crate root included) import each other without a cycle, counting
//! what anything inside a child (its descendants included) uses of anything
//! inside another child. So `broker::proxy` may not use
//! `broker::server` while `broker::server` uses `broker::proxy`, and
//! `a::x` using `b` while `b` uses `a::y` is a cycle between `a` and `b`.
//!
//! What a module uses: every path in its code (not in comments or literals)
//! that starts with `crate::`, `super::` or `self::`, `use` groups expanded
//! (`use crate::{a::x, b::{c, d}}`), resolved from the module's place
//! (`super::server` in `broker::proxy` is `broker::server`) to the longest
//! module path it names (`crate::broker::server::Foo` is `broker::server`),
//! following the named imports of the module it lands in (`super::Thing`,
//! when `broker` has `use server::Thing`, is `broker::server`; glob imports
//! are not followed). `mod x;` declarations are not uses. A module's path
//! comes from its file (`src/broker/proxy.rs` is `broker::proxy`,
//! `src/broker/mod.rs` and `src/broker.rs` are `broker`, `lib.rs` and
//! `main.rs` the crate root); inline `mod x { .. }` blocks count as their
//! file's module.
//!
//! A module and its own descendants are not checked against each other: a
//! `mod.rs` that holds the types its children share and calls into (or
//! re-exports) those children is how Rust modules are layered, not a cycle.
//! Unit tests may reach anywhere: code from a file's first `#[cfg(test)]` on
//! is left out, and so are the files of the modules declared there; so are
//! `tests/`, `benches/` and `examples/`, which are outside `src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root (`["broker", "proxy"]`; the root is `[]`).
type ModPath = Vec<String>;

fn show(module: &[String]) -> String {
    if module.is_empty() { "crate".to_owned() } else { module.join("::") }
}

/// The module of a source file in `src` (`src/broker/proxy.rs` is
/// `broker::proxy`, `src/broker/mod.rs` and `src/broker.rs` are `broker`,
/// `src/lib.rs` and `src/main.rs` the root); `None` for what is not a module
/// of the crate (other binaries in `src/bin`).
fn module_path(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let stem = parts.pop()?.strip_suffix(".rs")?.to_owned();
    if parts.first().is_some_and(|first| first == "bin") {
        return None;
    }
    match stem.as_str() {
        "mod" => {}
        "lib" | "main" if parts.is_empty() => {}
        _ => parts.push(stem),
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` without comments, string literals and character literals (each
/// literal kept as an empty one), so that only code is left.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Skips a quoted literal whose opening `"` is at `at`; the index after it.
    let skip_string = |at: usize| {
        let mut j = at + 1;
        while j < chars.len() && chars[j] != '"' {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == '"' {
            i = skip_string(i);
            out.push_str("\"\"");
        } else if c == '\'' {
            if next == Some('\\') {
                // An escaped character: `'\n'`, `'\''`, `'\u{1F600}'`.
                let mut j = i + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                // A lifetime or a label.
                out.push(c);
                i += 1;
            }
        } else if is_ident(c) && (i == 0 || !is_ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = word == "r" || word == "br" || word == "cr";
            if raw && matches!(chars.get(i), Some('"' | '#')) {
                let mut hashes = 0;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) == Some(&'"') {
                    i += 1;
                    loop {
                        if i >= chars.len() {
                            break;
                        }
                        if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
                            i += 1 + hashes;
                            break;
                        }
                        i += 1;
                    }
                    out.push_str("\"\"");
                } else {
                    // `r#ident`: a raw identifier.
                    out.push_str(&word);
                    out.push_str(&"#".repeat(hashes));
                }
            } else if (word == "b" || word == "c") && chars.get(i) == Some(&'"') {
                i = skip_string(i);
                out.push_str("\"\"");
            } else {
                out.push_str(&word);
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// What paths are made of.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `::`
    Sep,
    Open,
    Close,
    Comma,
    Star,
    Other(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::Sep);
            i += 2;
        } else {
            out.push(match c {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                '*' => Token::Star,
                other => Token::Other(other),
            });
            i += 1;
        }
    }
    out
}

/// One path of a `use` tree or an expression, and the name it binds (`as`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct UsePath {
    segments: Vec<String>,
    /// `use a::B as C` binds `C`; `as _` binds nothing.
    alias: Option<String>,
    /// `use a::*`.
    glob: bool,
}

/// The paths of the tree that starts at `tokens[*at]` (a segment or a
/// `{...}` group), groups expanded; `*at` ends after it.
fn parse_tree(tokens: &[Token], at: &mut usize) -> Vec<UsePath> {
    match tokens.get(*at) {
        Some(Token::Open) => {
            *at += 1;
            let mut out = Vec::new();
            loop {
                match tokens.get(*at) {
                    None => break,
                    Some(Token::Close) => {
                        *at += 1;
                        break;
                    }
                    Some(Token::Comma) => *at += 1,
                    _ => {
                        let before = *at;
                        out.extend(parse_tree(tokens, at));
                        if *at == before {
                            *at += 1;
                        }
                    }
                }
            }
            out
        }
        Some(Token::Star) => {
            *at += 1;
            vec![UsePath { segments: Vec::new(), alias: None, glob: true }]
        }
        Some(Token::Ident(name)) => {
            *at += 1;
            if tokens.get(*at) == Some(&Token::Sep) {
                *at += 1;
                let mut inner = parse_tree(tokens, at);
                for path in &mut inner {
                    path.segments.insert(0, name.clone());
                }
                return inner;
            }
            let mut alias = None;
            if tokens.get(*at) == Some(&Token::Ident("as".to_owned()))
                && let Some(Token::Ident(name)) = tokens.get(*at + 1)
            {
                alias = Some(name.clone());
                *at += 2;
            }
            vec![UsePath { segments: vec![name.clone()], alias, glob: false }]
        }
        _ => vec![UsePath { segments: Vec::new(), alias: None, glob: false }],
    }
}

/// Every path in `code` that starts with `crate::`, `super::` or `self::`,
/// `use` groups expanded.
fn local_paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts = matches!(&tokens[i], Token::Ident(w) if w == "crate" || w == "super" || w == "self")
            && tokens.get(i + 1) == Some(&Token::Sep)
            && !matches!(i.checked_sub(1).map(|p| &tokens[p]), Some(Token::Other('$') | Token::Sep));
        if starts {
            out.extend(parse_tree(&tokens, &mut i).into_iter().map(|p| p.segments));
        } else {
            i += 1;
        }
    }
    out
}

/// The `use` declarations of `code`: each path with what it binds.
fn use_paths(code: &str) -> Vec<UsePath> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Ident("use".to_owned()) {
            i += 1;
            if tokens.get(i) == Some(&Token::Sep) {
                // `use ::extern_crate::..`
                i += 1;
                parse_tree(&tokens, &mut i);
                continue;
            }
            out.extend(parse_tree(&tokens, &mut i));
        } else {
            i += 1;
        }
    }
    out
}

/// The absolute path of `path` (which starts with `crate`, `super` or
/// `self`) written in module `from`; `None` if it climbs above the root.
fn absolute(from: &[String], path: &[String]) -> Option<ModPath> {
    let (mut out, mut rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (from.to_vec(), &path[1..]),
        Some("super") => (from.to_vec(), path),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        out.pop()?;
        rest = &rest[1..];
    }
    // `use crate::a::{self, b}` names `a` itself.
    out.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(out)
}

/// A crate's modules and what their code uses.
#[derive(Debug, Default)]
struct Crate {
    modules: BTreeSet<ModPath>,
    /// Per module, the names its `use` declarations bind, and their absolute paths.
    imports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Per module, the local paths its code names (as written).
    uses: BTreeMap<ModPath, Vec<Vec<String>>>,
}

impl Crate {
    /// The crate of `src`, without test code.
    fn read(src: &Path) -> Crate {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut code_of: BTreeMap<ModPath, String> = BTreeMap::new();
        let mut test_modules: BTreeSet<ModPath> = BTreeSet::new();
        for file in &files {
            let Some(module) = module_path(src, file) else { continue };
            let code = code_only(&std::fs::read_to_string(file).expect("source file"));
            let (code, tests) = code.split_once("#[cfg(test)]").unwrap_or((&code, ""));
            // `#[cfg(test)] mod tests;` puts a whole file out of the build.
            let tokens = tokens(tests);
            for window in tokens.windows(3) {
                if let [Token::Ident(m), Token::Ident(name), Token::Other(';')] = window
                    && m == "mod"
                {
                    test_modules.insert(module.iter().cloned().chain([name.clone()]).collect());
                }
            }
            code_of.entry(module).or_default().push_str(&format!("\n{code}"));
        }
        code_of.retain(|module, _| !test_modules.iter().any(|test| module.starts_with(test)));
        Crate::of_code(code_of)
    }

    /// The crate whose modules have this code.
    fn of_code(code_of: BTreeMap<ModPath, String>) -> Crate {
        let mut krate = Crate { modules: code_of.keys().cloned().collect(), ..Crate::default() };
        krate.modules.insert(Vec::new());
        for (module, code) in &code_of {
            let mut imports = BTreeMap::new();
            for path in use_paths(code) {
                if path.glob {
                    continue;
                }
                let Some(last) = path.segments.iter().rev().find(|s| *s != "self") else { continue };
                let name = path.alias.clone().unwrap_or_else(|| last.clone());
                let first = path.segments.first().map(String::as_str).unwrap_or_default();
                let target = if matches!(first, "crate" | "super" | "self") {
                    absolute(module, &path.segments)
                } else {
                    // `use child::Item` (2018 paths); anything else is another crate.
                    let child: ModPath = module.iter().cloned().chain([first.to_owned()]).collect();
                    krate.modules.contains(&child).then(|| {
                        module
                            .iter()
                            .cloned()
                            .chain(path.segments.iter().filter(|s| *s != "self").cloned())
                            .collect()
                    })
                };
                if let Some(target) = target
                    && name != "_"
                {
                    imports.insert(name, target);
                }
            }
            krate.imports.insert(module.clone(), imports);
            krate.uses.insert(module.clone(), local_paths(code));
        }
        krate
    }

    /// The module `path` (absolute) names: its longest prefix that is a
    /// module, or what the name after that prefix is imported from.
    fn module_of(&self, path: &[String]) -> ModPath {
        let mut path = path.to_vec();
        // Imports can chain, but not forever.
        for hops in 0.. {
            let len = (0..=path.len()).rev().find(|&n| self.modules.contains(&path[..n])).unwrap_or(0);
            let imported = path.get(len).and_then(|name| self.imports.get(&path[..len])?.get(name));
            match imported {
                Some(target) if hops < 16 && !target.starts_with(&path[..=len]) => {
                    path = target.iter().chain(&path[len + 1..]).cloned().collect();
                }
                _ => return path[..len].to_vec(),
            }
        }
        unreachable!("the loop returns")
    }

    /// The dependencies between sibling modules, each with what makes it:
    /// `(from, to)` for siblings `from` and `to` when something inside
    /// `from` uses something inside `to`, with `(module, path)` witnesses.
    fn sibling_edges(&self) -> BTreeMap<(ModPath, ModPath), BTreeSet<(String, String)>> {
        let mut edges: BTreeMap<(ModPath, ModPath), BTreeSet<(String, String)>> = BTreeMap::new();
        for (module, paths) in &self.uses {
            for path in paths {
                let Some(absolute) = absolute(module, path) else { continue };
                let target = self.module_of(&absolute);
                let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
                // A module and its descendants are not checked against each other.
                if common == module.len() || common == target.len() {
                    continue;
                }
                edges
                    .entry((module[..=common].to_vec(), target[..=common].to_vec()))
                    .or_default()
                    .insert((show(module), path.join("::")));
            }
        }
        edges
    }

    /// The cycles among sibling modules, each with the uses that make it
    /// (one cycle per edge that closes one, so a failure shows them all).
    fn cycles(&self) -> Vec<String> {
        let edges = self.sibling_edges();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges.keys() {
            graph.entry(show(from)).or_default().insert(show(to));
        }
        let mut out = Vec::new();
        while let Some(cycle) = find_cycle(&graph) {
            let mut steps = Vec::new();
            for pair in cycle.windows(2) {
                let witnesses = edges
                    .iter()
                    .filter(|((from, to), _)| show(from) == pair[0] && show(to) == pair[1])
                    .flat_map(|(_, w)| w.iter().map(|(module, path)| format!("{module} uses {path}")))
                    .collect::<Vec<_>>();
                steps.push(format!("{} -> {} ({})", pair[0], pair[1], witnesses.join("; ")));
            }
            out.push(format!("{}: {}", cycle.join(" -> "), steps.join(", ")));
            // Drop the edge that closes it, to find the next.
            let (last_from, last_to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
            graph.get_mut(last_from).expect("edge").remove(last_to);
        }
        out
    }
}

/// A cycle in `graph`, if any (as the list of modules around it).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = acp_testenv::env::repo_root().join("crates");
    let mut cycles = Vec::new();
    let mut modules = 0;
    for entry in std::fs::read_dir(&crates).expect("crates").flatten() {
        let krate = Crate::read(&entry.path().join("src"));
        modules += krate.modules.len();
        for cycle in krate.cycles() {
            cycles.push(format!("{}: {cycle}", entry.file_name().to_string_lossy()));
        }
    }
    assert!(modules > 100, "the workspace's modules are found ({modules})");
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [("a".to_owned(), BTreeSet::from(["b".to_owned()]))].into();
    assert_eq!(find_cycle(&acyclic), None);
}

fn path(text: &str) -> Vec<String> {
    if text.is_empty() { Vec::new() } else { text.split("::").map(str::to_owned).collect() }
}

/// A crate of (module, code) pairs.
fn krate(modules: &[(&str, &str)]) -> Crate {
    Crate::of_code(modules.iter().map(|(module, code)| (path(module), (*code).to_owned())).collect())
}

#[test]
fn modules_come_from_file_paths() {
    let src = Path::new("/c/src");
    let of = |file: &str| module_path(src, &src.join(file)).map(|m| show(&m));
    assert_eq!(of("broker/proxy.rs").as_deref(), Some("broker::proxy"));
    assert_eq!(of("broker/mod.rs").as_deref(), Some("broker"));
    assert_eq!(of("broker.rs").as_deref(), Some("broker"));
    assert_eq!(of("lib.rs").as_deref(), Some("crate"));
    assert_eq!(of("main.rs").as_deref(), Some("crate"));
    assert_eq!(of("a/main.rs").as_deref(), Some("a::main"));
    assert_eq!(of("bin/tool.rs"), None);
}

#[test]
fn only_code_is_read() {
    let code = code_only(
        "use crate::a; // crate::b\n/* crate::c /* nested */ crate::d */ let s = \"crate::e \\\" crate::f\";\n\
         let r = r#\"crate::g \"# ; let c = '\"'; let l: &'static str = x; crate::h",
    );
    let paths: Vec<String> = local_paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["crate::a", "crate::h"]);
}

#[test]
fn paths_are_read_with_their_groups() {
    let paths: Vec<String> = local_paths(
        "use crate::{a::x, b::{c, d::{self, E}}, f as g};\nfn f() { super::super::h::i(); self::j::K::<T>::new(); \
         $crate::no; Self::no(); x.self_no; pub(super) fn k() {} }",
    )
    .iter()
    .map(|p| p.join("::"))
    .collect();
    assert_eq!(
        paths,
        [
            "crate::a::x",
            "crate::b::c",
            "crate::b::d::self",
            "crate::b::d::E",
            "crate::f",
            "super::super::h::i",
            "self::j::K",
        ]
    );
}

#[test]
fn paths_resolve_from_their_module() {
    let from = path("broker::proxy");
    assert_eq!(absolute(&from, &path("super::server::ServeError")), Some(path("broker::server::ServeError")));
    assert_eq!(absolute(&from, &path("super::*")), Some(path("broker::*")));
    assert_eq!(absolute(&from, &path("super::super::config")), Some(path("config")));
    assert_eq!(absolute(&from, &path("super::super::super::x")), None);
    assert_eq!(absolute(&from, &path("self::inner")), Some(path("broker::proxy::inner")));
    assert_eq!(absolute(&path("broker"), &path("self::server")), Some(path("broker::server")));
    assert_eq!(absolute(&from, &path("crate::a::b")), Some(path("a::b")));
    assert_eq!(absolute(&from, &path("crate::a::self")), Some(path("a")));
}

#[test]
fn paths_name_their_longest_module_and_follow_imports() {
    let krate = krate(&[
        ("", "pub use broker::server::Reexported;"),
        ("broker", "use server::ServeError; pub(crate) use self::client::{Client as Handle};"),
        ("broker::server", ""),
        ("broker::client", ""),
        ("config", ""),
    ]);
    let module = |p: &str| show(&krate.module_of(&path(p)));
    assert_eq!(module("broker::server::Foo"), "broker::server");
    assert_eq!(module("broker::server"), "broker::server");
    assert_eq!(module("broker::Target"), "broker");
    assert_eq!(module("broker::*"), "broker");
    assert_eq!(module("broker::ServeError"), "broker::server");
    assert_eq!(module("broker::Handle::new"), "broker::client");
    assert_eq!(module("Reexported"), "broker::server");
    assert_eq!(module("config::nested::Deeper"), "config");
    assert_eq!(module("Unknown"), "crate");
}

#[test]
fn sibling_cycles_are_found_at_any_depth() {
    let cyclic = krate(&[
        ("broker", "pub struct Target; fn f() { server::serve() }"),
        ("broker::proxy", "use super::Target; use super::server::ServeError;"),
        ("broker::server", "use super::{proxy::Upstream, Target};"),
    ]);
    assert_eq!(cyclic.cycles().len(), 1, "{:?}", cyclic.cycles());
    assert!(cyclic.cycles()[0].starts_with("broker::proxy -> broker::server -> broker::proxy"));
    // Through an import of the parent, too.
    let hidden = krate(&[
        ("broker", "use server::ServeError;"),
        ("broker::proxy", "use super::ServeError;"),
        ("broker::server", "use crate::broker::proxy::Upstream;"),
    ]);
    assert_eq!(hidden.cycles().len(), 1, "{:?}", hidden.cycles());
    // Cousins: a::x uses b, b uses a::y: `a` and `b` use each other.
    let cousins =
        krate(&[("a", ""), ("a::x", "use crate::b::B;"), ("a::y", ""), ("b", "fn f() { crate::a::y::g() }")]);
    assert_eq!(cousins.cycles().len(), 1, "{:?}", cousins.cycles());
    assert!(cousins.cycles()[0].starts_with("a -> b -> a"));
    // A parent and its children are not siblings.
    let layered = krate(&[
        ("broker", "pub struct Target; pub use server::serve; fn f() { self::proxy::g() }"),
        ("broker::proxy", "use super::Target; use crate::broker::Target as T; use super::error::E;"),
        ("broker::server", "use super::{proxy::Upstream, Target, error::E};"),
        ("broker::error", ""),
    ]);
    assert_eq!(layered.cycles(), Vec::<String>::new());
}
