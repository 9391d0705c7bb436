//! The status bot's record of what it has done for a session, kept in the
//! session's `ambient-code.io/status-bot` annotation: the wire format between
//! the status bot (its only writer) and readers such as the dashboard (which
//! links the pull request it found).

use serde::{Deserialize, Serialize};

/// What the bot has done for one session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotState {
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

    /// The pull request the session came with, if any.
    pub fn pull_request(&self) -> Option<u64> {
        self.pull.filter(|n| *n > 0)
    }
}
