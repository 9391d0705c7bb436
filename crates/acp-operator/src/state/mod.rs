//! The session state machine: an observation in, the next status and the
//! actions to take out. Pure: no I/O, no clock (the time is part of the
//! observation), so every transition is a unit test.
//!
//! Runs. Each session has a current run number (`status.run`); the runner Job
//! of run N is `<session>-<N>`. A new run starts
//! - on first sight of the session;
//! - when a terminal session's generation differs from `observedGeneration`
//!   (its spec changed);
//! - when a non-terminal session's generation changes: the running Job is
//!   deleted and the new run supersedes it;
//! - on a restart request: `ambient-code.io/desired-phase: Running` on a
//!   terminal session, acted on once per change of the annotation.
//!
//! Metadata-only changes (labels, annotations) do not bump the generation, so
//! re-applying an unchanged manifest never re-runs anything.
//! `desired-phase: Stopped` stops the current run and keeps the session
//! stopped while it is set.
//!
//! Record, then act. A new run is written to status (run number, phase,
//! `JobCreated=False`) before its Job exists; the controller writes that
//! status first, guarded by the resourceVersion it read, and creates children
//! only once the write succeeded. `JobCreated=True` is recorded once the Job
//! exists. A recorded run whose Job is gone without a verdict (deleted by
//! hand, or by its TTL while the operator was down) ends Failed with reason
//! `RunLost`: it is never re-run behind the user's back.

use acp_api::condition::{Condition, set_condition};
use acp_api::constants::{condition_types as ct, reasons};
use acp_api::session::{RunOutcome, SessionPhase, SessionResult, SessionStatus, StoppedReason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Value of the desired-phase annotation that stops a session.
pub const DESIRED_STOPPED: &str = "Stopped";
/// Value of the desired-phase annotation that restarts a terminal session.
pub const DESIRED_RUNNING: &str = "Running";

/// Whether the runner's credentials are in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// Everything the runner needs exists.
    Ready,
    /// Something is missing; the message names it.
    Missing(String),
}

/// What the executor reports about the current run.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Created; the runner has not started (the reason says why, if known:
    /// `ImagePullBackOff`, `CrashLoopBackOff`, `Unschedulable`, …).
    Waiting {
        /// Why it is waiting.
        reason: Option<String>,
        /// Details.
        message: Option<String>,
    },
    /// The runner is running.
    Running {
        /// When it started.
        started: Option<Time>,
    },
    /// The runner exited.
    Exited {
        /// Exit code.
        code: i32,
        /// Termination message (the runner's result JSON).
        message: Option<String>,
        /// When it started.
        started: Option<Time>,
        /// When it finished.
        finished: Option<Time>,
    },
    /// The Job controller killed the run at `activeDeadlineSeconds`.
    DeadlineExceeded,
    /// The run is being deleted.
    Terminating,
}

/// The executor's view of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// Run number.
    pub run: i64,
    /// Job (or process) name.
    pub name: String,
    /// What it is doing.
    pub progress: Progress,
}

/// Everything the state machine looks at.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// Session name.
    pub session: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// The desired-phase annotation.
    pub desired: Option<&'a str>,
    /// Current status.
    pub status: &'a SessionStatus,
    /// Credentials.
    pub secrets: Secrets,
    /// The current run's executor state, if it exists.
    pub run: Option<RunState>,
    /// `spec.timeout`, for messages.
    pub timeout_seconds: i64,
    /// The parent session (annotation `vteam.ambient-code/parent-session-id`)
    /// when it has not finished: a thread runs one session at a time.
    pub waiting_for: Option<&'a str>,
    /// Now.
    pub now: Time,
}

/// Something the controller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create or update the children of run `run` (Secret, workspace, Job).
    Ensure {
        /// Run number.
        run: i64,
    },
    /// Delete a run's Job (and its pods, in the foreground).
    Delete {
        /// Job name.
        name: String,
    },
}

/// A Kubernetes event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// The outcome of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write.
    pub status: SessionStatus,
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// Events to record.
    pub events: Vec<Event>,
}

pub use crate::names::job_name;

fn cond(
    status: &mut SessionStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    obs: &Observation,
) {
    let c = Condition::new(type_, ok, reason, message).observed(Some(obs.generation));
    set_condition(&mut status.conditions, c, &obs.now);
}

/// A decision being made: the next status and what goes with it.
struct Draft {
    status: SessionStatus,
    actions: Vec<Action>,
    events: Vec<Event>,
}

impl Draft {
    fn event(&mut self, warning: bool, reason: &str, message: String) {
        self.events.push(Event { warning, reason: reason.into(), message });
    }
}

/// Decides the next status and actions.
pub fn decide(obs: &Observation<'_>) -> Decision {
    let mut d = Draft { status: obs.status.clone(), actions: Vec::new(), events: Vec::new() };
    let before = d.status.phase.unwrap_or_default();
    let restart = obs.desired == Some(DESIRED_RUNNING)
        && d.status.last_handled_desired_phase.as_deref() != Some(DESIRED_RUNNING);
    d.status.last_handled_desired_phase = obs.desired.map(str::to_owned);
    let current = obs.run.clone().filter(|r| r.run == d.status.run.unwrap_or(0));

    if obs.desired == Some(DESIRED_STOPPED) {
        if !before.is_terminal() || before == SessionPhase::Stopping {
            stop(&mut d.status, current.as_ref(), &mut d.actions, obs);
        }
        return finish(d, before);
    }
    let current = next_run(&mut d, current, before, restart, obs);
    d.status.observed_generation = Some(obs.generation);
    if d.status.phase.unwrap_or_default().is_terminal() {
        return finish(d, before);
    }
    if let Secrets::Missing(message) = &obs.secrets {
        secrets_missing(&mut d, message, obs);
        return finish(d, before);
    }
    cond(&mut d.status, ct::SECRETS_READY, true, reasons::SUCCEEDED, "runner credentials are in place", obs);
    let recorded =
        acp_api::condition::find(&d.status.conditions, ct::JOB_CREATED).is_some_and(|c| c.is_true());
    if let Some(parent) = obs.waiting_for.filter(|_| current.is_none() && !recorded) {
        // Queued: the run starts once the thread's previous session ends.
        let message = format!("queued: waits for session {parent} to finish");
        d.status.phase = Some(SessionPhase::Pending);
        d.status.message = Some(message.clone());
        cond(&mut d.status, ct::READY, false, reasons::QUEUED, message, obs);
        return finish(d, before);
    }
    let run = d.status.run.unwrap_or(0);
    d.status.job_name = Some(job_name(obs.session, run));
    if current.as_ref().is_some_and(|r| r.progress != Progress::Terminating) {
        job_created(&mut d.status, obs.generation, &obs.now);
    }
    match current.map(|r| r.progress) {
        None | Some(Progress::Terminating) => no_runner(&mut d, recorded, before, run, obs),
        Some(progress) => follow(&mut d, progress, obs),
    }
    finish(d, before)
}

/// Starts a new run when the session has none, or a changed spec or a
/// restart request supersedes the current one (whose Job is deleted);
/// returns the current run, if it still is.
fn next_run(
    d: &mut Draft,
    current: Option<RunState>,
    before: SessionPhase,
    restart: bool,
    obs: &Observation<'_>,
) -> Option<RunState> {
    let run = d.status.run.unwrap_or(0);
    let spec_changed = d.status.observed_generation.is_some_and(|g| g != obs.generation);
    // A restart asked while the run is still being stopped starts the new
    // run as from a stopped session.
    let settled = before.is_terminal() || before == SessionPhase::Stopping;
    let new_run =
        run == 0 || (settled && (spec_changed || restart)) || (!before.is_terminal() && spec_changed);
    if !new_run {
        return current;
    }
    if let Some(old) = current.filter(|r| !matches!(r.progress, Progress::Exited { .. })) {
        d.actions.push(Action::Delete { name: old.name.clone() });
        let message = format!("run {} superseded by generation {}", old.run, obs.generation);
        d.event(false, reasons::SUPERSEDED, message);
    }
    let run = run + 1;
    let status = &mut d.status;
    status.run = Some(run);
    status.start_time = None;
    status.completion_time = None;
    status.result = None;
    status.stopped_reason = None;
    status.job_name = None;
    status.phase = Some(SessionPhase::Pending);
    status.message = Some(format!("run {run} for generation {}", obs.generation));
    for type_ in [ct::COMPLETED, ct::FAILED, ct::RUNNER_STARTED, ct::JOB_CREATED] {
        acp_api::condition::remove_condition(&mut status.conditions, type_);
    }
    None
}

/// Pending until the runner's credentials exist (told once per message).
fn secrets_missing(d: &mut Draft, message: &str, obs: &Observation<'_>) {
    let already = acp_api::condition::find(&d.status.conditions, ct::SECRETS_READY)
        .is_some_and(|c| !c.is_true() && c.message.as_deref() == Some(message));
    if !already {
        d.event(true, reasons::SECRET_MISSING, message.to_owned());
    }
    d.status.phase = Some(SessionPhase::Pending);
    d.status.message = Some(message.to_owned());
    cond(&mut d.status, ct::SECRETS_READY, false, reasons::SECRET_MISSING, message, obs);
    cond(&mut d.status, ct::READY, false, reasons::SECRET_MISSING, message, obs);
}

/// No runner (or one going away): stopped as asked, lost, or to be created.
fn no_runner(d: &mut Draft, recorded: bool, before: SessionPhase, run: i64, obs: &Observation<'_>) {
    let job = job_name(obs.session, run);
    let status = &mut d.status;
    if recorded && before == SessionPhase::Stopping {
        // Stopped on request, then the request withdrawn before the Job
        // was gone: the run ended as asked.
        status.phase = Some(SessionPhase::Stopped);
        status.stopped_reason = Some(StoppedReason::User);
        status.completion_time = status.completion_time.clone().or_else(|| Some(obs.now.clone()));
        status.message = Some("stopped on request".into());
        cond(status, ct::READY, false, reasons::STOPPED, "stopped on request", obs);
    } else if recorded {
        let message = format!(
            "job {job} of run {run} disappeared before it reported a result; \
             it is not run again unless asked (annotation {}: {DESIRED_RUNNING})",
            acp_api::constants::annotations::DESIRED_PHASE
        );
        status.completion_time = Some(obs.now.clone());
        fail(status, reasons::RUN_LOST, &message, obs);
        d.event(true, reasons::RUN_LOST, message);
    } else {
        d.actions.push(Action::Ensure { run });
        status.phase = Some(SessionPhase::Creating);
        status.message = Some(format!("creating job {job}"));
        cond(status, ct::JOB_CREATED, false, reasons::PROGRESSING, format!("creating job {job}"), obs);
        cond(status, ct::READY, false, reasons::PROGRESSING, "starting the runner", obs);
    }
}

/// The status of a run whose runner exists, by its progress.
fn follow(d: &mut Draft, progress: Progress, obs: &Observation<'_>) {
    let status = &mut d.status;
    match progress {
        Progress::Waiting { reason, message } => {
            status.phase = Some(SessionPhase::Creating);
            let problem = reason.as_deref().filter(|r| is_problem(r));
            let text = message.unwrap_or_else(|| "waiting for the runner pod to start".into());
            let reason = problem.unwrap_or(reasons::PROGRESSING);
            cond(status, ct::RUNNER_STARTED, false, reason, text.clone(), obs);
            status.message = Some(text.clone());
            if let Some(problem) = problem {
                d.event(true, problem, text);
            }
        }
        Progress::Running { started } => {
            status.phase = Some(SessionPhase::Running);
            status.start_time = status.start_time.take().or(started).or_else(|| Some(obs.now.clone()));
            status.message = Some("the agent is working".into());
            cond(status, ct::RUNNER_STARTED, true, reasons::SUCCEEDED, "runner started", obs);
            cond(status, ct::READY, false, reasons::PROGRESSING, "the agent is working", obs);
        }
        Progress::Exited { code, message, started, finished } => {
            status.start_time = status.start_time.take().or(started).or_else(|| Some(obs.now.clone()));
            status.completion_time = finished.or_else(|| Some(obs.now.clone()));
            exited(status, code, message.as_deref(), obs);
        }
        Progress::DeadlineExceeded => {
            status.completion_time = Some(obs.now.clone());
            let message = format!("exceeded spec.timeout ({}s)", obs.timeout_seconds);
            fail(status, reasons::TIMEOUT, &message, obs);
        }
        // Handled by `no_runner`.
        Progress::Terminating => {}
    }
}

/// True when deciding needs no credentials, so none are read: the session
/// is held stopped, or it finished and nothing (a spec change, a restart
/// request) starts another run.
pub fn settled(status: &SessionStatus, generation: i64, desired: Option<&str>) -> bool {
    if desired == Some(DESIRED_STOPPED) {
        return true;
    }
    let restart = desired == Some(DESIRED_RUNNING)
        && status.last_handled_desired_phase.as_deref() != Some(DESIRED_RUNNING);
    let spec_changed = status.observed_generation.is_some_and(|g| g != generation);
    status.phase.is_some_and(|p| p.is_terminal()) && status.run.unwrap_or(0) != 0 && !spec_changed && !restart
}

/// Records that the current run's Job (or process) exists: from then on, its
/// disappearance without a verdict is `RunLost`, never a reason to run again.
pub fn job_created(status: &mut SessionStatus, generation: i64, now: &Time) {
    let job = status.job_name.clone().unwrap_or_default();
    let c = Condition::new(ct::JOB_CREATED, true, reasons::SUCCEEDED, format!("job {job}"))
        .observed(Some(generation));
    set_condition(&mut status.conditions, c, now);
}

fn is_problem(reason: &str) -> bool {
    matches!(
        reason,
        "ImagePullBackOff"
            | "ErrImagePull"
            | "CrashLoopBackOff"
            | "Unschedulable"
            | "CreateContainerConfigError"
            | "InvalidImageName"
    )
}

fn stop(
    status: &mut SessionStatus,
    current: Option<&RunState>,
    actions: &mut Vec<Action>,
    obs: &Observation<'_>,
) {
    match current {
        Some(run) if !matches!(run.progress, Progress::Exited { .. }) => {
            if run.progress != Progress::Terminating {
                actions.push(Action::Delete { name: run.name.clone() });
            }
            status.phase = Some(SessionPhase::Stopping);
            status.message = Some(format!("stopping job {}", run.name));
        }
        _ => {
            status.phase = Some(SessionPhase::Stopped);
            status.stopped_reason = Some(StoppedReason::User);
            status.completion_time = status.completion_time.clone().or_else(|| Some(obs.now.clone()));
            status.message = Some("stopped on request".into());
            cond(status, ct::READY, false, reasons::STOPPED, "stopped on request", obs);
        }
    }
}

fn fail(status: &mut SessionStatus, reason: &str, message: &str, obs: &Observation<'_>) {
    status.phase = Some(SessionPhase::Failed);
    status.message = Some(message.to_owned());
    cond(status, ct::FAILED, true, reason, message, obs);
    cond(status, ct::READY, false, reason, message, obs);
}

fn exited(status: &mut SessionStatus, code: i32, message: Option<&str>, obs: &Observation<'_>) {
    let parsed = message.map(crate::result::parse);
    let (result, parse_error) = match parsed {
        Some(Ok(result)) => (Some(result), None),
        Some(Err(err)) => (None, Some(err)),
        None => (None, None),
    };
    status.sdk_session_id =
        result.as_ref().and_then(|r| r.sdk_session_id.clone()).or(status.sdk_session_id.take());
    let detail = result.as_ref().and_then(|r| r.error.clone()).or(parse_error.clone());
    status.result = result.clone().or_else(|| {
        parse_error.map(|e| SessionResult { is_error: true, error: Some(e), ..SessionResult::default() })
    });
    let with = |base: &str| match &detail {
        Some(d) => format!("{base}: {d}"),
        None => base.to_owned(),
    };
    match code {
        0 => {
            status.phase = Some(SessionPhase::Completed);
            status.message = Some("completed".into());
            cond(status, ct::COMPLETED, true, reasons::SUCCEEDED, "the agent finished", obs);
            cond(status, ct::READY, true, reasons::SUCCEEDED, "completed", obs);
        }
        1 => fail(status, reasons::AGENT_ERROR, &with("the agent failed"), obs),
        2 => fail(status, reasons::PREREQUISITE_FAILED, &with("the runner could not start"), obs),
        143 if result.as_ref().is_some_and(|r| {
            r.outcome == Some(RunOutcome::Stopped) && r.stopped_reason == Some(StoppedReason::Inactivity)
        }) =>
        {
            status.phase = Some(SessionPhase::Stopped);
            status.stopped_reason = Some(StoppedReason::Inactivity);
            status.message = Some(with("stopped for inactivity"));
            cond(status, ct::READY, false, reasons::STOPPED, "stopped for inactivity", obs);
        }
        143 => fail(status, reasons::SIGNALED, &with("the runner was terminated by a signal"), obs),
        other => {
            fail(status, reasons::RUNNER_ERROR, &with(&format!("the runner exited with code {other}")), obs)
        }
    }
}

fn finish(d: Draft, before: SessionPhase) -> Decision {
    let Draft { status, actions, mut events } = d;
    let after = status.phase.unwrap_or_default();
    // Creating is said by the JobCreated condition: no event for it (one
    // request less per session).
    if after != before && after != SessionPhase::Creating {
        let warning = after == SessionPhase::Failed;
        let message = status.message.clone().unwrap_or_default();
        events.push(Event { warning, reason: after.to_string(), message });
    }
    Decision { status, actions, events }
}

#[cfg(test)]
mod tests;
