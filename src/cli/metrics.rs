//! `--metrics-push`, shared by backup, verify and prune: after the run (success or failure),
//! its metrics go to a Prometheus Pushgateway. A push that fails is a warning: the run's own
//! outcome stands, and the missing push shows up as a missed success in the alerts.

use std::time::Instant;

use clap::Args;

use amlmigrate::metrics::{Command, Outcome};

#[derive(Args, Clone, Default)]
pub struct MetricsArgs {
    /// Push this run's metrics (last success/failure time, duration, sizes, counts) to the
    /// Prometheus Pushgateway at URL (http://HOST:9091), job "amlmigrate", labels repository
    /// and schedule.
    #[arg(long, env = "AMLMIGRATE_METRICS_PUSH", value_name = "URL")]
    pub metrics_push: Option<String>,
    /// The `schedule` label of pushed metrics (a scheduled run sets its schedule's name).
    #[arg(
        long,
        env = "AMLMIGRATE_METRICS_SCHEDULE",
        value_name = "NAME",
        default_value = "manual"
    )]
    pub metrics_schedule: String,
}

impl MetricsArgs {
    /// Pushes the outcome of a run that started at `started`: `ok` makes the success metrics
    /// from the result, an error pushes a failure.
    pub async fn push<T>(
        &self,
        repository: &str,
        command: Command,
        started: Instant,
        result: &anyhow::Result<T>,
        ok: impl FnOnce(&T, std::time::Duration) -> Outcome,
    ) {
        let Some(url) = &self.metrics_push else {
            return;
        };
        let took = started.elapsed();
        let outcome = match result {
            Ok(t) => ok(t, took),
            Err(_) => Outcome::failure(command, took),
        };
        if let Err(e) =
            amlmigrate::metrics::push(url, repository, &self.metrics_schedule, &outcome).await
        {
            eprintln!(
                "warning: {}",
                amlmigrate::error::chain_text(&e as &(dyn std::error::Error + 'static))
            );
        }
    }
}
