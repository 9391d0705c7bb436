//! What the scheduler does for one SessionSchedule at one instant, decided
//! without I/O or a wall clock: the sessions to create, stop and delete, and
//! the schedule's next status.
//!
//! Exactly once per due time rests on names: a due time's session is always
//! `<schedule>-<unix minute>` (a trigger's, `<schedule>-manual-<hash of the
//! value>`), created with a plain create. A run that exists is never created
//! again, whatever the status says, so a crash between creating a session and
//! recording it repeats nothing.

use acp_api::condition::{Condition, set_condition};
use acp_api::constants::{condition_types, reasons};
use acp_api::schedule::cron::Cron;
use acp_api::schedule::{
    ConcurrencyPolicy, MAX_STATUS_RUNS, ScheduleMode, ScheduledRun, SessionScheduleSpec,
    SessionScheduleStatus,
};
use acp_api::session::SessionPhase;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The longest schedule name: its runs carry it as a label value.
pub const MAX_NAME: usize = 63;

/// A session of the schedule, as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Session name.
    pub name: String,
    /// Its due time (a trigger's: when it was acted on).
    pub scheduled: Timestamp,
    /// Its phase (`None` until the operator has written a status).
    pub phase: Option<SessionPhase>,
    /// Started by the trigger annotation.
    pub triggered: bool,
    /// A stop was already requested.
    pub stopping: bool,
}

impl Run {
    fn active(&self) -> bool {
        !self.phase.is_some_and(SessionPhase::is_terminal)
    }
}

/// Everything a decision depends on.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// Schedule name.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// When the schedule was created (due times before it never run).
    pub created: Timestamp,
    /// The spec.
    pub spec: &'a SessionScheduleSpec,
    /// The status as last written.
    pub status: &'a SessionScheduleStatus,
    /// The trigger annotation's value.
    pub trigger: Option<&'a str>,
    /// The schedule's sessions.
    pub runs: &'a [Run],
    /// The clock's reading.
    pub now: Timestamp,
}

/// A change to make.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create session `name` for `scheduled`.
    Create {
        /// Session name.
        name: String,
        /// The due time (or trigger time).
        scheduled: Timestamp,
        /// The trigger value it runs for, if any.
        trigger: Option<String>,
        /// With `mode: continue`, the previous run, whose conversation it
        /// resumes.
        parent: Option<String>,
    },
    /// Request a stop of an active session (Replace).
    Stop(String),
    /// Delete a finished session past the history limits.
    Delete(String),
}

/// An event to record on the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Event reason (a [`reasons`] constant).
    pub reason: &'static str,
    /// What happened.
    pub message: String,
    /// A warning rather than normal news.
    pub warning: bool,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Changes, in order: creates and stops first, deletes last.
    pub actions: Vec<Action>,
    /// The status to write once the creates and stops are done.
    pub status: SessionScheduleStatus,
    /// Events to record.
    pub notes: Vec<Note>,
    /// When to look again (the next due time), if ever without a change.
    pub wake_at: Option<Timestamp>,
}

/// The session name of due time `t`.
pub fn run_name(schedule: &str, t: Timestamp) -> String {
    format!("{schedule}-{}", t.as_second().div_euclid(60))
}

/// The session name of trigger value `value`: a stable hash (FNV-1a, 64 bits),
/// so the name is the same in every process and version.
pub fn trigger_name(schedule: &str, value: &str) -> String {
    let hash = value
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{schedule}-manual-{:08x}", hash >> 32)
}

/// Decides what the scheduler does now.
pub fn decide(input: &Input<'_>) -> Decision {
    // Whole seconds, as status times are written: a trigger's run time is
    // recorded as is, and must read back equal.
    let now = Timestamp::from_second(input.now.as_second()).unwrap_or(input.now);
    let input = &Input { now, ..input.clone() };
    let mut status = input.status.clone();
    status.observed_generation = input.generation;
    let mut decision = Decision { actions: Vec::new(), status, notes: Vec::new(), wake_at: None };
    let invalid = match input.spec.cron() {
        Err(error) => Err(error.to_string()),
        // Its runs carry the name as a label value (at most 63 characters).
        Ok(_) if input.name.len() > MAX_NAME => Err(format!(
            "the schedule's name is {} characters long; at most {MAX_NAME} are allowed",
            input.name.len()
        )),
        Ok(cron) => Ok(cron),
    };
    let cron = match invalid {
        Ok(cron) => cron,
        Err(message) => {
            let ready = Condition::new(condition_types::READY, false, reasons::INVALID_SCHEDULE, message);
            set_condition(&mut decision.status.conditions, ready.observed(input.generation), &Time(now));
            decision.status.next_run_time = None;
            return decision;
        }
    };
    let mut runs: Vec<Run> = input.runs.to_vec();
    if let Some(value) = input.trigger.filter(|v| decision.status.last_trigger.as_deref() != Some(*v)) {
        let name = trigger_name(input.name, value);
        if !runs.iter().any(|r| r.name == name) {
            start(&mut decision, &mut runs, input.spec, name, input.now, Some(value));
        }
        decision.status.last_trigger = Some(value.to_owned());
    }
    if !input.spec.suspend {
        schedule(input, &cron, &mut decision, &mut runs);
    }
    prune_history(input.spec, &runs, &mut decision);
    record_runs(&mut decision, runs);
    let next = if input.spec.suspend { None } else { cron.next_after(input.now) };
    decision.status.next_run_time = next.map(Time);
    decision.wake_at = next;
    let ready = if input.spec.suspend {
        Condition::new(
            condition_types::READY,
            false,
            reasons::SUSPENDED,
            "suspended: no scheduled runs start",
        )
    } else {
        let following = format!("following {:?} in {}", input.spec.schedule, cron.zone());
        Condition::new(condition_types::READY, true, reasons::SUCCEEDED, following)
    };
    set_condition(&mut decision.status.conditions, ready.observed(input.generation), &Time(now));
    decision
}

/// The status's lists of runs: the active ones by name, and the newest
/// [`MAX_STATUS_RUNS`] of those not being deleted.
fn record_runs(decision: &mut Decision, mut runs: Vec<Run>) {
    let deleted: Vec<&String> = decision
        .actions
        .iter()
        .filter_map(|a| if let Action::Delete(n) = a { Some(n) } else { None })
        .collect();
    runs.retain(|r| !deleted.contains(&&r.name));
    runs.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then_with(|| b.name.cmp(&a.name)));
    decision.status.active = runs.iter().filter(|r| r.active()).map(|r| r.name.clone()).collect();
    decision.status.active.sort();
    decision.status.runs = runs
        .iter()
        .take(MAX_STATUS_RUNS)
        .map(|r| ScheduledRun {
            name: r.name.clone(),
            scheduled_time: Time(r.scheduled),
            phase: r.phase,
            triggered: r.triggered,
        })
        .collect();
}

/// The cron part: the latest due time since the last decision, if any.
fn schedule(input: &Input<'_>, cron: &Cron, decision: &mut Decision, runs: &mut Vec<Run>) {
    let since = decision.status.last_schedule_time.as_ref().map_or(input.created, |t| t.0.max(input.created));
    let (count, Some(due)) = cron.due_between(since, input.now) else { return };
    let name = run_name(input.name, due);
    decision.status.last_schedule_time = Some(Time(due));
    if runs.iter().any(|r| r.name == name) {
        // Created before (the status write was lost): nothing to do again.
        return;
    }
    let late = input.now.as_second() - due.as_second();
    if let Some(deadline) = input.spec.starting_deadline_seconds
        && late > deadline
    {
        decision.status.missed_runs += i64::from(count);
        decision.notes.push(Note {
            reason: reasons::MISSED_SCHEDULE,
            message: format!(
                "missed {count} due time(s), the latest at {} ({late}s ago, past startingDeadlineSeconds {deadline}): not started",
                cron.display(due)
            ),
            warning: true,
        });
        return;
    }
    if count > 1 {
        decision.status.missed_runs += i64::from(count - 1);
        decision.notes.push(Note {
            reason: reasons::MISSED_SCHEDULE,
            message: format!(
                "missed {} earlier due time(s); starting only the latest, {}",
                count - 1,
                cron.display(due)
            ),
            warning: true,
        });
    }
    if input.spec.concurrency_policy == ConcurrencyPolicy::Forbid && runs.iter().any(Run::active) {
        decision.status.missed_runs += 1;
        let active: Vec<&str> = runs.iter().filter(|r| r.active()).map(|r| r.name.as_str()).collect();
        decision.notes.push(Note {
            reason: reasons::RUN_SKIPPED,
            message: format!(
                "skipped the run due at {}: {} still running (concurrencyPolicy Forbid)",
                cron.display(due),
                active.join(", ")
            ),
            warning: false,
        });
        return;
    }
    start(decision, runs, input.spec, name, due, None);
}

/// Creates run `name`, stopping the active ones first under Replace.
fn start(
    decision: &mut Decision,
    runs: &mut Vec<Run>,
    spec: &SessionScheduleSpec,
    name: String,
    scheduled: Timestamp,
    trigger: Option<&str>,
) {
    // `continue`: the newest run is the conversation this one resumes.
    let parent = (spec.mode == ScheduleMode::Continue)
        .then(|| runs.iter().max_by(|a, b| a.scheduled.cmp(&b.scheduled).then_with(|| a.name.cmp(&b.name))))
        .flatten()
        .map(|r| r.name.clone());
    if spec.concurrency_policy == ConcurrencyPolicy::Replace {
        for run in runs.iter_mut().filter(|r| r.active() && !r.stopping) {
            run.stopping = true;
            decision.actions.push(Action::Stop(run.name.clone()));
            decision.notes.push(Note {
                reason: reasons::RUN_REPLACED,
                message: format!("stopping {} for {name} (concurrencyPolicy Replace)", run.name),
                warning: false,
            });
        }
    }
    decision.notes.push(Note {
        reason: reasons::RUN_CREATED,
        message: match trigger {
            Some(value) => format!("created {name} for trigger {value:?}"),
            None => format!("created {name} for the run due at {scheduled}"),
        },
        warning: false,
    });
    decision.actions.push(Action::Create {
        name: name.clone(),
        scheduled,
        trigger: trigger.map(str::to_owned),
        parent,
    });
    runs.push(Run { name, scheduled, phase: None, triggered: trigger.is_some(), stopping: false });
}

/// Deletes the oldest finished runs past the history limits: Completed ones
/// count as successful, Failed and Stopped ones as failed.
/// With `mode: continue`, the two newest runs are kept whatever the limits:
/// the newest resumes the conversation of the one before, and the next run
/// resumes the newest's.
fn prune_history(spec: &SessionScheduleSpec, runs: &[Run], decision: &mut Decision) {
    let mut newest: Vec<&Run> = runs.iter().collect();
    newest.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then_with(|| b.name.cmp(&a.name)));
    let keep: Vec<&str> = match spec.mode {
        ScheduleMode::Continue => newest.iter().take(2).map(|r| r.name.as_str()).collect(),
        ScheduleMode::New => Vec::new(),
    };
    let mut finished: Vec<&Run> =
        runs.iter().filter(|r| !r.active() && !keep.contains(&r.name.as_str())).collect();
    finished.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then_with(|| b.name.cmp(&a.name)));
    let (mut kept_ok, mut kept_failed) = (0, 0);
    for run in finished {
        let (kept, limit) = if run.phase == Some(SessionPhase::Completed) {
            (&mut kept_ok, spec.successful_history())
        } else {
            (&mut kept_failed, spec.failed_history())
        };
        if *kept < limit {
            *kept += 1;
        } else {
            decision.actions.push(Action::Delete(run.name.clone()));
        }
    }
}

#[cfg(test)]
mod tests;
