//! The kube-runtime shell of git-sync: one reconcile per SessionSource runs
//! fetch → files → plan → apply → prune → status, then requeues after the
//! source's interval (with jitter). Status is written with server-side apply
//! only when it changed; a sync that changes nothing writes nothing.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acp_api::SessionSource;
use acp_api::constants::{API_VERSION, annotations, field_managers, labels, reasons};
use acp_api::source::{SessionSourceSpec, SessionSourceStatus};
use acp_kube::events::Publisher;
use acp_kube::reconcile::{ErrorPolicy, Invalid, kube_err};
use acp_policy::Checker;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::apply;
use crate::kinds::{self, KindSynced};
use crate::plan::{self, SourceRef};
use crate::status::{self, Failed, Synced};
use acp_git::Credentials;

/// Default sync interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default fetch timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// git-sync settings.
#[derive(Clone)]
pub struct Config {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Where bare mirrors of the sources' repositories are kept.
    pub cache_dir: PathBuf,
    /// The sources this replica set syncs.
    pub shard: acp_api::shard::Shard,
    /// Schema and policies every manifest must pass.
    pub checker: Arc<Checker>,
    /// Where to count syncs.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A reconcile failure: a Kubernetes call or an unusable source (sync
/// problems are reported in status instead).
pub use acp_kube::reconcile::Error;

/// Shared state of the reconcilers.
pub struct Context {
    client: Client,
    kube_config: kube::Config,
    config: Config,
    recorder: Publisher,
    /// Per-source backoff and the count of reconcile failures.
    errors: Arc<ErrorPolicy<SessionSource>>,
    /// When each source last synced, and the trigger key it synced for.
    last: Mutex<HashMap<ObjectRef<SessionSource>, (Instant, u64)>>,
    /// Check results of each source's last revision, reused for unchanged files.
    checked: Mutex<HashMap<ObjectRef<SessionSource>, Arc<plan::CheckCache>>>,
    /// The sessions sources applied, watched.
    live: Arc<crate::live::Live>,
}

/// Runs git-sync until `shutdown` completes.
pub async fn run(
    client: Client,
    kube_config: kube::Config,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let sources: Api<SessionSource> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    acp_kube::watch::detect(&sources).await;
    let recorder =
        Publisher::new(client.clone(), Reporter { controller: "acp-git-sync".into(), instance: None });
    let ready = config.metrics.live_cache_ready.clone();
    let (live, filling) =
        crate::live::Live::watch(&client, config.namespace.as_deref(), &config.shard, move || {
            ready.set(1);
        });
    let filling = tokio::spawn(crate::live::fill(filling));
    let errors = Arc::new(ErrorPolicy::new(Some(config.metrics.reconcile_errors.clone())));
    let ctx = Arc::new(Context {
        client,
        kube_config,
        config,
        recorder,
        errors: errors.clone(),
        last: Mutex::default(),
        checked: Mutex::default(),
        live,
    });
    Controller::new(sources, acp_kube::watch::in_shard(&ctx.config.shard, ""))
        .with_config(kube::runtime::controller::Config::default().concurrency(4))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            errors.observe(&result);
            async {}
        })
        .await;
    filling.abort();
}

/// Per-source exponential backoff (1 s doubling up to 5 minutes), counted by
/// category.
fn error_policy(source: Arc<SessionSource>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.errors.failed(&source, error)
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// What makes a sync due before its interval: a spec change or a trigger.
fn trigger_key(source: &SessionSource) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.metadata.generation.hash(&mut hasher);
    source.annotations().get(annotations::RECONCILE_REQUESTED_AT).hash(&mut hasher);
    hasher.finish()
}

fn jittered(interval: Duration) -> Duration {
    let factor = rand::random_range(0.9..1.1);
    interval.mul_f64(factor)
}

/// One reconcile of a SessionSource.
#[instrument(skip_all, fields(source = %source.name_any(), namespace = source.namespace().as_deref().unwrap_or_default()))]
pub async fn reconcile(source: Arc<SessionSource>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns =
        source.namespace().ok_or(Invalid { kind: "source", why: "a SessionSource must be namespaced" })?;
    let name = source.name_any();
    let generation = source.metadata.generation;
    let current = source.status.clone().unwrap_or_default();
    let interval = source.spec.interval.map(Duration::from).unwrap_or(DEFAULT_INTERVAL);
    if source.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if source.spec.suspend {
        write_status(&ctx, &source, &current, status::suspended(&current, generation, &now())).await?;
        return Ok(Action::await_change());
    }
    let oref = ObjectRef::from(&*source);
    let key = trigger_key(&source);
    let last = ctx.last.lock().ok().and_then(|l| l.get(&oref).copied());
    if let Some((at, last_key)) = last
        && last_key == key
        && at.elapsed() < interval
    {
        // A status write or another no-op event: the next sync is already scheduled.
        return Ok(Action::requeue(interval - at.elapsed()));
    }
    let started = Instant::now();
    let outcome = match sync(&ctx, &source, &ns, &name, &current).await {
        Ok(synced) => Ok(synced),
        Err(Stop::Failed(failed)) => Err(failed),
        Err(Stop::Api(error)) => return Err(error),
    };
    count(&ctx.config.metrics, started, &outcome);
    if let Err(failed) = &outcome {
        warn!(reason = failed.reason, message = %failed.message, "sync failed");
    }
    let requested = source.annotations().get(annotations::RECONCILE_REQUESTED_AT).cloned();
    let next = status::next(&current, generation, requested, outcome, &now());
    for warning in &next.warnings {
        publish(&ctx, &source, warning).await;
    }
    write_status(&ctx, &source, &current, next.status).await?;
    if let Ok(mut last) = ctx.last.lock() {
        last.insert(oref, (Instant::now(), key));
    }
    Ok(Action::requeue(jittered(interval)))
}

/// Counts a sync that ran (or stopped with a problem for status).
fn count(metrics: &crate::metrics::Metrics, started: Instant, outcome: &Result<Synced, Failed>) {
    metrics.syncs.inc();
    metrics.sync_seconds.observe(started.elapsed().as_secs_f64());
    let reason = match outcome {
        Ok(synced) => {
            metrics.applied.inc_by(u64::try_from(synced.applied).unwrap_or_default());
            metrics.pruned.inc_by(u64::try_from(synced.pruned).unwrap_or_default());
            if synced.errors.is_empty() {
                return;
            }
            if synced.apply_failed { reasons::APPLY_FAILED } else { reasons::VALIDATION_FAILED }
        }
        Err(failed) => failed.reason,
    };
    metrics.failures.get_or_create(&crate::metrics::ReasonLabel { reason: reason.into() }).inc();
}

async fn write_status(
    ctx: &Context,
    source: &SessionSource,
    current: &SessionSourceStatus,
    next: SessionSourceStatus,
) -> Result<(), Error> {
    if &next == current {
        return Ok(());
    }
    let api: Api<SessionSource> =
        Api::namespaced(ctx.client.clone(), &source.namespace().unwrap_or_default());
    let patch = json!({"apiVersion": API_VERSION, "kind": "SessionSource", "status": next});
    api.patch_status(
        &source.name_any(),
        &PatchParams::apply(field_managers::GIT_SYNC).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(kube_err("write source status"))?;
    Ok(())
}

/// Publishes `warning` about `source`.
async fn publish(ctx: &Context, source: &SessionSource, warning: &status::Warning) {
    let event = Event {
        type_: EventType::Warning,
        reason: warning.reason.into(),
        note: Some(warning.note.clone()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &source.object_ref(&())).await {
        warn!(%error, "failed to publish event");
    }
}

fn failed(reason: &'static str, message: String, retryable: bool) -> Failed {
    Failed { reason, message, retryable }
}

/// Why a sync stopped before the end.
enum Stop {
    /// A sync problem, for status.
    Failed(Failed),
    /// An API failure, to retry.
    Api(Error),
}

impl From<Failed> for Stop {
    fn from(failed: Failed) -> Self {
        Self::Failed(failed)
    }
}

/// Fetch, plan, apply, prune: observe (the source's credentials, its
/// revision), decide (its settings and manifests, pure), act (kind by
/// kind: list, diff, apply, prune; [`kinds`]).
async fn sync(
    ctx: &Context,
    source: &SessionSource,
    ns: &str,
    name: &str,
    current: &SessionSourceStatus,
) -> Result<Synced, Stop> {
    let spec = &source.spec;
    let started = Instant::now();
    let started_at = now();
    let Settings { target, filter, requests, timeout } = Settings::of(spec, ns)?;
    let creds = credentials(ctx, spec, ns).await?;
    let mirror = ctx.config.cache_dir.join(ns).join(name);
    let remote = read::Remote {
        dir: mirror.clone(),
        url: spec.url.clone(),
        git_ref: spec.git_ref.clone(),
        creds,
        timeout,
    };
    let read = read::revision(remote, filter, requests).await?;
    let fetched_ms = started.elapsed().as_millis();
    let source_ref = SourceRef {
        namespace: ns.to_string(),
        name: name.to_string(),
        shard: source.labels().get(labels::SHARD).cloned(),
    };
    let manifests = check(ctx, source, &source_ref, &target, &read, current);
    let client = applier(ctx, spec, ns)?;
    let checked_ms = started.elapsed().as_millis();
    let broken: HashSet<&str> = manifests.errors.iter().map(|e| e.path.as_str()).collect();
    let job = kinds::Sync {
        client,
        target: &target,
        source: &source_ref,
        broken: &broken,
        revision: &read.revision,
        mirror: &mirror,
        prune: spec.prune,
        // Applying as a ServiceAccount: read as it too (a list).
        live: spec.service_account_name.is_none().then_some(&*ctx.live),
    };
    let synced = kinds::all(&job, &manifests.desired, &current.inventory)
        .await
        .map_err(|message| failed(reasons::APPLY_FAILED, message, true))?;
    let reads = &ctx.config.metrics.reads;
    reads.get_or_create(&crate::metrics::FromLabel { from: "cache" }).inc_by(synced.reads.0);
    reads.get_or_create(&crate::metrics::FromLabel { from: "list" }).inc_by(synced.reads.1);
    acp_kube::failpoint::hit("gitsync.applied");
    log(&read, &synced, [fetched_ms, checked_ms, started.elapsed().as_millis()]);
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    Ok(synced.finish(read.revision, manifests.errors, started_at, duration_ms))
}

/// The source's git credentials: none, or from its Secret (`spec.secretRef`).
async fn credentials(ctx: &Context, spec: &SessionSourceSpec, ns: &str) -> Result<Credentials, Stop> {
    let Some(secret_ref) = &spec.secret_ref else { return Ok(Credentials::default()) };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match secrets.get_opt(&secret_ref.name).await {
        Ok(Some(secret)) => Ok(secret_credentials(&secret.data.unwrap_or_default())),
        Ok(None) => {
            let message = format!("secret {ns}/{} (spec.secretRef) not found", secret_ref.name);
            Err(failed(reasons::FETCH_FAILED, message, true).into())
        }
        Err(source) => Err(Stop::Api(kube_err("read the source's credentials")(source).into())),
    }
}

/// The revision's valid manifests and file errors (pure: [`plan`] and the
/// requests branch's rules), reusing the checks of files unchanged since
/// the source's last sync.
fn check(
    ctx: &Context,
    source: &SessionSource,
    source_ref: &SourceRef,
    target: &str,
    read: &read::Read,
    current: &SessionSourceStatus,
) -> plan::Manifests {
    let oref = ObjectRef::from(source);
    let previous = ctx.checked.lock().ok().and_then(|c| c.get(&oref).cloned()).unwrap_or_default();
    let (mut manifests, cache) =
        plan::manifests_cached(&read.entries, source_ref, Some(target), &ctx.config.checker, &previous);
    if let Some(binding) = &source.spec.pull_requests {
        crate::commands::branch::check(binding, &mut manifests, read.requests_present, &current.inventory);
    }
    if let Ok(mut checked) = ctx.checked.lock() {
        checked.insert(oref, Arc::new(cache));
    }
    manifests
}

/// The client a sync applies with: git-sync's own, or one impersonating
/// `spec.serviceAccountName`.
fn applier(ctx: &Context, spec: &SessionSourceSpec, ns: &str) -> Result<Client, Failed> {
    match &spec.service_account_name {
        Some(sa) => apply::impersonating(&ctx.kube_config, ns, sa)
            .map_err(|e| failed(reasons::APPLY_FAILED, format!("failed to impersonate {sa}: {e}"), true)),
        None => Ok(ctx.client.clone()),
    }
}

/// Logs a sync: at info when it changed something, else (every interval)
/// at debug.
fn log(read: &read::Read, synced: &KindSynced, [fetched_ms, checked_ms, applied_ms]: [u128; 3]) {
    let revision = &read.revision;
    let level_info = synced.create + synced.update > 0 || synced.pruned > 0;
    let (files, create, update, unchanged) =
        (read.entries.len(), synced.create, synced.update, synced.unchanged);
    if level_info {
        info!(%revision, files, create, update, unchanged, fetched_ms, checked_ms, applied_ms, "synced");
    } else {
        tracing::debug!(%revision, files, unchanged, fetched_ms, checked_ms, applied_ms, "synced, nothing changed");
    }
}

mod read;
mod settings;

use settings::Settings;

pub use crate::apply::secret_credentials;
