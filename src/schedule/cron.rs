//! Cron expressions of a schedule, read once by `croner` into one parsed value that both the
//! check (`schedule install`) and the alert's period use, so the two can never disagree.
//!
//! The grammar is what the Kubernetes CronJob controller accepts (robfig/cron's standard
//! parser): 5 fields with `*`, `?`, ranges, lists, steps (`5/15` included) and month/day names,
//! or a macro. croner understands more (seconds, years, `L`, `W`, `#`); those are refused here
//! because the API server would refuse the CronJob.

use std::time::Duration;

use chrono::{Days, NaiveDate, NaiveDateTime};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};

const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const HINT: &str =
    "use 5 fields \"MIN HOUR DOM MON DOW\", e.g. \"0 2 * * *\" (02:00 every day) or @daily";

/// A cron expression the CronJob controller accepts, parsed.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        // robfig/cron: a day matching either restricted day field runs, and `5/15` means
        // "from 5, every 15".
        .dom_and_dow(false)
        .sloppy_ranges(true)
        .build()
}

impl CronSchedule {
    /// Parses `expr`; the error names the field that is wrong and shows a valid example.
    pub fn parse(expr: &str) -> Result<Self> {
        let expr = expr.trim();
        let fail = |why: String| {
            Error::input(format!(
                "cron expression {expr:?} is not valid: {why}; {HINT}"
            ))
        };
        let pattern = if let Some(name) = expr.strip_prefix('@') {
            match name.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(fail(format!("unknown macro {expr}"))),
            }
        } else {
            expr
        };
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(fail(format!("it has {} fields, not 5", fields.len())));
        }
        for (i, field) in fields.iter().enumerate() {
            if let Some(c) = field
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | ',' | '-' | '/')))
            {
                return Err(fail(format!(
                    "{} {field:?}: {c:?} is not allowed",
                    FIELDS[i]
                )));
            }
            // `L`, `W` and `#` are croner's extensions; a name is exactly three letters.
            let name = |p: &str| p.len() == 3 && p.chars().all(|c| c.is_ascii_alphabetic());
            if field
                .split([',', '-', '/'])
                .any(|p| p.chars().any(|c| c.is_ascii_alphabetic()) && !name(p))
            {
                return Err(fail(format!(
                    "{} {field:?} is not a number or a name",
                    FIELDS[i]
                )));
            }
            // Each field alone, the others `*`, so the error names the field croner refused.
            let mut alone = ["*"; 5];
            alone[i] = field;
            if let Err(e) = parser().parse(&alone.join(" ")) {
                return Err(fail(format!("{} {field:?}: {}", FIELDS[i], reason(&e))));
            }
        }
        let cron = parser().parse(pattern).map_err(|e| fail(reason(&e)))?;
        Ok(Self { cron })
    }

    fn runs_at(&self, t: NaiveDateTime) -> bool {
        self.cron.is_time_matching(&t).unwrap_or(false)
    }

    /// The longest time between two consecutive runs. Every running day runs at the same times
    /// of day, so the answer is the larger of the longest gap inside a day and the longest gap
    /// from one running day's last run to the next running day's first, over 28 years (the
    /// calendar's weekday and leap-year cycle): exact, and about ten thousand checks.
    pub fn period(&self) -> Result<Duration> {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date");
        let days = 28 * 365 + 7;
        let date = |d: u64| {
            start
                .checked_add_days(Days::new(d))
                .expect("inside the calendar")
        };
        let at = |d: NaiveDate, m: u32| d.and_hms_opt(m / 60, m % 60, 0).expect("a time");
        let never = || {
            Error::input(format!(
                "cron expression {:?} never runs (no day matches it); fix the schedule",
                self.cron.as_str()
            ))
        };
        let first_run = self
            .cron
            .find_next_occurrence(&at(start, 0), true)
            .map_err(|_| never())?;
        let times: Vec<u32> = (0..24 * 60)
            .filter(|&m| self.runs_at(at(first_run.date(), m)))
            .collect();
        let (first, last) = (i64::from(times[0]), i64::from(times[times.len() - 1]));
        let running: Vec<i64> = (0..days)
            .filter(|&d| self.runs_at(at(date(d), times[0])))
            .map(|d| d as i64)
            .collect();
        if running.len() < 2 && times.len() < 2 {
            return Err(never());
        }
        let mut longest = times
            .windows(2)
            .map(|w| i64::from(w[1] - w[0]))
            .max()
            .unwrap_or(0);
        for w in running.windows(2) {
            longest = longest.max((w[1] - w[0]) * 24 * 60 + first - last);
        }
        Ok(Duration::from_secs(longest as u64 * 60))
    }
}

/// croner's message without its error type's name.
fn reason(e: &croner::errors::CronError) -> String {
    let s = e.to_string();
    s.split_once(": ").map(|(_, r)| r.to_string()).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(expr: &str) -> u64 {
        CronSchedule::parse(expr)
            .unwrap()
            .period()
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_period_is_the_longest_gap_between_two_runs() {
        assert_eq!(period("0 2 * * *"), 86_400);
        assert_eq!(period("*/15 * * * *"), 900);
        assert_eq!(period("* * * * *"), 60);
        assert_eq!(period("0 1,13 * * *"), 12 * 3600);
        assert_eq!(period("0 2 * * 1-5"), 3 * 86_400);
        assert_eq!(period("30 3 * * sun"), 7 * 86_400);
        assert_eq!(period("0 0 1 * *"), 31 * 86_400);
        assert_eq!(period("@hourly"), 3600);
        assert_eq!(period("@midnight"), 86_400);
        // Leap day only: every four years, not every five minutes of the one leap day seen.
        assert_eq!(period("*/5 * 29 2 *") / 86_400, 4 * 365);
        // Both day fields restricted: either one runs (the 1st, or any Monday).
        assert!(period("0 0 1 * mon") <= 7 * 86_400);
        assert!(CronSchedule::parse("0 0 31 2 *").unwrap().period().is_err());
    }

    #[test]
    fn cron_expressions_are_checked_field_by_field() {
        for good in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0-23/2 1,15 JAN-jun mon-FRI",
            "30 4 * * 0",
            "0 3 * * 7",
            "5/15 * * * *",
            "0 0 ? * *",
            "@daily",
        ] {
            CronSchedule::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, why) in [
            ("0 2 * *", "4 fields"),
            ("60 2 * * *", "minute"),
            ("0 24 * * *", "hour"),
            ("0 2 0 * *", "day of month"),
            ("0 2 * 13 *", "month"),
            ("0 2 * * 8", "day of week"),
            ("0 2 * * * *", "6 fields"),
            ("*/0 * * * *", "minute"),
            ("5-1 * * * *", "minute"),
            ("0 0 L * *", "day of month"),
            ("0 0 * * 5#3", "day of week"),
            ("0 0 15W * *", "day of month"),
            ("@sometimes", "macro"),
            ("@every 1h", "macro"),
        ] {
            let e = CronSchedule::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Input);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
