//! `submit`: a session manifest from the Action's inputs, checked like any
//! other (schema and policies), committed and pushed — the GitOps form of
//! ambient-action's create.

use std::path::Path;
use std::process::{Command, ExitCode};

use acp_api::AgenticSession;
use anyhow::{Context as _, bail};
use serde_json::json;

use super::{ActionArgs, Context, output, summary};

/// `URL`, `URL@branch`, either followed by ` push` (autoPush).
fn repo(spec: &str) -> serde_json::Value {
    let (spec, push) = match spec.trim().strip_suffix(" push") {
        Some(rest) => (rest.trim(), true),
        None => (spec.trim(), false),
    };
    // `@` also appears in `git@host:` URLs: a branch is only after the path.
    let (url, branch) = match spec.rsplit_once('@') {
        Some((url, branch)) if !branch.contains(':') && !branch.contains('/') && url.contains('/') => {
            (url, Some(branch))
        }
        _ => (spec, None),
    };
    let mut repo = json!({ "url": url });
    if let Some(branch) = branch {
        repo["branch"] = branch.into();
    }
    if push {
        repo["autoPush"] = true.into();
    }
    repo
}

/// A DNS-1123 name from the first words of `prompt` and `suffix`.
pub fn generated_name(prompt: &str, suffix: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(5)
        .map(str::to_ascii_lowercase)
        .collect();
    let mut base = words.join("-");
    base.truncate(40);
    let base = base.trim_end_matches('-');
    let base = if base.is_empty() { "session" } else { base };
    let suffix: String =
        suffix.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    if suffix.is_empty() { base.to_owned() } else { format!("{base}-{suffix}") }
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git").current_dir(dir).args(args).output().context("failed to run git")?;
    if !out.status.success() {
        bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The manifest of the inputs.
pub fn manifest(args: &ActionArgs, name: &str) -> anyhow::Result<String> {
    let prompt =
        args.prompt.as_deref().filter(|p| !p.trim().is_empty()).context("submit needs the prompt input")?;
    let repos: Vec<serde_json::Value> = args
        .repos
        .as_deref()
        .unwrap_or_default()
        .split(['\n', ','])
        .filter(|s| !s.trim().is_empty())
        .map(repo)
        .collect();
    let mut spec = json!({ "initialPrompt": prompt, "repos": repos });
    if let Some(display) = args.display_name.as_deref().filter(|d| !d.is_empty()) {
        spec["displayName"] = display.into();
    }
    if let Some(model) = args.model.as_deref().filter(|m| !m.is_empty()) {
        spec["llmSettings"] = json!({ "model": model });
    }
    if let Some(timeout) = args.timeout.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let seconds: i64 = timeout
            .parse()
            .with_context(|| format!("the timeout input {timeout:?} is not a number of seconds"))?;
        spec["timeout"] = seconds.into();
    }
    let session: AgenticSession = serde_json::from_value(json!({
        "apiVersion": acp_api::constants::API_VERSION, "kind": "AgenticSession",
        "metadata": { "name": name }, "spec": spec
    }))
    .context("the inputs do not make a valid session")?;
    let yaml = serde_saphyr::to_string(&session).context("failed to write the manifest")?;
    Ok(format!("# Submitted by the acp GitHub Action.\n{yaml}"))
}

/// Writes, checks, commits and pushes the session.
pub fn run(args: &ActionArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let name = match args.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => generated_name(args.prompt.as_deref().unwrap_or_default(), &ctx.run_id),
    };
    let dir = ctx.workspace.join(&args.path);
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let file = dir.join(format!("{name}.yaml"));
    if file.exists() {
        bail!("{} already exists: choose another name input", file.display());
    }
    std::fs::write(&file, manifest(args, &name)?)
        .with_context(|| format!("failed to write {}", file.display()))?;
    let relative = super::rel(&ctx.workspace, &file);
    let (_, mut checked) = crate::validate::check(std::slice::from_ref(&file), None, Some(&args.namespace))?;
    if !checked.errors.is_empty() {
        super::annotate(&ctx.workspace, &dir, &mut checked.errors);
        std::fs::remove_file(&file).ok();
        bail!("the session does not pass validation; nothing was committed");
    }
    let ws = &ctx.workspace;
    git(ws, &["add", "--", &relative])?;
    git(
        ws,
        &[
            "-c",
            "user.name=github-actions[bot]",
            "-c",
            "user.email=41898282+github-actions[bot]@users.noreply.github.com",
            "commit",
            "-q",
            "-m",
            &format!("Submit session {name}"),
            "--",
            &relative,
        ],
    )?;
    let commit = git(ws, &["rev-parse", "HEAD"])?;
    let branch = args.branch.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| ctx.ref_name.clone());
    if branch.is_empty() {
        bail!("no branch to push to: set the branch input");
    }
    git(ws, &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")])?;
    println!("submitted {relative} as {name} in {commit} on {branch}");
    output("session-name", &name)?;
    output("file", &relative)?;
    output("commit", &commit)?;
    summary(&format!(
        "### acp submit\n\nSession `{name}` in `{relative}`, commit `{}` on `{branch}`.\n",
        &commit[..12.min(commit.len())]
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_specs() {
        assert_eq!(repo("https://github.com/a/b.git"), json!({"url": "https://github.com/a/b.git"}));
        assert_eq!(
            repo(" https://github.com/a/b.git@develop push "),
            json!({"url": "https://github.com/a/b.git", "branch": "develop", "autoPush": true})
        );
        assert_eq!(repo("git@github.com:a/b.git"), json!({"url": "git@github.com:a/b.git"}));
        assert_eq!(
            repo("git@github.com:a/b.git@main"),
            json!({"url": "git@github.com:a/b.git", "branch": "main"})
        );
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(
            generated_name("Fix the flaky login test, please!", "123456"),
            "fix-the-flaky-login-test-123456"
        );
        assert_eq!(generated_name("", ""), "session");
        assert!(generated_name(&"word ".repeat(50), "9").len() <= 63);
    }
}
