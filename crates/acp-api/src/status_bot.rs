//! The status bot's record of what it has done for a session, kept in the
//! session's `ambient-code.io/status-bot` annotation: the wire format between
//! the status bot (its only writer) and readers such as the dashboard (which
//! links the pull request it found).

use serde::{Deserialize, Serialize};

/// What the bot has done for one run of a session, from one commit (and so
/// for one pull request): a new run, or the same session brought in again by
/// another commit, starts a fresh state, so it never edits the comment or
/// re-uses the statuses of another run's pull request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotState {
    /// The run this state is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// The commit the run came from (git-sync's `source-commit` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Pull request number; 0 when the commit came without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<u64>,
    /// The comment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<u64>,
    /// Digest of the comment body last posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted: Option<String>,
    /// When it was posted (seconds since the epoch), for debouncing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_at: Option<u64>,
    /// Commit status state last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Digest of the status file last written back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
}

impl BotState {
    /// The state in an annotation's value; `None` when absent or unreadable.
    pub fn parse(annotation: &str) -> Option<Self> {
        serde_json::from_str(annotation).ok()
    }

    /// The state to go on from for run `run` from `commit`: this one if it
    /// is theirs (or was written before states were keyed by run), else a
    /// fresh one.
    pub fn for_run(&self, run: i64, commit: &str) -> Self {
        let legacy = self.run.is_none() && self.commit.is_none();
        if legacy || (self.run == Some(run) && self.commit.as_deref() == Some(commit)) {
            return Self { run: Some(run), commit: Some(commit.to_owned()), ..self.clone() };
        }
        Self { run: Some(run), commit: Some(commit.to_owned()), ..Self::default() }
    }

    /// The pull request the session came with, if any.
    pub fn pull_request(&self) -> Option<u64> {
        self.pull.filter(|n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_goes_on_for_its_run_and_commit_and_starts_afresh_otherwise() {
        let done = BotState {
            run: Some(1),
            commit: Some("c1".into()),
            pull: Some(7),
            comment: Some(41),
            posted: Some("d".into()),
            posted_at: Some(5),
            status: Some("success".into()),
            written: Some("w".into()),
        };
        assert_eq!(done.for_run(1, "c1"), done);
        for (run, commit) in [(2, "c1"), (1, "c2"), (2, "c2")] {
            let fresh = done.for_run(run, commit);
            assert_eq!(fresh.run, Some(run));
            assert_eq!(fresh.commit.as_deref(), Some(commit));
            assert_eq!((fresh.pull, fresh.comment, fresh.status, fresh.written), (None, None, None, None));
        }
        // A state from before run keys is adopted, not re-posted.
        let legacy = BotState { pull: Some(7), comment: Some(41), ..BotState::default() };
        let adopted = legacy.for_run(1, "c1");
        assert_eq!((adopted.pull, adopted.comment), (Some(7), Some(41)));
        assert_eq!(adopted.run, Some(1));
    }
}
