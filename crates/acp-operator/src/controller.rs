//! The kube-runtime shell: watch sessions (their children and the runner
//! secrets through [`Caches`], the sources and schedules that vouch for
//! threads through [`Vouchers`]), observe from the caches,
//! [`decide`](crate::state::decide), apply the children that differ with
//! server-side apply, write status with server-side apply (at most once per
//! reconcile). A settled session costs no request.

use std::sync::Arc;
use std::time::Duration;

use acp_api::AgenticSession;
use acp_api::constants::{annotations, field_managers};
use acp_kube::events::{Publisher, event};
use acp_kube::reconcile::{Categorized, ErrorPolicy, Invalid, KubeError, kube_err};
use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::cache::Caches;
use crate::children::{self, ChildConfig};
use crate::resume::Proof;
use crate::state::{Action, Observation, RunState, Secrets, decide, job_name};
use crate::threads::{self, Vouchers};

/// Operator settings.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// How children are shaped.
    pub children: ChildConfig,
    /// Run sessions as local `acp runner` processes instead of Jobs.
    pub process: Option<crate::process::ProcessConfig>,
    /// The sessions (and children) this replica set handles.
    pub shard: acp_api::shard::Shard,
    /// Sessions reconciled at once (0: the default, 32).
    pub concurrency: u16,
}

/// A reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The runner's credentials are missing (retried with backoff).
    #[error("failed to assemble runner credentials: {0}")]
    SecretMissing(String),
    /// The object is unusable.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A local runner process could not be started.
    #[error("{0}")]
    Process(String),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) => e.category(),
            Self::SecretMissing(_) => "secret_missing",
            Self::Invalid(e) => e.category(),
            Self::Process(_) => "process",
        }
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    client: Client,
    config: Config,
    recorder: Publisher,
    metrics: Arc<crate::metrics::Metrics>,
    /// Per-session backoff and the count of reconcile failures.
    errors: Arc<ErrorPolicy<AgenticSession>>,
    caches: Arc<Caches>,
    sessions: Store<AgenticSession>,
    vouchers: Arc<Vouchers>,
}

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
    // Bounded concurrency keeps memory flat when thousands of sessions are
    // reconciled at start-up.
    let (store, writer) = kube::runtime::reflector::store();
    let session_changes = watcher(sessions, acp_kube::watch::in_shard(&config.shard, ""))
        .default_backoff()
        // Managed fields are most of a small session's memory, and nothing
        // here reads them: at 100,000 sessions that is hundreds of MiB.
        .modify(|session: &mut AgenticSession| session.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(session_changes, store).with_config(
        kube::runtime::controller::Config::default().concurrency(match config.concurrency {
            0 => CONCURRENCY,
            n => n,
        }),
    );
    let store = controller.store();
    let ctx = Arc::new(Context {
        client,
        config,
        recorder,
        metrics,
        errors: errors.clone(),
        caches,
        sessions: store.clone(),
        vouchers,
    });
    let (by_source, by_schedule) = (store.clone(), store.clone());
    let session_of_pod = |pod: Arc<Pod>| {
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
        .watches_stream(streams.pods, move |pod| session_of_pod(Arc::new(pod)))
        .watches_stream(streams.runner_secrets, sessions_of_namespace)
        // Polled only to keep its cache; a change is seen at the next run's start.
        .watches_stream(streams.egress, |_| Vec::new())
        // A source or schedule recorded something: its follow-ups that have
        // not started may be waiting for that record.
        .watches_stream(records.sources, move |s| threads::follow_ups_of_source(&by_source, &s))
        .watches_stream(records.schedules, move |s| threads::follow_ups_of_schedule(&by_schedule, &s))
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

fn now() -> Time {
    Time(Timestamp::now())
}

/// The runner's credentials: the namespace's runner secret from the cache,
/// and the session's own override secret (read only for a session that may
/// start a run).
async fn observe_secrets(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
) -> Result<Result<Vec<(String, k8s_openapi::ByteString)>, String>, Error> {
    let shared = ctx.caches.runner_secret(ns);
    // The override is a spec field the namespace's policy must allow; the old
    // annotation (which any manifest could carry) is not read.
    let override_name = session.spec.runner_secret.clone();
    let override_secret = match &override_name {
        Some(name) => Api::<Secret>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(kube_err("read the session's runner secret"))?,
        None => None,
    };
    let data = children::secret_data(
        shared.as_ref().and_then(|s| s.data.as_ref()),
        override_name.as_deref().map(|n| (n, override_secret.as_ref().and_then(|s| s.data.as_ref()))),
    );
    Ok(data.map(|d| d.into_iter().collect()))
}

/// Run `run`'s Job and newest pod, from the caches. A Job this process just
/// created and the watch has not shown yet reads as waiting.
fn observe_run(caches: &Caches, ns: &str, session: &str, run: i64) -> Option<RunState> {
    if run == 0 {
        return None;
    }
    let name = job_name(session, run);
    let progress = match caches.job(ns, &name) {
        Some(job) => crate::observe::progress(&job, caches.newest_pod(ns, &name).as_deref()),
        None if caches.expected(ns, &name) => crate::state::Progress::Waiting { reason: None, message: None },
        None => return None,
    };
    Some(RunState { run, name, progress })
}

/// Whether the current run's Job was recorded as created.
fn job_recorded(status: &acp_api::session::SessionStatus) -> bool {
    acp_api::condition::find(&status.conditions, acp_api::constants::condition_types::JOB_CREATED)
        .is_some_and(|c| c.is_true())
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
    let name = session.name_any();
    if session.metadata.deletion_timestamp.is_some() {
        // Children go with it through owner references.
        return Ok(Requeue::await_change());
    }
    let status = session.status.clone().unwrap_or_default();
    let generation = session.metadata.generation.unwrap_or(1);
    let desired = session.annotations().get(annotations::DESIRED_PHASE).map(String::as_str);
    // A finished session that will not run again reads nothing at all.
    let secrets = if crate::state::settled(&status, generation, desired) {
        None
    } else {
        Some(observe_secrets(&ctx, &session, &ns).await?)
    };
    let run_number = status.run.unwrap_or(0);
    let run = match &ctx.config.process {
        Some(process) => crate::process::observe(process, &ns, &name, run_number),
        None => match observe_run(&ctx.caches, &ns, &name, run_number) {
            // Recorded as created but not in the cache, for a session still
            // running: the API server says whether it is lost or moved here.
            None if job_recorded(&status) && status.phase.is_some_and(|p| !p.is_terminal()) => {
                crate::confirm::run(&ctx.client, &session, &ns, run_number)
                    .await
                    .map_err(kube_err("read the runner job"))?
            }
            found => found,
        },
    };
    // A thread runs one session at a time: while the parent has not
    // finished (and this run has not started), this session waits.
    let parent = session.annotations().get(annotations::PARENT_SESSION).filter(|p| *p != &name);
    let waiting = match parent {
        // Only a session whose run has not started can wait.
        Some(parent) if status.phase.is_none_or(|p| p == acp_api::SessionPhase::Pending) => {
            let found = match ctx.sessions.get(&ObjectRef::new(parent).within(&ns)) {
                Some(found) => Some(found),
                // Not in this shard's cache: the parent may be in another shard.
                None => Api::<AgenticSession>::namespaced(ctx.client.clone(), &ns)
                    .get_opt(parent)
                    .await
                    .map_err(kube_err("read the parent session"))?
                    .map(Arc::new),
            };
            let thread = ctx.vouchers.lookup(&ctx.sessions, &ns);
            let unfinished = found
                .as_ref()
                .filter(|p| !p.status.as_ref().and_then(|s| s.phase).is_some_and(|ph| ph.is_terminal()))
                // Sessions naming each other in a cycle (hand-made links)
                // would wait forever: one of them goes first.
                .is_some_and(|_| !crate::resume::first_in_cycle(&session, &*thread.session));
            // A follow-up is seen before its source records it: it waits
            // (a while) for the record rather than start without its thread.
            let unrecorded = found.as_ref().is_some_and(|p| {
                crate::resume::link(&session, p, &thread, Some(Timestamp::now())) == Proof::Pending
            });
            (unfinished || unrecorded).then_some(parent.as_str())
        }
        _ => None,
    };
    let observation = Observation {
        session: &name,
        generation,
        desired,
        status: &status,
        secrets: match &secrets {
            Some(Err(message)) => Secrets::Missing(message.clone()),
            // Not read: a settled session starts nothing.
            Some(Ok(_)) | None => Secrets::Ready,
        },
        run,
        timeout_seconds: session.spec.timeout_seconds(),
        waiting_for: waiting,
        now: now(),
    };
    let decision = decide(&observation);

    // A superseded or stopped run's Job goes first: deleting is idempotent,
    // and done before the new run is recorded, no failure in between can
    // leave it running next to its successor.
    for action in &decision.actions {
        if let Action::Delete { name } = action {
            delete_run(&ctx, &ns, name).await?;
        }
    }
    // Record, then act: the decided status (a new run above all) is written,
    // guarded by the resourceVersion this decision was made from, before any
    // child of it exists. A stale read loses the race with a 409 and creates
    // nothing; with children to create, the guarded write is made even when
    // the status is unchanged.
    let ensures = decision.actions.iter().any(|a| matches!(a, Action::Ensure { .. }));
    if decision.status != status || ensures {
        write_status(&ctx, &ns, &name, &decision.status, session.resource_version()).await?;
        acp_kube::failpoint::hit("operator.status-written");
    }
    for action in &decision.actions {
        if let Action::Ensure { run } = action {
            let data = secrets
                .clone()
                .unwrap_or_else(|| Err("the runner secret was not read".into()))
                .map_err(Error::SecretMissing)?;
            let resume = continues(&ctx, &session, &ns);
            match &ctx.config.process {
                Some(process) => crate::process::ensure(process, &session, *run, &data, resume.as_ref())
                    .map_err(|e| Error::Process(format!("failed to start acp runner: {e}")))?,
                None => ensure_children(&ctx, &session, &ns, *run, data, resume.as_ref()).await?,
            }
            // `JobCreated=True` is recorded by the next reconcile, which the
            // Job's watch event brings: one status write per reconcile.
            acp_kube::failpoint::hit("operator.job-created");
        }
    }

    let (before, after) = (status.phase.unwrap_or_default(), decision.status.phase.unwrap_or_default());
    if before != after {
        let labels = crate::metrics::TransitionLabels { from: before.to_string(), to: after.to_string() };
        ctx.metrics.transitions.get_or_create(&labels).inc();
        if let (true, Some(start), Some(end)) =
            (after.is_terminal(), &decision.status.start_time, &decision.status.completion_time)
        {
            let seconds = end.0.duration_since(start.0).as_secs_f64().max(0.0);
            ctx.metrics
                .durations
                .get_or_create(&crate::metrics::PhaseLabel { phase: after.to_string() })
                .observe(seconds);
        }
    }
    let events: Vec<_> =
        decision.events.iter().map(|e| event(e.warning, &e.reason, &e.message, "Reconcile")).collect();
    ctx.recorder.publish_all(&events, &session.object_ref(&())).await;
    if let Some(Err(message)) = secrets
        && decision.status.phase.is_some_and(|p| !p.is_terminal())
    {
        return Err(Error::SecretMissing(message));
    }
    Ok(match decision.status.phase.unwrap_or_default() {
        phase if phase.is_terminal() => Requeue::await_change(),
        // Queued behind its parent: look again soon (the parent is another object).
        _ if waiting.is_some() => Requeue::requeue(Duration::from_secs(3)),
        // Local processes are not watched objects: poll them while they run.
        _ if ctx.config.process.is_some() => Requeue::requeue(Duration::from_secs(1)),
        _ => Requeue::requeue(Duration::from_secs(300)),
    })
}

/// What a follow-up continues, with where the thread's latest agent home
/// is as the run will see it: a run directory (process executor), or a
/// workspace claim mounted read-only, when that claim is still its
/// session's. Read from the caches when the run starts.
fn continues(ctx: &Context, session: &AgenticSession, ns: &str) -> Option<acp_api::resume::Resume> {
    let (mut resume, chain) = crate::resume::of(session, &ctx.vouchers.lookup(&ctx.sessions, ns))?;
    let home = |turn: &AgenticSession| match &ctx.config.process {
        Some(process) => turn
            .status
            .as_ref()
            .and_then(|s| s.job_name.as_deref())
            .filter(|job| job.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .and_then(|job| crate::process::home_of(process, ns, job))
            .map(|home| home.to_string_lossy().into_owned()),
        None => (matches!(ctx.config.children.workspace, crate::children::Workspace::Pvc { .. })
            && turn.status.as_ref().is_some_and(|s| s.job_name.is_some())
            && ctx.caches.claim_owned(
                ns,
                &crate::names::pvc_name(&turn.name_any()),
                &turn.uid().unwrap_or_default(),
            ))
        .then(|| format!("{}/.acp/home", crate::pod::RESUME_MOUNT)),
    };
    crate::resume::locate(&mut resume, &chain, &home);
    Some(resume)
}

/// Stops run `name`: its Job deleted in the foreground (or its process
/// signalled).
async fn delete_run(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    if let Some(process) = &ctx.config.process {
        crate::process::stop(process, ns, name);
        return Ok(());
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    match jobs.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => info!(job = %name, "deleted runner job"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(kube_err("delete the runner job")(e).into()),
    }
    Ok(())
}

/// Writes `status` with server-side apply, guarded by `version` (the
/// resourceVersion it was decided from); returns the new resourceVersion.
async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &acp_api::session::SessionStatus,
    version: Option<String>,
) -> Result<Option<String>, Error> {
    let api: Api<AgenticSession> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": acp_api::constants::API_VERSION,
        "kind": "AgenticSession",
        "metadata": {"resourceVersion": version},
        "status": status,
    });
    let written = api
        .patch_status(name, &PatchParams::apply(field_managers::OPERATOR).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("write the session status"))?;
    Ok(written.resource_version())
}

/// Applies run `run`'s children, each only when the cache shows it differs:
/// the Secret (by its data's digest), the workspace claim (by existence), the
/// namespace's egress policy (by spec) and the Job (by existence).
async fn ensure_children(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    run: i64,
    data: Vec<(String, k8s_openapi::ByteString)>,
    resume: Option<&acp_api::resume::Resume>,
) -> Result<(), Error> {
    let params = PatchParams::apply(field_managers::OPERATOR).force();
    let caches = &ctx.caches;
    // A child is kept as it is only if it is this session's (not one of a
    // deleted session of the same name, which the garbage collector takes).
    let uid = session.uid().unwrap_or_default();
    let keys: Vec<String> = data.iter().map(|(k, _)| k.clone()).collect();
    let secret = children::secret(session, data.into_iter().collect());
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let write_secret = async {
        if !secret.data.as_ref().is_some_and(|d| caches.secret_holds(ns, &secret_name, d, &uid)) {
            Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .patch(&secret_name, &params, &Patch::Apply(&secret))
                .await
                .map_err(kube_err("apply the runner secret"))?;
        }
        Ok::<_, Error>(())
    };
    let pvc = children::pvc(session, &ctx.config.children);
    let write_claim = async {
        let Some(pvc) = &pvc else { return Ok(()) };
        let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
        if !caches.claim_owned(ns, &pvc_name, &uid) {
            Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns)
                .patch(&pvc_name, &params, &Patch::Apply(pvc))
                .await
                .map_err(kube_err("apply the workspace claim"))?;
        }
        Ok(())
    };
    // Independent of each other: one round trip, not two.
    futures_util::future::try_join(write_secret, write_claim).await?;
    if let crate::egress::Egress::Allow(allowed) = &ctx.config.children.egress {
        let policy = crate::egress::network_policy(ns, allowed);
        if !caches.egress_holds(ns, &policy) {
            Api::<NetworkPolicy>::namespaced(ctx.client.clone(), ns)
                .patch(acp_api::constants::runner_pod::EGRESS_POLICY, &params, &Patch::Apply(&policy))
                .await
                .map_err(kube_err("apply the runner egress policy"))?;
        }
    }
    let job = crate::pod::job(session, run, &ctx.config.children, &keys, resume);
    let job_name = job.metadata.name.clone().unwrap_or_default();
    if caches.job(ns, &job_name).is_some() || caches.expected(ns, &job_name) {
        return Ok(());
    }
    // Expected before it is sent: its watch event may come before the reply.
    caches.expect(ns, &job_name);
    match Api::<Job>::namespaced(ctx.client.clone(), ns).patch(&job_name, &params, &Patch::Apply(&job)).await
    {
        Ok(_) => info!(job = %job_name, run, "runner job applied"),
        // A Job's pod template cannot change: this run's Job exists with
        // another shard's labels (the session moved here). Adopt it.
        Err(kube::Error::Api(status)) if status.code == 422 => {
            let adopted = crate::confirm::adopt(&ctx.client, session, ns, &job_name)
                .await
                .map_err(kube_err("adopt the runner job"))?;
            if adopted.is_none() {
                caches.forget(ns, &job_name);
                return Err(kube_err("apply the runner job")(kube::Error::Api(status)).into());
            }
        }
        Err(error) => {
            caches.forget(ns, &job_name);
            return Err(kube_err("apply the runner job")(error).into());
        }
    }
    Ok(())
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
