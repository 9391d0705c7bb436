//! Real git over HTTP: `git http-backend` behind token auth, on loopback.
//!
//! Repositories are bare repos under a temporary root. Clients authenticate
//! with HTTP basic auth whose password is the server's token (any user name,
//! as GitHub accepts `x-access-token:<token>`); anything else gets 401, so
//! credential handling is exercised for real. Pushes go through the real
//! `receive-pack`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

struct Config {
    root: PathBuf,
    token: String,
}

/// A running git HTTP server. Stops when dropped; the repositories stay on disk
/// under [`GitServer::root`] until the temp dir is removed.
pub struct GitServer {
    addr: SocketAddr,
    config: Arc<Config>,
    task: tokio::task::JoinHandle<()>,
}

impl GitServer {
    /// Serves bare repositories under `root` to clients presenting `token`.
    pub async fn start(root: &Path, token: &str) -> Self {
        std::fs::create_dir_all(root).expect("create git root");
        let config = Arc::new(Config { root: root.to_owned(), token: token.to_owned() });
        let app = Router::new().fallback(serve).with_state(config.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("git http server");
        });
        Self { addr, config, task }
    }

    /// Directory holding the bare repositories.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// Clone URL of repository `name` (without credentials).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }

    /// Creates bare repository `name` whose `branch` holds `files` in one commit,
    /// using the real git CLI. Returns the bare repository's path.
    pub fn create_repo(&self, name: &str, branch: &str, files: &[(&str, &str)]) -> PathBuf {
        let bare = self.config.root.join(format!("{name}.git"));
        let work = self.config.root.join(format!(".work-{name}"));
        std::fs::create_dir_all(&work).expect("work dir");
        git(&work, &["init", "-q", "-b", branch]);
        for (path, content) in files {
            let file = work.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).expect("parent dir");
            }
            std::fs::write(file, content).expect("write file");
        }
        git(&work, &["add", "-A"]);
        git(
            &work,
            &["-c", "user.name=Seed", "-c", "user.email=seed@example.invalid", "commit", "-qm", "seed"],
        );
        git(
            &self.config.root,
            &["clone", "-q", "--bare", work.to_str().expect("utf-8"), bare.to_str().expect("utf-8")],
        );
        std::fs::remove_dir_all(&work).expect("remove work dir");
        bare
    }
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

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return false };
    let decoded = String::from_utf8_lossy(&decoded);
    decoded.split_once(':').is_some_and(|(_, password)| password == token)
}

async fn serve(State(config): State<Arc<Config>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !authorized(&parts.headers, &config.token) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")], "")
            .into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, 256 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let header_str = |name: header::HeaderName| {
        parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let mut child = match tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &config.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "acp-test")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header_str(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header_str(header::CONTENT_ENCODING))
        .env(
            "GIT_PROTOCOL",
            parts.headers.get("git-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows up as a failed backend below.
        let _ = stdin.write_all(&body).await;
    }
    let Ok(output) = child.wait_with_output().await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    cgi_response(Bytes::from(output.stdout))
}

/// Turns CGI output (headers, blank line, body) into an HTTP response.
fn cgi_response(output: Bytes) -> Response {
    let split = output.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return (StatusCode::BAD_GATEWAY, "malformed CGI output").into_response();
    };
    let mut response = Response::new(Body::from(output.slice(end + sep..)));
    for line in String::from_utf8_lossy(&output[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            *response.status_mut() =
                code.and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
        } else if let (Ok(name), Ok(value)) =
            (header::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}
