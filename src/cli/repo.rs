//! `amlmigrate repo init`

use clap::{Args, Subcommand};
use serde_json::json;

use amlmigrate::repo::Repository;
use amlmigrate::repo::sign::{Settings, TrustedKey, VerifyKey};

use super::{GlobalArgs, RepoArg, print_json};

/// The repository itself: its settings.
#[derive(Args)]
pub struct RepoCmdArgs {
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Subcommand)]
enum RepoCommand {
    Init(InitArgs),
}

/// Creates a repository (or updates an existing one's settings).
///
/// With --require-signatures every backup must sign (`--sign-key`) and every reader must give
/// a public key (`--verify-key`) or is refused (exit 7). The setting is an object in the
/// repository, which whoever can write the bucket can also change: readers therefore trust only
/// the keys they are given themselves, never keys named in the repository. --trust names the
/// keys backups are expected to sign with, so a backup with the wrong key stops before it
/// writes anything.
#[derive(Args)]
#[command(
    after_long_help = "Example:\n  amlmigrate key generate --out aml-backup.key\n  \
amlmigrate repo init --repo s3://aml-backups/prod --require-signatures --trust aml-backup.key.pub\n  \
amlmigrate backup --repo s3://aml-backups/prod --sign-key aml-backup.key --mysql …\n  \
amlmigrate verify --repo s3://aml-backups/prod --verify-key aml-backup.key.pub latest"
)]
struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Require every snapshot to be signed (backups without --sign-key are refused, readers
    /// without --verify-key too).
    #[arg(long)]
    require_signatures: bool,
    /// A public key backups sign with (PEM, repeatable); replaces the keys recorded before.
    #[arg(long, value_name = "PUBKEYFILE")]
    trust: Vec<std::path::PathBuf>,
}

pub async fn run(args: RepoCmdArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        RepoCommand::Init(a) => init(a, g).await,
    }
}

async fn init(a: InitArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let keys = a
        .trust
        .iter()
        .map(|p| VerifyKey::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (repo, created) = Repository::open_or_create(&a.repo.repo).await?;
    let settings = Settings {
        require_signatures: a.require_signatures,
        keys: keys
            .iter()
            .map(|k| TrustedKey {
                id: k.id().to_string(),
                public_key: k.to_pem(),
            })
            .collect(),
    };
    repo.set_signing_settings(&settings).await?;
    let ids: Vec<&str> = keys.iter().map(|k| k.id()).collect();
    if g.json {
        print_json(&json!({
            "ok": true,
            "repository": repo.location(),
            "created": created,
            "require_signatures": settings.require_signatures,
            "keys": ids,
        }));
    } else if !g.quiet {
        println!(
            "{} repository {}: signatures {}{}",
            if created { "created" } else { "updated" },
            repo.location(),
            if settings.require_signatures {
                "required"
            } else {
                "optional"
            },
            if ids.is_empty() {
                String::new()
            } else {
                format!(", backups sign with key {}", ids.join(", "))
            }
        );
    }
    Ok(())
}
