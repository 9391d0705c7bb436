//! Real git over HTTP: `git http-backend` behind token auth, on loopback.
//!
//! Repositories are bare repos under a temporary root. Clients authenticate
//! with HTTP basic auth whose password is the server's token (any user name,
//! as GitHub accepts `x-access-token:<token>`); anything else gets 401, so
//! credential handling is exercised for real. Pushes go through the real
//! `receive-pack`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A running git HTTP server. Stops when dropped; the repositories stay on disk
/// under [`GitServer::root`] until the temp dir is removed.
pub struct GitServer {
    addr: SocketAddr,
    root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl GitServer {
    /// Serves bare repositories under `root` on loopback to clients presenting `token`.
    pub async fn start(root: &Path, token: &str) -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), root, token).await
    }

    /// Like [`GitServer::start`], listening on `ip` (for pods:
    /// [`crate::TestEnv::host_address`]).
    pub async fn start_on(ip: std::net::IpAddr, root: &Path, token: &str) -> Self {
        std::fs::create_dir_all(root).expect("create git root");
        let app = acp_git::serve::router(root.to_owned(), Some(token.to_owned()));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind the git server");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("git http server");
        });
        Self { addr, root: root.to_owned(), task }
    }

    /// Directory holding the bare repositories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Clone URL of repository `name` (without credentials).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }

    /// Creates bare repository `name` whose `branch` holds `files` in one commit,
    /// using the real git CLI. Returns the bare repository's path.
    pub fn create_repo(&self, name: &str, branch: &str, files: &[(&str, &str)]) -> PathBuf {
        bare_repo(&self.root, &format!("{name}.git"), branch, files)
    }
}

/// Creates bare repository `root/path` whose `branch` holds `files` in one
/// commit, using the real git CLI. Returns its path.
pub fn bare_repo(root: &Path, path: &str, branch: &str, files: &[(&str, &str)]) -> PathBuf {
    let bare = root.join(path);
    let work = root.join(format!(".work-{}", path.replace('/', "-")));
    std::fs::create_dir_all(&work).expect("work dir");
    git(&work, &["init", "-q", "-b", branch]);
    for (file, content) in files {
        let file = work.join(file);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(file, content).expect("write file");
    }
    git(&work, &["add", "-A"]);
    git(&work, &["-c", "user.name=Seed", "-c", "user.email=seed@example.invalid", "commit", "-qm", "seed"]);
    if let Some(parent) = bare.parent() {
        std::fs::create_dir_all(parent).expect("parent dir");
    }
    git(root, &["clone", "-q", "--bare", work.to_str().expect("utf-8"), bare.to_str().expect("utf-8")]);
    std::fs::remove_dir_all(&work).expect("remove work dir");
    bare
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs git in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").current_dir(dir).args(args).output().expect("git runs");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
