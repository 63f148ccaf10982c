//! `amlmigrate verify`

use clap::Args;

use amlmigrate::metrics::{Command, Outcome};
use amlmigrate::verify::{VerifyReport, verify};

use super::{GlobalArgs, RepoArg, human_bytes, print_json, progress_for, thousands};

/// Re-reads every byte of a snapshot and checks it against its manifest.
///
/// Checks every part's size and sha256, every entry's sha256, and every table's row count and
/// checksum.
///
/// With --sample N% (a deduplicated snapshot), a nightly check: every entry's chunks are
/// listed by the index and add up to its size, and N% of the packs the snapshot uses, chosen
/// at random, are read once, whole, with every chunk in them checked. A sample does not count
/// as a verification for prune's "newest verified".
///
/// With --verify-key (or in a repository that requires signatures) the manifest's signature is
/// checked first.
///
/// Exit 0 when the snapshot is sound; exit 3 naming the first damaged part and entry otherwise;
/// exit 7 when it is unsigned or badly signed and a signature is required.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    trust: super::key::TrustArgs,
    #[command(flatten)]
    identity: super::IdentityArg,
    /// An id, a unique id prefix, or `latest`.
    snapshot: String,
    #[command(flatten)]
    metrics: super::metrics::MetricsArgs,
    /// Check only this share of the snapshot's packs (e.g. 10%), for nightly runs.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    sample: Option<f64>,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
    if !(n > 0.0 && n <= 100.0) {
        return Err(format!("{s:?}: give a share above 0% and at most 100%"));
    }
    Ok(n)
}

pub async fn run(
    args: VerifyArgs,
    g: &GlobalArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    // A sample is a nightly spot check, not a verification: it pushes no verify metrics.
    if let Some(percent) = args.sample
        && sample(&args, percent, g, &cancel).await?
    {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let result = check(&args, g, &cancel).await;
    args.metrics
        .push(
            &args.repo.repo,
            Command::Verify,
            started,
            &result,
            Outcome::verify,
        )
        .await;
    result.map(|_| ())
}

async fn check(
    args: &VerifyArgs,
    g: &GlobalArgs,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<VerifyReport> {
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.identity.as_deref())
        .await?;
    super::reading(&repo, "verify", cancel, check_opened(args, g, &repo)).await
}

async fn check_opened(
    args: &VerifyArgs,
    g: &GlobalArgs,
    repo: &amlmigrate::repo::Repository,
) -> anyhow::Result<VerifyReport> {
    let id = repo.resolve(&args.snapshot).await?;
    let signed_by = repo.signed_by(&id).await?;
    let ui = progress_for(g);
    let result = verify(repo, &id, ui.clone()).await;
    ui.finish();
    let report = result?;
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "verify": report, "signed_by": signed_by }));
    } else if !g.quiet {
        println!(
            "snapshot {} is sound{}: {} part(s), {} read, {} tables, {} rows checked in {:.1}s",
            amlmigrate::text::Safe(&report.snapshot),
            signed_by
                .map(|k| format!(" and signed by key {k}"))
                .unwrap_or_default(),
            report.parts.len(),
            human_bytes(report.bytes_read),
            report.tables,
            thousands(report.rows),
            report.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(report)
}

/// `--sample`: `Ok(false)` when the snapshot has no deduplicated part (a full verify follows).
async fn sample(
    args: &VerifyArgs,
    percent: f64,
    g: &GlobalArgs,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<bool> {
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.identity.as_deref())
        .await?;
    super::reading(
        &repo,
        "verify --sample",
        cancel,
        sample_opened(args, percent, g, &repo),
    )
    .await
}

async fn sample_opened(
    args: &VerifyArgs,
    percent: f64,
    g: &GlobalArgs,
    repo: &amlmigrate::repo::Repository,
) -> anyhow::Result<bool> {
    let id = repo.resolve(&args.snapshot).await?;
    let m = repo.manifest(&id).await?;
    if !m.parts.iter().any(|p| p.chunked) {
        return Ok(false);
    }
    let r = repo.check_sample(&m, percent).await?;
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "sample": r }));
    } else if !g.quiet {
        println!(
            "snapshot {} sampled: {} entries listed whole, {} of {} packs read ({}), {} chunks checked",
            r.snapshot,
            r.entries,
            r.packs_read,
            r.packs_used,
            human_bytes(r.bytes_read),
            r.chunks_checked
        );
    }
    Ok(true)
}
