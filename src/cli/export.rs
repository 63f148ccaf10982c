//! `amlmigrate export`

use clap::Args;

use super::{GlobalArgs, IdentityArg, RepoArg, human_bytes, open_repo, print_json};

/// Writes a snapshot as plain files: DIR/parts/<part>.tar.zst and DIR/manifest.json.
///
/// Whatever the repository's format (deduplicated, encrypted), the parts are ordinary
/// zstd-compressed tar archives whose sha256 the manifest lists, so a snapshot can be checked
/// with sha256sum and restored with tar, zstd and the mysql client alone (README, "Restore
/// without amlmigrate"). Every entry is checked against the manifest on the way out.
///
/// DIR must not exist or be empty; on failure nothing is left in it.
///
/// Example:
///   amlmigrate export --repo /backups/aml latest --to /tmp/snap
///   cd /tmp/snap && sha256sum parts/*.tar.zst && tar -I zstd -xf parts/mysql-aml.tar.zst
#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// An id, a unique id prefix, or `latest`.
    snapshot: String,
    /// The folder to write (new or empty).
    #[arg(long, value_name = "DIR")]
    to: std::path::PathBuf,
}

pub async fn run(
    args: ExportArgs,
    g: &GlobalArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let repo = open_repo(&args.repo.repo, args.identity.identity.as_deref()).await?;
    let id = repo.resolve(&args.snapshot).await?;
    let report = super::reading(&repo, "export", &cancel, async {
        Ok(amlmigrate::export::export(&repo, &id, &args.to).await?)
    })
    .await?;
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "export": report }));
    } else if !g.quiet {
        for p in &report.parts {
            println!(
                "{}  {}  {}",
                p.sha256,
                human_bytes(p.size),
                p.file.display()
            );
        }
        println!(
            "snapshot {} exported to {} ({} part(s) and manifest.json)",
            report.snapshot,
            report.dir.display(),
            report.parts.len()
        );
    }
    Ok(())
}
