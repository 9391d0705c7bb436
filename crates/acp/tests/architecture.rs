//! The architecture stays as ARCHITECTURE.md draws it, at the level of
//! crates (module cycles are `module_cycles.rs`'s; function lengths
//! `function_length.rs`'s):
//!
//! - Components (runner, operator, git-sync, status bot, dashboard) depend
//!   only on shared crates, never on each other, in any dependency kind; shared
//!   crates depend on no component.
//! - Shared crates are layered ([`LAYERS`]); a shared crate's normal and build
//!   dependencies on shared crates are all in lower layers, and its
//!   dev-dependencies are in lower layers or are `acp-testenv`:
//!   - layer 0: `acp-api` (types and wire formats);
//!   - layer 1: `acp-git`, `acp-github`, `acp-kube`, `acp-policy`,
//!     `acp-replay` (independent adapters, each over `acp-api` at most, never
//!     over one another);
//!   - layer 2: `acp-testenv` (the test harness, over all of them).

use std::collections::BTreeSet;

const COMPONENTS: [&str; 5] = ["acp-runner", "acp-operator", "acp-gitsync", "acp-statusbot", "acp-dashboard"];
const SHARED: [&str; 7] =
    ["acp-api", "acp-git", "acp-github", "acp-kube", "acp-policy", "acp-replay", "acp-testenv"];
/// The shared crates, lowest layer first: a crate depends only on crates of
/// lower layers (dev-dependencies may also go to [`TEST_HARNESS`]).
const LAYERS: [&[&str]; 3] =
    [&["acp-api"], &["acp-git", "acp-github", "acp-kube", "acp-policy", "acp-replay"], &["acp-testenv"]];
/// The shared crate every shared crate's tests may use.
const TEST_HARNESS: &str = "acp-testenv";

fn metadata() -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(acp_testenv::env::repo_root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Every dependency of a workspace member on a workspace crate, as
/// (from, to, kind), with kind `normal`, `dev` or `build`.
fn workspace_edges(metadata: &serde_json::Value) -> Vec<(String, String, String)> {
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let target = dep["name"].as_str().unwrap_or_default();
            if names.contains(target) {
                let kind = dep["kind"].as_str().unwrap_or("normal");
                edges.push((name.to_owned(), target.to_owned(), kind.to_owned()));
            }
        }
    }
    edges
}

#[test]
fn no_component_depends_on_another_and_shared_crates_on_none() {
    let metadata = metadata();
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for crate_name in COMPONENTS.iter().chain(SHARED.iter()) {
        assert!(names.contains(crate_name), "{crate_name} is a workspace member");
    }
    let mut edges = Vec::new();
    for (name, target, kind) in workspace_edges(&metadata) {
        let forbidden = (COMPONENTS.contains(&name.as_str()) || SHARED.contains(&name.as_str()))
            && COMPONENTS.contains(&target.as_str());
        if forbidden {
            edges.push(format!("{name} -> {target} ({kind})"));
        }
    }
    assert!(edges.is_empty(), "component dependencies that must go through a shared crate: {edges:#?}");
}

/// The layer of a shared crate.
fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

/// Whether a dependency of `from` on `to` of `kind` respects [`LAYERS`]
/// (for shared crates; others are not layered).
fn layered(from: &str, to: &str, kind: &str) -> bool {
    match (layer_of(from), layer_of(to)) {
        (Some(from_layer), Some(to_layer)) => {
            to_layer < from_layer || (kind == "dev" && to == TEST_HARNESS && from != TEST_HARNESS)
        }
        _ => true,
    }
}

#[test]
fn shared_crates_depend_only_on_lower_layers() {
    let layered_crates: BTreeSet<&str> = LAYERS.iter().flat_map(|layer| layer.iter().copied()).collect();
    assert_eq!(layered_crates, SHARED.into_iter().collect(), "every shared crate has exactly one layer");
    assert_eq!(layered_crates.len(), LAYERS.iter().map(|layer| layer.len()).sum::<usize>());
    let offending: Vec<String> = workspace_edges(&metadata())
        .into_iter()
        .filter(|(from, to, kind)| !layered(from, to, kind))
        .map(|(from, to, kind)| {
            let (from_layer, to_layer) = (layer_of(&from).unwrap_or(0), layer_of(&to).unwrap_or(0));
            format!("{from} (layer {from_layer}) -> {to} (layer {to_layer}) ({kind})")
        })
        .collect();
    assert!(offending.is_empty(), "shared-crate dependencies against the layers {LAYERS:?}: {offending:#?}");
}

#[test]
fn the_layers_allow_down_and_test_harness_edges_only() {
    assert!(layered("acp-git", "acp-api", "normal"));
    assert!(layered("acp-testenv", "acp-git", "normal"));
    assert!(layered("acp-kube", "acp-testenv", "dev"));
    assert!(!layered("acp-kube", "acp-testenv", "normal"));
    assert!(!layered("acp-api", "acp-git", "normal"));
    assert!(!layered("acp-git", "acp-kube", "normal"), "no edges inside a layer");
    assert!(!layered("acp-git", "acp-kube", "dev"));
    assert!(!layered("acp-api", "acp-kube", "build"));
    assert!(layered("acp-runner", "acp-testenv", "normal"), "components are not layered here");
}
