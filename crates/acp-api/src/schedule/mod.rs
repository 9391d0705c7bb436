//! The `SessionSchedule` resource: an AgenticSession template run on a cron
//! schedule, declared in git like every session.
//!
//! The semantics are Kubernetes CronJob's (one run per due time, a missed start
//! skipped past `startingDeadlineSeconds`, no catch-up burst, concurrency
//! policies, history limits). [`cron`] parses the schedule and computes due
//! times; the operator's scheduler decides what to do with them.

pub mod cron;
pub mod rules;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::session::{SessionPhase, SessionSpec};

/// Default `successfulRunsHistoryLimit` (CronJob's).
pub const DEFAULT_SUCCESSFUL_HISTORY: i32 = 3;
/// Default `failedRunsHistoryLimit` (CronJob's).
pub const DEFAULT_FAILED_HISTORY: i32 = 1;
/// Most runs listed in `status.runs`.
pub const MAX_STATUS_RUNS: usize = 20;

/// Desired state of a SessionSchedule.
#[allow(clippy::duplicated_attributes, reason = "each printcolumn(...) repeats type_ by design")]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vteam.ambient-code",
    version = "v1alpha1",
    kind = "SessionSchedule",
    plural = "sessionschedules",
    singular = "sessionschedule",
    shortname = "ssched",
    category = "acp",
    namespaced,
    status = "SessionScheduleStatus",
    derive = "PartialEq",
    doc = "A SessionSchedule creates an AgenticSession from its template at each time its cron schedule is due, with CronJob's semantics: one session per due time, a missed start skipped past startingDeadlineSeconds, a concurrency policy and history limits. Each session is named <schedule>-<unix minute of its due time> and owned by the schedule.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Time Zone", type_ = "string", json_path = ".spec.timeZone", priority = "1"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Last", type_ = "date", json_path = ".status.lastScheduleTime"),
    printcolumn(name = "Next", type_ = "string", json_path = ".status.nextRunTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SessionScheduleSpec {
    /// When to run, in cron format: five fields, minute (0-59), hour
    /// (0-23), day-of-month (1-31), month (1-12 or `JAN`-`DEC`) and
    /// day-of-week (0-7 or `SUN`-`SAT`, 0 and 7 being Sunday), each `*`, a
    /// value, a range `a-b` (a <= b), a list `a,b` or a step `*/n`, `a/n`,
    /// `a-b/n` (`?` is `*` in the day fields); or a macro: `@yearly`
    /// (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`),
    /// `@hourly`. The API server refuses anything else.
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-validations" = rules::schedule_rules()))]
    pub schedule: String,
    /// IANA time zone the schedule is read in (`Europe/Paris`). Defaults to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-validations" = rules::time_zone_rules()))]
    pub time_zone: Option<String>,
    /// The session created at each due time.
    pub template: SessionTemplate,
    /// What to do when a run is due while an earlier one is still running.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A run that could not start within this many seconds of its due time
    /// (the operator was down) is skipped and counted as missed. Without it,
    /// only the most recent missed run is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub starting_deadline_seconds: Option<i64>,
    /// Start no scheduled runs until set back to false (a trigger still runs
    /// one, like `kubectl create job --from=cronjob/...`).
    #[serde(default)]
    pub suspend: bool,
    /// Finished successful runs to keep; older ones are deleted. Defaults to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100), extend("default" = DEFAULT_SUCCESSFUL_HISTORY))]
    pub successful_runs_history_limit: Option<i32>,
    /// Finished failed (or stopped) runs to keep. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100), extend("default" = DEFAULT_FAILED_HISTORY))]
    pub failed_runs_history_limit: Option<i32>,
    /// `new` (default): every run is a fresh session. `continue`: each run
    /// resumes the previous run's Claude Code conversation (it is linked to
    /// it with `vteam.ambient-code/parent-session-id`, waits for it to
    /// finish, and the two newest runs are kept whatever the history limits).
    #[serde(default)]
    pub mode: ScheduleMode,
}

/// The session a schedule creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTemplate {
    /// Labels and annotations given to each session.
    #[serde(default, skip_serializing_if = "TemplateMetadata::is_empty")]
    pub metadata: TemplateMetadata,
    /// The session's spec (an AgenticSession spec, field for field).
    pub spec: SessionSpec,
}

/// Labels and annotations of a template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels of each session.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of each session.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl TemplateMetadata {
    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// CronJob's concurrency policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip a due run while an earlier one is active (counted as missed; it
    /// is not started later when the active one ends).
    #[default]
    Forbid,
    /// Stop the active runs and start the new one.
    Replace,
    /// Start the new run alongside the active ones.
    Allow,
}

/// How a run relates to the previous one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleMode {
    /// Every run is a new session.
    #[default]
    New,
    /// Resume the previous run's conversation.
    Continue,
}

/// Observed state of a SessionSchedule, written by the operator's scheduler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionScheduleStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last due time a run was started for (or decided about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next due time (absent while suspended or when the schedule never fires again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<Time>,
    /// Sessions of this schedule that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// The latest runs, newest first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub runs: Vec<ScheduledRun>,
    /// Due times that started no run (operator down past the deadline,
    /// skipped by Forbid, or more than one missed at once), in total.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed_runs: i64,
    /// The last `ambient-code.io/trigger-requested-at` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<String>,
    /// `Ready`: the schedule is valid and being followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One session a schedule created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRun {
    /// Session name.
    pub name: String,
    /// The due time it ran for (for a trigger, when it was acted on).
    pub scheduled_time: Time,
    /// The session's phase when last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SessionPhase>,
    /// True for a run started by the trigger annotation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub triggered: bool,
}

impl SessionScheduleSpec {
    /// `successfulRunsHistoryLimit` with its default.
    pub fn successful_history(&self) -> usize {
        usize::try_from(self.successful_runs_history_limit.unwrap_or(DEFAULT_SUCCESSFUL_HISTORY)).unwrap_or(0)
    }

    /// `failedRunsHistoryLimit` with its default.
    pub fn failed_history(&self) -> usize {
        usize::try_from(self.failed_runs_history_limit.unwrap_or(DEFAULT_FAILED_HISTORY)).unwrap_or(0)
    }

    /// The parsed schedule in its time zone.
    pub fn cron(&self) -> Result<cron::Cron, cron::CronError> {
        cron::Cron::parse(&self.schedule, self.time_zone.as_deref())
    }
}
