//! Results of `backup`, `verify` and `prune` as Prometheus metrics, pushed to a Pushgateway so
//! that a scheduled run that stops working is noticed (the way Velero's metrics are alerted on).
//!
//! Every command pushes to the same group, `job=amlmigrate` with labels `repository` and
//! `schedule`, by POST: the Pushgateway then replaces only the metrics named in the push, so a
//! failed backup updates `amlmigrate_backup_last_failure_timestamp_seconds` and
//! `amlmigrate_backup_success` while the last success's timestamp stays what it was, and
//! verify's and prune's pushes leave backup's metrics alone.

use std::time::Duration;

use base64::Engine;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::{Error, Result};
use crate::prune::PruneReport;
use crate::repo::manifest::Manifest;
use crate::verify::VerifyReport;

/// The Pushgateway job every run pushes under.
pub const JOB: &str = "amlmigrate";

/// Which command ran: the metric names' second word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Backup,
    Verify,
    Prune,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Backup => "backup",
            Command::Verify => "verify",
            Command::Prune => "prune",
        }
    }
}

/// One run's outcome, ready to encode.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub command: Command,
    /// Unix time the run ended.
    pub finished: f64,
    pub duration: Duration,
    pub success: bool,
    /// Values only a successful run has: (name after `amlmigrate_`, help, value).
    pub values: Vec<(String, &'static str, f64)>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Outcome {
    /// A run of `command` that failed after `duration`.
    pub fn failure(command: Command, duration: Duration) -> Outcome {
        Outcome {
            command,
            finished: unix_now(),
            duration,
            success: false,
            values: Vec::new(),
        }
    }

    fn success(command: Command, duration: Duration) -> Outcome {
        Outcome {
            success: true,
            ..Outcome::failure(command, duration)
        }
    }

    /// A committed snapshot: its sizes, rows and objects.
    pub fn backup(m: &Manifest, duration: Duration) -> Outcome {
        let raw: u64 = m
            .mysql
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| t.bytes)
            .sum();
        let mut o = Outcome::success(Command::Backup, duration);
        o.values = vec![
            (
                "backup_stored_bytes".into(),
                "Bytes the last successful backup stored in the repository (compressed parts).",
                m.total_size() as f64,
            ),
            (
                "backup_raw_bytes".into(),
                "Bytes of table data the last successful backup read (before compression).",
                raw as f64,
            ),
            (
                "backup_rows".into(),
                "MySQL rows in the last successful backup.",
                m.total_rows() as f64,
            ),
            (
                "backup_objects".into(),
                "Kubernetes objects in the last successful backup.",
                m.kubernetes.as_ref().map(|k| k.objects).unwrap_or(0) as f64,
            ),
        ];
        o
    }

    /// A snapshot found sound.
    pub fn verify(r: &VerifyReport, duration: Duration) -> Outcome {
        let mut o = Outcome::success(Command::Verify, duration);
        o.success = r.ok;
        o.values = vec![
            (
                "verify_bytes_read".into(),
                "Bytes the last verify re-read.",
                r.bytes_read as f64,
            ),
            (
                "verify_rows".into(),
                "Rows the last verify checked.",
                r.rows as f64,
            ),
        ];
        o
    }

    /// What retention kept and removed.
    pub fn prune(r: &PruneReport, duration: Duration) -> Outcome {
        let kept = r.decisions.iter().filter(|d| d.keep).count();
        let mut o = Outcome::success(Command::Prune, duration);
        o.values = vec![
            (
                "snapshots_kept".into(),
                "Snapshots the last prune kept.",
                kept as f64,
            ),
            (
                "snapshots_removed".into(),
                "Snapshots (and leftovers of failed backups) the last prune removed.",
                r.removed.len() as f64,
            ),
        ];
        o
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        let c = self.command.as_str();
        let mut gauge = |name: String, help: &str, v: f64| {
            let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            g.set(v);
            registry.register(format!("{JOB}_{name}"), help, g);
        };
        let when = if self.success {
            "last_success_timestamp_seconds"
        } else {
            "last_failure_timestamp_seconds"
        };
        gauge(
            format!("{c}_{when}"),
            if self.success {
                "Unix time the last successful run ended."
            } else {
                "Unix time the last failed run ended."
            },
            self.finished,
        );
        gauge(
            format!("{c}_success"),
            "1 when the last run succeeded, 0 when it failed.",
            if self.success { 1.0 } else { 0.0 },
        );
        gauge(
            format!("{c}_duration_seconds"),
            "How long the last run took.",
            self.duration.as_secs_f64(),
        );
        if self.success {
            for (name, help, v) in &self.values {
                gauge(name.clone(), help, *v);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The group's path under the Pushgateway: label values in URL-safe base64, so a repository
/// such as `s3://bucket/prefix` keeps its slashes.
pub fn group_path(repository: &str, schedule: &str) -> String {
    let b64 = |s: &str| {
        if s.is_empty() {
            // The Pushgateway's spelling of an empty value.
            "=".to_string()
        } else {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        }
    };
    format!(
        "metrics/job/{JOB}/repository@base64/{}/schedule@base64/{}",
        b64(repository),
        b64(schedule)
    )
}

/// Pushes `outcome` to the Pushgateway at `url` (`http(s)://host:port[/prefix]`).
pub async fn push(url: &str, repository: &str, schedule: &str, outcome: &Outcome) -> Result<()> {
    // Messages about the value show it redacted: it may carry basic-auth credentials.
    let named = || crate::secret::redact_url(url);
    let base = url::Url::parse(url).map_err(|e| {
        Error::input(format!(
            "--metrics-push {}: not a URL ({e}); give the Pushgateway as http://HOST:9091",
            named()
        ))
    })?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(Error::input(format!(
            "--metrics-push {}: the Pushgateway is reached over http:// or https://",
            named()
        )));
    }
    let target = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        group_path(repository, schedule)
    );
    // A password in the URL (basic auth in front of the Pushgateway) is never shown.
    let mut shown = base.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("(hidden)"));
    }
    let shown = shown.as_str().trim_end_matches('/').to_string();
    let fail = |what: String| {
        Error::Connection(format!(
            "pushing the {} metrics to the Pushgateway {shown}: {what}; check --metrics-push (or AMLMIGRATE_METRICS_PUSH) and that the Pushgateway runs",
            outcome.command.as_str(),
        ))
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resp = client
        .post(&target)
        .header("content-type", "text/plain; version=0.0.4")
        .body(outcome.encode())
        .send()
        .await
        .map_err(|e| fail(crate::error::chain_text(&e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(fail(format!("HTTP {status}: {}", body.trim())));
    }
    tracing::info!(
        command = outcome.command.as_str(),
        success = outcome.success,
        "pushed metrics to {shown}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_only_its_own_timestamp_so_the_last_success_stays() {
        let text = Outcome::failure(Command::Backup, Duration::from_millis(1500)).encode();
        assert!(text.contains("amlmigrate_backup_last_failure_timestamp_seconds "));
        assert!(!text.contains("last_success"), "{text}");
        assert!(text.contains("amlmigrate_backup_success 0"), "{text}");
        assert!(
            text.contains("amlmigrate_backup_duration_seconds 1.5"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE amlmigrate_backup_success gauge"),
            "{text}"
        );
    }

    #[test]
    fn label_values_with_slashes_are_base64_in_the_group_path() {
        assert_eq!(
            group_path("s3://b/p", "nightly"),
            "metrics/job/amlmigrate/repository@base64/czM6Ly9iL3A/schedule@base64/bmlnaHRseQ"
        );
        assert!(group_path("/r", "").ends_with("/schedule@base64/="));
    }
}
