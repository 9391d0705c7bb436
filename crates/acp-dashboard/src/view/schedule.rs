//! What the dashboard shows of SessionSchedules, computed from cached objects
//! without I/O: the schedule view of the list, the detail page and the JSON
//! API (its spec in short, the scheduler's status and run history), the
//! schedule a session is a run of, and relative times in the future.

use std::sync::Arc;

use acp_api::constants::{condition_types, labels};
use acp_api::schedule::ConcurrencyPolicy;
use acp_api::{AgenticSession, ConditionStatus, SessionPhase, SessionSchedule};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::{percent_encode, time};

/// The time zone a schedule without `spec.timeZone` is read in.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// One schedule as lists, the detail page and the API show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The cron schedule (`spec.schedule`).
    pub schedule: String,
    /// The time zone it is read in ([`DEFAULT_TIME_ZONE`] when unset).
    pub time_zone: String,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.concurrencyPolicy`.
    pub concurrency_policy: ConcurrencyPolicy,
    /// The last due time a run was started for (or decided about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Timestamp>,
    /// The next due time (absent while suspended or when it never fires again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<Timestamp>,
    /// Names of the runs that have not finished.
    pub active: Vec<String>,
    /// The latest runs, newest first, as the scheduler recorded them.
    pub runs: Vec<RunView>,
    /// Due times that started no run, in total.
    pub missed_runs: i64,
    /// The Ready condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
}

/// One run of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// The session's name (in the schedule's namespace).
    pub name: String,
    /// The due time it ran for (for a trigger, when it was acted on).
    pub scheduled_time: Timestamp,
    /// The session's phase when the scheduler last saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<SessionPhase>,
    /// Started by the trigger annotation rather than by the schedule.
    pub triggered: bool,
}

/// The Ready condition in short.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ready {
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Why, in CamelCase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ScheduleView {
    /// The view of `schedule`.
    pub fn new(schedule: &SessionSchedule) -> Self {
        let spec = &schedule.spec;
        let status = schedule.status.as_ref();
        let runs = status.map_or_else(Vec::new, |s| {
            s.runs
                .iter()
                .map(|r| RunView {
                    name: r.name.clone(),
                    scheduled_time: r.scheduled_time.0,
                    phase: r.phase,
                    triggered: r.triggered,
                })
                .collect()
        });
        Self {
            namespace: schedule.metadata.namespace.clone().unwrap_or_default(),
            name: schedule.metadata.name.clone().unwrap_or_default(),
            schedule: spec.schedule.clone(),
            time_zone: spec.time_zone.clone().unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned()),
            suspend: spec.suspend,
            concurrency_policy: spec.concurrency_policy,
            last_schedule_time: time(status.and_then(|s| s.last_schedule_time.as_ref())),
            next_run_time: time(status.and_then(|s| s.next_run_time.as_ref())),
            active: status.map_or_else(Vec::new, |s| s.active.clone()),
            runs,
            missed_runs: status.map_or(0, |s| s.missed_runs),
            ready: status
                .and_then(|s| acp_api::condition::find(&s.conditions, condition_types::READY))
                .map(|c| Ready { status: c.status, reason: c.reason.clone(), message: c.message.clone() }),
        }
    }

    /// The newest run, if any.
    pub fn latest(&self) -> Option<&RunView> {
        self.runs.first()
    }
}

/// Options of `GET /api/v1/schedules` (query string).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ScheduleQuery {
    /// Only this namespace.
    #[serde(deserialize_with = "super::empty_none")]
    pub namespace: Option<String>,
}

/// The views of `schedules` in `namespace` (any when `None`) that `visible`
/// allows, sorted by namespace and name.
pub fn select(
    schedules: &[Arc<SessionSchedule>],
    namespace: Option<&str>,
    visible: impl Fn(&str) -> bool,
) -> Vec<ScheduleView> {
    let mut views: Vec<ScheduleView> = schedules
        .iter()
        .filter(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            namespace.is_none_or(|want| want == ns) && visible(ns)
        })
        .map(|s| ScheduleView::new(s))
        .collect();
    views.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    views
}

/// The schedule `session` is a run of: its name, when the session carries the
/// schedule label and is controlled by the SessionSchedule the label names.
/// The label alone is not trusted (anyone who may create a session may set
/// it); the controller reference is the scheduler's.
pub fn schedule_of(session: &AgenticSession) -> Option<String> {
    let label = session.labels().get(labels::SCHEDULE)?;
    let owner = session.owner_references().iter().find(|o| o.controller == Some(true))?;
    let group = owner.api_version.split_once('/').map(|(group, _)| group);
    let ours = owner.kind == SessionSchedule::kind(&())
        && group == Some(&*SessionSchedule::group(&()))
        && owner.name == *label;
    ours.then(|| label.clone())
}

/// The page of schedule `namespace/name`.
pub fn schedule_path(namespace: &str, name: &str) -> String {
    format!("/schedules/{}/{}", percent_encode(namespace), percent_encode(name))
}

/// How far `then` is from `now`, either way: `in 5 min`, `in 3 h`, `in 2 d`,
/// `due now`; a past time reads as [`super::ago`].
pub fn from_now(then: Timestamp, now: Timestamp) -> String {
    let secs = then.duration_since(now).as_secs();
    match secs {
        ..0 => super::ago(then, now),
        0..10 => "due now".to_owned(),
        10..60 => format!("in {secs} s"),
        60..3600 => format!("in {} min", secs / 60),
        3600..86_400 => format!("in {} h", secs / 3600),
        _ => format!("in {} d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests;
