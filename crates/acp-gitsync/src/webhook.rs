//! The GitHub webhook receiver: `POST /hooks/github`.
//!
//! In order, before anything is trusted: a body size limit (413), then the
//! `X-Hub-Signature-256` HMAC checked in constant time against the webhook
//! secrets of every SessionSource that has one (401 when none matches),
//! held in memory by [`crate::keys`] so that a forged delivery costs no API
//! request. Only a signed body is parsed (400 when it is not the event's
//! shape, or names a repository or login GitHub could not have written);
//! a source whose per-repository secret (see [`crate::keys`]) does not
//! cover the delivery's repository is dropped; then a rate limit per source
//! and secret (429), so that nobody without a source's secret can use up
//! another's deliveries (GitHub does not redeliver a refused one). A `push` to a source's
//! ref triggers that source at once by setting its reconcile-requested-at
//! annotation to the delivery id; a repeated `X-GitHub-Delivery` is
//! acknowledged and ignored. Pull-request deliveries (`issue_comment`,
//! `pull_request_review_comment`, `pull_request`) go to
//! [`crate::commands`].

use std::num::NonZeroU32;
use std::sync::Arc;

use acp_api::SessionSource;
use acp_api::remote::Remote;
use acp_github::events::{Delivery, Push, Repository};
use acp_kube::reconcile::Categorized as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tracing::{info, warn};

/// Default largest accepted delivery (GitHub caps payloads at 25 MB; pushes of
/// manifests are far smaller).
pub const DEFAULT_MAX_BODY: usize = 5 * 1024 * 1024;
/// Delivery ids remembered for de-duplication.
const REMEMBERED: usize = 4096;

/// Receiver settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sources of one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Largest body accepted.
    pub max_body: usize,
    /// Deliveries accepted per second and source (burst of the same size).
    pub per_second: u32,
    /// Pull-request commands (`issue_comment`, `pull_request_review_comment`
    /// and `pull_request` deliveries); without it they are acknowledged only.
    pub commands: Option<crate::commands::handler::Config>,
}

impl Default for Config {
    fn default() -> Self {
        Self { namespace: None, max_body: DEFAULT_MAX_BODY, per_second: 50, commands: None }
    }
}

/// Shared state of the receiver.
pub struct Receiver {
    client: Client,
    config: Config,
    keys: Arc<crate::keys::Keys>,
    limiter: DefaultKeyedRateLimiter<(String, String, Option<String>)>,
    seen: crate::recent::Recent<String>,
    commands: Option<crate::commands::handler::Commands>,
}

impl Receiver {
    /// A receiver acting with `client`.
    pub fn new(client: Client, config: Config) -> Arc<Self> {
        let rate = NonZeroU32::new(config.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let keys = crate::keys::Keys::start(client.clone(), config.namespace.clone());
        let commands =
            config.commands.clone().map(|c| crate::commands::handler::Commands::new(client.clone(), c));
        Arc::new(Self {
            client,
            commands,
            config,
            keys,
            limiter: RateLimiter::hashmap(Quota::per_second(rate)),
            seen: crate::recent::Recent::new(REMEMBERED),
        })
    }

    /// Whether the receiver holds its keys (the first list of sources is read).
    pub fn ready(&self) -> bool {
        self.keys.ready()
    }

    /// The receiver's routes.
    pub fn router(self: Arc<Self>) -> Router {
        let limit = self.config.max_body;
        Router::new()
            .route("/hooks/github", post(deliver))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }

    /// Records `id`; false when it was seen before.
    fn first_delivery(&self, id: &str) -> bool {
        self.seen.first(id.to_owned())
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// The answer to a delivery that ends before anything acts on it (refused,
/// or a ping): its status and body.
struct Answer(StatusCode, Value);

pub use crate::keys::{Verified, sign, verify};

/// Whether a push of `git_ref` to `repository` concerns `source`.
pub fn concerns(source: &SessionSource, repository: &Repository, git_ref: &str) -> bool {
    let full_name = &repository.full_name;
    let named = source.spec.github.as_ref().is_some_and(|g| g.repository.eq_ignore_ascii_case(full_name));
    let source_url = Remote::parse(&source.spec.url);
    let same_url = repository
        .urls()
        .filter_map(Remote::parse)
        .any(|u| source_url.as_ref().is_some_and(|s| s.same_repository(&u)));
    let wanted = match &source.spec.git_ref {
        Some(r) if r.commit.is_some() => return false,
        Some(r) if r.tag.is_some() => format!("refs/tags/{}", r.tag.as_deref().unwrap_or_default()),
        Some(r) => format!("refs/heads/{}", r.branch.as_deref().unwrap_or(acp_git::mirror::DEFAULT_BRANCH)),
        None => format!("refs/heads/{}", acp_git::mirror::DEFAULT_BRANCH),
    };
    (named || same_url) && git_ref == wanted
}

async fn deliver(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let event = header("x-github-event");
    let (delivery, sources) = match receiver.admit(&header("x-hub-signature-256"), &event, &body) {
        Ok(admitted) => admitted,
        Err(Answer(status, body)) => return reply(status, body),
    };
    let id = header("x-github-delivery");
    if !id.is_empty() && !receiver.first_delivery(&id) {
        return reply(StatusCode::OK, json!({"duplicate": true, "delivery": id}));
    }
    if matches!(delivery, Delivery::IssueComment(_) | Delivery::PullRequest(_) | Delivery::ReviewComment(_)) {
        return receiver.pull_request(&delivery, &event, &id, &sources).await;
    }
    let Delivery::Push(push) = &delivery else {
        return reply(StatusCode::ACCEPTED, json!({"ignored": event}));
    };
    receiver.push(push, id, &sources).await
}

impl Receiver {
    /// The delivery and the sources it is for, once it is signed with
    /// their secrets, for its repository, and within their rate limits;
    /// otherwise the answer that ends it.
    fn admit(
        &self,
        signature: &str,
        event: &str,
        body: &[u8],
    ) -> Result<(Delivery, Vec<SessionSource>), Answer> {
        let verified = self.verified(signature, body)?;
        let delivery = match Delivery::parse(event, body) {
            Ok(Delivery::Ping) => return Err(Answer(StatusCode::OK, json!({"pong": true}))),
            Ok(delivery) => delivery,
            Err(error) => {
                let why = format!("body is not a {event} delivery: {error}");
                return Err(Answer(StatusCode::BAD_REQUEST, json!({"error": why})));
            }
        };
        // A repository's own secret speaks only for it.
        let repository = delivery.repository();
        let verified: Vec<Verified> = verified.into_iter().filter(|v| v.covers(repository)).collect();
        if verified.is_empty() {
            return Err(Answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": format!("signature does not match a webhook secret for {repository}")}),
            ));
        }
        // Limits per source and secret, after the signature: an unsigned flood,
        // another source's, or one signed with another repository's own secret
        // never refuses these deliveries.
        if self.limiter.len() > REMEMBERED {
            self.limiter.retain_recent();
        }
        let sources: Vec<SessionSource> = verified
            .into_iter()
            .filter(|v| self.limiter.check_key(&v.limit_key()).is_ok())
            .map(|v| v.source)
            .collect();
        if sources.is_empty() {
            return Err(Answer(StatusCode::TOO_MANY_REQUESTS, json!({"error": "rate limited; retry later"})));
        }
        Ok((delivery, sources))
    }

    /// The sources whose webhook secret signed `body`, before it is parsed.
    fn verified(&self, signature: &str, body: &[u8]) -> Result<Vec<Verified>, Answer> {
        let well_formed = signature
            .strip_prefix("sha256=")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(Answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": "missing or malformed X-Hub-Signature-256"}),
            ));
        }
        // Verified against keys held in memory: a forged delivery costs the API
        // server nothing.
        if !self.keys.ready() {
            return Err(Answer(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "starting; retry later"})));
        }
        let verified = self.keys.verified(body, signature);
        if verified.is_empty() {
            return Err(Answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": "signature does not match any source's webhook secret"}),
            ));
        }
        Ok(verified)
    }

    /// An `issue_comment`, `pull_request_review_comment` or `pull_request`
    /// delivery: to the command handler, when commands are on.
    async fn pull_request(
        &self,
        delivery: &Delivery,
        event: &str,
        id: &str,
        sources: &[SessionSource],
    ) -> Response {
        let Some(commands) = &self.commands else {
            let names: Vec<String> = sources
                .iter()
                .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
                .collect();
            let why = "pull-request commands are off";
            return reply(StatusCode::ACCEPTED, json!({"ignored": event, "why": why, "sources": names}));
        };
        let sources: Vec<&SessionSource> = sources.iter().collect();
        match commands.handle(delivery, &sources).await {
            Ok(outcome) => {
                info!(%event, delivery = id, ?outcome, "pull request delivery");
                reply(StatusCode::ACCEPTED, json!(outcome))
            }
            Err(error) => {
                // Not done: a redelivery (same id) must be able to try again.
                self.seen.forget(&id.to_owned());
                warn!(%event, delivery = id, %error, category = error.category(), "pull request delivery failed");
                reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": error.to_string()}))
            }
        }
    }

    /// A `push`: each source it concerns syncs now, triggered by the
    /// delivery id (or the pushed commit, without one).
    async fn push(&self, push: &Push, id: String, sources: &[SessionSource]) -> Response {
        let git_ref = push.git_ref.as_str();
        let token = if id.is_empty() { push.after.clone() } else { id };
        let mut triggered = Vec::new();
        for source in sources.iter().filter(|s| concerns(s, &push.repository, git_ref)) {
            let ns = source.namespace().unwrap_or_default();
            match crate::apply::request_sync(&self.client, source, &token).await {
                Ok(()) => triggered.push(format!("{ns}/{}", source.name_any())),
                Err(error) => warn!(%error, source = %source.name_any(), "failed to trigger a sync"),
            }
        }
        info!(git_ref, ?triggered, "push delivery");
        reply(StatusCode::ACCEPTED, json!({"triggered": triggered}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_secret_and_body() {
        let signature = sign(b"s3cret", b"{}");
        assert!(verify(b"s3cret", b"{}", &signature));
        assert!(!verify(b"other", b"{}", &signature));
        assert!(!verify(b"s3cret", b"{ }", &signature));
        assert!(!verify(b"s3cret", b"{}", "sha1=abc"));
        assert!(!verify(b"s3cret", b"{}", "sha256=zz"));
    }

    #[test]
    fn urls_compare_across_forms() {
        let source: SessionSource = serde_json::from_value(json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
            "metadata": {"name": "s", "namespace": "n"}, "spec": {"url": "https://github.com/Acme/Sessions.git"}
        }))
        .expect("source");
        for url in ["git@github.com:acme/sessions", "ssh://git@github.com/acme/sessions.git"] {
            let repository = Repository { clone_url: Some(url.into()), ..Repository::default() };
            assert!(concerns(&source, &repository, "refs/heads/main"), "{url}");
        }
        let other =
            Repository { clone_url: Some("git@github.com:acme/other".into()), ..Repository::default() };
        assert!(!concerns(&source, &other, "refs/heads/main"));
    }
}
