//! The runner's side of the sidecar protocol: JSON over plain HTTP on loopback.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    API_PREFIX, CloneRequest, ClonedReply, ErrorReply, PullRequestReply, PullRequestRequest, PushRequest,
    PushedReply, ReadyReply, Target,
};
use crate::git::Cloned;
use crate::ops::{OpError, Proposal, Pushed};

/// How long the runner waits for the sidecar to listen.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of the credentials sidecar at one base URL.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for the sidecar at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> OpError {
        OpError::Unreachable { url: self.base.clone(), reason: reason.to_string() }
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Bytes) -> Result<T, OpError> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{API_PREFIX}/{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| self.unreachable(e))?;
        let response = self.http.request(request).await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| self.unreachable(e))?.to_bytes();
        if status == StatusCode::OK {
            return serde_json::from_slice(&bytes).map_err(|e| self.unreachable(format!("bad answer: {e}")));
        }
        match serde_json::from_slice::<ErrorReply>(&bytes) {
            Ok(reply) => Err(OpError::Sidecar(reply.error)),
            Err(_) => Err(self.unreachable(format!("HTTP {status}"))),
        }
    }

    async fn post<R: Serialize, T: DeserializeOwned>(&self, path: &str, request: &R) -> Result<T, OpError> {
        let body = serde_json::to_vec(request).map_err(|e| self.unreachable(e))?;
        self.call(Method::POST, path, body.into()).await
    }

    /// Waits until the sidecar answers, for at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<ReadyReply, OpError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.call::<ReadyReply>(Method::GET, "ready", Bytes::new()).await {
                Ok(reply) => return Ok(reply),
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    return Err(self.unreachable(format!("no answer within {}s: {err}", limit.as_secs())));
                }
                // The sidecar starts alongside the runner: poll until it listens.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Has the sidecar clone `target`.
    pub async fn clone_target(&self, target: Target) -> Result<Cloned, OpError> {
        let reply: ClonedReply = self.post("clone", &CloneRequest { target }).await?;
        let base =
            git2::Oid::from_str(&reply.commit).map_err(|e| self.unreachable(format!("bad commit: {e}")))?;
        Ok(Cloned { branch: reply.branch, base })
    }

    /// Has the sidecar push the session branch of `spec.repos[repo]`.
    pub async fn push(&self, repo: usize) -> Result<Pushed, OpError> {
        let reply: PushedReply = self.post("push", &PushRequest { repo }).await?;
        Ok(Pushed { commit: reply.commit })
    }

    /// Has the sidecar open the pull request of `spec.repos[repo]`.
    pub async fn pull_request(&self, repo: usize, pr: Proposal<'_>) -> Result<Option<String>, OpError> {
        let request = PullRequestRequest { repo, title: pr.title.to_owned(), body: pr.body.to_owned() };
        let reply: PullRequestReply = self.post("pull-request", &request).await?;
        Ok(reply.url)
    }
}
