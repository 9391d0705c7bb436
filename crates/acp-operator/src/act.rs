//! Act: the effects of a session's decision, in an order that no failure
//! in between can make unsafe. A superseded or stopped run is deleted
//! first; the decided status is written (guarded by the resourceVersion it
//! was decided from) before any child of a new run exists; then the run's
//! children are applied, each only when the cache shows it differs.

use acp_api::AgenticSession;
use acp_api::constants::field_managers;
use acp_kube::reconcile::kube_err;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use tracing::info;

use crate::children;
use crate::context::{Context, Error};
use crate::gather::SecretData;
use crate::state::{Action, Decision};

/// Carries out `decision` for `session` (in `ns`, read with `status`).
pub async fn act(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    status: &acp_api::session::SessionStatus,
    decision: &Decision,
    secrets: &Option<SecretData>,
) -> Result<(), Error> {
    let name = session.name_any();
    // A superseded or stopped run's Job goes first: deleting is idempotent,
    // and done before the new run is recorded, no failure in between can
    // leave it running next to its successor.
    for action in &decision.actions {
        if let Action::Delete { name } = action {
            delete_run(ctx, ns, name).await?;
        }
    }
    // Record, then act: the decided status (a new run above all) is written,
    // guarded by the resourceVersion this decision was made from, before any
    // child of it exists. A stale read loses the race with a 409 and creates
    // nothing; with children to create, the guarded write is made even when
    // the status is unchanged.
    let ensures = decision.actions.iter().any(|a| matches!(a, Action::Ensure { .. }));
    if decision.status != *status || ensures {
        write_status(ctx, ns, &name, &decision.status, session.resource_version()).await?;
        acp_kube::failpoint::hit("operator.status-written");
    }
    for action in &decision.actions {
        if let Action::Ensure { run } = action {
            let data = secrets
                .clone()
                .unwrap_or_else(|| Err("the runner secret was not read".into()))
                .map_err(Error::SecretMissing)?;
            start_run(ctx, session, ns, *run, data).await?;
            // `JobCreated=True` is recorded by the next reconcile, which the
            // Job's watch event brings: one status write per reconcile.
            acp_kube::failpoint::hit("operator.job-created");
        }
    }
    Ok(())
}

/// Starts run `run`: its process, or its children.
async fn start_run(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    run: i64,
    data: Vec<(String, k8s_openapi::ByteString)>,
) -> Result<(), Error> {
    let resume = continues(ctx, session, ns);
    match &ctx.config.process {
        Some(process) => crate::process::ensure(process, session, run, &data, resume.as_ref())
            .map_err(|e| Error::Process(format!("failed to start acp runner: {e}"))),
        None => ensure_children(ctx, session, ns, run, data, resume.as_ref()).await,
    }
}

/// Counts a phase transition, and a finished run's duration.
pub fn record_transition(
    metrics: &crate::metrics::Metrics,
    before: &acp_api::session::SessionStatus,
    after: &acp_api::session::SessionStatus,
) {
    let (from, to) = (before.phase.unwrap_or_default(), after.phase.unwrap_or_default());
    if from == to {
        return;
    }
    let labels = crate::metrics::TransitionLabels { from: from.to_string(), to: to.to_string() };
    metrics.transitions.get_or_create(&labels).inc();
    if let (true, Some(start), Some(end)) = (to.is_terminal(), &after.start_time, &after.completion_time) {
        let seconds = end.0.duration_since(start.0).as_secs_f64().max(0.0);
        metrics
            .durations
            .get_or_create(&crate::metrics::PhaseLabel { phase: to.to_string() })
            .observe(seconds);
    }
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
    let keys: Vec<String> = data.iter().map(|(k, _)| k.clone()).collect();
    // Independent of each other: one round trip, not two.
    futures_util::future::try_join(apply_secret(ctx, session, ns, data), apply_claim(ctx, session, ns))
        .await?;
    if let crate::egress::Egress::Allow(allowed) = &ctx.config.children.egress {
        let policy = crate::egress::network_policy(ns, allowed);
        if !ctx.caches.egress_holds(ns, &policy) {
            Api::<NetworkPolicy>::namespaced(ctx.client.clone(), ns)
                .patch(acp_api::constants::runner_pod::EGRESS_POLICY, &params(), &Patch::Apply(&policy))
                .await
                .map_err(kube_err("apply the runner egress policy"))?;
        }
    }
    apply_job(ctx, session, ns, run, &keys, resume).await
}

fn params() -> PatchParams {
    PatchParams::apply(field_managers::OPERATOR).force()
}

/// The runner Secret, unless the cache shows this session's already holds
/// `data` (a child is kept as it is only if it is this session's, not one
/// of a deleted session of the same name, which the garbage collector takes).
async fn apply_secret(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    data: Vec<(String, k8s_openapi::ByteString)>,
) -> Result<(), Error> {
    let secret = children::secret(session, data.into_iter().collect());
    let name = secret.metadata.name.clone().unwrap_or_default();
    let uid = session.uid().unwrap_or_default();
    if !secret.data.as_ref().is_some_and(|d| ctx.caches.secret_holds(ns, &name, d, &uid)) {
        Api::<Secret>::namespaced(ctx.client.clone(), ns)
            .patch(&name, &params(), &Patch::Apply(&secret))
            .await
            .map_err(kube_err("apply the runner secret"))?;
    }
    Ok(())
}

/// The workspace claim, when the configuration asks for one and this
/// session's does not exist.
async fn apply_claim(ctx: &Context, session: &AgenticSession, ns: &str) -> Result<(), Error> {
    let Some(pvc) = children::pvc(session, &ctx.config.children) else { return Ok(()) };
    let name = pvc.metadata.name.clone().unwrap_or_default();
    if !ctx.caches.claim_owned(ns, &name, &session.uid().unwrap_or_default()) {
        Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns)
            .patch(&name, &params(), &Patch::Apply(&pvc))
            .await
            .map_err(kube_err("apply the workspace claim"))?;
    }
    Ok(())
}

/// Run `run`'s Job, unless it exists or is on its way.
async fn apply_job(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    run: i64,
    keys: &[String],
    resume: Option<&acp_api::resume::Resume>,
) -> Result<(), Error> {
    let caches = &ctx.caches;
    let job = crate::pod::job(session, run, &ctx.config.children, keys, resume);
    let job_name = job.metadata.name.clone().unwrap_or_default();
    if caches.job(ns, &job_name).is_some() || caches.expected(ns, &job_name) {
        return Ok(());
    }
    // Expected before it is sent: its watch event may come before the reply.
    caches.expect(ns, &job_name);
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), ns);
    match jobs.patch(&job_name, &params(), &Patch::Apply(&job)).await {
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
