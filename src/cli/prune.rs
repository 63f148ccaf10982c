//! `amlmigrate prune`

use clap::Args;
use serde_json::json;

use amlmigrate::metrics::{Command, Outcome};
use amlmigrate::prune::{Policy, PruneReport, parse_span, prune};

use amlmigrate::text::Safe;

use super::{GlobalArgs, RepoArg, human_bytes, print_json};

/// Removes snapshots that no retention rule keeps, and leftovers of failed backups.
///
/// Every rule that keeps a snapshot is shown as its reason ("last 3", "daily 2026-11-27",
/// "weekly 2026-W48", "within 30d"). The newest snapshot is always kept. A snapshot folder
/// without a manifest (a failed or killed backup) is removed once it is older than a day;
/// a younger one may belong to a backup still running. A snapshot is removed manifest first,
/// so a half-removed snapshot never looks complete. In an S3 repository, incomplete multipart
/// uploads under its snapshots/ (left by a killed backup, and billed by S3) are aborted once
/// they are older than a day, and counted.
///
/// In a deduplicated repository prune then sweeps: packs holding no chunk of a kept snapshot
/// are removed and packs mostly unused are repacked. It holds the repository's exclusive lock
/// meanwhile, waiting (up to --lock-wait) for running backups, which hold shared locks, and
/// making new backups wait for it; so a backup never loses a chunk it reuses.
///
/// At least one --keep-* rule is required: a policy that keeps nothing is refused (exit 2).
#[derive(Args)]
#[command(
    after_long_help = "Examples:\n  amlmigrate prune --repo /backups/aml --keep-last 7 --keep-weekly 8 --dry-run\n  \
amlmigrate prune --repo s3://aml-backups/prod --keep-within 30d --json"
)]
pub struct PruneArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: super::IdentityArg,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    metrics: super::metrics::MetricsArgs,
    /// How long to wait for running backups (their locks) before giving up (exit 4).
    #[arg(long, value_name = "SPAN", default_value = "10m", value_parser = parse_wait)]
    lock_wait: std::time::Duration,
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    amlmigrate::span::parse(s)
}

/// The retention rules, shared with `schedule install`.
#[derive(Args, Clone, Default)]
pub struct PolicyArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days (UTC) that have one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,
    /// Keep every snapshot taken within this span before now: 30d, 12h, 2w, 6months, 1y
    /// (m is minutes, as everywhere).
    #[arg(long, value_name = "SPAN", value_parser = parse_span_arg)]
    pub keep_within: Option<(chrono::Duration, String)>,
}

fn parse_span_arg(s: &str) -> Result<(chrono::Duration, String), String> {
    parse_span(s).map(|d| (d, s.trim().to_string()))
}

impl PolicyArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            keep_last: self.keep_last,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_within: self.keep_within.clone(),
        }
    }
}

pub async fn run(
    args: PruneArgs,
    g: &GlobalArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let result = apply(&args, g, &cancel).await;
    // A dry run changes nothing and says nothing about the schedule's health.
    if !args.dry_run {
        args.metrics
            .push(
                &args.repo.repo,
                Command::Prune,
                started,
                &result,
                Outcome::prune,
            )
            .await;
    }
    result.map(|_| ())
}

async fn apply(
    args: &PruneArgs,
    g: &GlobalArgs,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<PruneReport> {
    let policy = args.policy.policy();
    if policy.is_empty() {
        // Refused before the repository is even opened: nothing can be deleted.
        amlmigrate::prune::plan(&[], &policy, chrono::Utc::now())?;
    }
    let repo = super::open_repo(&args.repo.repo, args.identity.identity.as_deref()).await?;
    let report = prune(
        &repo,
        &policy,
        chrono::Utc::now(),
        args.dry_run,
        args.lock_wait,
        cancel,
    )
    .await?;
    if let Some(e) = report.multipart.as_ref().and_then(|m| m.error.as_ref()) {
        eprintln!("warning: incomplete multipart uploads were not cleaned up: {e}");
    }
    print_report(&report, args.dry_run, g);
    Ok(report)
}

fn print_report(report: &PruneReport, dry_run: bool, g: &GlobalArgs) {
    if g.json {
        print_json(&json!({ "ok": true, "prune": report }));
        return;
    }
    if g.quiet {
        return;
    }
    if let Some(m) = report.multipart.as_ref().filter(|m| m.error.is_none()) {
        println!(
            "incomplete multipart uploads: {} older than a day {}, {} younger left alone",
            m.aborted,
            if dry_run {
                "would be aborted"
            } else {
                "aborted"
            },
            m.kept_young
        );
    }
    if report.decisions.is_empty() {
        println!("no snapshots in {}", report.repository);
        return;
    }
    let verb = if dry_run { "would remove" } else { "remove" };
    for d in &report.decisions {
        let what = if d.keep { "keep" } else { verb };
        println!(
            "{:<13} {}{}  {}",
            what,
            Safe(&d.id),
            if d.committed { "" } else { " (uncommitted)" },
            Safe(d.reasons.join(", "))
        );
    }
    let gone = report.decisions.iter().filter(|d| !d.keep).count();
    let kept = report.decisions.len() - gone;
    if let Some(s) = &report.sweep {
        let (unused, repacked, orphans) = if dry_run {
            ("would be removed", "would be repacked", "would go")
        } else {
            ("removed", "repacked", "removed")
        };
        println!(
            "packs: {} ({}): {} unused {unused}, {} mostly unused {repacked}, {} of failed backups {orphans}; {} after{}",
            s.packs_before,
            human_bytes(s.bytes_before),
            s.packs_removed,
            s.packs_repacked,
            s.orphan_packs,
            human_bytes(s.bytes_after),
            if s.packs_unreadable > 0 {
                format!(
                    "; {} packs whose trailer does not read kept as they are (run verify)",
                    s.packs_unreadable
                )
            } else {
                String::new()
            } + &if s.repack_skipped > 0 {
                format!(
                    "; {} mostly unused encrypted packs kept (repacking them needs every recipient)",
                    s.repack_skipped
                )
            } else {
                String::new()
            }
        );
    }
    if dry_run {
        println!(
            "dry run: {kept} kept, {gone} would be removed from {}",
            report.repository
        );
    } else {
        println!(
            "{kept} kept, {} removed from {}",
            report.removed.len(),
            report.repository
        );
    }
}
