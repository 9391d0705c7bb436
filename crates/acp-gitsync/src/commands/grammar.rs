//! The pull-request command grammar, without I/O: which lines of a comment
//! are commands to acp, and what they ask.
//!
//! A command is a line that starts with `/acp <verb>` or `@acp <text>` (up to
//! three spaces of indentation, as Markdown allows before a paragraph).
//! Only what GitHub shows as text counts: quoted lines (`>`), fenced code
//! blocks, indented code and HTML comments are never commands, so quoting
//! someone's `/acp run`, or pasting text that holds one into a code block,
//! must not run it. The text of a prompt (after `/acp run … --`, or after
//! `@acp`) runs to the next command line or the end of the comment,
//! verbatim but for its HTML comments: what GitHub does not show must not
//! run.
//!
//! Fenced code blocks follow CommonMark: three or more backticks or tildes
//! indented at most three spaces open one (a backtick fence's info string
//! holds no backtick); only a fence of the same character, at least as long,
//! indented at most three spaces and followed by nothing but blanks closes
//! it; an unclosed one runs to the end of the comment. A fence that is the
//! first thing of a list item (`` - ``` ``) ends with the item. Where acp
//! cannot tell without following lists, it errs towards code: a closing
//! fence less indented than its opening fence is read as opening another,
//! as it does after a list item ends. An HTML comment runs from `<!--`
//! anywhere outside code to the next `-->` (or the end of the comment), even
//! where GitHub would show a lone `<!--` as text: hiding a command that shows
//! is safe, running one that does not is not.

use std::borrow::Cow;
use std::fmt;

/// Verbs of `/acp`, as `/acp help` lists them.
pub const VERBS: &[&str] = &["run", "stop", "retry", "status", "help", "approve"];

/// Longest accepted `--timeout` (a day).
const MAX_TIMEOUT_SECONDS: i64 = 86_400;

/// One command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `/acp run [--model M] [--max-turns N] [--timeout 20m] [-- prompt]`.
    Run(RunFlags),
    /// `@acp <text>`: continue the thread's last session with `text`.
    FollowUp(String),
    /// `/acp stop`.
    Stop,
    /// `/acp retry`.
    Retry,
    /// `/acp status`.
    Status,
    /// `/acp help`.
    Help,
    /// `/acp approve [<commit>]` (a maintainer lets the waiting requests
    /// run at the commit they reviewed; without one, acp asks for it).
    Approve(Option<String>),
}

impl Command {
    /// The verb, for roles, trailers and metrics (`follow-up` for `@acp`).
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::FollowUp(_) => "follow-up",
            Self::Stop => "stop",
            Self::Retry => "retry",
            Self::Status => "status",
            Self::Help => "help",
            Self::Approve(_) => "approve",
        }
    }

    /// Whether the command changes anything (and so becomes a commit).
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Run(_) | Self::FollowUp(_) | Self::Stop | Self::Retry | Self::Approve(_))
    }
}

/// The flags of `/acp run`; the binding caps them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFlags {
    /// `--model`.
    pub model: Option<String>,
    /// `--max-turns`.
    pub max_turns: Option<i64>,
    /// `--timeout`, in seconds.
    pub timeout_seconds: Option<i64>,
    /// The prompt after `--`.
    pub prompt: Option<String>,
}

/// A command line that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line in the comment.
    pub line: usize,
    /// What is wrong, with what to write instead.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A command and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// 1-based line in the comment.
    pub line: usize,
    /// The command line as written (trimmed), to tell edits apart.
    pub text: String,
    /// The command, or why it does not parse.
    pub command: Result<Command, ParseError>,
}

/// Every command of `body`, in order.
pub fn parse(body: &str) -> Vec<Found> {
    let lines = read(body);
    let starts: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.command).map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let end = starts.get(k + 1).copied().unwrap_or(lines.len());
            let line = lines[i].shown.as_deref().unwrap_or_default().trim();
            let rest: Vec<&str> = lines[i + 1..end].iter().filter_map(|l| l.shown.as_deref()).collect();
            Found { line: i + 1, text: line.to_owned(), command: command(line, &rest, i + 1) }
        })
        .collect()
}

/// The commands of an edited comment that its previous text did not have: an
/// edit counts only when it newly adds a command.
pub fn added(before: &str, after: &str) -> Vec<Found> {
    let old: Vec<String> = parse(before).into_iter().map(|f| f.text).collect();
    parse(after).into_iter().filter(|f| !old.contains(&f.text)).collect()
}

/// One line of a comment, as GitHub shows it.
struct Line<'a> {
    /// The line without its HTML comments; `None` when they hide all of it.
    shown: Option<Cow<'a, str>>,
    /// Whether the line starts a command.
    command: bool,
}

/// An open fenced code block.
#[derive(Clone, Copy)]
struct Fence {
    /// `` ` `` or `~`.
    marker: u8,
    /// How many of them opened it (a closing fence has at least as many).
    len: usize,
    /// The column of the opening fence.
    indent: usize,
    /// The content column of the list item the fence opened in, 0 outside one.
    column: usize,
}

/// The lines of `body`, each with what GitHub shows of it and whether it
/// starts a command.
fn read(body: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut fence: Option<Fence> = None;
    let mut comment = false;
    for raw in body.lines() {
        let (indent, text) = indentation(raw, 0);
        if let Some(open) = fence {
            // A line less indented than its list item's content ends the item
            // and its fence. A closing fence less indented than the opening
            // one may do the same after a list item acp does not follow, and
            // then opens a fence of its own: both are read afresh.
            let ended = !text.is_empty() && indent < open.column;
            let closes = (open.column..=open.column + 3).contains(&indent) && closing(text, open);
            let reread = ended || closes && indent < open.indent;
            if closes || reread {
                fence = None;
            }
            if !reread {
                lines.push(Line { shown: Some(raw.into()), command: false });
                continue;
            }
        }
        if !comment
            && indent <= 3
            && let Some(open) = opening(indent, text)
        {
            fence = Some(open);
            lines.push(Line { shown: Some(raw.into()), command: false });
            continue;
        }
        let hidden = comment;
        let (shown, open) = uncomment(raw, comment);
        comment = open;
        let command = !hidden && indent <= 3 && !text.starts_with('>') && head(text).is_some();
        let shown = (!shown.trim().is_empty() || !hidden && raw.trim().is_empty()).then_some(shown);
        lines.push(Line { shown, command });
    }
    lines
}

/// The column `text` reaches after its leading blanks when it starts at
/// `column` (a tab moves to the next multiple of four), and the rest of it.
fn indentation(text: &str, mut column: usize) -> (usize, &str) {
    for (i, c) in text.char_indices() {
        match c {
            ' ' => column += 1,
            '\t' => column += 4 - column % 4,
            _ => return (column, &text[i..]),
        }
    }
    (column, "")
}

/// The fence `text` (at column `indent`) opens: three or more backticks
/// (with no backtick in the info string after them) or tildes, possibly as
/// the first thing of a list item (`` - ``` `` or `1. ~~~`).
fn opening(indent: usize, text: &str) -> Option<Fence> {
    let (mut indent, mut text, mut column) = (indent, text, 0);
    loop {
        let marker = text.bytes().next().filter(|b| matches!(b, b'`' | b'~'));
        if let Some(marker) = marker {
            let len = text.bytes().take_while(|&b| b == marker).count();
            let info = &text[len..];
            return (len >= 3 && (marker == b'~' || !info.contains('`'))).then_some(Fence {
                marker,
                len,
                indent,
                column,
            });
        }
        // A list item whose content is one to four columns after its marker.
        let width = list_marker(text)?;
        let (content, rest) = indentation(&text[width..], indent + width);
        if !(1..=4).contains(&(content - indent - width)) || rest.is_empty() {
            return None;
        }
        (indent, text, column) = (content, rest, content);
    }
}

/// The width of the list marker `text` starts with: `-`, `+`, `*`, or one to
/// nine digits and `.` or `)`.
fn list_marker(text: &str) -> Option<usize> {
    if text.starts_with(['-', '+', '*']) {
        return Some(1);
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    ((1..=9).contains(&digits) && text[digits..].starts_with(['.', ')'])).then_some(digits + 1)
}

/// Whether `text` (indentation removed) closes `fence`: the same character,
/// at least as many, then nothing but spaces or tabs.
fn closing(text: &str, fence: Fence) -> bool {
    let len = text.bytes().take_while(|&b| b == fence.marker).count();
    len >= fence.len && text[len..].trim_start_matches([' ', '\t']).is_empty()
}

/// `line` without its HTML comments (`<!-- … -->`, which GitHub does not
/// show), starting inside one when `open`; and whether one is still open at
/// its end (it then runs on to the next `-->`, or the end of the comment).
fn uncomment(line: &str, mut open: bool) -> (Cow<'_, str>, bool) {
    if !open && !line.contains("<!--") {
        return (line.into(), false);
    }
    let (mut shown, mut rest) = (String::new(), line);
    loop {
        if open {
            let Some(end) = rest.find("-->") else { return (shown.into(), true) };
            (rest, open) = (&rest[end + 3..], false);
        } else {
            let Some(start) = rest.find("<!--") else {
                shown.push_str(rest);
                return (shown.into(), false);
            };
            shown.push_str(&rest[..start]);
            (rest, open) = (&rest[start + 4..], true);
        }
    }
}

/// `("/acp", rest)` or `("@acp", rest)` when `line` is a command line.
fn head(line: &str) -> Option<(&'static str, &str)> {
    for prefix in ["/acp", "@acp"] {
        if let Some(rest) = line.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return Some((prefix, rest.trim()));
        }
    }
    None
}

fn command(line: &str, rest: &[&str], at: usize) -> Result<Command, ParseError> {
    let error = |message: String| ParseError { line: at, message };
    let Some((prefix, args)) = head(line) else { return Err(error("not a command".into())) };
    let body = |first: &str| {
        let mut text = first.trim().to_owned();
        for l in rest {
            text.push('\n');
            text.push_str(l);
        }
        let text = text.trim().to_owned();
        (!text.is_empty()).then_some(text)
    };
    if prefix == "@acp" {
        return body(args).map(Command::FollowUp).ok_or_else(|| {
            error("@acp needs a request after it, e.g. \"@acp also update the changelog\"".into())
        });
    }
    let (verb, flags) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    match verb {
        "" => Err(error(format!("/acp needs a command: {}; try /acp help", VERBS.join(", ")))),
        "run" => run_flags(flags, &body).map(Command::Run).map_err(error),
        "approve" => match flags.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] => Ok(Command::Approve(None)),
            // The whole id: a short prefix can be matched by a commit made
            // to collide with it and pushed after the review.
            [commit] if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Command::Approve(Some(commit.to_ascii_lowercase())))
            }
            _ => Err(error(format!(
                "/acp approve takes the whole id (40 hex digits) of the commit you reviewed, e.g. /acp approve 1a2b…(40) (found {:?})",
                flags.trim()
            ))),
        },
        "stop" | "retry" | "status" | "help" if !flags.trim().is_empty() => {
            Err(error(format!("/acp {verb} takes no arguments (found {:?})", flags.trim())))
        }
        "stop" => Ok(Command::Stop),
        "retry" => Ok(Command::Retry),
        "status" => Ok(Command::Status),
        "help" => Ok(Command::Help),
        other => {
            let hint = closest(other).map(|v| format!("; did you mean /acp {v}?")).unwrap_or_default();
            Err(error(format!("unknown command /acp {other}{hint} (commands: {})", VERBS.join(", "))))
        }
    }
}

fn run_flags(flags: &str, body: &impl Fn(&str) -> Option<String>) -> Result<RunFlags, String> {
    // The first `--` standing alone (not the start of `--model`) ends the flags.
    let separator = flags.match_indices("--").map(|(i, _)| i).find(|&i| {
        let (before, after) = (&flags[..i], &flags[i + 2..]);
        (before.is_empty() || before.ends_with(char::is_whitespace))
            && (after.is_empty() || after.starts_with(char::is_whitespace))
    });
    let (flags, prompt) = match separator {
        Some(i) => (&flags[..i], body(&flags[i + 2..])),
        None => (flags, body("")),
    };
    let mut out = RunFlags { prompt, ..RunFlags::default() };
    let mut words = flags.split_whitespace();
    while let Some(flag) = words.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        let mut value = || {
            inline
                .map(str::to_owned)
                .or_else(|| words.next().map(str::to_owned))
                .ok_or(format!("{name} needs a value"))
        };
        match name {
            "--model" => out.model = Some(value()?),
            "--max-turns" => {
                let text = value()?;
                let n: i64 = text.parse().map_err(|_| format!("--max-turns {text:?} is not a number"))?;
                if n < 1 {
                    return Err(format!("--max-turns must be at least 1, not {n}"));
                }
                out.max_turns = Some(n);
            }
            "--timeout" => {
                let text = value()?;
                out.timeout_seconds = Some(duration(&text)?);
            }
            other if other.starts_with('-') => {
                return Err(format!(
                    "unknown flag {other} for /acp run (flags: --model, --max-turns, --timeout; the prompt follows --)"
                ));
            }
            other => {
                return Err(format!(
                    "unexpected {other:?}: put the prompt after --, e.g. /acp run -- {other} …"
                ));
            }
        }
    }
    Ok(out)
}

/// `90`, `90s`, `20m`, `2h` → seconds.
fn duration(text: &str) -> Result<i64, String> {
    let bad = || format!("--timeout {text:?} is not a duration like 90s, 20m or 2h");
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(bad()),
    };
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
        return Err(format!("--timeout must be between 1s and 24h, not {text}"));
    }
    Ok(seconds)
}

/// The verb closest to `word` (edit distance at most 2).
fn closest(word: &str) -> Option<&'static str> {
    VERBS.iter().map(|v| (distance(word, v), *v)).filter(|(d, _)| *d <= 2).min().map(|(_, v)| v)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
