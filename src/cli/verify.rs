//! `amlmigrate verify`

use clap::Args;

use amlmigrate::verify::verify;

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
/// Exit 0 when the snapshot is sound; exit 3 naming the first damaged part and entry otherwise.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: super::IdentityArg,
    /// An id, a unique id prefix, or `latest`.
    snapshot: String,
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

pub async fn run(args: VerifyArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = super::open_repo(&args.repo.repo, args.identity.identity.as_deref()).await?;
    let id = repo.resolve(&args.snapshot).await?;
    if let Some(percent) = args.sample {
        let m = repo.manifest(&id).await?;
        if m.parts.iter().any(|p| p.chunked) {
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
            return Ok(());
        }
    }
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
