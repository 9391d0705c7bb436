//! Who may see what. With `none` everyone sees everything (local development).
//! With `token` the caller sends a bearer token (`Authorization: Bearer …`, or
//! `X-Forwarded-Access-Token` from an authenticating proxy); a TokenReview says
//! who it is, and a SubjectAccessReview per namespace ("may this user list
//! agenticsessions here?") decides what is shown. Both answers are cached
//! briefly (`moka`: time to live, bounded size, and one review for many
//! concurrent requests of the same caller), keyed by a digest of the token,
//! never the token itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use acp_api::constants::{GROUP, VERSION};
use axum::http::HeaderMap;
use futures_util::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// How long a TokenReview or SubjectAccessReview answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Cached answers kept at most, per kind (least recently used go first).
const CACHE_MAX: u64 = 50_000;
/// Reviews run at once for one caller.
const REVIEWS_IN_FLIGHT: usize = 16;

/// Failures of authentication and authorization.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the request.
    #[error("failed to authenticate: send a bearer token (Authorization or X-Forwarded-Access-Token)")]
    Missing,
    /// The API server did not accept the token.
    #[error("failed to authenticate: the token was not accepted{}", .0.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Invalid(Option<String>),
    /// A review could not be made.
    #[error("failed to review access with the API server")]
    Review(#[source] kube::Error),
}

impl AuthError {
    /// A bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Invalid(_) => "invalid_token",
            Self::Review(_) => "review_failed",
        }
    }
}

/// The access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everyone sees everything.
    None,
    /// Bearer tokens and SubjectAccessReviews.
    Token,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "token" => Ok(Self::Token),
            other => Err(format!("unknown auth mode {other:?} (none, token)")),
        }
    }
}

/// What one caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every namespace.
    All,
    /// Only these namespaces.
    Namespaces(HashSet<String>),
}

impl Access {
    /// True when `namespace` is visible.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespaces(set) => set.contains(namespace),
        }
    }
}

/// A caller, as the reviews know it.
#[derive(Clone, Debug)]
pub struct Caller {
    key: String,
    user: UserInfo,
}

impl Caller {
    /// The user name the API server gave the token.
    pub fn username(&self) -> &str {
        self.user.username.as_deref().unwrap_or("")
    }
}

/// Decides access per request.
#[derive(Clone)]
pub struct Authorizer {
    mode: Mode,
    client: kube::Client,
    /// Token digest → the user the token is (`None`: not authenticated).
    users: moka::future::Cache<String, Option<UserInfo>>,
    /// (token digest, namespace) → may list sessions there.
    decisions: moka::future::Cache<(String, String), bool>,
    /// Token digest → what it may see, refreshed in the background once
    /// older than [`CACHE_TTL`], and dropped after three times that.
    accesses: moka::future::Cache<String, Arc<Known>>,
    /// Callers whose access is being refreshed (one refresh each at a time).
    refreshing: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// A caller's access, when it was decided, and over how many namespaces.
struct Known {
    at: std::time::Instant,
    access: Access,
    namespaces: usize,
}

fn cache<K, V>() -> moka::future::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::future::Cache::builder().time_to_live(CACHE_TTL).max_capacity(CACHE_MAX).build()
}

/// A review's error, shared by every request that waited on it: a failed
/// review is not cached, and each waiter gets its own error.
fn unshare(error: Arc<AuthError>) -> AuthError {
    match &*error {
        AuthError::Missing => AuthError::Missing,
        AuthError::Invalid(message) => AuthError::Invalid(message.clone()),
        // kube::Error is not Clone: keep the message, as an API error.
        AuthError::Review(source) => AuthError::Review(kube::Error::Service(source.to_string().into())),
    }
}

/// The token of a request, if it sent one.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    bearer
        .or_else(|| headers.get("x-forwarded-access-token").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl Authorizer {
    /// An authorizer in `mode`, reviewing with `client`.
    pub fn new(mode: Mode, client: kube::Client) -> Self {
        let accesses =
            moka::future::Cache::builder().time_to_live(CACHE_TTL * 3).max_capacity(CACHE_MAX).build();
        Self { mode, client, users: cache(), decisions: cache(), accesses, refreshing: Arc::default() }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Who sent `headers` (`None` in mode `none`).
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, AuthError> {
        if self.mode == Mode::None {
            return Ok(None);
        }
        let token = token(headers).ok_or(AuthError::Missing)?;
        let key = hex::encode(Sha256::digest(token.as_bytes()));
        let user = self.users.try_get_with(key.clone(), self.review_token(token)).await.map_err(unshare)?;
        let user = user.ok_or(AuthError::Invalid(None))?;
        Ok(Some(Caller { key, user }))
    }

    async fn review_token(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec { token: token.to_owned(), ..Default::default() },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.map_err(AuthError::Review)?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated == Some(true) {
            Ok(status.user)
        } else if let Some(error) = status.error.filter(|e| !e.is_empty()) {
            Err(AuthError::Invalid(Some(error)))
        } else {
            Ok(None)
        }
    }

    /// May `caller` list sessions in `namespace` ("" = every namespace)?
    pub async fn can_list(&self, caller: Option<&Caller>, namespace: &str) -> Result<bool, AuthError> {
        let Some(caller) = caller else { return Ok(true) };
        let id = (caller.key.clone(), namespace.to_owned());
        self.decisions.try_get_with(id, self.review_access(&caller.user, namespace)).await.map_err(unshare)
    }

    async fn review_access(&self, user: &UserInfo, namespace: &str) -> Result<bool, AuthError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                uid: user.uid.clone(),
                groups: user.groups.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.to_owned()),
                    version: Some(VERSION.to_owned()),
                    resource: Some("agenticsessions".to_owned()),
                    verb: Some("list".to_owned()),
                    namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.map_err(AuthError::Review)?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    /// What `caller` may see among `namespaces`: everything when it may list
    /// sessions cluster-wide, else the namespaces where it may. A caller's
    /// access is kept: once older than [`CACHE_TTL`] (or when namespaces
    /// came or went) it is decided again in the background while requests
    /// get the previous answer, so the reviews of a thousand namespaces
    /// never hold up a request; after three times the TTL without a fresh
    /// answer it is decided again before answering.
    pub async fn access(&self, caller: Option<&Caller>, namespaces: &[String]) -> Result<Access, AuthError> {
        let Some(who) = caller else { return Ok(Access::All) };
        if let Some(known) = self.accesses.get(&who.key).await {
            if known.at.elapsed() >= CACHE_TTL || known.namespaces != namespaces.len() {
                self.refresh(who.clone(), namespaces.to_vec());
            }
            return Ok(known.access.clone());
        }
        let access = self.decide(caller, namespaces).await?;
        let known =
            Known { at: std::time::Instant::now(), access: access.clone(), namespaces: namespaces.len() };
        self.accesses.insert(who.key.clone(), Arc::new(known)).await;
        Ok(access)
    }

    /// Decides `caller`'s access again in the background, unless that is
    /// already under way.
    fn refresh(&self, caller: Caller, namespaces: Vec<String>) {
        let first = self.refreshing.lock().map(|mut r| r.insert(caller.key.clone())).unwrap_or(false);
        if !first {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Ok(access) = me.decide(Some(&caller), &namespaces).await {
                let known = Known { at: std::time::Instant::now(), access, namespaces: namespaces.len() };
                me.accesses.insert(caller.key.clone(), Arc::new(known)).await;
            }
            if let Ok(mut refreshing) = me.refreshing.lock() {
                refreshing.remove(&caller.key);
            }
        });
    }

    /// Reviews `caller`'s access to `namespaces` (each decision cached).
    async fn decide(&self, caller: Option<&Caller>, namespaces: &[String]) -> Result<Access, AuthError> {
        if caller.is_none() || self.can_list(caller, "").await? {
            return Ok(Access::All);
        }
        let allowed: Vec<Option<String>> =
            stream::iter(namespaces.iter().cloned())
                .map(|ns: String| async move {
                    Ok::<_, AuthError>(self.can_list(caller, &ns).await?.then_some(ns))
                })
                .buffer_unordered(REVIEWS_IN_FLIGHT)
                .try_collect()
                .await?;
        Ok(Access::Namespaces(allowed.into_iter().flatten().collect()))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn token_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers), None);
        headers.insert("x-forwarded-access-token", HeaderValue::from_static("proxied"));
        assert_eq!(token(&headers), Some("proxied"));
        headers.insert("authorization", HeaderValue::from_static("Bearer direct"));
        assert_eq!(token(&headers), Some("direct"), "Authorization wins");
        headers.insert("authorization", HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(token(&headers), Some("proxied"), "only bearer tokens count");
        headers.insert("x-forwarded-access-token", HeaderValue::from_static("  "));
        assert_eq!(token(&headers), None);
    }

    #[test]
    fn access_sets() {
        assert!(Access::All.allows("any"));
        let some = Access::Namespaces(["a".to_owned()].into());
        assert!(some.allows("a") && !some.allows("b"));
        assert_eq!("token".parse::<Mode>(), Ok(Mode::Token));
        assert!("basic".parse::<Mode>().is_err());
    }
}
