//! Agent output in a pull-request comment, neutralised: the `agent` template
//! filter.
//!
//! What a session reports (its summary, error, messages, todo list, branches
//! and links) may come from an agent steered by hostile code, so the bot's
//! comment must show it as text and nothing more: no mention that notifies
//! a user or team, no link, autolink or issue reference, no image, no raw
//! HTML, no fake text that passes for the bot's own. GitHub renders none of
//! these inside code, so the text goes into a code block (`{{ text | agent
//! }}`) or, for a short field within a line, a code span (`{{ text |
//! agent("inline") }}`), delimited by a run of backticks longer than any in
//! the text so that it cannot close it. The text is also cleaned: terminal
//! escape sequences, control characters (but newlines and tabs in a block)
//! and bidirectional overrides are removed, and `<!--` is broken with a
//! zero-width space, so that no hidden marker (`<!-- acp:thread … -->`)
//! appears in the comment's source to mislead the bot's comment lookup.
//! The text handling is `acp_github::markdown`'s, which git-sync's replies
//! share.
//!
//! A code span must not sit in a table cell: GFM splits cells at `|` even
//! inside code.

use minijinja::{Error, ErrorKind, Value};

/// The filter's name in templates.
pub const FILTER: &str = "agent";

/// The `agent` filter: `text` as a fenced code block, or as a code span on
/// one line with the argument `"inline"`. Undefined or none renders nothing.
pub fn filter(value: &Value, mode: Option<&str>) -> Result<Value, Error> {
    use acp_github::markdown::{code_block, code_span};
    let text = match value.as_str() {
        Some(text) => text.to_owned(),
        None if value.is_undefined() || value.is_none() => String::new(),
        None => value.to_string(),
    };
    let shown = match mode {
        None | Some("block") => code_block(&text, ""),
        Some("inline") => code_span(&text),
        Some(other) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("the agent filter shows text as a \"block\" or \"inline\", not {other:?}"),
            ));
        }
    };
    Ok(Value::from_safe_string(shown))
}
