//! `amlmigrate repo init`, `amlmigrate repo locks`

use clap::{Args, Subcommand};
use serde_json::json;

use amlmigrate::repo::sign::{Settings, TrustedKey, VerifyKey};
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
    Locks(LocksArgs),
}

/// Shows who holds the repository's locks (kind, command, host, pid, since, until when) and
/// which are stale, and with --remove-stale removes the stale ones, as restic's `unlock` does.
///
/// A lock is stale when its holder stopped refreshing it (it expires 5 minutes after the last
/// refresh) or when it was taken on this host by a process that is gone. Live locks are never
/// removed: a backup, reader or prune holding one is still running.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
amlmigrate repo locks --repo s3://aml-backups/prod\n  \
amlmigrate repo locks --repo /backups/aml --remove-stale")]
struct LocksArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Remove the stale locks.
    #[arg(long)]
    remove_stale: bool,
}

/// Creates a repository (only this and `backup --init` create one), or changes an existing
/// one's signature settings.
///
/// New repositories deduplicate (format 2): every entry is cut into content-defined chunks
/// (about 64 KiB), each distinct chunk is stored once, zstd-compressed, in packs of about
/// 32 MiB; a month of nightly snapshots takes little more than one.
///
/// With --encrypt-to the repository is encrypted to age recipients: chunks, pack keys and
/// manifests are encrypted, and chunk ids are keyed hashes. A backup (and the in-cluster
/// CronJob) needs only the recipients (the same --encrypt-to); restore, verify, show, export
/// need --identity. Prune needs neither, except to repack (it removes unused packs anyway).
/// Encryption and format are chosen once, at creation.
///
/// With --require-signatures every backup must sign (`--sign-key`) and every reader must give
/// a public key (`--verify-key`) or is refused (exit 7). The setting is an object in the
/// repository, which whoever can write the bucket can also change: readers therefore trust only
/// the keys they are given themselves, never keys named in the repository. --trust names the
/// keys backups are expected to sign with, so a backup with the wrong key stops before it
/// writes anything.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
age-keygen -o key.txt    # prints the public key age1…\n  \
amlmigrate key generate --out aml-backup.key\n  \
amlmigrate repo init --repo s3://aml-backups/prod --encrypt-to age1… \\\n      \
--require-signatures --trust aml-backup.key.pub\n  \
amlmigrate backup --repo s3://aml-backups/prod --encrypt-to age1… \\\n      \
--sign-key aml-backup.key --mysql mysql://root@mysql.aml:3306\n  \
amlmigrate verify --repo s3://aml-backups/prod --identity key.txt \\\n      \
--verify-key aml-backup.key.pub latest")]
struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Encrypt the repository to this age recipient (age1…); repeat or separate with commas.
    #[arg(
        long,
        value_name = "AGE_RECIPIENT",
        env = "AMLMIGRATE_AGE_RECIPIENTS",
        value_delimiter = ','
    )]
    encrypt_to: Vec<String>,
    /// 2 (default): deduplicated chunks in packs. 1: one plain .tar.zst object per part, for
    /// tools that read only those (`amlmigrate export` gives them from a format 2 repository).
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u32).range(1..=2))]
    format: Option<u32>,
    /// Require every snapshot to be signed (backups without --sign-key are refused, readers
    /// without --verify-key too).
    #[arg(long)]
    require_signatures: bool,
    /// A public key backups sign with (PEM, repeatable); replaces the keys recorded before.
    #[arg(long, value_name = "PUBKEYFILE")]
    trust: Vec<std::path::PathBuf>,
}

pub async fn run(args: RepoCmdArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match args.cmd {
        RepoCmd::Init(a) => init(a, g).await,
        RepoCmd::Locks(a) => locks(a, g).await,
    }
}

async fn locks(a: LocksArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = Repository::open(&a.repo.repo).await?;
    let locks = repo.locks(a.remove_stale).await?;
    if g.json {
        print_json(
            &json!({ "ok": true, "repository": repo.location(), "locks": locks,
            "removed": a.remove_stale }),
        );
        return Ok(());
    }
    if locks.is_empty() {
        println!("no locks in {}", repo.location());
        return Ok(());
    }
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    for l in &locks {
        println!(
            "{}  {:?}  {} on {} (pid {}) since {}, until {}{}",
            l.object,
            l.lock.kind,
            // Lock objects are written by anyone who can write the repository.
            l.lock.what.escape_debug(),
            l.lock.hostname.escape_debug(),
            l.lock.pid,
            time(&l.lock.created),
            time(&l.lock.expires),
            match (&l.stale, a.remove_stale) {
                (Some(why), true) => format!("  stale ({why}): removed"),
                (Some(why), false) => format!("  stale ({why})"),
                (None, _) => String::new(),
            }
        );
    }
    let stale = locks.iter().filter(|l| l.stale.is_some()).count();
    if stale > 0 && !a.remove_stale {
        println!(
            "{stale} stale lock(s): `amlmigrate repo locks --remove-stale --repo {}` removes them",
            repo.location()
        );
    }
    Ok(())
}

async fn init(a: InitArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    // Keys are read before anything is created, so a wrong path leaves nothing behind.
    let keys = a
        .trust
        .iter()
        .map(|p| VerifyKey::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let signing = a.require_signatures || !keys.is_empty();
    let init = InitOptions {
        recipients: a.encrypt_to.clone(),
        format: a.format,
    };
    let (repo, created) = Repository::open_or_init(&a.repo.repo, &init).await?;
    if !created && (!signing || !a.encrypt_to.is_empty() || a.format.is_some()) {
        anyhow::bail!(amlmigrate::Error::Refused(format!(
            "{} is already a repository (format {}{}); its format and encryption are chosen at \
             creation and nothing was changed{}",
            repo.location(),
            repo.format(),
            if repo.is_encrypted() {
                ", encrypted"
            } else {
                ""
            },
            if signing {
                "; to change only its signature settings, give --require-signatures/--trust alone"
            } else {
                ""
            }
        )));
    }
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
    if signing {
        repo.set_signing_settings(&settings).await?;
    }
    let ids: Vec<&str> = keys.iter().map(|k| k.id()).collect();
    if g.json {
        print_json(&json!({
            "ok": true,
            "repository": repo.location(),
            "created": created,
            "format": repo.format(),
            "encrypted": repo.is_encrypted(),
            "require_signatures": settings.require_signatures,
            "keys": ids,
        }));
    } else if !g.quiet {
        println!(
            "{} repository {} (format {}{}): signatures {}{}",
            if created { "created" } else { "updated" },
            repo.location(),
            repo.format(),
            if repo.is_encrypted() {
                format!(", encrypted to {} recipient(s)", a.encrypt_to.len())
            } else {
                String::new()
            },
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
