//! The run's result document and its bounded termination message.
//!
//! The result is [`acp_api::session::SessionResult`], the same type the
//! operator copies into `status.result`. The full JSON goes to the workspace;
//! the termination message is the same document cut to fit Kubernetes' 4 KiB
//! limit: long texts are shortened on UTF-8 boundaries, then lists, never
//! producing invalid JSON.

use acp_api::session::SessionResult;

/// Kubernetes' limit on a container's termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;
/// Bound on `summary` and `error` in the stored result.
pub const TEXT_LIMIT: usize = 4096;
const ELLIPSIS: &str = "…";

/// `text` cut to at most `max` bytes on a char boundary, with `…` when cut.
pub fn truncate_utf8(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let budget = max.saturating_sub(ELLIPSIS.len());
    let mut end = budget.min(text.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end])
}

/// Applies [`TEXT_LIMIT`] to the free-text fields.
pub fn bound(mut result: SessionResult) -> SessionResult {
    result.summary = result.summary.map(|s| truncate_utf8(&s, TEXT_LIMIT));
    result.error = result.error.map(|s| truncate_utf8(&s, TEXT_LIMIT));
    result
}

/// The result as JSON of at most `limit` bytes.
///
/// Reductions, in order, until it fits: keep at most 8 pushed branches and pull
/// requests; shorten summary and error (the longer first) down to 256 bytes
/// each; drop list items; shorten the texts further; drop the ids and usage.
pub fn termination_message(result: &SessionResult, limit: usize) -> String {
    let mut result = result.clone();
    let fits = |r: &SessionResult| {
        let json = serde_json::to_string(r).unwrap_or_else(|_| "{}".to_owned());
        (json.len() <= limit).then_some(json)
    };
    if let Some(json) = fits(&result) {
        return json;
    }
    result.pushed_branches.truncate(8);
    result.pull_requests.truncate(8);
    for floor in [256, 0] {
        while let Some(over) = overflow(&result, limit) {
            if !shrink_longer_text(&mut result, over, floor) {
                break;
            }
        }
        if let Some(json) = fits(&result) {
            return json;
        }
        while overflow(&result, limit).is_some()
            && (result.pull_requests.pop().is_some() || result.pushed_branches.pop().is_some())
        {}
    }
    result.sdk_session_id = None;
    result.usage = None;
    fits(&result).unwrap_or_else(|| "{}".to_owned())
}

fn overflow(result: &SessionResult, limit: usize) -> Option<usize> {
    let len = serde_json::to_string(result).map_or(usize::MAX, |j| j.len());
    len.checked_sub(limit).filter(|over| *over > 0)
}

/// Shortens the longer of summary and error by about `over` bytes (JSON
/// escaping can make a text longer than its byte count, so a little more), but
/// not below `floor`. Returns false when neither can shrink.
fn shrink_longer_text(result: &mut SessionResult, over: usize, floor: usize) -> bool {
    let summary_len = result.summary.as_ref().map_or(0, String::len);
    let error_len = result.error.as_ref().map_or(0, String::len);
    let field = if summary_len >= error_len { &mut result.summary } else { &mut result.error };
    let Some(text) = field.as_ref() else { return false };
    if text.len() <= floor {
        return false;
    }
    let keep = text.len().saturating_sub(over + 16).min(text.len() * 3 / 4).max(floor);
    *field = if keep == 0 { None } else { Some(truncate_utf8(text, keep)) };
    true
}

#[cfg(test)]
mod tests {
    use acp_api::session::{PushedBranch, RunOutcome};

    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_utf8("hello", 10), "hello");
        let cut = truncate_utf8("ééééé", 6); // 10 bytes; … is 3 bytes
        assert_eq!(cut, "é…");
        assert!(cut.len() <= 6);
    }

    #[test]
    fn small_results_are_untouched() {
        let result = SessionResult { summary: Some("done".into()), ..Default::default() };
        let json = termination_message(&result, TERMINATION_MESSAGE_LIMIT);
        let back: SessionResult = serde_json::from_str(&json).expect("valid json");
        assert_eq!(back, result);
    }

    #[test]
    fn oversized_results_fit_and_stay_valid_json() {
        let result = SessionResult {
            outcome: Some(RunOutcome::Success),
            summary: Some("ü\"\\\n".repeat(3000)),
            error: Some("é".repeat(3000)),
            pushed_branches: (0..40)
                .map(|i| PushedBranch {
                    repo: format!("https://h/r{i}"),
                    branch: "ambient/x".into(),
                    commit: "a".repeat(40),
                })
                .collect(),
            pull_requests: (0..40).map(|i| format!("https://h/pull/{i}")).collect(),
            ..Default::default()
        };
        for limit in [TERMINATION_MESSAGE_LIMIT, 1024, 200] {
            let json = termination_message(&result, limit);
            assert!(json.len() <= limit, "{} > {limit}", json.len());
            let back: SessionResult = serde_json::from_str(&json).expect("valid json");
            assert_eq!(back.outcome, Some(RunOutcome::Success));
        }
        let json = termination_message(&result, TERMINATION_MESSAGE_LIMIT);
        let back: SessionResult = serde_json::from_str(&json).expect("valid json");
        assert!(back.summary.is_some_and(|s| s.ends_with('…')), "summary kept, shortened");
    }
}
