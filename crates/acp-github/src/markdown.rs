//! Text that someone else wrote (an agent's output, a request's prompt),
//! made inert for a GitHub comment written under acp's name: inside a
//! fenced code block (or an inline code span) GitHub renders no Markdown,
//! no @-mention, no autolink, no issue reference and no HTML. The fence is
//! longer than any run of backticks in the text, so the text cannot close
//! it (CommonMark); acp's hidden markers, terminal escape sequences,
//! control characters and bidirectional overrides are taken out first.

/// `text` as a fenced code block (with `info`, e.g. `text`), its fence a
/// backtick longer than the longest run of backticks in it (at least
/// three), so nothing in it can close it; nothing when it is blank.
pub fn code_block(text: &str, info: &str) -> String {
    let text = clean(text);
    let text = text.trim_matches('\n');
    if text.trim().is_empty() {
        return String::new();
    }
    let fence = "`".repeat(longest_backticks(text).max(2) + 1);
    format!("{fence}{info}\n{text}\n{fence}")
}

/// `text` on one line (newlines and tabs become spaces) as a code span, its
/// delimiters a backtick longer than the longest run of backticks in it,
/// padded with a space where it starts or ends with one; nothing when it is
/// blank.
pub fn code_span(text: &str) -> String {
    let text = clean(text).replace(['\n', '\t'], " ");
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let ticks = "`".repeat(longest_backticks(text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// Characters GitHub renders as nothing: bidirectional embeddings,
/// overrides and isolates, zero-width characters, the soft hyphen, the
/// byte-order mark and Unicode tag characters (which can spell whole words
/// no reader sees).
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}')
}

/// `text` without what GitHub renders as nothing ([`invisible`]): what a
/// reader of a comment cannot see must not reach a prompt.
pub fn visible(text: &str) -> String {
    text.chars().filter(|c| !invisible(*c)).collect()
}

/// `text` without terminal escape sequences, control characters other than
/// newline and tab, and [`invisible`] characters; with `<!--` broken by a
/// zero-width space.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\u{1b}' => match chars.next_if(|c| matches!(c, ' '..='~')) {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Intermediate bytes, then the final one.
                Some(' '..='/') => {
                    while chars.next_if(|c| matches!(c, ' '..='/')).is_some() {}
                    chars.next_if(|c| matches!(c, '0'..='~'));
                }
                // A single final byte, already skipped.
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if invisible(c) => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.replace("<!--", "<!-\u{200b}-")
}

/// Skips a control sequence's parameter and intermediate bytes and its final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| matches!(c, ' '..='?')).is_some() {}
    chars.next_if(|c| matches!(c, '@'..='~'));
}

/// Skips an operating system command or other control string, to its
/// terminator (BEL, `ESC \` or ST).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

/// The length of the longest run of backticks in `text`.
fn longest_backticks(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_in_the_text() {
        let hostile = "done\n````\n@acme/security approved <img src=x> https://evil.example #1\n```";
        let block = code_block(hostile, "text");
        assert!(block.starts_with("`````text\n"), "{block}");
        assert!(block.ends_with("\n`````"), "{block}");
        assert_eq!(block.matches("`````").count(), 2, "{block}");
        assert_eq!(code_block("plain", ""), "```\nplain\n```");
        assert_eq!(code_block(" \n", "text"), "", "nothing to show");
    }

    #[test]
    fn markers_and_control_characters_are_taken_out() {
        let text =
            "a <!-- acp:thread acme/webapp#9 --> \u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}x\u{0}y\r\n\tz";
        let cleaned = clean(text);
        assert!(!cleaned.contains("<!--"), "{cleaned:?}");
        assert!(!cleaned.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{cleaned:?}");
        assert!(cleaned.contains("red") && cleaned.contains("xy\n\tz"), "{cleaned:?}");
    }

    #[test]
    fn invisible_characters_are_taken_out() {
        let tagged: String = "run"
            .chars()
            .chain("hidden".chars().map(|c| char::from_u32(0xe0000 + c as u32).unwrap_or(c)))
            .collect();
        assert_eq!(visible(&tagged), "run");
        assert_eq!(visible("a\u{200b}b\u{feff}c\u{202e}d"), "abcd");
        assert!(!clean(&tagged).contains('\u{e0068}'));
    }

    #[test]
    fn a_span_holds_backticks_and_stays_on_one_line() {
        assert_eq!(code_span("a `b` c"), "``a `b` c``");
        assert_eq!(code_span("`x`"), "`` `x` ``");
        assert_eq!(code_span("one\ntwo"), "`one two`");
    }
}
