//! The SessionSource status a sync leads to, computed without I/O: kstatus
//! conditions (Ready, Reconciling, Stalled) with stable transition times,
//! revisions, inventory, per-file errors and a short history. A sync that
//! changes nothing yields the same status, so nothing is written.

use acp_api::condition::{Condition, set_condition};
use acp_api::constants::{condition_types, reasons};
use acp_api::source::{FileError, InventoryEntry, SessionSourceStatus, SyncRecord};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Records kept in `status.history`.
pub const HISTORY: usize = 10;
/// Errors kept in `status.errors` (the CRD's bound).
pub const MAX_ERRORS: usize = 100;

/// What one completed sync did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Synced {
    /// Commit synced.
    pub revision: String,
    /// When the sync started.
    pub started_at: Option<Time>,
    /// How long it took.
    pub duration_ms: i64,
    /// Sessions created or updated.
    pub applied: i64,
    /// Sessions already as in git.
    pub unchanged: i64,
    /// Sessions deleted.
    pub pruned: i64,
    /// Every file error, including apply failures.
    pub errors: Vec<FileError>,
    /// Whether some errors came from the API server (retryable) rather than
    /// from the manifests.
    pub apply_failed: bool,
    /// What the source now has applied.
    pub inventory: Vec<InventoryEntry>,
}

/// Why a sync did not run to the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Failed {
    /// Condition reason (`FetchFailed`, `InvalidSource`…).
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
    /// Whether retrying without a change to the source can help.
    pub retryable: bool,
}

fn conditions(
    status: &mut SessionSourceStatus,
    ready: Condition,
    stalled: Option<Condition>,
    generation: Option<i64>,
    now: &Time,
) {
    set_condition(&mut status.conditions, ready.observed(generation), now);
    set_condition(
        &mut status.conditions,
        Condition::new(condition_types::RECONCILING, false, reasons::SUCCEEDED, "").observed(generation),
        now,
    );
    let stalled =
        stalled.unwrap_or_else(|| Condition::new(condition_types::STALLED, false, reasons::SUCCEEDED, ""));
    set_condition(&mut status.conditions, stalled.observed(generation), now);
}

/// The status after `synced`.
pub fn after_sync(
    current: &SessionSourceStatus,
    generation: Option<i64>,
    synced: Synced,
    now: &Time,
) -> SessionSourceStatus {
    let mut status = current.clone();
    status.observed_generation = generation;
    let (ready, stalled) = sync_conditions(&synced);
    conditions(&mut status, ready, stalled, generation, now);
    record(&mut status, &synced);
    status.last_fetched_revision = Some(synced.revision.clone());
    status.last_attempted_revision = Some(synced.revision.clone());
    status.last_applied_revision = Some(synced.revision);
    let mut errors = synced.errors;
    errors.truncate(MAX_ERRORS);
    status.errors = errors;
    status.inventory = synced.inventory.into();
    status
}

/// Ready (and Stalled, when git must change first) after `synced`.
fn sync_conditions(synced: &Synced) -> (Condition, Option<Condition>) {
    let files_with_errors = {
        let mut paths: Vec<&str> = synced.errors.iter().map(|e| e.path.as_str()).collect();
        paths.dedup();
        paths.len()
    };
    let short = synced.revision.get(..12).unwrap_or(&synced.revision);
    let sessions = synced.inventory.len();
    if synced.errors.is_empty() {
        return (
            Condition::new(
                condition_types::READY,
                true,
                reasons::SUCCEEDED,
                format!("applied revision {short}: {sessions} sessions"),
            ),
            None,
        );
    }
    let reason = if synced.apply_failed { reasons::APPLY_FAILED } else { reasons::VALIDATION_FAILED };
    let message = format!(
        "revision {short}: {} errors in {files_with_errors} files (see status.errors); {sessions} sessions applied",
        synced.errors.len()
    );
    let stalled = (!synced.apply_failed)
        .then(|| Condition::new(condition_types::STALLED, true, reason, message.clone()));
    (Condition::new(condition_types::READY, false, reason, message), stalled)
}

/// Adds `synced` to the history, newest first, unless it repeats the last
/// record (same revision and error count) and changed nothing.
fn record(status: &mut SessionSourceStatus, synced: &Synced) {
    let changed_history = status
        .history
        .first()
        .is_none_or(|last| last.revision != synced.revision || last.errors != synced.errors.len() as i64)
        || synced.applied > 0
        || synced.pruned > 0;
    if changed_history {
        status.history.insert(
            0,
            SyncRecord {
                revision: synced.revision.clone(),
                started_at: synced.started_at.clone(),
                duration_ms: synced.duration_ms,
                applied: synced.applied,
                unchanged: synced.unchanged,
                pruned: synced.pruned,
                errors: synced.errors.len() as i64,
            },
        );
        status.history.truncate(HISTORY);
    }
}

/// The status after a sync that could not run.
pub fn after_failure(
    current: &SessionSourceStatus,
    generation: Option<i64>,
    failed: &Failed,
    now: &Time,
) -> SessionSourceStatus {
    let mut status = current.clone();
    status.observed_generation = generation;
    let ready = Condition::new(condition_types::READY, false, failed.reason, failed.message.clone());
    let stalled = (!failed.retryable)
        .then(|| Condition::new(condition_types::STALLED, true, failed.reason, failed.message.clone()));
    conditions(&mut status, ready, stalled, generation, now);
    status
}

/// The status of a suspended source: everything kept, Reconciling says why.
pub fn suspended(current: &SessionSourceStatus, generation: Option<i64>, now: &Time) -> SessionSourceStatus {
    let mut status = current.clone();
    status.observed_generation = generation;
    set_condition(
        &mut status.conditions,
        Condition::new(
            condition_types::RECONCILING,
            false,
            reasons::SUSPENDED,
            "spec.suspend is true; not syncing",
        )
        .observed(generation),
        now,
    );
    status
}

/// Most Warning events for the new file errors of one sync.
pub const MAX_ERROR_EVENTS: usize = 20;
/// Longest note of an event, in characters.
const MAX_NOTE: usize = 1000;

/// A Warning event about the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Its reason.
    pub reason: &'static str,
    /// Its note, at most [`MAX_NOTE`] characters.
    pub note: String,
}

/// What a reconcile writes after a sync: the source's status, and Warning
/// events (published first).
#[derive(Clone, Debug, PartialEq)]
pub struct Next {
    /// The status (written only when it changed).
    pub status: SessionSourceStatus,
    /// The events.
    pub warnings: Vec<Warning>,
}

/// What to write after a sync's `outcome`: the status (which handled the
/// trigger `requested_at`, when the sync ran to the end), and one Warning
/// event for a failure, or one per file error new in this sync (bounded),
/// each with its own note (`acp_kube::events` never folds events of one
/// reason into a series).
pub fn next(
    current: &SessionSourceStatus,
    generation: Option<i64>,
    requested_at: Option<String>,
    outcome: Result<Synced, Failed>,
    now: &Time,
) -> Next {
    match outcome {
        Ok(synced) => {
            let mut status = after_sync(current, generation, synced, now);
            status.last_handled_reconcile_at = requested_at;
            let warnings = new_errors(&current.errors, &status.errors);
            Next { status, warnings }
        }
        Err(failed) => Next {
            warnings: vec![Warning { reason: failed.reason, note: bounded(&failed.message) }],
            status: after_failure(current, generation, &failed, now),
        },
    }
}

/// A Warning per error of `after` not in `before`, at most [`MAX_ERROR_EVENTS`].
fn new_errors(before: &[FileError], after: &[FileError]) -> Vec<Warning> {
    after
        .iter()
        .filter(|e| !before.contains(e))
        .take(MAX_ERROR_EVENTS)
        .map(|error| {
            let at = match (error.line, error.column) {
                (Some(line), Some(column)) => format!("{}:{line}:{column}", error.path),
                (Some(line), None) => format!("{}:{line}", error.path),
                _ => error.path.clone(),
            };
            Warning { reason: reasons::VALIDATION_FAILED, note: bounded(&format!("{at}: {}", error.message)) }
        })
        .collect()
}

/// `note` cut to [`MAX_NOTE`] characters.
fn bounded(note: &str) -> String {
    note.chars().take(MAX_NOTE).collect()
}

#[cfg(test)]
mod tests {
    use acp_api::condition::find;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid time"))
    }

    fn synced(revision: &str, applied: i64, errors: usize) -> Synced {
        Synced {
            revision: revision.into(),
            applied,
            errors: (0..errors)
                .map(|i| FileError {
                    path: format!("f{i}.yaml"),
                    line: Some(1),
                    column: Some(1),
                    message: "bad".into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_no_op_resync_yields_the_same_status() {
        let first = after_sync(&SessionSourceStatus::default(), Some(1), synced("abc", 3, 0), &at(100));
        assert!(find(&first.conditions, "Ready").is_some_and(|c| c.is_true()));
        assert_eq!(first.history.len(), 1);
        let again = after_sync(&first, Some(1), synced("abc", 0, 0), &at(200));
        assert_eq!(again, first, "nothing changed, nothing to write");
    }

    #[test]
    fn file_errors_stall_and_apply_errors_do_not() {
        let bad = after_sync(&SessionSourceStatus::default(), Some(1), synced("abc", 1, 2), &at(100));
        let ready = find(&bad.conditions, "Ready").expect("ready");
        assert_eq!(ready.reason.as_deref(), Some("ValidationFailed"));
        assert!(find(&bad.conditions, "Stalled").is_some_and(|c| c.is_true()));
        assert_eq!(bad.errors.len(), 2);
        let mut retry = synced("abc", 0, 1);
        retry.apply_failed = true;
        let retry = after_sync(&bad, Some(1), retry, &at(200));
        assert!(!find(&retry.conditions, "Stalled").expect("stalled").is_true());
        assert_eq!(retry.history.len(), 2, "error count changed");
    }

    #[test]
    fn history_is_bounded_and_newest_first() {
        let mut status = SessionSourceStatus::default();
        for i in 0..15 {
            status = after_sync(&status, Some(1), synced(&format!("rev{i}"), 1, 0), &at(i));
        }
        assert_eq!(status.history.len(), HISTORY);
        assert_eq!(status.history[0].revision, "rev14");
    }

    #[test]
    fn a_sync_warns_once_per_new_file_error_and_records_its_trigger() {
        let mut outcome = synced("abc", 1, 30);
        outcome.errors[0].line = None;
        outcome.errors[1].message = "x".repeat(2000);
        outcome.errors[2].column = None;
        let first = next(&SessionSourceStatus::default(), Some(1), Some("t1".into()), Ok(outcome), &at(100));
        assert_eq!(first.status.last_handled_reconcile_at.as_deref(), Some("t1"));
        assert_eq!(first.warnings.len(), MAX_ERROR_EVENTS, "bounded");
        assert!(first.warnings.iter().all(|w| w.reason == "ValidationFailed"));
        assert_eq!(first.warnings[0].note, "f0.yaml: bad", "no line: the path alone");
        assert_eq!(first.warnings[1].note.chars().count(), MAX_NOTE);
        assert!(first.warnings[1].note.starts_with("f1.yaml:1:1: xxx"));
        assert_eq!(first.warnings[2].note, "f2.yaml:1: bad");
        let again = next(&first.status, Some(1), Some("t1".into()), Ok(synced("abc", 0, 30)), &at(200));
        let notes: Vec<&str> = again.warnings.iter().map(|w| w.note.as_str()).collect();
        let new = ["f0.yaml:1:1: bad", "f1.yaml:1:1: bad", "f2.yaml:1:1: bad"];
        assert_eq!(notes, new, "only errors not already in status");
    }

    #[test]
    fn a_failed_sync_warns_with_its_reason_and_keeps_the_trigger_unhandled() {
        let good = after_sync(&SessionSourceStatus::default(), Some(1), synced("abc", 1, 0), &at(100));
        let failed = Failed { reason: "FetchFailed", message: "unreachable".into(), retryable: true };
        let after = next(&good, Some(2), Some("t2".into()), Err(failed.clone()), &at(200));
        assert_eq!(after.warnings, [Warning { reason: "FetchFailed", note: "unreachable".into() }]);
        assert_eq!(after.status, after_failure(&good, Some(2), &failed, &at(200)));
        assert_eq!(after.status.last_handled_reconcile_at, None);
    }

    #[test]
    fn fetch_failures_keep_the_last_good_state() {
        let good = after_sync(&SessionSourceStatus::default(), Some(1), synced("abc", 1, 0), &at(100));
        let failed = Failed { reason: "FetchFailed", message: "unreachable".into(), retryable: true };
        let status = after_failure(&good, Some(1), &failed, &at(200));
        assert_eq!(status.last_applied_revision.as_deref(), Some("abc"));
        assert!(!find(&status.conditions, "Ready").expect("ready").is_true());
        assert!(!find(&status.conditions, "Stalled").expect("stalled").is_true());
    }
}
