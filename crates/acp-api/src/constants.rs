//! Every well-known name acp puts on the wire: API group and version, labels,
//! annotations, field managers, condition types and reasons.
//!
//! Components never spell these strings themselves; they import them from here so
//! that the git-sync controller, the operator, the status bot and the dashboard
//! agree on one vocabulary.

/// API group of acp's resources: the existing Ambient Code Platform's group, so
/// manifests written for that platform keep working.
pub const GROUP: &str = "vteam.ambient-code";
/// API version of acp's resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "vteam.ambient-code/v1alpha1";
/// Domain prefix of acp's labels and annotations.
pub const DOMAIN: &str = "ambient-code.io";

/// Labels and annotations under [`DOMAIN`] that people may set on a session
/// (in git or with kubectl): requests to acp, not records of what it did.
/// Every other `ambient-code.io/` key belongs to acp's components: git-sync
/// refuses a manifest that carries one, and admission refuses to add or
/// change one to anyone but acp's controllers (see [`impersonation`]).
pub const USER_SETTABLE: &[&str] =
    &[annotations::DESIRED_PHASE, annotations::TRIGGER_REQUESTED_AT, annotations::PULL_REQUEST_HEAD];

/// Whether label or annotation `key` is written only by acp's components.
pub fn is_reserved(key: &str) -> bool {
    key.split_once('/').is_some_and(|(prefix, _)| prefix == DOMAIN || prefix.ends_with(".ambient-code.io"))
        && !USER_SETTABLE.contains(&key)
}

/// Labels acp stamps on objects. Label values are limited to 63 characters, so
/// anything longer (file paths, full revisions) is an annotation instead.
pub mod labels {
    /// `app.kubernetes.io/managed-by`: which acp component created an object.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value of [`MANAGED_BY`] on everything acp creates.
    pub const MANAGED_BY_VALUE: &str = "acp";
    /// On a session's children (Secret, PVC, Job, Pod): the owning session's name.
    pub const SESSION: &str = "ambient-code.io/session";
    /// On objects git-sync applied: name of the SessionSource that applied it.
    pub const SOURCE_NAME: &str = "ambient-code.io/source-name";
    /// On objects git-sync applied: namespace of the SessionSource that applied it.
    pub const SOURCE_NAMESPACE: &str = "ambient-code.io/source-namespace";
    /// On objects git-sync applied: the commit SHA they were applied from.
    pub const SOURCE_COMMIT: &str = "ambient-code.io/source-commit";
    /// On sessions a SessionSchedule created: the schedule's name.
    pub const SCHEDULE: &str = "ambient-code.io/schedule";
    /// Which controller shard handles an object (see the `shard` module): set
    /// on a SessionSource or SessionSchedule by whoever creates it, stamped
    /// by git-sync on what a source applies, by the scheduler on its runs, and
    /// by the operator on a session's children.
    pub const SHARD: &str = "ambient-code.io/shard";
}

/// Annotations acp reads or writes.
pub mod annotations {
    /// Set by users (or the dashboard's instructions) to request a phase change:
    /// `Stopped` stops a running session, `Running` restarts a terminal one.
    pub const DESIRED_PHASE: &str = "ambient-code.io/desired-phase";
    /// On a runner pod: the full name of its session (labels are limited to
    /// 63 characters; session names are not).
    pub const SESSION_NAME: &str = "ambient-code.io/session-name";
    /// On objects git-sync applied: the repository-relative path of the file.
    pub const SOURCE_PATH: &str = "ambient-code.io/source-path";
    /// On objects git-sync applied: the revision, as `<ref>@sha1:<commit>`.
    pub const SOURCE_REVISION: &str = "ambient-code.io/source-revision";
    /// On objects git-sync applied: the source as `<namespace>/<name>`.
    pub const SOURCE: &str = "ambient-code.io/source";
    /// On a SessionSource: any new value triggers an immediate sync
    /// (like Flux's `reconcile.fluxcd.io/requestedAt`).
    pub const RECONCILE_REQUESTED_AT: &str = "ambient-code.io/reconcile-requested-at";
    /// The status bot's progress on a session (JSON: pull request, comment id,
    /// digests of what was posted and written), so a restart resumes it.
    pub const STATUS_BOT_STATE: &str = "ambient-code.io/status-bot";
    /// The existing platform's link from a session to the one it continues.
    /// Sessions linked this way form a thread, and the operator runs one
    /// session of a thread at a time: a session waits (queued) while its
    /// parent has not finished.
    pub const PARENT_SESSION: &str = "vteam.ambient-code/parent-session-id";
    /// On a SessionSchedule, set by people: each new value runs the schedule
    /// once, now (the existing platform's "trigger").
    pub const TRIGGER_REQUESTED_AT: &str = "ambient-code.io/trigger-requested-at";
    /// On sessions a SessionSchedule created: the due time (RFC 3339) they
    /// ran for (for a triggered run, when the trigger was acted on).
    pub const SCHEDULED_AT: &str = "ambient-code.io/scheduled-at";
    /// On a session a pull-request command asked for, in its manifest: the
    /// pull request's head commit when it was asked. A follow-up is told the
    /// commits since (when its parent pushed none). Informational only, so
    /// it may be written in git.
    pub const PULL_REQUEST_HEAD: &str = "ambient-code.io/pull-request-head";
    /// On a request waiting for approval (under `pending/` of the requests
    /// branch, never applied): the comment it came from, `issues/<id>` or
    /// `pulls/<id>`.
    pub const REQUEST_COMMENT: &str = "ambient-code.io/request-comment";
    /// On a waiting request: when its comment was written (GitHub's clock);
    /// an approval covers only requests older than the approving comment.
    pub const REQUEST_CREATED: &str = "ambient-code.io/request-created";
    /// On a waiting request: SHA-256 of its comment's text when recorded; a
    /// comment edited since is dropped, not run.
    pub const REQUEST_DIGEST: &str = "ambient-code.io/request-digest";
    /// On a waiting request an approval dropped: why (edited, deleted).
    pub const REQUEST_DROPPED: &str = "ambient-code.io/request-dropped";
}

/// Who may write what [`is_reserved`] names: the admission policy
/// `acp-reserved-metadata` (`policies/reserved-metadata.yaml`) admits such
/// writes only from acp's controllers, known by their usernames (a policy
/// parameter) or, when git-sync applies as a source's ServiceAccount, by
/// this user-info extra on the impersonated identity.
pub mod impersonation {
    /// The extra git-sync sends (`Impersonate-Extra-…`) whenever it
    /// impersonates. Only an identity granted `impersonate` on
    /// `userextras/ambient-code.io/applied-by` (git-sync's ClusterRole) can
    /// send it; the API server lower-cases extra keys, so it is lower case.
    pub const APPLIED_BY: &str = "ambient-code.io/applied-by";
    /// Its value.
    pub const GIT_SYNC: &str = "git-sync";
}

/// Server-side apply field managers, one per writer, so ownership is visible in
/// `managedFields` and no component overwrites another's fields.
pub mod field_managers {
    /// The git-sync controller: owns exactly what manifests in git say.
    pub const GIT_SYNC: &str = "acp-git-sync";
    /// The operator: owns session children and the session `status`.
    pub const OPERATOR: &str = "acp-operator";
    /// The status bot: owns only its bookkeeping annotations.
    pub const STATUS_BOT: &str = "acp-status-bot";
    /// The operator's scheduler: creates (and stops) the sessions of a
    /// SessionSchedule and owns the schedule's `status`.
    pub const SCHEDULER: &str = "acp-scheduler";
    /// `acp` command-line tools that install CRDs and policies.
    pub const CLI: &str = "acp-cli";
}

/// Condition types used in `status.conditions`.
pub mod condition_types {
    /// Summary condition: the object is in its desired state.
    pub const READY: &str = "Ready";
    /// The runner's credentials Secret exists with every key it needs.
    pub const SECRETS_READY: &str = "SecretsReady";
    /// The session's workspace volume is provisioned.
    pub const WORKSPACE_READY: &str = "WorkspaceReady";
    /// The runner Job exists for the current generation.
    pub const JOB_CREATED: &str = "JobCreated";
    /// The runner container has started.
    pub const RUNNER_STARTED: &str = "RunnerStarted";
    /// The run ended successfully.
    pub const COMPLETED: &str = "Completed";
    /// The run ended in failure; the reason says why.
    pub const FAILED: &str = "Failed";
    /// kstatus: the controller is working towards the desired state.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the controller cannot make progress without a change.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons. CamelCase, stable, bounded: they are also event reasons
/// and metric labels.
pub mod reasons {
    /// Reconciliation succeeded.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Work is in progress.
    pub const PROGRESSING: &str = "Progressing";
    /// A referenced Secret or key is missing.
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// The session exceeded `spec.timeout`.
    pub const TIMEOUT: &str = "Timeout";
    /// The runner reported an agent error (exit code 1).
    pub const AGENT_ERROR: &str = "AgentError";
    /// The runner could not start its work (exit code 2).
    pub const PREREQUISITE_FAILED: &str = "PrerequisiteFailed";
    /// The runner was killed by a signal (exit code 143).
    pub const SIGNALED: &str = "Signaled";
    /// The runner exited with an unexpected code.
    pub const RUNNER_ERROR: &str = "RunnerError";
    /// The session was stopped on request.
    pub const STOPPED: &str = "Stopped";
    /// A newer spec generation replaced the run.
    pub const SUPERSEDED: &str = "Superseded";
    /// A recorded run's Job vanished before it reported a result.
    pub const RUN_LOST: &str = "RunLost";
    /// The runner image could not be pulled.
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// The runner keeps crashing.
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    /// No node can run the runner pod.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// git fetch failed.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// One or more manifests failed validation or apply.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The object is suspended.
    pub const SUSPENDED: &str = "Suspended";
    /// git-sync: some manifests are invalid (the valid ones were applied).
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// git-sync: the SessionSource itself is unusable (bad ignore pattern, ref).
    pub const INVALID_SOURCE: &str = "InvalidSource";
    /// A session waits for its parent session to finish.
    pub const QUEUED: &str = "Queued";
    /// Scheduler: the schedule or its time zone cannot be parsed.
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
    /// Scheduler: a run was created (event).
    pub const RUN_CREATED: &str = "RunCreated";
    /// Scheduler: a due run was skipped because one is active (Forbid).
    pub const RUN_SKIPPED: &str = "RunSkipped";
    /// Scheduler: an active run was stopped for a new one (Replace).
    pub const RUN_REPLACED: &str = "RunReplaced";
    /// Scheduler: due times passed without a run (downtime, deadline).
    pub const MISSED_SCHEDULE: &str = "MissedSchedule";
}

/// Default branch git-sync never applies from and the status bot writes to.
pub const DEFAULT_WRITE_BACK_BRANCH: &str = "acp/status";
/// Default directory (in the write-back branch) holding one file per session.
pub const DEFAULT_WRITE_BACK_PATH: &str = "status";
/// Branch the runner pushes a session's changes to: `ambient/<session-name>`.
pub const SESSION_BRANCH_PREFIX: &str = "ambient/";
/// Secret the operator reads model credentials from, per namespace (the
/// existing platform's name).
pub const RUNNER_SECRETS: &str = "ambient-runner-secrets";

/// The runner pod: what the operator builds and the runner, the operator's
/// observer and the dashboard's log reader rely on.
///
/// The pod has two containers. `credentials` (a native sidecar) holds the
/// model key and git credentials: it clones and pushes, opens pull requests,
/// and forwards model requests adding the key, on a loopback port only. The
/// `runner` container runs `acp runner` and the agent with none of them.
pub mod runner_pod {
    /// The container running `acp runner` and the agent.
    pub const RUNNER_CONTAINER: &str = "runner";
    /// The sidecar holding the credentials (`acp runner credentials`).
    pub const CREDENTIALS_CONTAINER: &str = "credentials";
    /// Where the sidecar listens: loopback, shared by the pod's containers
    /// and reachable from nowhere else.
    pub const CREDENTIALS_ADDR: &str = "127.0.0.1:4180";
    /// The same, as the base URL the runner and the agent use.
    pub const CREDENTIALS_URL: &str = "http://127.0.0.1:4180";
    /// Environment variable naming the sidecar to the runner.
    pub const CREDENTIALS_URL_ENV: &str = "ACP_CREDENTIALS_URL";
    /// `ANTHROPIC_API_KEY` as the agent sees it: not a key. The sidecar
    /// replaces it with the real one on the way out.
    pub const PROXIED_API_KEY: &str = "held-by-the-acp-credentials-sidecar";
    /// The NetworkPolicy limiting runner pods' egress, one per namespace.
    pub const EGRESS_POLICY: &str = "acp-runner-egress";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_to_acp_are_user_settable() {
        assert!(!is_reserved(annotations::DESIRED_PHASE));
        assert!(!is_reserved(annotations::TRIGGER_REQUESTED_AT));
        assert!(is_reserved(labels::SCHEDULE));
        for key in [
            "ambient-code.io/runner-secret",
            annotations::STATUS_BOT_STATE,
            annotations::SOURCE,
            labels::SOURCE_COMMIT,
            labels::SOURCE_NAME,
            "sub.ambient-code.io/x",
        ] {
            assert!(is_reserved(key), "{key}");
        }
        for key in ["app.kubernetes.io/name", "team", "example.com/ambient-code.io", "notambient-code.io/x"] {
            assert!(!is_reserved(key), "{key}");
        }
    }
}
