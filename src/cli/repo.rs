//! `amlmigrate repo init`

use clap::{Args, Subcommand};

use amlmigrate::repo::{InitOptions, Repository};

use super::{GlobalArgs, RepoArg, print_json};

/// Repository administration.
#[derive(Args)]
pub struct RepoCmdArgs {
    #[command(subcommand)]
    cmd: RepoCmd,
}

#[derive(Subcommand)]
enum RepoCmd {
    Init(InitArgs),
}

/// Creates a repository (a backup creates an unencrypted one by itself).
///
/// New repositories deduplicate (format 2): every entry is cut into content-defined chunks
/// (about 64 KiB), each distinct chunk is stored once, zstd-compressed, in packs of about
/// 32 MiB; a month of nightly snapshots takes little more than one.
///
/// With --encrypt-to the repository is encrypted to age recipients: chunks, pack keys and
/// manifests are encrypted, and chunk ids are keyed hashes. A backup (and the in-cluster
/// CronJob) needs only the recipients (the same --encrypt-to); restore, verify, show, export
/// need --identity. Prune needs neither, except to repack (it removes unused packs anyway).
///
/// Examples:
///   age-keygen -o key.txt    # prints the public key age1…
///   amlmigrate repo init --repo s3://aml-backups/prod --encrypt-to age1…
///   amlmigrate backup --repo s3://aml-backups/prod --encrypt-to age1… --mysql …
///   amlmigrate verify --repo s3://aml-backups/prod --identity key.txt latest
#[derive(Args)]
struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Encrypt the repository to this age recipient (age1…); repeat or separate with commas.
    #[arg(long, value_name = "AGE_RECIPIENT", value_delimiter = ',')]
    encrypt_to: Vec<String>,
    /// 2 (default): deduplicated chunks in packs. 1: one plain .tar.zst object per part, for
    /// tools that read only those (`amlmigrate export` gives them from a format 2 repository).
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u32).range(1..=2))]
    format: Option<u32>,
}

pub async fn run(args: RepoCmdArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let RepoCmd::Init(a) = args.cmd;
    let init = InitOptions {
        recipients: a.encrypt_to.clone(),
        format: a.format,
    };
    let (repo, created) = Repository::open_or_init(&a.repo.repo, &init).await?;
    if !created {
        anyhow::bail!(amlmigrate::Error::Refused(format!(
            "{} is already a repository (format {}{}); nothing was changed",
            repo.location(),
            repo.format(),
            if repo.is_encrypted() {
                ", encrypted"
            } else {
                ""
            }
        )));
    }
    if g.json {
        print_json(&serde_json::json!({
            "ok": true,
            "repository": repo.location(),
            "format": repo.format(),
            "encrypted": repo.is_encrypted(),
        }));
    } else if !g.quiet {
        println!(
            "created repository {} (format {}{})",
            repo.location(),
            repo.format(),
            if repo.is_encrypted() {
                format!(", encrypted to {} recipient(s)", a.encrypt_to.len())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
