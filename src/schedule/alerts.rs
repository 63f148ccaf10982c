//! The PrometheusRule of a schedule: alert when no backup succeeded for longer than the
//! schedule's longest gap between two runs plus a margin, and when a backup or verify failed.
//! The expressions read the metrics the CronJob pushes (see `crate::metrics`).

use std::time::Duration;

use chrono::{Datelike, NaiveDate, Timelike};
use serde_json::{Value, json};

use super::{ScheduleSpec, labels};
use crate::error::{Error, Result};

/// The longest time between two consecutive runs of a cron expression (validated before), found
/// by walking a year minute by minute: exact for any mix of fields, a few milliseconds.
pub fn cron_period(expr: &str) -> Result<Duration> {
    let expr = expr.trim();
    let fixed = match expr {
        "@hourly" => Some(3600),
        "@daily" | "@midnight" => Some(86_400),
        "@weekly" => Some(7 * 86_400),
        "@monthly" => Some(31 * 86_400),
        "@yearly" | "@annually" => Some(366 * 86_400),
        _ => None,
    };
    if let Some(s) = fixed {
        return Ok(Duration::from_secs(s));
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(Error::input(format!(
            "cron expression {expr:?}: 5 fields expected"
        )));
    }
    let minute = set(fields[0], 0, 59, &[])?;
    let hour = set(fields[1], 0, 23, &[])?;
    let dom = set(fields[2], 1, 31, &[])?;
    let month = set(fields[3], 1, 12, &MONTHS)?;
    let mut dow = set(fields[4], 0, 7, &DAYS)?;
    if dow[7] {
        dow[0] = true;
    }
    // Cron's rule: when both day fields are restricted, a day matching either one runs.
    let dom_any = fields[2].starts_with('*') || fields[2] == "?";
    let dow_any = fields[4].starts_with('*') || fields[4] == "?";
    let day_runs = |d: NaiveDate| {
        let by_dom = dom[d.day() as usize];
        let by_dow = dow[d.weekday().num_days_from_sunday() as usize];
        match (dom_any, dow_any) {
            (true, true) => true,
            (true, false) => by_dow,
            (false, true) => by_dom,
            (false, false) => by_dom || by_dow,
        }
    };
    // Two years from a fixed start cover leap years and every month/weekday combination once.
    let start = NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    let minutes = 2 * 366 * 24 * 60;
    let (mut first, mut last, mut longest) = (None::<i64>, None::<i64>, 0i64);
    // `first` only tells one run from several.
    for m in 0..minutes {
        let t = start + chrono::Duration::minutes(m);
        if !(minute[t.minute() as usize]
            && hour[t.hour() as usize]
            && month[t.month() as usize]
            && day_runs(t.date()))
        {
            continue;
        }
        if let Some(l) = last {
            longest = longest.max(m - l);
        }
        first.get_or_insert(m);
        last = Some(m);
    }
    match (first, last) {
        // Inside two years every gap of the schedule occurs; one run only: at most that long.
        (Some(f), Some(l)) => {
            let longest = if f == l { minutes } else { longest };
            Ok(Duration::from_secs(longest as u64 * 60))
        }
        _ => Err(Error::input(format!(
            "cron expression {expr:?} never runs (no day matches it); fix the schedule"
        ))),
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The values one cron field allows, indexed by value.
fn set(field: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<bool>> {
    let base = if names.len() == 12 { 1 } else { 0 };
    let value = |s: &str| -> Result<u32> {
        if let Ok(n) = s.parse::<u32>() {
            return Ok(n);
        }
        let l = s.to_ascii_lowercase();
        names
            .iter()
            .position(|n| *n == l)
            .map(|i| i as u32 + base)
            .ok_or_else(|| Error::input(format!("cron field {field:?}: {s:?} is not a value")))
    };
    let mut out = vec![false; hi as usize + 1];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap_or(1).max(1)),
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" | "?" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` runs from 5 to the end.
                None if item.contains('/') => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        let mut v = a;
        while v <= b.min(hi) {
            out[v as usize] = true;
            v += step;
        }
    }
    Ok(out)
}

/// A PromQL duration literal in whole seconds.
fn secs(d: Duration) -> u64 {
    d.as_secs().max(60)
}

/// The PrometheusRule (monitoring.coreos.com/v1) for `spec`: `period` is the schedule's
/// longest gap, `margin` how late a backup may be before someone is paged.
pub fn prometheus_rule(spec: &ScheduleSpec, period: Duration, margin: Duration) -> Value {
    let sel = format!("schedule=\"{}\"", spec.name);
    let late = secs(period + margin);
    let human =
        |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": spec.object_name(),
            "namespace": spec.namespace,
            "labels": labels(spec, false),
        },
        "spec": {
            "groups": [{
                "name": format!("amlmigrate-{}", spec.name),
                "rules": [
                    {
                        "alert": "AmlmigrateBackupMissing",
                        "expr": format!(
                            "time() - max by (repository, schedule) (amlmigrate_backup_last_success_timestamp_seconds{{{sel}}}) > {late}"
                        ),
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": format!("No amlmigrate backup of schedule {} succeeded for {}", spec.name, human(period + margin)),
                            "description": format!(
                                "The last successful backup of schedule {} into {{{{ $labels.repository }}}} is older than the schedule's period ({}) plus {}. See the CronJob's Jobs: kubectl -n {} get jobs -l {}={} and their logs.",
                                spec.name, human(period), human(margin), spec.namespace, super::SCHEDULE_LABEL, spec.name
                            ),
                        },
                    },
                    {
                        "alert": "AmlmigrateBackupFailed",
                        "expr": format!("amlmigrate_backup_success{{{sel}}} == 0"),
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": format!("The last amlmigrate backup of schedule {} failed", spec.name),
                            "description": format!(
                                "Read the failed Job's logs: kubectl -n {} logs job/<job> -c backup",
                                spec.namespace
                            ),
                        },
                    },
                    {
                        "alert": "AmlmigrateVerifyFailed",
                        "expr": format!("amlmigrate_verify_success{{{sel}}} == 0"),
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": format!("The newest snapshot of schedule {} did not verify", spec.name),
                            "description": format!(
                                "A snapshot in {{{{ $labels.repository }}}} does not match its manifest; run amlmigrate verify --repo … latest and read kubectl -n {} logs job/<job> -c verify",
                                spec.namespace
                            ),
                        },
                    },
                ],
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(expr: &str) -> u64 {
        cron_period(expr).unwrap().as_secs()
    }

    #[test]
    fn the_period_is_the_longest_gap_between_two_runs() {
        assert_eq!(period("0 2 * * *"), 86_400);
        assert_eq!(period("*/15 * * * *"), 900);
        assert_eq!(period("0 1,13 * * *"), 12 * 3600);
        assert_eq!(period("0 2 * * 1-5"), 3 * 86_400);
        assert_eq!(period("30 3 * * sun"), 7 * 86_400);
        assert_eq!(period("0 0 1 * *"), 31 * 86_400);
        assert_eq!(period("@hourly"), 3600);
        assert!(cron_period("0 0 31 2 *").is_err());
    }
}
