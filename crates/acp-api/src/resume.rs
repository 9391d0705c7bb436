//! How a follow-up session continues its thread: the runner contract's
//! `RESUME_JSON` variable, which the operator fills from the parent session
//! (annotation `vteam.ambient-code/parent-session-id`) when the run starts,
//! and the runner reads.
//!
//! The parent's Claude Code conversation is resumed (`--resume`) from the
//! parent's workspace when its transcript is still there. When it is gone,
//! the run starts fresh with the earlier turns' summaries, and says so.
//! Either way the agent is first told what changed on its branches since
//! the parent's turn. Nothing here is committed to git: the conversation id
//! and the transcript stay in the cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Environment variable carrying a [`Resume`] as JSON.
pub const RESUME_ENV: &str = "RESUME_JSON";
/// Most earlier turns a follow-up is told about (the newest are kept).
pub const MAX_TURNS: usize = 20;

/// What a follow-up continues.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    /// The parent session's name.
    pub parent: String,
    /// The conversation to resume: the Claude Code session id recorded by
    /// the turn whose workspace is `from` (`status.sdkSessionId`). Absent
    /// when that turn was stopped before recording one: the runner then
    /// resumes the newest conversation in that workspace (resuming keeps a
    /// conversation's id, so a thread has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Directory holding the agent home (its `.claude`) of the thread's
    /// latest turn that ran, as this run sees it; absent when no such
    /// workspace is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The session whose workspace `from` is: the parent, or, when the
    /// parent never ran (stopped while queued), the nearest earlier turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Per repository URL, the commit the parent's turn ended at (what it
    /// pushed, or else the pull request head it was asked at).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub since: BTreeMap<String, String>,
    /// The thread's earlier turns, oldest first (at most [`MAX_TURNS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<Turn>,
}

/// One earlier turn of a thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Turn {
    /// The session.
    pub session: String,
    /// What it reported (its result summary), or why there is none.
    pub summary: String,
}

/// Whether `id` can be a Claude Code session id: it names a file, so only
/// letters, digits, `-` and `_`, at most 128 characters.
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_path_like_ids() {
        let resume = Resume {
            parent: "webapp-pr7-1".into(),
            session_id: Some("ed87fe7a-7a9b-4dc6-92c4-eb84f509a785".into()),
            from: Some("/resume/.acp/home".into()),
            workspace: Some("webapp-pr7-1".into()),
            since: [("http://git/app.git".to_owned(), "abc".to_owned())].into(),
            turns: vec![Turn { session: "webapp-pr7-1".into(), summary: "Done.".into() }],
        };
        let text = serde_json::to_string(&resume).expect("json");
        assert!(text.contains("\"sessionId\"") && text.contains("\"from\""), "{text}");
        assert_eq!(serde_json::from_str::<Resume>(&text).expect("parse"), resume);
        assert!(valid_session_id("ed87fe7a-7a9b-4dc6-92c4-eb84f509a785"));
        for bad in ["", "../x", "a/b", "a.jsonl", &"a".repeat(129)] {
            assert!(!valid_session_id(bad), "{bad}");
        }
    }
}
