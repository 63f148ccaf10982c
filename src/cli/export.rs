//! `amlmigrate export`

use clap::Args;

use amlmigrate::text::Safe;

use super::{GlobalArgs, IdentityArg, RepoArg, human_bytes, print_json};

/// Writes a snapshot as plain files: DIR/parts/<part>.tar.zst and DIR/manifest.json.
///
/// Whatever the repository's format (deduplicated, encrypted), the parts are ordinary
/// zstd-compressed tar archives whose sha256 the manifest lists, so a snapshot can be checked
/// with sha256sum and restored with tar, zstd and the mysql client alone
/// (docs/snapshot-format.md, "Restoring with tar, zstd and the mysql client alone"). Every
/// entry is checked against the manifest on the way out.
///
/// A reader like restore and verify: with --verify-key (or in a repository that requires
/// signatures) an unsigned or otherwise signed snapshot is refused (exit 7) before anything is
/// written. The files hold the snapshot decrypted, so they are written as the repository is:
/// folders 0700, files 0600 whatever the umask, each file created new and never through a
/// symbolic link. DIR is made, or must be an empty folder of yours that no one else can write
/// (not a link to one); on failure what export wrote is removed.
#[derive(Args)]
#[command(after_long_help = "Examples:
  amlmigrate export --repo /backups/aml latest --to /tmp/snap
  cd /tmp/snap && sha256sum parts/*.tar.zst
  tar -I zstd -xf parts/mysql-aml.tar.zst")]
pub struct ExportArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    trust: super::key::TrustArgs,
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
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.identity.as_deref())
        .await?;
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
                Safe(&p.sha256),
                human_bytes(p.size),
                Safe(p.file.display().to_string())
            );
        }
        println!(
            "snapshot {} exported to {} ({} part(s) and manifest.json)",
            Safe(&report.snapshot),
            Safe(report.dir.display().to_string()),
            report.parts.len()
        );
    }
    Ok(())
}
