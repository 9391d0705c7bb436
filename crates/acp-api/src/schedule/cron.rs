//! Cron schedules in a time zone: parsing (with a message a person can act
//! on) and due times, on [`croner`] and the IANA database of [`chrono_tz`].
//!
//! Standard five-field expressions only (no seconds, no year), as CronJob
//! reads them; day-of-month and day-of-week match when either does. Daylight
//! saving follows croner (the Open Cron Pattern Specification): a local time
//! skipped by a jump forward runs at the jump, one repeated by a jump back
//! runs once. Due times are whole minutes, as [`Timestamp`]s.

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use k8s_openapi::jiff::Timestamp;

/// The most due times counted between two instants (CronJob's limit is 100).
pub const MAX_COUNTED: u32 = 1000;

/// Why a schedule or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression is not a valid five-field cron expression or macro.
    #[error(
        "invalid schedule {schedule:?}: {reason}; use five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * 1-5\", or @hourly/@daily/@weekly/@monthly/@yearly"
    )]
    Schedule {
        /// The expression.
        schedule: String,
        /// croner's explanation.
        reason: String,
    },
    /// The time zone is not in the IANA database.
    #[error("unknown time zone {zone:?}: use an IANA name such as \"Europe/Paris\" or \"America/New_York\"")]
    TimeZone {
        /// The name given.
        zone: String,
    },
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
        let text = schedule.trim();
        // CronJob accepts @midnight as @daily; croner does not know the name.
        let text = if text.eq_ignore_ascii_case("@midnight") { "@daily" } else { text };
        let refused = |reason: String| CronError::Schedule { schedule: schedule.to_owned(), reason };
        if text.to_ascii_uppercase().starts_with("TZ=") || text.to_ascii_uppercase().starts_with("CRON_TZ=") {
            return Err(refused(
                "a time zone inside the schedule is not supported; set spec.timeZone".into(),
            ));
        }
        if !text.starts_with('@') && text.split_whitespace().count() != 5 {
            return Err(refused(format!("it has {} fields, not 5", text.split_whitespace().count())));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| refused(e.to_string()))?;
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
            ("61 * * * *", None, "invalid schedule"),
            ("@every 5m", None, "invalid schedule"),
            ("TZ=UTC 0 * * * *", None, "set spec.timeZone"),
            ("0 * * * *", Some("Mars/Olympus"), "unknown time zone \"Mars/Olympus\""),
        ] {
            let error = Cron::parse(schedule, zone).expect_err(schedule).to_string();
            assert!(error.contains(needle), "{schedule}: {error}");
        }
    }
}
