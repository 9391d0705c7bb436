//! Cloning with the git CLI: the one operation where libgit2 is measurably
//! slower (its shallow fetch speaks protocol v0, a negotiation round more
//! than v2's, and its HTTP client stalls on Nagle's algorithm between a
//! request's header and body), and the one every session waits for.
//!
//! The credentials rules are [`crate::auth`]'s, enforced another way:
//! - nothing secret is in the arguments: an https password reaches git
//!   through a credential helper that prints two environment variables, and
//!   that helper is configured for the clone URL's origin only, so a redirect
//!   to another host gets nothing;
//! - an ssh key and known_hosts are private temporary files handed to `ssh`
//!   with strict host-key checking, batch mode and no other identity; `ssh`
//!   runs that way whatever the URL's spelling (with no key and no known
//!   host when the URL is not recognised as ssh, so it fails);
//! - git runs from `/`, so no repository around the caller (a workspace the
//!   agent wrote) is read, and it is killed when the clone is dropped;
//! - the machine's git configuration applies (its URL rewrites, proxies and
//!   CA bundles, as with libgit2), but never its credential helpers, which
//!   could store the token; the caller's `GIT_*` environment is dropped, git
//!   never prompts, and only the `https`, `http`, `ssh`, `git` and `file`
//!   transports are allowed (never `ext::`, which runs commands). The
//!   credentials are for the URL after the machine's rewrites, as git
//!   fetches it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use crate::auth::{Credentials, Material};

/// The credential helper git runs for the clone URL's origin; it answers
/// `get` from the environment and ignores `store` and `erase`.
const HELPER: &str = r#"!f() { test "$1" = get || return 0; if [ -n "$ACP_GIT_USERNAME" ]; then printf 'username=%s\n' "$ACP_GIT_USERNAME"; fi; printf 'password=%s\n' "$ACP_GIT_PASSWORD"; }; f"#;

/// The most of git's error output kept for the message.
const STDERR_KEPT: usize = 16 * 1024;

/// Transports a clone may use.
const PROTOCOLS: &str = "https:http:ssh:git:file";

/// A failed clone, in words a session's author can act on.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// The credentials for the URL are missing or were rejected, or the
    /// ssh host key is unknown.
    #[error("{0}")]
    Auth(String),
    /// git could not be started or its temporary files written.
    #[error("failed to run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// git failed; its last words.
    #[error("{0}")]
    Git(String),
}

/// What to clone.
#[derive(Clone, Copy, Debug)]
pub struct CloneSpec<'a> {
    /// The remote URL.
    pub url: &'a str,
    /// The directory to clone into (must not exist or be empty).
    pub dest: &'a Path,
    /// The branch to check out; the remote's default when `None`.
    pub branch: Option<&'a str>,
    /// Commits to fetch (shallow); everything when `None`.
    pub depth: Option<u32>,
    /// Fetch `branch` only, not every branch's tip: a run pinned to a
    /// commit of someone else's repository (a fork's pull request) takes
    /// nothing else from it.
    pub single_branch: bool,
}

/// Clones `spec.url` into `spec.dest` with the git CLI, with `creds`. Every
/// branch's tip is fetched (to `spec.depth`), as libgit2 did: a follow-up
/// looks for its last commit on the branch it pushed. The git process is
/// killed when the returned future is dropped (the session stopped).
pub async fn clone(spec: CloneSpec<'_>, creds: &Credentials) -> Result<(), CloneError> {
    let dest = std::path::absolute(spec.dest).map_err(CloneError::Spawn)?;
    let fetched = effective_url(spec.url).await?;
    let remote = acp_api::remote::Remote::parse(&fetched);
    let scheme = remote.as_ref().map(|r| r.scheme.as_str()).unwrap_or_default();
    let mut git = command();
    // Not secret, so arguments (`-c` works with any git): the machine's
    // credential helpers are reset, a stalled transfer gives up.
    let mut config: Vec<String> =
        vec!["credential.helper=".into(), "http.lowSpeedLimit=1000".into(), "http.lowSpeedTime=60".into()];
    if let (Some(remote), Some((user, password)), "http" | "https") =
        (&remote, creds.https_for(&fetched), scheme)
    {
        if [user, password].iter().any(|v| v.contains(['\n', '\0'])) {
            return Err(CloneError::Auth("the https credentials contain a line break".into()));
        }
        let port = remote.port.map(|p| format!(":{p}")).unwrap_or_default();
        config.push(format!("credential.{scheme}://{}{port}.helper={HELPER}", remote.host));
        // A user named in the URL stays, unless the credentials name one.
        if creds.basic.is_some() || !names_user(&fetched) {
            git.env("ACP_GIT_USERNAME", user);
        }
        git.env("ACP_GIT_PASSWORD", password);
    }
    // ssh always runs strictly, whatever the URL's spelling: with the key
    // and known_hosts for an ssh URL, with none (so it fails) otherwise.
    let mut secrets = None;
    let ssh = if scheme.contains("ssh") {
        let key = creds.ssh_key.as_ref().ok_or_else(|| CloneError::Auth(creds.hints.ssh_key.into()))?;
        let known =
            creds.known_hosts.as_ref().ok_or_else(|| CloneError::Auth(creds.hints.known_hosts.into()))?;
        let dir =
            secrets.insert(tempfile::Builder::new().prefix("acp-git-").tempdir().map_err(CloneError::Spawn)?);
        let key = private_copy(dir.path(), "identity", key)?;
        ssh_command(Some(&key), &private_copy(dir.path(), "known_hosts", known)?)
    } else {
        ssh_command(None, Path::new("/dev/null"))
    };
    git.env("GIT_SSH_COMMAND", ssh).env("GIT_SSH_VARIANT", "ssh");
    for setting in &config {
        git.arg("-c").arg(setting);
    }
    let branches = if spec.single_branch { "--single-branch" } else { "--no-single-branch" };
    git.args(["clone", "--quiet", "--no-hardlinks", branches]);
    if let Some(depth) = spec.depth {
        git.arg(format!("--depth={depth}"));
    }
    if let Some(branch) = spec.branch {
        git.arg(format!("--branch={branch}"));
    }
    // `--`: a URL is never an option (`--upload-pack=…` runs a command).
    git.arg("--").arg(spec.url).arg(&dest);
    let (status, stderr) = run(git).await?;
    drop(secrets);
    if status.success() {
        return Ok(());
    }
    Err(explain(&stderr, remote.as_ref().map(|r| r.host.as_str()), creds))
}

/// Whether an http(s) URL names a user (`https://user@host/…`).
fn names_user(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .is_some_and(|authority| authority.contains('@'))
}

/// The URL git will fetch `url` from: the machine's `insteadOf` rewrites
/// applied, without talking to the remote.
async fn effective_url(url: &str) -> Result<String, CloneError> {
    let mut git = command();
    git.args(["ls-remote", "--get-url", "--", url]).stdout(Stdio::piped());
    let output = git.output().await.map_err(CloneError::Spawn)?;
    let fetched = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || fetched.is_empty() {
        return Err(explain(&String::from_utf8_lossy(&output.stderr), None, &Credentials::default()));
    }
    Ok(fetched)
}

/// Runs `git`, keeping the last [`STDERR_KEPT`] bytes of what it says (a
/// server can say a lot).
async fn run(mut git: Command) -> Result<(std::process::ExitStatus, String), CloneError> {
    let mut child = git.stderr(Stdio::piped()).spawn().map_err(CloneError::Spawn)?;
    let mut kept: Vec<u8> = Vec::new();
    if let Some(mut stderr) = child.stderr.take() {
        let mut chunk = [0u8; 8192];
        loop {
            let read = stderr.read(&mut chunk).await.map_err(CloneError::Spawn)?;
            if read == 0 {
                break;
            }
            kept.extend_from_slice(&chunk[..read]);
            if kept.len() > STDERR_KEPT {
                kept.drain(..kept.len() - STDERR_KEPT);
            }
        }
    }
    let status = child.wait().await.map_err(CloneError::Spawn)?;
    Ok((status, String::from_utf8_lossy(&kept).into_owned()))
}

/// git with no `GIT_*` from the caller (a `GIT_DIR` or
/// `GIT_CONFIG_PARAMETERS` would change what is cloned or how), no prompts,
/// only the allowed transports, and `/` as its directory, so no repository
/// around the caller (a workspace the agent wrote) is read. Killed when
/// dropped.
fn command() -> Command {
    let mut git = Command::new("git");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIT_") || name == "SSH_ASKPASS" {
            git.env_remove(name);
        }
    }
    git.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", PROTOCOLS)
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("GIT_CEILING_DIRECTORIES", "/")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    git
}

/// `ssh` with exactly this key and these known hosts; it never asks, never
/// adds a host key, and gives up on an unresponsive server.
fn ssh_command(key: Option<&Path>, known_hosts: &Path) -> String {
    let identity = match key {
        Some(key) => format!("-i {}", shell_quote(key)),
        None => "-o IdentityFile=none".into(),
    };
    format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=30 \
         -o ServerAliveInterval=15 -o ServerAliveCountMax=4 {identity}",
        shell_quote(known_hosts)
    )
}

/// Writes `material` to `dir/name`, readable by this user only (ssh refuses
/// a key others can read, and a mounted Secret's files often are).
fn private_copy(dir: &Path, name: &str, material: &Material) -> Result<PathBuf, CloneError> {
    let text = material.text().map_err(CloneError::Auth)?;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(CloneError::Spawn)?;
    file.write_all(text.as_bytes()).map_err(CloneError::Spawn)?;
    if !text.ends_with('\n') {
        file.write_all(b"\n").map_err(CloneError::Spawn)?;
    }
    Ok(path)
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// git's error output as one message, with the credential cases in the same
/// words as [`crate::auth`]'s.
fn explain(stderr: &str, host: Option<&str>, creds: &Credentials) -> CloneError {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("warning: redirecting") && !l.starts_with("Cloning into"))
        .collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    if has("terminal prompts disabled") {
        return CloneError::Auth(creds.hints.https.into());
    }
    if has("Authentication failed") {
        return CloneError::Auth("authentication failed: the credentials were rejected".into());
    }
    if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        let host = host.unwrap_or("the server");
        return CloneError::Auth(format!("ssh host key of {host} is not in known_hosts"));
    }
    if has("Permission denied (publickey") {
        return CloneError::Auth("authentication failed: the ssh key was rejected".into());
    }
    let message = lines.iter().rev().take(3).rev().copied().collect::<Vec<_>>().join("; ");
    CloneError::Git(if message.is_empty() { "git clone failed without a message".into() } else { message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_credential_failures_in_the_hints_words() {
        let creds = Credentials::default();
        let no_creds = "fatal: could not read Username for 'https://h/x': terminal prompts disabled";
        assert_eq!(explain(no_creds, Some("h"), &creds).to_string(), creds.hints.https);
        let rejected =
            "remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/x/'";
        assert!(explain(rejected, Some("h"), &creds).to_string().contains("credentials were rejected"));
        let hostkey = "Host key verification failed.\nfatal: Could not read from remote repository.";
        assert_eq!(
            explain(hostkey, Some("h"), &creds).to_string(),
            "ssh host key of h is not in known_hosts"
        );
        let other = "Cloning into 'x'...\nwarning: redirecting to https://h/y/\nfatal: Remote branch nope not found in upstream origin\n";
        assert_eq!(
            explain(other, Some("h"), &creds).to_string(),
            "fatal: Remote branch nope not found in upstream origin"
        );
    }

    #[test]
    fn ssh_paths_are_quoted_for_the_shell() {
        let command = ssh_command(Some(Path::new("/tmp/a b/identity")), Path::new("/tmp/it's/known_hosts"));
        assert!(command.contains("-i '/tmp/a b/identity'"), "{command}");
        assert!(command.contains(r"UserKnownHostsFile='/tmp/it'\''s/known_hosts'"), "{command}");
        assert!(command.contains("StrictHostKeyChecking=yes") && command.contains("BatchMode=yes"));
    }

    #[test]
    fn key_copies_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = private_copy(dir.path(), "identity", &Material::Text("KEY".into())).expect("copy");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "KEY\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[tokio::test]
    async fn no_ssh_key_is_named_by_the_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = CloneSpec {
            url: "git@example.invalid:o/r.git",
            dest: &dir.path().join("r"),
            branch: None,
            depth: None,
            single_branch: false,
        };
        let err = clone(spec, &Credentials::default()).await.expect_err("no key");
        assert_eq!(err.to_string(), Credentials::default().hints.ssh_key);
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git").args(args).current_dir(dir).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A shallow clone of one branch still fetches the other branches' tips
    /// (a follow-up looks for its last commit on the branch it pushed).
    #[tokio::test]
    async fn a_shallow_clone_fetches_every_branch_tip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = dir.path().join("origin");
        std::fs::create_dir(&origin).expect("mkdir");
        git(&origin, &["init", "-q", "-b", "main"]);
        let commit = [
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
        ];
        git(&origin, &[&commit[..], &["one"]].concat());
        git(&origin, &["checkout", "-q", "-b", "ambient/pushed"]);
        git(&origin, &[&commit[..], &["pushed"]].concat());
        let pushed = git(&origin, &["rev-parse", "HEAD"]);
        git(&origin, &["checkout", "-q", "main"]);
        let url = format!("file://{}", origin.display());
        let dest = dir.path().join("clone");
        let spec =
            CloneSpec { url: &url, dest: &dest, branch: Some("main"), depth: Some(1), single_branch: false };
        clone(spec, &Credentials::default()).await.expect("clone");
        assert_eq!(git(&dest, &["rev-parse", "origin/ambient/pushed"]), pushed);
        assert_eq!(git(&dest, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");

        // A single-branch clone (a fork's pinned run) takes nothing else.
        let only = dir.path().join("only");
        let spec =
            CloneSpec { url: &url, dest: &only, branch: Some("main"), depth: Some(1), single_branch: true };
        clone(spec, &Credentials::default()).await.expect("clone");
        let refs = git(&only, &["for-each-ref", "--format=%(refname)"]);
        assert!(!refs.contains("ambient/pushed"), "{refs}");
        assert!(refs.contains("refs/remotes/origin/main"), "{refs}");
    }
}
