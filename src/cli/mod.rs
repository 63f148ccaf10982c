//! The command line. Each command is a small file: flags → options struct → library call →
//! output. Flags shared by several commands are defined once here.

// Every command's `println!`/`print!` goes through `stdout::write_fmt`, which never panics when
// the reader of stdout went away (std's would): these shadow std's macros in this module and
// every module declared below it.
macro_rules! println {
    () => {
        $crate::cli::stdout::write_fmt(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_fmt(format_args!($($arg)*), true)
    };
}

macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_fmt(format_args!($($arg)*), false)
    };
}

// Likewise for stderr (`… 2>&1 | head -1`): a summary nobody reads is no reason to panic.
macro_rules! eprintln {
    () => {
        $crate::cli::stdout::write_err(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_err(format_args!($($arg)*), true)
    };
}

// Unused today; here so that a future eprint! cannot panic either.
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_err(format_args!($($arg)*), false)
    };
}

pub mod stdout;

mod backup;
mod export;
mod generate;
mod key;
mod kube;
mod metrics;
mod mlflow;
mod profile;
mod progress;
mod prune;
mod pvc;
mod recover;
mod rehearse;
mod repo;
mod restore;
mod schedule;
mod show;
mod snapshots;
mod upgrade;
mod verify;

mod help;

#[cfg(test)]
mod doc_tests;
#[cfg(test)]
mod env_tests;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::error::{Error, ErrorKind};
use amlmigrate::kube::KubeOptions;
use amlmigrate::mysql::MysqlUrl;
use amlmigrate::secret::Secret;

/// The end of the top-level `--help`: typical use, exit codes and the environment, printed
/// as written (see help.rs).
const TOP_AFTER_HELP: &str = "\
Typical use:
  amlmigrate backup  --repo /backups/aml --mysql mysql://root@mysql:3306 \\
      --tag reason=pre-upgrade
  amlmigrate verify  --repo /backups/aml latest
  amlmigrate restore --repo /backups/aml latest --mysql mysql://root@new-db:3306

The whole 1.3 → 1.4 upgrade, planned, journaled and resumable:
  amlmigrate upgrade plan --config upgrade.toml
  amlmigrate upgrade run  --config upgrade.toml

A lost or rebuilt 1.4 cluster, back from one snapshot:
  amlmigrate recover --config upgrade.toml --dry-run

Exit codes:
  0    success
  1    the operation failed (see the message)
  2    bad input: flags, URLs, unknown database or snapshot
  3    damage: a snapshot does not match its manifest (verify, restore)
  4    refused to protect data: non-empty target, non-empty folder
  5    could not connect: server unreachable, access denied, expired credentials
  6    forbidden: the credentials lack a permission (Kubernetes RBAC)
  7    untrusted: unsigned or badly signed where a signature is required
  130  interrupted (Ctrl-C, SIGTERM); nothing half-done is left looking complete

Environment (a flag given on the command line wins):
  AMLMIGRATE_REPO              default for --repo
  AMLMIGRATE_IDENTITY          default for --identity (age identity file that
                               reads an encrypted repository and Secrets)
  AMLMIGRATE_MYSQL             default for --mysql
  AMLMIGRATE_MYSQL_PASSWORD    MySQL password when the URL has none
  AMLMIGRATE_MYSQL_PASSWORD_<NAME>  the password of the MySQL source NAME
  AMLMIGRATE_AGE_RECIPIENTS    default for --encrypt-to (age recipients)
  AMLMIGRATE_SIGN_KEY          default for --sign-key (the key to sign with)
  AMLMIGRATE_VERIFY_KEY        default for --verify-key (public keys readers
                               trust, comma-separated)
  AMLMIGRATE_UPGRADE_CONFIG    default for --config (upgrade, recover)
  AMLMIGRATE_METRICS_PUSH      default for --metrics-push (a Pushgateway URL)
  AMLMIGRATE_METRICS_SCHEDULE  default for --metrics-schedule (the schedule
                               label of pushed metrics; default: manual)
  AMLMIGRATE_S3_PATH_STYLE     true (default): ENDPOINT/BUCKET/KEY;
                               false: virtual-hosted addressing
  AWS_ENDPOINT_URL             S3 endpoint of s3:// repositories (MinIO, Ceph …)
  AWS_REGION, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN            S3 region and credentials (else profile
                               AWS_PROFILE of ~/.aws/credentials and config)
  KUBECONFIG                   kubeconfig file(s) when --kubeconfig is not given
  RUST_LOG                     log filter, e.g. amlmigrate=debug
Passwords and secret keys are never printed.";

#[derive(Parser)]
#[command(
    name = "amlmigrate",
    version,
    about = "Safe, fast, verifiable snapshots for the Alauda AI 1.3 -> 1.4 upgrade",
    long_about = "amlmigrate takes consistent, streaming, verifiable snapshots of the MySQL databases of \
Alauda AI (the AML job records `aml`, Kubeflow Pipelines `mlpipeline`, `cachedb`, `metadb`, and MLflow 2.6) \
and the Kubernetes objects users need back (Profiles, Notebooks, Tensorboards, their PVCs, RoleBindings, \
AuthorizationPolicies, AML resources) into a snapshot repository, and restores them exactly.",
    after_long_help = TOP_AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Print the result as JSON on stdout (progress and notices stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print no progress and no summary; errors still go to stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Progress display: bars on a terminal, plain lines otherwise (auto), or never.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Log what is read, written, waited for and decided on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text, or as JSON objects one per line (for log collection in a cluster).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bars,
    Lines,
    Never,
}

// Each command's help comes from the doc comment of its options struct.
#[derive(Subcommand)]
enum Command {
    Backup(backup::BackupArgs),
    Restore(restore::RestoreArgs),
    Snapshots(snapshots::SnapshotsArgs),
    Show(show::ShowArgs),
    Verify(verify::VerifyArgs),
    Export(export::ExportArgs),
    Repo(repo::RepoCmdArgs),
    Prune(prune::PruneArgs),
    Schedule(schedule::ScheduleArgs),
    Mlflow(mlflow::MlflowArgs),
    Pvc(pvc::PvcArgs),
    Kube(kube::KubeCmdArgs),
    Upgrade(upgrade::UpgradeArgs),
    Recover(recover::RecoverArgs),
    Profile(profile::ProfileArgs),
    Key(key::KeyArgs),
    /// Print shell completions or the man page.
    Generate(generate::GenerateArgs),
}

/// `--repo`, shared by every command that reads or writes a repository.
#[derive(Args, Clone)]
pub struct RepoArg {
    /// Snapshot repository: a folder path, file://PATH, or s3://BUCKET/PREFIX (S3 or
    /// S3-compatible; endpoint, region and keys from the AWS_* variables or ~/.aws files).
    #[arg(long, env = "AMLMIGRATE_REPO", value_name = "PATH|URL")]
    pub repo: String,
}

/// `--identity`, for the commands that read an encrypted repository.
#[derive(Args, Clone)]
pub struct IdentityArg {
    /// Age identity file (from age-keygen) of a recipient of an encrypted repository; not
    /// needed for an unencrypted one.
    #[arg(long, env = "AMLMIGRATE_IDENTITY", value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// Opens an existing repository, with the identity an encrypted one needs for reading.
pub async fn open_repo(
    location: &str,
    identity: Option<&Path>,
) -> amlmigrate::error::Result<amlmigrate::repo::Repository> {
    if let Some(f) = identity {
        warn_if_readable_by_others(f, "--identity");
    }
    let mut repo = amlmigrate::repo::Repository::open(location).await?;
    repo.unlock(&[], identity)?;
    Ok(repo)
}

/// Runs `work`, a reader of `repo`, under a shared lock (in a deduplicated repository), so that
/// a prune cannot remove or repack packs under it; the lock goes when `work` ends, however it
/// ends. Waiting for a running prune says so and stops at once on Ctrl-C.
pub async fn reading<T>(
    repo: &amlmigrate::repo::Repository,
    what: &str,
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use amlmigrate::repo::lock::LockKind;
    let lock = if repo.format() >= 2 {
        Some(
            repo.lock(
                LockKind::Shared,
                what,
                amlmigrate::backup::LOCK_WAIT,
                cancel,
            )
            .await?,
        )
    } else {
        None
    };
    let result = work.await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

/// The MySQL connection flags, shared by backup and restore.
#[derive(Args, Clone)]
pub struct MysqlArgs {
    /// MySQL server: mysql://user@host[:port][/database][?ssl-mode=verify-identity&ssl-ca=FILE]
    /// (ssl-ca replaces the public roots; ssl-mode=required encrypts without checking the server).
    /// Prefer --mysql-password-file or AMLMIGRATE_MYSQL_PASSWORD over a password in the URL.
    #[arg(
        long,
        env = "AMLMIGRATE_MYSQL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub mysql: Option<String>,
    /// Read the MySQL password from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub mysql_password_file: Option<PathBuf>,
}

impl MysqlArgs {
    pub fn url(&self) -> anyhow::Result<MysqlUrl> {
        match self.url_opt()? {
            Some(u) => Ok(u),
            None => Err(Error::input(
                "no MySQL server given: pass --mysql mysql://user@host:3306 or set AMLMIGRATE_MYSQL",
            )
            .into()),
        }
    }

    /// The URL when --mysql (or AMLMIGRATE_MYSQL) was given.
    pub fn url_opt(&self) -> anyhow::Result<Option<MysqlUrl>> {
        let Some(raw) = &self.mysql else {
            return Ok(None);
        };
        let url = MysqlUrl::parse(raw)?;
        let fallback = password(
            self.mysql_password_file.as_deref(),
            "--mysql-password-file",
            "AMLMIGRATE_MYSQL_PASSWORD",
        )?;
        Ok(Some(url.with_fallback_password(fallback)))
    }
}

/// The password from a `--…-password-file` flag, else from the environment variable `env`;
/// read by the one helper every password file goes through (empty: refused, readable by
/// others: a warning).
pub fn password(file: Option<&Path>, flag: &str, env: &str) -> anyhow::Result<Option<Secret>> {
    Ok(amlmigrate::secret::password_from(file, flag, env)?)
}

/// A warning on stderr when a key or password file can be read by users other than its owner.
pub fn warn_if_readable_by_others(path: &Path, flag: &str) {
    if let Some(mode) = amlmigrate::secret::readable_by_others(path) {
        eprintln!(
            "warning: {flag} {} can be read by other users (mode {mode:04o}); restrict it: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

/// Kubernetes access flags, shared by backup, restore and pvc.
#[derive(Args, Clone, Default)]
pub struct KubeArgs {
    /// Kubeconfig file. Default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of the workload cluster (where AML runs). Default: the current context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Kubeconfig context of the ACP global cluster (plugin ModuleInfos). Default: the workload cluster.
    #[arg(long, value_name = "NAME")]
    pub global_context: Option<String>,
}

impl KubeArgs {
    pub fn options(&self) -> KubeOptions {
        KubeOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            global_context: self.global_context.clone(),
        }
    }
}

/// Parses `key=value` for --tag and --rename.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The command line as `--help`, the completions and the man page show it.
pub fn command() -> clap::Command {
    help::verbatim_examples(Cli::command())
}

pub fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(cli.global.verbose, cli.global.log_format);
    // One crypto provider for every TLS connection of the process, chosen explicitly so that
    // a second provider pulled in by a dependency can never make rustls panic at runtime.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.global.json;
    let result = runtime.block_on(async move {
        let cancel = CancellationToken::new();
        spawn_signal_handler(cancel.clone());
        let g = cli.global.clone();
        match cli.command {
            Command::Backup(a) => backup::run(a, &g, cancel).await,
            Command::Restore(a) => restore::run(a, &g, cancel).await,
            Command::Snapshots(a) => snapshots::run(a, &g).await,
            Command::Show(a) => show::run(a, &g).await,
            Command::Verify(a) => verify::run(a, &g, cancel).await,
            Command::Export(a) => export::run(a, &g, cancel).await,
            Command::Repo(a) => repo::run(a, &g).await,
            Command::Prune(a) => prune::run(a, &g, cancel).await,
            Command::Schedule(a) => schedule::run(a, &g).await,
            Command::Mlflow(a) => mlflow::run(a, &g, cancel).await,
            Command::Pvc(a) => pvc::run(a, &g).await,
            Command::Kube(a) => kube::run(a, &g),
            Command::Upgrade(a) => upgrade::run(a, &g, cancel).await,
            Command::Recover(a) => recover::run(a, &g, cancel).await,
            Command::Profile(a) => profile::run(a, &g, cancel).await,
            Command::Generate(a) => generate::run(a),
            Command::Key(a) => key::run(a, &g),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report_error(&e, json),
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "amlmigrate=info,warn",
        _ => "amlmigrate=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| stdout::SafeStderr)
        // Colours would be escaped with everything else a log line holds.
        .with_ansi(false)
        .with_target(false);
    match format {
        LogFormat::Text => fmt.init(),
        // One object per line: timestamp, level, message and the event's fields at the top.
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// First Ctrl-C (or SIGTERM, as Kubernetes sends) asks the work to stop cleanly; a second
/// Ctrl-C exits at once.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let got = async {
                match term.as_mut() {
                    Some(t) => {
                        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} }
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            #[cfg(not(unix))]
            let got = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            got.await;
            if cancel.is_cancelled() {
                eprintln!("\ninterrupted again: exiting now");
                std::process::exit(130);
            }
            // Cancelled before it is said: whoever reads the line knows the work was told.
            cancel.cancel();
            eprintln!("\nstopping cleanly (press Ctrl-C again to exit at once)…");
        }
    });
}

/// A failure whose full result was already printed as JSON (`"ok": false` with the details);
/// only the exit code and the stderr line remain to be given.
#[derive(Debug)]
pub struct JsonPrinted(pub Error);

impl std::fmt::Display for JsonPrinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for JsonPrinted {}

fn report_error(e: &anyhow::Error, json: bool) -> ExitCode {
    let lib = e.chain().find_map(|c| {
        c.downcast_ref::<Error>()
            .or_else(|| c.downcast_ref::<JsonPrinted>().map(|p| &p.0))
    });
    let kind = lib.map(Error::kind).unwrap_or(ErrorKind::Other);
    let code: u8 = match kind {
        ErrorKind::Other => 1,
        ErrorKind::Input => 2,
        ErrorKind::Damaged => 3,
        ErrorKind::Refused => 4,
        ErrorKind::Connection => 5,
        ErrorKind::Forbidden => 6,
        ErrorKind::Untrusted => 7,
        ErrorKind::Interrupted => 130,
    };
    let kind_name = match kind {
        ErrorKind::Other => "failed",
        ErrorKind::Input => "input",
        ErrorKind::Damaged => "damaged",
        ErrorKind::Refused => "refused",
        ErrorKind::Connection => "connection",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::Untrusted => "untrusted",
        ErrorKind::Interrupted => "interrupted",
    };
    let message = amlmigrate::error::chain_text(e.as_ref());
    let printed = e.chain().any(|c| c.is::<JsonPrinted>());
    if json && !printed {
        let mut err = json!({ "kind": kind_name, "message": message });
        if let Some(Error::Damaged {
            part,
            entry,
            detail,
        }) = lib
        {
            err["part"] = json!(part);
            err["entry"] = json!(entry);
            err["detail"] = json!(detail);
        }
        println!("{}", json!({ "ok": false, "error": err }));
    }
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Where progress goes, decided once from the flags and whether stderr is a terminal.
pub fn progress_for(g: &GlobalArgs) -> std::sync::Arc<progress::Ui> {
    let mode = if g.quiet || g.progress == ProgressMode::Never {
        progress::Mode::Quiet
    } else if g.progress == ProgressMode::Bars
        || (g.progress == ProgressMode::Auto && std::io::stderr().is_terminal())
    {
        progress::Mode::Bars
    } else {
        progress::Mode::Lines
    };
    std::sync::Arc::new(progress::Ui::new(mode))
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

pub fn human_bytes(n: u64) -> String {
    humansize::format_size(n, humansize::BINARY)
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
