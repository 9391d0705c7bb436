//! Loading the checker for `validate`, `plan` and `git-sync`: the policies
//! built into the binary, or a `--policies` directory of YAML files.

use std::path::Path;

use acp_policy::{Checker, PolicySet};
use anyhow::Context as _;

/// The schema plus the policies of `dir` (every `*.yaml`/`*.yml`), or the built-in ones.
pub fn checker(dir: Option<&Path>) -> anyhow::Result<Checker> {
    let Some(dir) = dir else {
        return Checker::with_embedded_policies().context("failed to load the built-in policies");
    };
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to read policies from {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    let set = PolicySet::from_files(files)
        .with_context(|| format!("failed to load policies from {}", dir.display()))?;
    Ok(Checker::new(set))
}
