//! The PrometheusRule of a schedule: alert when no backup succeeded for longer than the
//! schedule's longest gap between two runs plus a margin, and when a backup or verify failed.
//! The expressions read the metrics the CronJob pushes (see `crate::metrics`).

use std::time::Duration;

use serde_json::{Value, json};

use super::{ScheduleSpec, labels};

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
