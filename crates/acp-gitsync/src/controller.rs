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
use acp_api::constants::{
    API_VERSION, DEFAULT_WRITE_BACK_BRANCH, DEFAULT_WRITE_BACK_PATH, annotations, field_managers, labels,
    reasons,
};
use acp_api::source::{FileError, SessionSourceStatus};
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
use crate::files::{self, Filter};
use crate::kinds::{self, KindSynced};
use crate::plan::{self, SourceRef};
use crate::status::{self, Failed, Synced};
use acp_git::Credentials;
use acp_git::mirror as fetch;

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
    let outcome = sync(&ctx, &source, &ns, &name, &current).await?;
    let metrics = &ctx.config.metrics;
    metrics.syncs.inc();
    metrics.sync_seconds.observe(started.elapsed().as_secs_f64());
    let next = match outcome {
        Ok(synced) => {
            metrics.applied.inc_by(u64::try_from(synced.applied).unwrap_or_default());
            metrics.pruned.inc_by(u64::try_from(synced.pruned).unwrap_or_default());
            if !synced.errors.is_empty() {
                let reason =
                    if synced.apply_failed { reasons::APPLY_FAILED } else { reasons::VALIDATION_FAILED };
                metrics.failures.get_or_create(&crate::metrics::ReasonLabel { reason: reason.into() }).inc();
            }
            let mut next = status::after_sync(&current, generation, synced, &now());
            next.last_handled_reconcile_at =
                source.annotations().get(annotations::RECONCILE_REQUESTED_AT).cloned();
            announce_errors(&ctx, &source, &current.errors, &next.errors).await;
            next
        }
        Err(failed) => {
            metrics
                .failures
                .get_or_create(&crate::metrics::ReasonLabel { reason: failed.reason.into() })
                .inc();
            warn!(reason = failed.reason, message = %failed.message, "sync failed");
            publish(&ctx, &source, failed.reason, &failed.message).await;
            status::after_failure(&current, generation, &failed, &now())
        }
    };
    write_status(&ctx, &source, &current, next).await?;
    if let Ok(mut last) = ctx.last.lock() {
        last.insert(oref, (Instant::now(), key));
    }
    Ok(Action::requeue(jittered(interval)))
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

async fn publish(ctx: &Context, source: &SessionSource, reason: &str, note: &str) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &source.object_ref(&())).await {
        warn!(%error, "failed to publish event");
    }
}

/// One Warning event per file error that is new in this sync (bounded),
/// each with its own note (`acp_kube::events` never folds events of one
/// reason into a series).
async fn announce_errors(ctx: &Context, source: &SessionSource, before: &[FileError], after: &[FileError]) {
    let regarding = source.object_ref(&());
    for error in after.iter().filter(|e| !before.contains(e)).take(20) {
        let at = match (error.line, error.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", error.path),
            (Some(line), None) => format!("{}:{line}", error.path),
            _ => error.path.clone(),
        };
        let note: String = format!("{at}: {}", error.message).chars().take(1000).collect();
        let event = Event {
            type_: EventType::Warning,
            reason: reasons::VALIDATION_FAILED.into(),
            note: Some(note),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &regarding).await {
            warn!(%error, "failed to publish event");
        }
    }
}

fn failed(reason: &'static str, message: String, retryable: bool) -> Failed {
    Failed { reason, message, retryable }
}

/// Fetch, plan, apply, prune. `Err(Failed)` is a sync problem for status;
/// the outer `Err` is an API failure to retry.
async fn sync(
    ctx: &Context,
    source: &SessionSource,
    ns: &str,
    name: &str,
    current: &SessionSourceStatus,
) -> Result<Result<Synced, Failed>, Error> {
    let spec = &source.spec;
    let started = Instant::now();
    let started_at = now();
    let write_back = spec.write_back.clone().unwrap_or_default();
    let write_back_on = write_back.enabled.unwrap_or(true);
    let write_back_branch = write_back.branch.clone().unwrap_or_else(|| DEFAULT_WRITE_BACK_BRANCH.into());
    let branch = spec.git_ref.as_ref().and_then(|r| r.branch.clone());
    if write_back_on && branch.as_deref() == Some(write_back_branch.as_str()) {
        return Ok(Err(failed(
            reasons::INVALID_SOURCE,
            format!(
                "spec.ref.branch is the write-back branch {write_back_branch:?}; sync a different branch"
            ),
            false,
        )));
    }
    let synced = match &spec.git_ref {
        Some(r) if r.tag.is_some() || r.commit.is_some() => None,
        Some(r) => Some(r.branch.as_deref().unwrap_or(acp_git::mirror::DEFAULT_BRANCH)),
        None => Some(acp_git::mirror::DEFAULT_BRANCH),
    };
    let write_back_at = write_back_on.then_some(write_back_branch.as_str());
    if let Some(message) =
        spec.pull_requests.as_ref().and_then(|b| crate::commands::branch::misplaced(b, synced, write_back_at))
    {
        return Ok(Err(failed(reasons::INVALID_SOURCE, message, false)));
    }
    let target = match plan::target_namespace(spec, ns) {
        Ok(target) => target,
        Err(message) => return Ok(Err(failed(reasons::INVALID_SOURCE, message, false))),
    };
    let excluded = if write_back_on {
        vec![write_back.path.clone().unwrap_or_else(|| DEFAULT_WRITE_BACK_PATH.into())]
    } else {
        Vec::new()
    };
    let filter = match Filter::new(spec.path.as_deref().unwrap_or_default(), &spec.ignore, &excluded) {
        Ok(filter) => filter,
        Err(e) => return Ok(Err(failed(reasons::INVALID_SOURCE, e.to_string(), false))),
    };

    let creds = match &spec.secret_ref {
        None => Credentials::default(),
        Some(secret_ref) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            match secrets.get_opt(&secret_ref.name).await {
                Ok(Some(secret)) => secret_credentials(&secret.data.unwrap_or_default()),
                Ok(None) => {
                    let message = format!("secret {ns}/{} (spec.secretRef) not found", secret_ref.name);
                    return Ok(Err(failed(reasons::FETCH_FAILED, message, true)));
                }
                Err(source) => return Err(kube_err("read the source's credentials")(source).into()),
            }
        }
    };
    let dir = ctx.config.cache_dir.join(ns).join(name);
    let url = spec.url.clone();
    let git_ref = spec.git_ref.clone();
    let timeout = spec.timeout.map(Duration::from).unwrap_or(DEFAULT_TIMEOUT);
    let requests = spec.pull_requests.as_ref().map(|b| b.requests_branch().to_owned());
    let read = tokio::task::spawn_blocking(move || {
        let revision =
            fetch::fetch(&dir, &url, git_ref.as_ref(), &creds, timeout).map_err(|e| e.to_string())?;
        let repo = git2::Repository::open_bare(&dir).map_err(|e| e.to_string())?;
        let tree = repo.find_commit(revision).and_then(|c| c.tree()).map_err(|e| e.to_string())?;
        let mut entries = files::from_tree(&repo, &tree, &filter).map_err(|e| e.to_string())?;
        let mut requests_present = false;
        // Pull-request requests: every manifest of the requests branch, its
        // paths prefixed with the branch (`acp/requests:owner/repo/pr-7/…`).
        if let Some(branch) = requests {
            let tip = fetch::fetch_branch_if_present(&dir, &url, &branch, &creds, timeout)
                .map_err(|e| e.to_string())?;
            requests_present = tip.is_some();
            if let Some(tip) = tip {
                let tree = repo.find_commit(tip).and_then(|c| c.tree()).map_err(|e| e.to_string())?;
                // Requests waiting for a maintainer's `/acp approve` are not
                // read: an approved one is the same session at its own place.
                let pending = [crate::commands::request::PENDING_PATTERN.to_owned()];
                let all = Filter::new("", &pending, &[]).map_err(|e| e.to_string())?;
                entries.extend(
                    files::from_tree(&repo, &tree, &all)
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .map(|e| e.within(&branch)),
                );
            }
        }
        Ok::<_, String>((revision.to_string(), entries, requests_present))
    });
    let (revision, entries, requests_present) =
        match tokio::time::timeout(timeout + Duration::from_secs(5), read).await {
            Ok(Ok(Ok(read))) => read,
            Ok(Ok(Err(message))) => return Ok(Err(failed(reasons::FETCH_FAILED, message, true))),
            Ok(Err(join)) => {
                return Ok(Err(failed(reasons::FETCH_FAILED, format!("fetch task failed: {join}"), true)));
            }
            Err(_) => {
                return Ok(Err(failed(
                    reasons::FETCH_FAILED,
                    format!("fetch timed out after {timeout:?}"),
                    true,
                )));
            }
        };

    let fetched_ms = started.elapsed().as_millis();
    let source_ref = SourceRef {
        namespace: ns.to_string(),
        name: name.to_string(),
        shard: source.labels().get(labels::SHARD).cloned(),
    };
    let oref = ObjectRef::from(source);
    let previous = ctx.checked.lock().ok().and_then(|c| c.get(&oref).cloned()).unwrap_or_default();
    let (mut manifests, cache) =
        plan::manifests_cached(&entries, &source_ref, Some(target.as_str()), &ctx.config.checker, &previous);
    if let Some(binding) = &spec.pull_requests {
        crate::commands::branch::check(binding, &mut manifests, requests_present, &current.inventory);
    }
    if let Ok(mut checked) = ctx.checked.lock() {
        checked.insert(oref, Arc::new(cache));
    }
    let client = match &spec.service_account_name {
        Some(sa) => match apply::impersonating(&ctx.kube_config, ns, sa) {
            Ok(client) => client,
            Err(e) => {
                return Ok(Err(failed(
                    reasons::APPLY_FAILED,
                    format!("failed to impersonate {sa}: {e}"),
                    true,
                )));
            }
        },
        None => ctx.client.clone(),
    };
    let checked_ms = started.elapsed().as_millis();
    let broken: HashSet<&str> = manifests.errors.iter().map(|e| e.path.as_str()).collect();
    let mirror = ctx.config.cache_dir.join(ns).join(name);
    let mut synced = KindSynced::default();
    for kind in plan::Kind::ALL {
        let part = kinds::sync(kinds::Sync {
            kind,
            client: client.clone(),
            target: &target,
            source: &source_ref,
            desired: manifests.desired.iter().filter(|d| d.kind == kind).cloned().collect(),
            inventory: current.inventory.iter().filter(|e| e.kind == kind.as_str()).cloned().collect(),
            broken: &broken,
            revision: &revision,
            mirror: &mirror,
            prune: spec.prune,
            // Applying as a ServiceAccount: read as it too (a list).
            live: spec.service_account_name.is_none().then_some(&*ctx.live),
        })
        .await;
        match part {
            Ok(part) => synced.merge(part),
            Err(message) => return Ok(Err(failed(reasons::APPLY_FAILED, message, true))),
        }
    }
    let reads = &ctx.config.metrics.reads;
    reads.get_or_create(&crate::metrics::FromLabel { from: "cache" }).inc_by(synced.reads.0);
    reads.get_or_create(&crate::metrics::FromLabel { from: "list" }).inc_by(synced.reads.1);
    acp_kube::failpoint::hit("gitsync.applied");
    // A sync that changes nothing (every interval) is logged at debug.
    let level_info = synced.create + synced.update > 0 || synced.pruned > 0;
    let (files, create, update, unchanged) = (entries.len(), synced.create, synced.update, synced.unchanged);
    let applied_ms = started.elapsed().as_millis();
    if level_info {
        info!(%revision, files, create, update, unchanged, fetched_ms, checked_ms, applied_ms, "synced");
    } else {
        tracing::debug!(%revision, files, unchanged, fetched_ms, checked_ms, applied_ms, "synced, nothing changed");
    }
    let mut errors = manifests.errors.clone();
    errors.extend(synced.errors);
    let mut inventory = synced.inventory;
    inventory.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));

    Ok(Ok(Synced {
        revision,
        started_at: Some(started_at),
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        applied: synced.applied,
        unchanged: synced.unchanged,
        pruned: synced.pruned,
        apply_failed: synced.apply_failed,
        errors,
        inventory,
    }))
}

pub use crate::apply::secret_credentials;
