//! Cron schedules in a time zone: parsing (with a message a person can act
//! on) and due times, on [`croner`] and the IANA database of [`chrono_tz`].
//!
//! Standard five-field expressions only (no seconds, no year), as CronJob
//! reads them; day-of-month and day-of-week match when either does. Daylight
//! saving follows croner (the Open Cron Pattern Specification): a local time
//! skipped by a jump forward runs at the jump, one repeated by a jump back
//! runs once. Due times are whole minutes, as [`Timestamp`]s.
//!
//! The syntax is checked here before croner sees it, field by field (a
//! number, a name, `*`, `?`, a range `a-b`, a list `a,b` and a step `/n`),
//! and the CRD's `x-kubernetes-validations` ([`super::rules::schedule_rules`],
//! [`super::rules::time_zone_rules`]) check the very same grammar and zone list on the API
//! server and in `acp validate`: a schedule the server admits is one the
//! operator can follow.

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use k8s_openapi::jiff::Timestamp;

/// The most due times counted between two instants (CronJob's limit is 100).
pub const MAX_COUNTED: u32 = 1000;

/// What to write instead of a schedule of the wrong shape.
pub(super) const SHAPE_HINT: &str = "use five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1-5\", or a macro: @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly";

/// Why a schedule or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression is not a valid five-field cron expression or macro.
    #[error("invalid schedule {schedule:?}: {reason}")]
    Schedule {
        /// The expression.
        schedule: String,
        /// Every reason, `; `-separated, each naming the field at fault
        /// and its range (`minute 61 is out of range 0-59`).
        reason: String,
    },
    /// The time zone is not in the IANA database.
    #[error("unknown time zone {zone:?}: use an IANA name such as \"Europe/Paris\" or \"America/New_York\"")]
    TimeZone {
        /// The name given.
        zone: String,
    },
}

/// The separators between fields (and around them): space, tab, CR, LF.
pub(super) const SPACE_CLASS: &str = r"[ \t\n\r]";

/// A field's characters: printable ASCII but space.
pub(super) const TOKEN_CLASS: &str = "[!-~]";

/// Macros (after `@`, any case); `midnight` is `daily`, `annually` is `yearly`.
pub(super) const MACROS: [&str; 7] =
    ["yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"];

/// Why a schedule with `TZ=` or `CRON_TZ=` is refused.
pub(super) const ZONE_INSIDE: &str = "a time zone inside the schedule is not supported; set spec.timeZone";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// One of the five fields: its name in messages, its range, the names it
/// accepts (any case) and whether `?` stands for `*`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) min: u32,
    pub(super) max: u32,
    /// Names of the values `min`, `min + 1`, ... (`SUN` is 0; at the end
    /// of a range it is 7, as croner reads `-SUN`).
    pub(super) names: &'static [&'static str],
    pub(super) question: bool,
}

/// The five fields, in order.
pub(super) const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[], question: false },
    Field { name: "hour", min: 0, max: 23, names: &[], question: false },
    Field { name: "day-of-month", min: 1, max: 31, names: &[], question: true },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
        question: false,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        question: true,
    },
];

/// A value of a field as written: in range, out of it, or not a value.
enum Parsed {
    In(u32),
    Out,
    Bad,
}

impl Field {
    /// `0-59`, `1-12 or JAN-DEC`, `0-7 or SUN-SAT`.
    pub(super) fn range(&self) -> String {
        match (self.names.first(), self.names.last()) {
            (Some(first), Some(last)) => format!("{}-{} or {first}-{last}", self.min, self.max),
            _ => format!("{}-{}", self.min, self.max),
        }
    }

    /// What a field may hold, for messages.
    pub(super) fn usage(&self) -> String {
        let question = if self.question { ", ?" } else { "" };
        format!(
            "a number, a range a-b, a list a,b, *{question}, or a step */n, a/n or a-b/n with n 1-{}",
            self.max
        )
    }

    /// The value of name `i` at the start (or the end) of a range.
    pub(super) fn name_value(&self, i: usize, end: bool) -> u32 {
        let value = self.min + i as u32;
        if end && self.max == 7 && value == 0 { 7 } else { value }
    }

    /// `text` as a value of this field: digits (leading zeros allowed) or a name.
    fn value(&self, text: &str, end: bool) -> Parsed {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let digits = text.trim_start_matches('0');
            return match digits.parse::<u32>() {
                _ if digits.len() > 2 => Parsed::Out,
                Ok(n) if (self.min..=self.max).contains(&n) => Parsed::In(n),
                Err(_) if self.min == 0 => Parsed::In(0),
                _ => Parsed::Out,
            };
        }
        match self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            Some(i) => Parsed::In(self.name_value(i, end)),
            None => Parsed::Bad,
        }
    }

    /// Every reason `text` is not a valid value of this field.
    fn check(&self, text: &str, errors: &mut Vec<String>) {
        if text == "*" || (self.question && text == "?") {
            return;
        }
        for item in text.split(',') {
            if item.is_empty() {
                errors.push(format!("{} {text:?} has an empty list item", self.name));
                continue;
            }
            self.check_item(text, item, errors);
        }
    }

    fn check_item(&self, field: &str, item: &str, errors: &mut Vec<String>) {
        let bad = || format!("{} {item:?} is not valid: use {}", self.name, self.usage());
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        let step_digits = step.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        let mut found = Vec::new();
        match step {
            None => {}
            Some(_) if !step_digits => found.push(bad()),
            Some(s) => {
                let digits = s.trim_start_matches('0');
                if digits.len() > 2 || digits.parse::<u32>().map_or(true, |n| n < 1 || n > self.max) {
                    found.push(format!("{} step /{s} is out of range 1-{}", self.name, self.max));
                }
            }
        }
        if base == "*" {
            if step.is_none() {
                found.push(format!("{} {field:?}: * stands alone or as */n, not in a list", self.name));
            }
            errors.extend(found);
            return;
        }
        let (start, end) = match base.split_once('-') {
            Some((start, end)) => (start, Some(end)),
            None => (base, None),
        };
        let first = self.value(start, false);
        let last = end.map(|end| self.value(end, true));
        for (text, value) in [(start, Some(&first)), (end.unwrap_or_default(), last.as_ref())] {
            match value {
                Some(Parsed::Bad) => found.push(bad()),
                Some(Parsed::Out) => {
                    found.push(format!("{} {text} is out of range {}", self.name, self.range()))
                }
                _ => {}
            }
        }
        if let (Parsed::In(a), Some(Parsed::In(b))) = (&first, &last)
            && a > b
            && (step.is_none() || step_digits)
        {
            found.push(format!(
                "{} range {base} runs backwards: write a-b with a <= b, within {}",
                self.name,
                self.range()
            ));
        }
        found.dedup();
        errors.extend(found);
    }
}

/// Every reason `schedule` is refused by the grammar the CRD enforces, each
/// naming the field at fault and its range (empty when it follows it).
pub fn syntax_errors(schedule: &str) -> Vec<String> {
    let text = schedule.trim_matches(is_space);
    let mut errors = Vec::new();
    let upper = text.to_ascii_uppercase();
    let zoned = upper.starts_with("TZ=") || upper.starts_with("CRON_TZ=");
    if zoned {
        errors.push(ZONE_INSIDE.to_owned());
    }
    let fields: Vec<&str> = text.split(is_space).filter(|f| !f.is_empty()).collect();
    let five = fields.len() == 5 && fields.iter().all(|f| f.bytes().all(|b| b.is_ascii_graphic()));
    let is_macro =
        text.strip_prefix('@').is_some_and(|name| MACROS.iter().any(|m| m.eq_ignore_ascii_case(name)));
    if !five && !is_macro && !zoned {
        errors.push(match fields.len() {
            5 => format!("a field holds a character other than printable ASCII; {SHAPE_HINT}"),
            1 => format!("it has 1 field, not 5; {SHAPE_HINT}"),
            n => format!("it has {n} fields, not 5; {SHAPE_HINT}"),
        });
    }
    if five {
        for (field, text) in FIELDS.iter().zip(&fields) {
            field.check(text, &mut errors);
        }
    }
    errors
}

/// A parsed schedule and the zone it is read in.
#[derive(Clone, Debug)]
pub struct Cron {
    cron: croner::Cron,
    zone: Tz,
}

impl Cron {
    /// Parses `schedule` read in `time_zone` (UTC when absent).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, CronError> {
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| CronError::TimeZone { zone: name.to_owned() })?,
        };
        let refused = |reason: String| CronError::Schedule { schedule: schedule.to_owned(), reason };
        let errors = syntax_errors(schedule);
        if !errors.is_empty() {
            return Err(refused(errors.join("; ")));
        }
        let text = schedule.trim_matches(is_space);
        // CronJob accepts @midnight as @daily; croner does not know the name.
        let text = if text.eq_ignore_ascii_case("@midnight") { "@daily" } else { text };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| refused(format!("{e}; {SHAPE_HINT}")))?;
        Ok(Self { cron, zone })
    }

    /// The first due time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let local = self.local(t)?;
        self.cron.find_next_occurrence(&local, false).ok().map(|d| to_timestamp(&d))
    }

    /// The latest due time at or before `t`.
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let local = self.local(t)?;
        self.cron.find_previous_occurrence(&local, true).ok().map(|d| to_timestamp(&d))
    }

    /// The next `n` due times after `t`.
    pub fn upcoming(&self, t: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            let Some(next) = self.next_after(at) else { break };
            out.push(next);
            at = next;
        }
        out
    }

    /// Due times in `(after, until]`: how many (at most [`MAX_COUNTED`]) and the latest.
    pub fn due_between(&self, after: Timestamp, until: Timestamp) -> (u32, Option<Timestamp>) {
        let Some(latest) = self.latest_at_or_before(until).filter(|t| *t > after) else {
            return (0, None);
        };
        let mut count = 0;
        let mut at = after;
        while count < MAX_COUNTED {
            match self.next_after(at) {
                Some(next) if next <= until => {
                    count += 1;
                    at = next;
                }
                _ => break,
            }
        }
        (count, Some(latest))
    }

    /// The time zone's name.
    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    /// `t` in the schedule's zone, as text (`2026-11-30 09:00 CET`).
    pub fn display(&self, t: Timestamp) -> String {
        self.local(t).map(|d| d.format("%Y-%m-%d %H:%M %Z").to_string()).unwrap_or_else(|| t.to_string())
    }

    fn local(&self, t: Timestamp) -> Option<DateTime<Tz>> {
        Utc.timestamp_opt(t.as_second(), 0).single().map(|d| d.with_timezone(&self.zone))
    }
}

fn to_timestamp(d: &DateTime<Tz>) -> Timestamp {
    // croner returns whole seconds within chrono's range, which jiff's covers.
    Timestamp::from_second(d.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn five_fields_and_macros_parse_and_due_times_are_whole_minutes() {
        let every = Cron::parse("* * * * *", None).expect("valid");
        assert_eq!(every.next_after(at("2026-11-30T10:00:30Z")), Some(at("2026-11-30T10:01:00Z")));
        assert_eq!(every.next_after(at("2026-11-30T10:01:00Z")), Some(at("2026-11-30T10:02:00Z")));
        assert_eq!(every.latest_at_or_before(at("2026-11-30T10:01:00Z")), Some(at("2026-11-30T10:01:00Z")));
        let daily = Cron::parse("@daily", None).expect("valid");
        assert_eq!(daily.next_after(at("2026-11-30T10:00:00Z")), Some(at("2026-12-01T00:00:00Z")));
        let midnight = Cron::parse("@midnight", None).expect("valid");
        assert_eq!(
            midnight.next_after(at("2026-11-30T10:00:00Z")),
            daily.next_after(at("2026-11-30T10:00:00Z"))
        );
        let weekdays = Cron::parse("0 9 * * MON-FRI", None).expect("valid");
        // 2026-11-28 is a Saturday: the next run is Monday.
        assert_eq!(weekdays.next_after(at("2026-11-28T12:00:00Z")), Some(at("2026-11-30T09:00:00Z")));
        // Sunday is 0 and 7, as in cron.
        let sunday = Cron::parse("0 0 * * 7", None).expect("valid");
        assert_eq!(sunday.next_after(at("2026-11-28T12:00:00Z")), Some(at("2026-11-29T00:00:00Z")));
    }

    #[test]
    fn day_of_month_or_day_of_week_as_in_cron() {
        // The 1st of the month OR a Monday.
        let cron = Cron::parse("0 0 1 * 1", None).expect("valid");
        assert_eq!(
            cron.upcoming(at("2026-11-28T00:00:00Z"), 3),
            vec![at("2026-11-30T00:00:00Z"), at("2026-12-01T00:00:00Z"), at("2026-12-07T00:00:00Z")]
        );
    }

    #[test]
    fn the_time_zone_moves_due_times_and_follows_daylight_saving() {
        let paris = Cron::parse("0 9 * * *", Some("Europe/Paris")).expect("valid");
        // Winter: UTC+1.
        assert_eq!(paris.next_after(at("2026-11-30T00:00:00Z")), Some(at("2026-11-30T08:00:00Z")));
        // Summer: UTC+2.
        assert_eq!(paris.next_after(at("2026-07-01T00:00:00Z")), Some(at("2026-07-01T07:00:00Z")));
        assert_eq!(paris.display(at("2026-11-30T08:00:00Z")), "2026-11-30 09:00 CET");
        // 02:30 does not exist on 2026-03-29 in Paris: the run is not lost.
        let gap = Cron::parse("30 2 * * *", Some("Europe/Paris")).expect("valid");
        let next = gap.next_after(at("2026-03-29T00:00:00Z")).expect("a due time");
        assert!(next < at("2026-03-30T00:00:00Z"), "{next}");
        // 02:30 happens twice on 2026-10-25: one run.
        let fold = gap.upcoming(at("2026-10-24T12:00:00Z"), 2);
        assert!(fold[0].duration_until(fold[1]).as_hours() >= 23, "{fold:?}");
    }

    #[test]
    fn counting_due_times_between_two_instants() {
        let every = Cron::parse("*/5 * * * *", None).expect("valid");
        let (count, latest) = every.due_between(at("2026-11-30T10:00:00Z"), at("2026-11-30T10:17:00Z"));
        assert_eq!((count, latest), (3, Some(at("2026-11-30T10:15:00Z"))));
        // The lower bound is exclusive, the upper inclusive.
        let (count, latest) = every.due_between(at("2026-11-30T10:05:00Z"), at("2026-11-30T10:10:00Z"));
        assert_eq!((count, latest), (1, Some(at("2026-11-30T10:10:00Z"))));
        assert_eq!(every.due_between(at("2026-11-30T10:10:00Z"), at("2026-11-30T10:14:59Z")), (0, None));
        // Years of downtime are counted up to the bound, not forever.
        let (count, _) = Cron::parse("* * * * *", None)
            .expect("valid")
            .due_between(at("2020-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"));
        assert_eq!(count, MAX_COUNTED);
    }

    #[test]
    fn refusals_say_what_to_write_instead() {
        for (schedule, zone, needle) in [
            ("* * * *", None, "4 fields, not 5"),
            ("0 * * * * *", None, "6 fields, not 5"),
            ("61 * * * *", None, "minute 61 is out of range 0-59"),
            ("@every 5m", None, "it has 2 fields, not 5; use five fields"),
            ("@reboot", None, "it has 1 field, not 5"),
            ("TZ=UTC 0 * * * *", None, "set spec.timeZone"),
            ("0 * * * *", Some("Mars/Olympus"), "unknown time zone \"Mars/Olympus\""),
        ] {
            let error = Cron::parse(schedule, zone).expect_err(schedule).to_string();
            assert!(error.contains(needle), "{schedule}: {error}");
        }
    }

    /// The operator's message names the field and its range (it is the
    /// schedule's status when something bypassed admission).
    #[test]
    fn each_field_is_named_with_its_range() {
        let reason = |schedule: &str| match Cron::parse(schedule, None) {
            Err(CronError::Schedule { reason, .. }) => reason,
            other => panic!("{schedule}: {other:?}"),
        };
        assert_eq!(reason("61 * * * *"), "minute 61 is out of range 0-59");
        assert_eq!(reason("0 24 * * *"), "hour 24 is out of range 0-23");
        assert_eq!(reason("0 0 0 * *"), "day-of-month 0 is out of range 1-31");
        assert_eq!(reason("0 0 32 * *"), "day-of-month 32 is out of range 1-31");
        assert_eq!(reason("0 0 * 13 *"), "month 13 is out of range 1-12 or JAN-DEC");
        assert_eq!(reason("0 0 * * 8"), "day-of-week 8 is out of range 0-7 or SUN-SAT");
        assert_eq!(reason("*/0 * * * *"), "minute step /0 is out of range 1-59");
        assert_eq!(reason("0 */25 * * *"), "hour step /25 is out of range 1-23");
        assert_eq!(
            reason("30-10 * * * *"),
            "minute range 30-10 runs backwards: write a-b with a <= b, within 0-59"
        );
        assert_eq!(
            reason("0 0 * DEC-JAN *"),
            "month range DEC-JAN runs backwards: write a-b with a <= b, within 1-12 or JAN-DEC"
        );
        assert!(reason("0 0 * * MON-FOO").starts_with("day-of-week \"MON-FOO\" is not valid: use a number"));
        assert!(reason("0 0 * JAN-MON *").starts_with("month \"JAN-MON\" is not valid"));
        assert_eq!(reason("1,,2 * * * *"), "minute \"1,,2\" has an empty list item");
        assert_eq!(reason("1,* * * * *"), "minute \"1,*\": * stands alone or as */n, not in a list");
        // Every field at fault, not only the first.
        assert_eq!(reason("61 24 * * *"), "minute 61 is out of range 0-59; hour 24 is out of range 0-23");
    }

    #[test]
    fn the_grammar_accepts_what_cronjob_users_write() {
        for schedule in [
            "0 3 * * 1-5",
            "*/15 9-17 * * *",
            "0 0 1,15 * *",
            "5/10 * * * *",
            "0 0-12/2 * * *",
            "0 0 ? * mon-fri",
            "0 0 * jan-mar,Dec sun",
            "0 0 * * SAT-SUN",
            "0 0 * * 7",
            "00 03 01 01 00",
            "  0\t3 * * *  ",
            "0 3 * * *\n",
            "@hourly",
            "@Daily",
            "@MIDNIGHT",
            "@annually",
        ] {
            assert_eq!(syntax_errors(schedule), Vec::<String>::new(), "{schedule:?}");
            Cron::parse(schedule, None).unwrap_or_else(|e| panic!("{schedule:?}: {e}"));
        }
        // croner extensions CronJob does not have are refused, as is a
        // name in another field's place.
        for schedule in
            ["0 0 L * *", "0 0 15W * *", "0 0 * * 5#2", "0 0 * * +1", "MON * * * *", "0 0 * * JAN"]
        {
            assert!(!syntax_errors(schedule).is_empty(), "{schedule:?}");
        }
    }
}
