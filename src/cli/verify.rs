//! `amlmigrate verify`

use clap::Args;

use amlmigrate::verify::verify;

use super::{GlobalArgs, RepoArg, human_bytes, print_json, progress_for, thousands};

/// Re-reads every byte of a snapshot and checks it against its manifest.
///
/// Checks every part's size and sha256, every entry's sha256, and every table's row count and
/// checksum.
///
/// Exit 0 when the snapshot is sound; exit 3 naming the first damaged part and entry otherwise.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: super::IdentityArg,
    /// An id, a unique id prefix, or `latest`.
    snapshot: String,
}

pub async fn run(args: VerifyArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = super::open_repo(&args.repo.repo, args.identity.identity.as_deref()).await?;
    let id = repo.resolve(&args.snapshot).await?;
    let ui = progress_for(g);
    let result = verify(&repo, &id, ui.clone()).await;
    ui.finish();
    let report = result?;
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "verify": report }));
    } else if !g.quiet {
        println!(
            "snapshot {} is sound: {} part(s), {} read, {} tables, {} rows checked in {:.1}s",
            report.snapshot,
            report.parts.len(),
            human_bytes(report.bytes_read),
            report.tables,
            thousands(report.rows),
            report.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(())
}
