//! The scheduler's kube-runtime shell: watch SessionSchedules and the
//! sessions they own, [`decide`](super::plan::decide) at the clock's time,
//! create and stop runs, write the schedule's status with server-side apply,
//! then delete runs past the history limits.
//!
//! Runs are created (never applied) under their deterministic names, and a
//! name that exists counts as created: that, not the status, is what keeps a
//! due time to one session across crashes and restarts. Deletions come after
//! the status recorded the due times, so a deleted run is never re-created.

use std::sync::Arc;
use std::time::Duration;

use acp_api::constants::{annotations, field_managers, labels};
use acp_api::schedule::SessionScheduleStatus;
use acp_api::{AgenticSession, SessionPhase, SessionSchedule};
use acp_kube::events::{Publisher, event};
use acp_kube::reconcile::{ErrorPolicy, Invalid, kube_err};
use futures_util::StreamExt as _;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::Reporter;
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::{info, instrument};

use super::clock::Clock;
use super::plan::{Action, Input, Run, decide};
use super::session::{controlled_by, session};

/// The longest the scheduler sleeps without looking (clock steps, lost watches).
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// The longest backoff of a failing schedule (jitter adds up to as much
/// again): a due time is kept to within a minute of the API server coming back.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A reconcile failure: a Kubernetes call or an unusable schedule.
pub use acp_kube::reconcile::Error;

/// Shared state of the reconciles.
struct Context {
    client: Client,
    clock: Arc<dyn Clock>,
    recorder: Publisher,
    metrics: Arc<crate::metrics::Metrics>,
    /// Per-schedule backoff, failures counted in the operator's reconcile errors.
    errors: Arc<ErrorPolicy<SessionSchedule>>,
}

/// Runs the scheduler over `namespace` (all when `None`) and `shard`'s
/// schedules until `shutdown`.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    shard: acp_api::shard::Shard,
    clock: Arc<dyn Clock>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (schedules, sessions) = match &namespace {
        Some(ns) => {
            (Api::<SessionSchedule>::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns))
        }
        None => (Api::all(client.clone()), Api::<AgenticSession>::all(client.clone())),
    };
    acp_kube::watch::detect(&schedules).await;
    let recorder =
        Publisher::new(client.clone(), Reporter { controller: "acp-scheduler".into(), instance: None });
    let jumps = clock.jumps();
    let errors =
        Arc::new(ErrorPolicy::with_delays(Duration::from_secs(1), MAX_RETRY, Some(metrics.errors.clone())));
    let ctx = Arc::new(Context { client, clock, recorder, metrics, errors: errors.clone() });
    Controller::new(schedules, acp_kube::watch::in_shard(&shard, ""))
        .owns(sessions, acp_kube::watch::in_shard(&shard, labels::SCHEDULE))
        .reconcile_all_on(jumps)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            errors.observe(&result);
            async {}
        })
        .await;
}

/// Per-schedule exponential backoff (1 s doubling up to [`MAX_RETRY`]),
/// counted by category.
fn error_policy(schedule: Arc<SessionSchedule>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.errors.failed(&schedule, error)
}

/// The schedule's runs, from its sessions.
fn runs(schedule: &str, sessions: &[AgenticSession]) -> Vec<Run> {
    let manual = format!("{schedule}-manual-");
    sessions
        .iter()
        .map(|s| Run {
            name: s.name_any(),
            scheduled: s
                .annotations()
                .get(annotations::SCHEDULED_AT)
                .and_then(|t| t.parse().ok())
                .or_else(|| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .unwrap_or(Timestamp::UNIX_EPOCH),
            phase: s.status.as_ref().and_then(|st| st.phase),
            triggered: s.name_any().starts_with(&manual),
            stopping: s.annotations().get(annotations::DESIRED_PHASE).map(String::as_str)
                == Some(SessionPhase::Stopped.as_str()),
        })
        .collect()
}

/// One reconcile: list runs → decide → create and stop → status → delete.
#[instrument(skip_all, fields(schedule = %schedule.name_any(), namespace = schedule.namespace().as_deref().unwrap_or_default()))]
async fn reconcile(schedule: Arc<SessionSchedule>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if schedule.metadata.deletion_timestamp.is_some() {
        // Its runs go with it through owner references.
        return Ok(Requeue::await_change());
    }
    let ns =
        schedule.namespace().ok_or(Invalid { kind: "schedule", why: "a schedule must be namespaced" })?;
    let name = schedule.name_any();
    let uid = schedule.uid().ok_or(Invalid { kind: "schedule", why: "a schedule has no uid yet" })?;
    let sessions: Api<AgenticSession> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = sessions
        .list(&ListParams::default().labels(&format!("{}={name}", labels::SCHEDULE)))
        .await
        .map_err(kube_err("list the schedule's sessions"))?;
    // Only sessions this schedule controls are its runs: a session that only
    // carries the label cannot hold a run back or be deleted by it.
    let owned: Vec<AgenticSession> = listed.items.into_iter().filter(|s| controlled_by(s, &uid)).collect();
    let runs = runs(&name, &owned);
    let status = schedule.status.clone().unwrap_or_default();
    let now = ctx.clock.now();
    let decision = decide(&Input {
        name: &name,
        generation: schedule.metadata.generation,
        created: schedule.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
        spec: &schedule.spec,
        status: &status,
        trigger: schedule.annotations().get(annotations::TRIGGER_REQUESTED_AT).map(String::as_str),
        runs: &runs,
        now,
    });
    let runs = Runs { ctx: &ctx, schedule: &schedule, sessions, uid };
    runs.act(&decision, &status, &ns, &name).await?;
    let notes: Vec<_> =
        decision.notes.iter().map(|n| event(n.warning, n.reason, n.message.clone(), "Schedule")).collect();
    ctx.recorder.publish_all(&notes, &schedule.object_ref(&())).await;
    ctx.metrics.schedule_reconciles.inc();
    let sleep = decision
        .wake_at
        .map(|at| now.duration_until(at))
        .and_then(|d| Duration::try_from(d).ok())
        .map_or(MAX_SLEEP, |d| d.clamp(Duration::from_millis(200), MAX_SLEEP));
    Ok(Requeue::requeue(sleep))
}

/// A schedule's runs, as its decision's actions change them.
struct Runs<'a> {
    ctx: &'a Context,
    schedule: &'a SessionSchedule,
    sessions: Api<AgenticSession>,
    uid: String,
}

impl Runs<'_> {
    /// Creates and stops runs, writes the status, then deletes runs past
    /// the history limit (only once the status no longer lists them).
    async fn act(
        &self,
        decision: &crate::schedule::plan::Decision,
        status: &SessionScheduleStatus,
        ns: &str,
        name: &str,
    ) -> Result<(), Error> {
        for action in &decision.actions {
            match action {
                Action::Create { name: run, scheduled, parent, .. } => {
                    self.create(run, *scheduled, parent.as_deref()).await?;
                    acp_kube::failpoint::hit("scheduler.run-created");
                }
                Action::Stop(run) => self.stop(run).await?,
                Action::Delete(_) => {}
            }
        }
        if decision.status != *status {
            write_status(self.ctx, ns, name, &decision.status).await?;
        }
        for action in &decision.actions {
            if let Action::Delete(run) = action {
                match self.sessions.delete(run, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(source) => return Err(kube_err("delete a run past the history limit")(source).into()),
                }
            }
        }
        Ok(())
    }

    /// Creates run `run`, due at `scheduled`.
    async fn create(&self, run: &str, scheduled: Timestamp, parent: Option<&str>) -> Result<(), Error> {
        let object = session(self.schedule, run, scheduled, parent);
        let params =
            PostParams { field_manager: Some(field_managers::SCHEDULER.into()), ..Default::default() };
        match self.sessions.create(&params, &object).await {
            Ok(_) => {
                info!(run = %run, scheduled = %scheduled, "created a scheduled run");
                self.ctx.metrics.scheduled_runs.inc();
            }
            // Created before: the name is the due time's, so this is the
            // same run, if this schedule controls it. A session someone
            // else made under that name is not adopted.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self.sessions.get_opt(run).await.map_err(kube_err("read an existing run"))?;
                if !existing.as_ref().is_some_and(|s| controlled_by(s, &self.uid)) {
                    let missed = event(
                        true,
                        acp_api::constants::reasons::MISSED_SCHEDULE,
                        format!(
                            "session {run} exists and is not this schedule's run; the run was not started"
                        ),
                        "Schedule",
                    );
                    self.ctx.recorder.publish_all(&[missed], &self.schedule.object_ref(&())).await;
                }
            }
            Err(source) => return Err(kube_err("create a scheduled run")(source).into()),
        }
        Ok(())
    }

    /// Asks run `run` to stop (a replaced run).
    async fn stop(&self, run: &str) -> Result<(), Error> {
        let patch = json!({"metadata": {"annotations": {annotations::DESIRED_PHASE: SessionPhase::Stopped.as_str()}}});
        let params =
            PatchParams { field_manager: Some(field_managers::SCHEDULER.into()), ..Default::default() };
        match self.sessions.patch(run, &params, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(kube_err("stop a replaced run")(source).into()),
        }
    }
}

async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &SessionScheduleStatus,
) -> Result<(), Error> {
    let api: Api<SessionSchedule> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": acp_api::constants::API_VERSION,
        "kind": "SessionSchedule",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(field_managers::SCHEDULER).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("write the schedule status"))?;
    Ok(())
}
