//! The kube-runtime shell: watch sessions (their children and the runner
//! secrets through [`Caches`], the sources and schedules that vouch for
//! threads through [`Vouchers`]), observe from the caches,
//! [`decide`](crate::state::decide), apply the children that differ with
//! server-side apply, write status with server-side apply (at most once per
//! reconcile). A settled session costs no request.

use std::sync::Arc;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::constants::annotations;
use acp_kube::events::{Publisher, event};
use acp_kube::reconcile::{ErrorPolicy, Invalid};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource as _, ResourceExt as _};
use tracing::{instrument, warn};

use crate::cache::Caches;
use crate::state::decide;
use crate::threads::{self, Vouchers};

pub use crate::context::{Config, Context, Error};

/// Sessions reconciled at once: each reconcile is a handful of writes.
const CONCURRENCY: u16 = 32;

/// Runs the operator until `shutdown` completes.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    run_with_metrics(client, config, Arc::default(), shutdown).await;
}

/// [`run`], recording into `metrics`.
pub async fn run_with_metrics(
    client: Client,
    config: Config,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let sessions = match &config.namespace {
        Some(ns) => Api::<AgenticSession>::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    acp_kube::watch::detect(&sessions).await;
    let egress = matches!(config.children.egress, crate::egress::Egress::Allow(_));
    let (caches, streams) = Caches::watch(&client, config.namespace.as_deref(), &config.shard, egress);
    let (vouchers, records) = Vouchers::watch(&client, config.namespace.as_deref());
    let recorder =
        Publisher::new(client.clone(), Reporter { controller: "acp-operator".into(), instance: None });
    let errors = Arc::new(ErrorPolicy::new(Some(metrics.errors.clone())));
    let controller = session_controller(sessions, &config);
    let store = controller.store();
    let ctx = Context { client, config, recorder, metrics, errors, caches, sessions: store, vouchers };
    let ctx = Arc::new(ctx);
    let errors = ctx.errors.clone();
    with_watches(controller, ctx.sessions.clone(), streams, records)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            // A success starts the session's backoff over.
            errors.observe(&result);
            async move {
                // Reconcile failures are logged (once) by error_policy; a watch
                // that fails (RBAC, say) would otherwise stall its cache unseen.
                if let Err(kube::runtime::controller::Error::QueueError(error)) = result {
                    warn!(%error, "a watch failed; retrying with backoff");
                }
            }
        })
        .await;
}

/// The controller of `sessions` in this shard, with bounded concurrency
/// (memory stays flat when thousands are reconciled at start-up).
fn session_controller(sessions: Api<AgenticSession>, config: &Config) -> Controller<AgenticSession> {
    let (store, writer) = kube::runtime::reflector::store();
    let session_changes = watcher(sessions, acp_kube::watch::in_shard(&config.shard, ""))
        .default_backoff()
        // Managed fields are most of a small session's memory, and nothing
        // here reads them: at 100,000 sessions that is hundreds of MiB.
        .modify(|session: &mut AgenticSession| session.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    let concurrency = match config.concurrency {
        0 => CONCURRENCY,
        n => n,
    };
    Controller::for_stream(session_changes, store)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
}

/// What else brings a session to be reconciled: its children, its pods,
/// its namespace's runner secret, and the records its thread waits for.
fn with_watches(
    controller: Controller<AgenticSession>,
    store: Store<AgenticSession>,
    streams: crate::cache::Streams,
    records: crate::threads::Streams,
) -> Controller<AgenticSession> {
    let (by_source, by_schedule) = (store.clone(), store.clone());
    let session_of_pod = |pod: Pod| {
        let ns = pod.namespace();
        pod.annotations()
            .get(annotations::SESSION_NAME)
            .map(|name| ObjectRef::new(name).within(ns.as_deref().unwrap_or_default()))
    };
    // The runner secret appeared or changed: revisit that namespace's sessions.
    let sessions_of_namespace = move |secret: Secret| {
        let ns = secret.namespace().unwrap_or_default();
        store
            .state()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .map(|s| ObjectRef::from(&*s))
            .collect::<Vec<_>>()
    };
    controller
        .owns_stream(streams.jobs)
        .owns_stream(streams.session_secrets)
        .owns_stream(streams.claims)
        .watches_stream(streams.pods, session_of_pod)
        .watches_stream(streams.runner_secrets, sessions_of_namespace)
        // Polled only to keep its cache; a change is seen at the next run's start.
        .watches_stream(streams.egress, |_| Vec::new())
        // A source or schedule recorded something: its follow-ups that have
        // not started may be waiting for that record.
        .watches_stream(records.sources, move |s| threads::follow_ups_of_source(&by_source, &s))
        .watches_stream(records.schedules, move |s| threads::follow_ups_of_schedule(&by_schedule, &s))
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// One reconcile: read → observe → decide → apply children → write status.
pub async fn reconcile(session: Arc<AgenticSession>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.caches.ready() || !ctx.vouchers.ready() {
        // Until every cache holds its first list, a missing Job (or record
        // of a follow-up) proves nothing.
        return Ok(Requeue::requeue(Duration::from_millis(500)));
    }
    let result = reconcile_session(session, ctx.clone()).await;
    ctx.metrics.reconciles_completed.inc();
    result
}

#[instrument(skip_all, fields(session = %session.name_any(), namespace = session.namespace().as_deref().unwrap_or_default()))]
async fn reconcile_session(session: Arc<AgenticSession>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    ctx.metrics.reconciles.inc();
    let ns = session.namespace().ok_or(Invalid { kind: "session", why: "a session must be namespaced" })?;
    if session.metadata.deletion_timestamp.is_some() {
        // Children go with it through owner references.
        return Ok(Requeue::await_change());
    }
    let status = session.status.clone().unwrap_or_default();
    let seen = crate::gather::observe(&ctx, &session, &ns, &status).await?;
    let decision = decide(&seen.observation(&session, &status, now()));
    crate::act::act(&ctx, &session, &ns, &status, &decision, &seen.secrets).await?;
    crate::act::record_transition(&ctx.metrics, &status, &decision.status);
    let events: Vec<_> =
        decision.events.iter().map(|e| event(e.warning, &e.reason, &e.message, "Reconcile")).collect();
    ctx.recorder.publish_all(&events, &session.object_ref(&())).await;
    if let Some(Err(message)) = seen.secrets
        && decision.status.phase.is_some_and(|p| !p.is_terminal())
    {
        return Err(Error::SecretMissing(message));
    }
    Ok(next_look(
        decision.status.phase.unwrap_or_default(),
        seen.waiting_for.is_some(),
        ctx.config.process.is_some(),
    ))
}

/// When to look at a session again: a finished one on its next change; one
/// queued behind its parent soon (the parent is another object); a local
/// process's while it runs (processes are not watched); else in 5 minutes.
fn next_look(phase: acp_api::SessionPhase, waiting: bool, process: bool) -> Requeue {
    match phase {
        phase if phase.is_terminal() => Requeue::await_change(),
        _ if waiting => Requeue::requeue(Duration::from_secs(3)),
        _ if process => Requeue::requeue(Duration::from_secs(1)),
        _ => Requeue::requeue(Duration::from_secs(300)),
    }
}

/// Per-object exponential backoff (jittered): 1 s, 2 s, 4 s … up to 5 minutes. A status
/// write refused because the session changed since it was read (409) is not
/// a failure: the cache is about to deliver the newer object; retry soon.
fn error_policy(session: Arc<AgenticSession>, error: &Error, ctx: Arc<Context>) -> Requeue {
    if let Error::Kube(e) = error
        && e.is_conflict()
    {
        tracing::debug!(session = %session.name_any(), "status write conflicted with a newer version; retrying");
        return Requeue::requeue(Duration::from_millis(200));
    }
    ctx.errors.failed(&session, error)
}
