//! Observe: what one reconcile of a session reads. The caches first (the
//! namespace's runner secret, the run's Job and newest pod, the thread's
//! records); the API server only when the caches cannot tell (a session's
//! own runner secret, a Job recorded but not cached, a parent in another
//! shard). A settled session reads nothing.

use acp_api::AgenticSession;
use acp_api::constants::annotations;
use acp_api::session::SessionStatus;
use acp_kube::reconcile::kube_err;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;

use crate::cache::Caches;
use crate::children;
use crate::context::{Context, Error};
use crate::resume::Proof;
use crate::state::{Observation, RunState, Secrets, job_name};

/// The runner's credentials, when read: the data, or what is missing.
pub type SecretData = Result<Vec<(String, k8s_openapi::ByteString)>, String>;

/// What one reconcile saw.
pub struct Seen {
    /// The runner's credentials; `None` for a settled session (not read).
    pub secrets: Option<SecretData>,
    /// The current run, from its executor.
    pub run: Option<RunState>,
    /// The unfinished (or unrecorded) parent this session waits for.
    pub waiting_for: Option<String>,
}

impl Seen {
    /// The state machine's input.
    pub fn observation<'a>(
        &'a self,
        session: &'a AgenticSession,
        status: &'a SessionStatus,
        now: Time,
    ) -> Observation<'a> {
        Observation {
            session: session.metadata.name.as_deref().unwrap_or_default(),
            generation: session.metadata.generation.unwrap_or(1),
            desired: session.annotations().get(annotations::DESIRED_PHASE).map(String::as_str),
            status,
            secrets: match &self.secrets {
                Some(Err(message)) => Secrets::Missing(message.clone()),
                // Not read: a settled session starts nothing.
                Some(Ok(_)) | None => Secrets::Ready,
            },
            run: self.run.clone(),
            timeout_seconds: session.spec.timeout_seconds(),
            waiting_for: self.waiting_for.as_deref(),
            now,
        }
    }
}

/// Reads what deciding about `session` (in `ns`, with `status`) needs.
pub async fn observe(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    status: &SessionStatus,
) -> Result<Seen, Error> {
    let name = session.name_any();
    let generation = session.metadata.generation.unwrap_or(1);
    let desired = session.annotations().get(annotations::DESIRED_PHASE).map(String::as_str);
    // A finished session that will not run again reads nothing at all.
    let secrets = if crate::state::settled(status, generation, desired) {
        None
    } else {
        Some(observe_secrets(ctx, session, ns).await?)
    };
    let run_number = status.run.unwrap_or(0);
    let run = match &ctx.config.process {
        Some(process) => crate::process::observe(process, ns, &name, run_number),
        None => match observe_run(&ctx.caches, ns, &name, run_number) {
            // Recorded as created but not in the cache, for a session still
            // running: the API server says whether it is lost or moved here.
            None if job_recorded(status) && status.phase.is_some_and(|p| !p.is_terminal()) => {
                crate::confirm::run(&ctx.client, session, ns, run_number)
                    .await
                    .map_err(kube_err("read the runner job"))?
            }
            found => found,
        },
    };
    let waiting_for = waiting_for(ctx, session, ns, status).await?;
    Ok(Seen { secrets, run, waiting_for })
}

/// The parent `session` waits for: a thread runs one session at a time, so
/// while the parent has not finished (and this run has not started), this
/// session waits; and a follow-up seen before its source records it waits
/// (a while) for the record rather than start without its thread.
async fn waiting_for(
    ctx: &Context,
    session: &AgenticSession,
    ns: &str,
    status: &SessionStatus,
) -> Result<Option<String>, Error> {
    let name = session.name_any();
    let parent = session.annotations().get(annotations::PARENT_SESSION).filter(|p| **p != name);
    // Only a session whose run has not started can wait.
    let Some(parent) = parent.filter(|_| status.phase.is_none_or(|p| p == acp_api::SessionPhase::Pending))
    else {
        return Ok(None);
    };
    let found = match ctx.sessions.get(&ObjectRef::new(parent).within(ns)) {
        Some(found) => Some(found),
        // Not in this shard's cache: the parent may be in another shard.
        None => Api::<AgenticSession>::namespaced(ctx.client.clone(), ns)
            .get_opt(parent)
            .await
            .map_err(kube_err("read the parent session"))?
            .map(Arc::new),
    };
    let thread = ctx.vouchers.lookup(&ctx.sessions, ns);
    let unfinished = found
        .as_ref()
        .filter(|p| !p.status.as_ref().and_then(|s| s.phase).is_some_and(|ph| ph.is_terminal()))
        // Sessions naming each other in a cycle (hand-made links) would
        // wait forever: one of them goes first.
        .is_some_and(|_| !crate::resume::first_in_cycle(session, &*thread.session));
    let unrecorded = found
        .as_ref()
        .is_some_and(|p| crate::resume::link(session, p, &thread, Some(Timestamp::now())) == Proof::Pending);
    Ok((unfinished || unrecorded).then(|| parent.clone()))
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
