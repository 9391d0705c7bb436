//! What the status bot reads before deciding for a session: the source its
//! annotation claims and whether that source really applied it (the
//! schedule too, for a schedule's run), then, only for a session it will
//! report, the state saved so far and the agent's todo list from the
//! runner's output. Nothing here writes, but for forgetting a saved state
//! once the watch cache holds it.

use acp_api::constants::annotations;
use acp_api::status_bot::BotState;
use acp_api::{AgenticSession, SessionPhase, SessionSchedule, SessionSource};
use futures_util::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::Api;
use tracing::debug;

use super::{Context, Error};
use crate::plan::{self, Claim, Observation};
use crate::provenance::{Provenance, provenance, schedule_vouches, scheduled_by};
use acp_kube::reconcile::kube_err;

/// What is known of `session` for deciding.
pub(super) async fn observe<'a>(
    ctx: &'a Context,
    session: &'a AgenticSession,
) -> Result<Observation<'a>, Error> {
    let claim = claim(ctx, session).await?;
    let reporting =
        claim.as_ref().is_some_and(|c| c.verdict == Provenance::Confirmed) && !plan::behind(session);
    let mut todos = Vec::new();
    if let (true, Some(output), Some(SessionPhase::Running)) =
        (reporting, &ctx.config.output, session.status.as_ref().and_then(|s| s.phase))
    {
        todos = todos_of(output, session).await;
    }
    let saved = if reporting { saved(ctx, session) } else { BotState::default() };
    Ok(Observation { session, claim, saved, todos, dashboard: ctx.config.dashboard_url.as_deref() })
}

/// The source `session` claims, and the verdict on the claim; `None` when
/// it claims none or the source does not exist.
async fn claim(ctx: &Context, session: &AgenticSession) -> Result<Option<Claim>, Error> {
    let Some((namespace, name)) =
        session.annotations().get(annotations::SOURCE).and_then(|s| s.split_once('/'))
    else {
        return Ok(None);
    };
    let sources: Api<SessionSource> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(source) = sources.get_opt(name).await.map_err(kube_err("read the session's source"))? else {
        return Ok(None);
    };
    let verdict = verdict(ctx, session, &source).await?;
    Ok(Some(Claim { namespace: namespace.to_owned(), name: name.to_owned(), source, verdict }))
}

/// The source annotation is only a claim (anyone who may edit the session
/// may set it): whether `source` really applied `session`.
async fn verdict(
    ctx: &Context,
    session: &AgenticSession,
    source: &SessionSource,
) -> Result<Provenance, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let recent = session.metadata.creation_timestamp.as_ref().is_none_or(|t| {
        k8s_openapi::jiff::Timestamp::now().duration_since(t.0)
            < k8s_openapi::jiff::SignedDuration::from_secs(120)
    });
    Ok(match scheduled_by(session) {
        None => provenance(source, &ns, "AgenticSession", &name, recent),
        // A schedule's run: the source must have applied the schedule, and the
        // schedule's status (written only by the scheduler) must list the run.
        Some(owner) => match provenance(source, &ns, "SessionSchedule", &owner.name, recent) {
            Provenance::Confirmed => {
                let schedules: Api<SessionSchedule> = Api::namespaced(ctx.client.clone(), &ns);
                let schedule =
                    schedules.get_opt(&owner.name).await.map_err(kube_err("read the session's schedule"))?;
                schedule_vouches(schedule.as_ref(), &owner.uid, &name, recent)
            }
            other => other,
        },
    })
}

/// The state last saved for `session`: its annotation, unless this process
/// saved a newer one the watch cache does not hold yet.
fn saved(ctx: &Context, session: &AgenticSession) -> BotState {
    let annotated: BotState = session
        .annotations()
        .get(annotations::STATUS_BOT_STATE)
        .and_then(|s| BotState::parse(s))
        .unwrap_or_default();
    let key = (session.namespace().unwrap_or_default(), session.name_any());
    match ctx.saved.lock() {
        Ok(mut saved) => match saved.get(&key) {
            // The watch cache caught up: forget it, keeping the map to sessions in flight.
            Some(remembered) if *remembered == annotated => {
                saved.remove(&key);
                annotated
            }
            Some(remembered) => remembered.clone(),
            None => annotated,
        },
        Err(_) => annotated,
    }
}

/// The agent's current todo list, from its runner's output (none when the
/// output cannot be read: the comment then simply has no list).
async fn todos_of(
    output: &acp_kube::output::LogSource,
    session: &AgenticSession,
) -> Vec<acp_api::progress::Todo> {
    let lines: Vec<String> = match output.lines(session, false).await {
        Ok(lines) => lines.filter_map(|l| async move { l.ok() }).collect().await,
        Err(e) => {
            debug!(error = %e, "no runner output for the todo list");
            return Vec::new();
        }
    };
    acp_api::progress::latest_todos(&lines).unwrap_or_default()
}
