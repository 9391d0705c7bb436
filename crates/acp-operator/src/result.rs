//! Reading the runner's result back from its termination message.
//!
//! The message is the runner's `SessionResult` JSON. With
//! `terminationMessagePolicy: FallbackToLogsOnError`, a runner that died
//! before writing it leaves the tail of its log instead, whose last complete
//! `{"event":"result",…}` line is used. Anything else is reported, bounded,
//! never a crash.

use acp_api::session::SessionResult;

/// Longest message accepted (Kubernetes caps it at 4 KiB; allow slack).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Parses a termination message.
pub fn parse(message: &str) -> Result<SessionResult, String> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(format!("termination message too large ({} bytes)", message.len()));
    }
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Err("the runner wrote no result".into());
    }
    if let Ok(result) = serde_json::from_str::<SessionResult>(trimmed) {
        return Ok(bound(result));
    }
    if let Some(result) = acp_api::progress::last_result(&trimmed.lines().collect::<Vec<_>>()) {
        return Ok(bound(result));
    }
    let start: String = trimmed.chars().take(200).collect();
    Err(format!("malformed termination message: {start}"))
}

fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Applies the CRD's bounds, so a status write never fails validation.
fn bound(mut result: SessionResult) -> SessionResult {
    result.summary = result.summary.map(|s| cut(s, 4000));
    result.error = result.error.map(|s| cut(s, 4000));
    result.sdk_session_id = result.sdk_session_id.map(|s| cut(s, 250));
    result.pushed_branches.truncate(32);
    result.pull_requests.truncate(32);
    result
}

#[cfg(test)]
mod tests {
    use acp_api::session::RunOutcome;

    use super::*;

    #[test]
    fn reads_the_json_document() {
        let result = parse(r#"{"outcome":"success","summary":"done","numTurns":3}"#).expect("valid");
        assert_eq!(result.outcome, Some(RunOutcome::Success));
        assert_eq!(result.num_turns, Some(3));
    }

    #[test]
    fn falls_back_to_the_last_result_line_of_the_log() {
        let log = "{\"event\":\"text\",\"text\":\"hi\"}\n{\"event\":\"result\",\"result\":{\"outcome\":\"agentError\",\"error\":\"boom\"}}\n";
        let result = parse(log).expect("found in log");
        assert_eq!(result.error.as_deref(), Some("boom"));
    }

    #[test]
    fn malformed_and_oversized_messages_are_errors_not_panics() {
        assert!(parse("").expect_err("empty").contains("no result"));
        assert!(parse("segfault at 0x0").expect_err("garbage").starts_with("malformed termination message"));
        assert!(parse(&"x".repeat(MAX_MESSAGE_BYTES + 1)).expect_err("big").contains("too large"));
    }
}
