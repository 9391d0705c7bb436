//! Serving bare repositories over HTTP with the real `git http-backend`
//! (CGI), for the local GitOps loop and for tests: clone, fetch and push.
//!
//! With a token, clients must authenticate with HTTP basic auth whose password
//! is the token (any user name, as GitHub accepts `x-access-token:<token>`);
//! anything else gets 401. Without one (loopback development), everyone may
//! read and push.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

/// Largest request body (a push) accepted.
const MAX_BODY: usize = 256 << 20;

struct Config {
    root: PathBuf,
    token: Option<String>,
}

/// Routes serving every bare repository under `root` (`<url>/<path>.git`).
pub fn router(root: PathBuf, token: Option<String>) -> Router {
    Router::new().fallback(serve).with_state(Arc::new(Config { root, token }))
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
    if config.token.as_deref().is_some_and(|token| !authorized(&parts.headers, token)) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")], "")
            .into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
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
        .env("REMOTE_USER", "acp")
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
