//! `amlmigrate key generate`, and the signing flags shared by the commands that write or read
//! snapshots (`--sign-key`, `--verify-key`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use amlmigrate::repo::Repository;
use amlmigrate::repo::sign::{SignKey, Trust};
use amlmigrate::secret::readable_by_others;

use super::{GlobalArgs, print_json};

/// Ed25519 keys that sign snapshots (see `backup --sign-key` and `--verify-key`).
#[derive(Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Subcommand)]
enum KeyCommand {
    Generate(GenerateArgs),
}

/// Writes a new signing key: FILE (secret, PKCS#8 PEM, mode 0600) and FILE.pub (public, PEM).
///
/// The secret key goes where backups run (`backup --sign-key FILE`, or a Kubernetes Secret for
/// `schedule install --sign-key-secret`); the public key goes to everyone who restores
/// (`--verify-key FILE.pub`) and to `repo init --trust`. openssl reads and writes the same
/// format (`openssl genpkey -algorithm ed25519 -out FILE`). An existing file is never
/// overwritten (exit 4).
#[derive(Args)]
#[command(after_long_help = "Example:\n  amlmigrate key generate --out /secure/aml-backup.key")]
struct GenerateArgs {
    /// Where to write the secret key; the public key goes to the same name plus `.pub`.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `--sign-key`: the secret key backups sign with.
#[derive(Args, Clone, Default)]
pub struct SignArgs {
    /// Sign the snapshot with this Ed25519 secret key (PKCS#8 PEM from `amlmigrate key
    /// generate`). Required when the repository requires signed snapshots.
    #[arg(long, env = "AMLMIGRATE_SIGN_KEY", value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}

impl SignArgs {
    /// The key, read now (a bad file fails before any work); warns when others can read it.
    pub fn key(&self, g: &GlobalArgs) -> anyhow::Result<Option<Arc<SignKey>>> {
        let Some(path) = &self.sign_key else {
            return Ok(None);
        };
        warn_if_readable(path, g);
        Ok(Some(Arc::new(SignKey::read(path)?)))
    }
}

/// `--verify-key`: the public keys a reader trusts.
#[derive(Args, Clone, Default)]
pub struct TrustArgs {
    /// Check every snapshot read against this Ed25519 public key (PEM, the `.pub` of `key
    /// generate`; repeat or comma-separate for several) and refuse one that is unsigned or
    /// signed otherwise (exit 7). Without it, signatures are checked only where the repository
    /// requires them, and then the read is refused for want of a key.
    #[arg(
        long,
        env = "AMLMIGRATE_VERIFY_KEY",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub verify_key: Vec<PathBuf>,
}

impl TrustArgs {
    pub fn trust(&self) -> anyhow::Result<Trust> {
        Ok(Trust::read(&self.verify_key)?)
    }

    /// Opens the repository with these keys trusted and, for an encrypted one, `identity`.
    pub async fn open_with(
        &self,
        location: &str,
        identity: Option<&Path>,
    ) -> anyhow::Result<Repository> {
        let trust = self.trust()?;
        Ok(super::open_repo(location, identity)
            .await?
            .with_trust(trust))
    }
}

/// Warns when users outside the key's owner and group can read it (a Kubernetes Secret volume
/// is group-readable by design).
fn warn_if_readable(path: &Path, g: &GlobalArgs) {
    if let Some(mode) = readable_by_others(path).filter(|m| m & 0o004 != 0)
        && !g.quiet
    {
        eprintln!(
            "warning: the signing key {} is readable by other users (mode {mode:03o}); \
             `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

pub fn run(args: KeyArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        KeyCommand::Generate(a) => generate(a, g),
    }
}

fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::Error::new(amlmigrate::Error::Refused(format!(
                    "{} already exists; refusing to overwrite a key: choose another --out",
                    path.display()
                )))
            } else {
                anyhow::Error::new(e).context(format!("creating {}", path.display()))
            }
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn generate(a: GenerateArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut pub_path = a.out.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    if pub_path.exists() {
        anyhow::bail!(amlmigrate::Error::Refused(format!(
            "{} already exists; refusing to overwrite a key: choose another --out",
            pub_path.display()
        )));
    }
    let key = SignKey::generate();
    write_new(&a.out, &key.to_pem()?, 0o600)?;
    write_new(&pub_path, &key.verify_key().to_pem(), 0o644)?;
    if g.json {
        print_json(&json!({
            "ok": true,
            "key_id": key.id(),
            "secret_key": a.out,
            "public_key": pub_path,
        }));
    } else if !g.quiet {
        println!(
            "key {}: secret key {} (keep it where backups run), public key {} (give it to \
             whoever restores: --verify-key)",
            key.id(),
            a.out.display(),
            pub_path.display()
        );
    }
    Ok(())
}
