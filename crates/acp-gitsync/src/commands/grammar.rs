//! The pull-request command grammar, without I/O: which lines of a comment
//! are commands to acp, and what they ask.
//!
//! A command is a line that starts with `/acp <verb>` or `@acp <text>` (up to
//! three spaces of indentation, as Markdown allows before a paragraph).
//! Quoted lines (`>`), fenced code blocks and indented code are never
//! commands: quoting someone's `/acp run` must not run it again. The text of
//! a prompt (after `/acp run … --`, or after `@acp`) runs to the next command
//! line or the end of the comment, verbatim.

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
    /// `/acp approve` (a maintainer lets a waiting request run).
    Approve,
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
            Self::Approve => "approve",
        }
    }

    /// Whether the command changes anything (and so becomes a commit).
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Run(_) | Self::FollowUp(_) | Self::Stop | Self::Retry | Self::Approve)
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
    let lines: Vec<&str> = body.lines().collect();
    let mut starts = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, raw) in lines.iter().enumerate() {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let line = raw.trim_start_matches(' ');
        if let Some(open) = fence {
            if indent < 4 && line.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if indent < 4 {
            if line.starts_with("```") {
                fence = Some("```");
                continue;
            }
            if line.starts_with("~~~") {
                fence = Some("~~~");
                continue;
            }
        }
        if indent >= 4 || raw.starts_with('\t') || line.starts_with('>') {
            continue;
        }
        if head(line).is_some() {
            starts.push(i);
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let end = starts.get(k + 1).copied().unwrap_or(lines.len());
            let line = lines[i].trim();
            let rest: Vec<&str> = lines[i + 1..end].to_vec();
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
        "stop" | "retry" | "status" | "help" | "approve" if !flags.trim().is_empty() => {
            Err(error(format!("/acp {verb} takes no arguments (found {:?})", flags.trim())))
        }
        "stop" => Ok(Command::Stop),
        "retry" => Ok(Command::Retry),
        "status" => Ok(Command::Status),
        "help" => Ok(Command::Help),
        "approve" => Ok(Command::Approve),
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
