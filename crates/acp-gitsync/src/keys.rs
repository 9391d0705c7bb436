//! The webhook receiver's keys, held in memory so that verifying a delivery
//! costs no API request: a watch on SessionSources, and the webhook Secret of
//! each source that names one, read when the source appears or changes and
//! again every [`REFRESH`] (a rotated secret is picked up by then, or at once
//! when the source is touched). A forged delivery is checked against these
//! and refused without reaching the API server.
//!
//! A source's Secret holds one shared webhook secret (`webhook-secret`, or
//! the key `webhookSecretRef.key` names) and may hold one per repository,
//! under `<key>.<owner>.<repo>`: a repository with its own secret is
//! served only for deliveries signed with it, so whoever holds one
//! repository's webhook secret cannot speak for another.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use acp_api::SessionSource;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use sha2::Sha256;
use tracing::warn;

/// How often every webhook secret is read again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// `(namespace, name)` of a source.
type SourceKey = (String, String);
/// A source and its webhook secrets (`None`: the Secret is missing).
type Keyed = (SessionSource, Option<Secrets>);

/// A source's webhook secrets.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// The shared one.
    shared: Option<Vec<u8>>,
    /// Per repository (`owner/repo`, lowercase).
    repositories: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Secrets {
    /// The secrets in a Secret's `data` under `key` (and `key.<owner>.<repo>`).
    pub fn from_data(data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>, key: &str) -> Self {
        let prefix = format!("{key}.");
        let repositories = data
            .iter()
            .filter_map(|(k, v)| {
                // An owner has no dot; a repository name may.
                let (owner, repo) = k.strip_prefix(&prefix)?.split_once('.')?;
                (!owner.is_empty() && !repo.is_empty())
                    .then(|| (format!("{owner}/{repo}").to_ascii_lowercase(), v.0.clone()))
            })
            .collect();
        Self { shared: data.get(key).map(|v| v.0.clone()), repositories }
    }
}

/// A source whose webhook secret signed a delivery, and which one.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The source.
    pub source: SessionSource,
    /// The repository whose own secret signed it (`None`: the shared one).
    signed_for: Option<String>,
    /// The repositories that have their own secret in this source.
    own: std::collections::BTreeSet<String>,
}

impl Verified {
    /// What deliveries are limited by: the source and the secret that signed.
    pub fn limit_key(&self) -> (String, String, Option<String>) {
        (self.source.namespace().unwrap_or_default(), self.source.name_any(), self.signed_for.clone())
    }

    /// Whether this signature may speak for `repository` (`owner/name`): a
    /// repository's own secret only for it, the shared secret only for
    /// repositories without their own.
    pub fn covers(&self, repository: &str) -> bool {
        let repository = repository.to_ascii_lowercase();
        match &self.signed_for {
            Some(signed_for) => *signed_for == repository,
            None => !self.own.contains(&repository),
        }
    }
}

/// The sources with a webhook secret, and that secret's value.
#[derive(Default)]
pub struct Keys {
    sources: RwLock<HashMap<SourceKey, Keyed>>,
    ready: std::sync::atomic::AtomicBool,
}

impl Keys {
    /// Starts watching the sources of `namespace` (all when `None`); the
    /// watch ends when the returned keys are dropped.
    pub fn start(client: Client, namespace: Option<String>) -> Arc<Self> {
        let keys = Arc::new(Self::default());
        tokio::spawn(watch(client, namespace, Arc::downgrade(&keys)));
        keys
    }

    /// Whether the first list of sources has been read.
    pub fn ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The sources one of whose webhook secrets signs `body` as `signature`.
    pub fn verified(&self, body: &[u8], signature: &str) -> Vec<Verified> {
        let Ok(sources) = self.sources.read() else { return Vec::new() };
        let mut found = Vec::new();
        for (source, secrets) in sources.values() {
            let Some(secrets) = secrets else { continue };
            let own = || secrets.repositories.keys().cloned().collect();
            if secrets.shared.as_deref().is_some_and(|s| verify(s, body, signature)) {
                found.push(Verified { source: source.clone(), signed_for: None, own: own() });
            } else if let Some((repository, _)) =
                secrets.repositories.iter().find(|(_, s)| verify(s, body, signature))
            {
                let signed_for = Some(repository.clone());
                found.push(Verified { source: source.clone(), signed_for, own: own() });
            }
        }
        found
    }

    fn put(&self, source: SessionSource, secret: Option<Secrets>) {
        let key = (source.namespace().unwrap_or_default(), source.name_any());
        if let Ok(mut sources) = self.sources.write() {
            sources.insert(key, (source, secret));
        }
    }

    fn remove(&self, source: &SessionSource) {
        if let Ok(mut sources) = self.sources.write() {
            sources.remove(&(source.namespace().unwrap_or_default(), source.name_any()));
        }
    }

    fn all(&self) -> Vec<SessionSource> {
        self.sources
            .read()
            .map(|s| s.values().map(|(source, _)| source.clone()).collect())
            .unwrap_or_default()
    }
}

/// `source`'s webhook secrets, if it names a Secret that exists.
async fn secret_of(client: &Client, source: &SessionSource) -> Option<Secrets> {
    let secret_ref = source.spec.github.as_ref()?.webhook_secret_ref.as_ref()?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &source.namespace().unwrap_or_default());
    let secret = match secrets.get_opt(&secret_ref.name).await {
        Ok(secret) => secret?,
        Err(error) => {
            warn!(%error, source = %source.name_any(), "failed to read a webhook secret");
            return None;
        }
    };
    let key = secret_ref.key.as_deref().unwrap_or("webhook-secret");
    Some(Secrets::from_data(&secret.data.unwrap_or_default(), key))
}

fn has_webhook(source: &SessionSource) -> bool {
    source.spec.github.as_ref().is_some_and(|g| g.webhook_secret_ref.is_some())
}

async fn watch(client: Client, namespace: Option<String>, keys: Weak<Keys>) {
    let api: Api<SessionSource> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    // Sources seen since the last (re)list began: the others are gone.
    let mut listed: Option<std::collections::HashSet<SourceKey>> = None;
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.tick().await;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(keys) = keys.upgrade() else { return };
                if let Some(Ok(Event::InitApply(source))) = &event
                    && let Some(listed) = listed.as_mut()
                {
                    listed.insert((source.namespace().unwrap_or_default(), source.name_any()));
                }
                match event {
                    Some(Ok(Event::Apply(source) | Event::InitApply(source))) if has_webhook(&source) => {
                        let secret = secret_of(&client, &source).await;
                        keys.put(source, secret);
                    }
                    Some(Ok(Event::Apply(source) | Event::InitApply(source) | Event::Delete(source))) => {
                        keys.remove(&source);
                    }
                    Some(Ok(Event::Init)) => listed = Some(Default::default()),
                    Some(Ok(Event::InitDone)) => {
                        if let (Some(seen), Ok(mut sources)) = (listed.take(), keys.sources.write()) {
                            sources.retain(|key, _| seen.contains(key));
                        }
                        keys.ready.store(true, std::sync::atomic::Ordering::Release);
                    }
                    Some(Err(error)) => warn!(%error, "watching sources for webhook keys"),
                    None => return,
                }
            }
            _ = refresh.tick() => {
                let Some(keys) = keys.upgrade() else { return };
                for source in keys.all() {
                    let secret = secret_of(&client, &source).await;
                    keys.put(source, secret);
                }
            }
        }
    }
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC of `body` under `secret`.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else { return false };
    let Ok(expected) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub sends it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
