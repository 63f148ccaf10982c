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
}

pub async fn run(args: VerifyArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let result = check(&args, g).await;
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

async fn check(args: &VerifyArgs, g: &GlobalArgs) -> anyhow::Result<VerifyReport> {
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.identity.as_deref())
        .await?;
    let id = repo.resolve(&args.snapshot).await?;
    let signed_by = repo.signed_by(&id).await?;
    let ui = progress_for(g);
    let result = verify(&repo, &id, ui.clone()).await;
    ui.finish();
    let report = result?;
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "verify": report, "signed_by": signed_by }));
    } else if !g.quiet {
        println!(
            "snapshot {} is sound{}: {} part(s), {} read, {} tables, {} rows checked in {:.1}s",
            report.snapshot,
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
