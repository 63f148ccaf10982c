//! `amlmigrate backup`

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::backup::{
    BackupOptions, DEFAULT_MYSQL_SOURCE, MysqlSource, backup, mysql_sources, source_of,
};
use amlmigrate::kube::backup::KubeBackupOptions;
use amlmigrate::kube::catalog::Catalog;
use amlmigrate::kube::secrets::Recipients;
use amlmigrate::metrics::{Command, Outcome};
use amlmigrate::mysql::MysqlUrl;
use amlmigrate::mysql::backup::{DEFAULT_CHUNK_BYTES, MysqlBackupOptions};
use amlmigrate::repo::Repository;
use amlmigrate::secret::Secret;

use super::{
    GlobalArgs, KubeArgs, RepoArg, human_bytes, parse_pair, print_json, progress_for, thousands,
};

/// Takes one snapshot of MySQL databases and/or the Kubernetes objects of an AML cluster.
///
/// MySQL (--mysql): one or several servers, each a named source (the article names three: the
/// AML job records, Kubeflow Pipelines' MySQL and MLflow 2.6's MySQL). Every source must answer
/// and hold the databases asked of it before anything is written. Per source, all tables are
/// read inside one REPEATABLE READ transaction started WITH CONSISTENT SNAPSHOT, so every
/// InnoDB table of that server comes from the same point in time and writers are never
/// blocked. Each database becomes one part holding schema.sql, load.sql, post-data.sql and the
/// rows as LOAD DATA chunks. A deduplicated repository (format 2, the default) stores the
/// part's entries as content-defined chunks, each chunk once, compressed in packs, so a second
/// snapshot of unchanged data adds almost nothing; a format 1 repository stores each part as
/// one tar + zstd object. `amlmigrate export` writes any snapshot as plain .tar.zst parts.
///
/// Kubernetes (--kube): the kinds of the catalog (Profiles, Notebooks, Tensorboards, PVCs and
/// their PVs, RoleBindings and AuthorizationPolicies of profile namespaces, the image-builder
/// ConfigMaps and Secrets, AmlCluster, Aml, plugin ModuleInfos of the global cluster, training
/// and Volcano jobs as records) are fetched through discovery, one YAML file each, without
/// server-managed fields. A kind the cluster does not serve is reported and skipped. Secrets are
/// stored only encrypted to --encrypt-to recipients; without one they are left out and the
/// manifest lists them. Every such snapshot carries the PVC index (see `amlmigrate pvc`).
///
/// The manifest is written last and commits the snapshot. If the backup fails or is
/// interrupted, no snapshot appears.
///
/// The repository must exist (`amlmigrate repo init`), or --init creates it at a new or empty
/// location, so a mistyped --repo is an error instead of a new repository. A backup given
/// --encrypt-to expects the repository to be encrypted to those recipients and refuses one
/// whose marker says otherwise (pass --unencrypted-repo for a plain repository whose Secrets
/// alone are encrypted).
/// Prints the new snapshot id on stdout; the summary goes to stderr.
#[derive(Args)]
#[command(after_long_help = r#"Examples:
  amlmigrate backup --repo /backups/aml --mysql mysql://root@127.0.0.1:3306
  AMLMIGRATE_MYSQL_PASSWORD=… amlmigrate backup --repo /backups/aml \
      --mysql mysql://backup@mysql.aml:3306 \
      --databases aml,mlpipeline,cachedb,metadb --tag reason=pre-upgrade
  amlmigrate backup --repo /backups/aml \
      --mysql aml=mysql://root@10.4.158.198:3306 --databases aml=aml \
      --mysql kfp=mysql://root@127.0.0.1:13306 \
      --databases kfp=mlpipeline,cachedb,metadb \
      --mysql mlflow=mysql://root@10.4.158.198:3306 --databases mlflow=mlflow \
      --mysql-password-file kfp=/run/kfp-pw
  id=$(amlmigrate backup --quiet --repo /backups/aml --mysql mysql://root@db)"#)]
pub struct BackupArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    sign: super::key::SignArgs,
    /// A MySQL server to back up: [NAME=]mysql://user[:password]@host[:port][/database]
    /// [?ssl-mode=required|verify-identity&ssl-ca=FILE]. Repeat it with NAME= for several
    /// servers (e.g. aml=…, kfp=…, mlflow=…); a single URL without NAME is the source "mysql".
    /// Password: --mysql-password-file, else $AMLMIGRATE_MYSQL_PASSWORD_<NAME>, else
    /// $AMLMIGRATE_MYSQL_PASSWORD; prefer those over a password in the URL.
    #[arg(
        long = "mysql",
        env = "AMLMIGRATE_MYSQL",
        hide_env_values = true,
        value_name = "[NAME=]URL"
    )]
    mysql: Vec<String>,
    /// Read a MySQL password from this file (a trailing newline is ignored): FILE for the only
    /// source, NAME=FILE for a named one (repeatable).
    #[arg(long, value_name = "[NAME=]FILE")]
    mysql_password_file: Vec<String>,
    /// Also back up the Kubernetes objects of the catalog and the PVC index.
    #[arg(long)]
    kube: bool,
    #[command(flatten)]
    kube_access: KubeArgs,
    /// Replace the default Kubernetes catalog with this TOML file (`amlmigrate kube catalog`
    /// prints the defaults to start from).
    #[arg(long, value_name = "FILE", requires = "kube")]
    kube_catalog: Option<std::path::PathBuf>,
    /// User namespaces to back up, comma-separated. Default: the namespaces of Kubeflow
    /// Profiles and those holding Notebooks or Tensorboards.
    #[arg(long, value_delimiter = ',', value_name = "NS,...", requires = "kube")]
    namespaces: Vec<String>,
    /// Encrypt Secrets to this age recipient (age1…, repeatable). Without one, Secrets are left
    /// out of the snapshot and the manifest lists them.
    #[arg(
        long,
        value_name = "AGE_RECIPIENT",
        env = "AMLMIGRATE_AGE_RECIPIENTS",
        value_delimiter = ','
    )]
    encrypt_to: Vec<String>,
    /// Databases to back up, comma-separated: DB,... for the only source, NAME=DB,... for a named
    /// one (repeatable). Default: the URL's database, or every non-system database.
    #[arg(long, value_name = "[NAME=]DB,...")]
    databases: Vec<String>,
    /// Label the snapshot (repeatable): --tag reason=pre-upgrade --tag ticket=OPS-42
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_pair)]
    tags: Vec<(String, String)>,
    /// Cut table data into chunks of about this many MiB (uncompressed).
    #[arg(long, value_name = "MIB", default_value_t = (DEFAULT_CHUNK_BYTES / (1024 * 1024)) as u32,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    chunk_mib: u32,
    /// Also put this MLflow artifact store (the server's --artifacts-destination: a folder, or
    /// s3://BUCKET/PREFIX in S3/MinIO; add ?profile=NAME to take its endpoint and keys from that
    /// profile of ~/.aws/config and ~/.aws/credentials instead of the AWS_* variables) into the
    /// snapshot as its own part, so the snapshot alone can rebuild MLflow.
    #[arg(long, value_name = "PATH|URL")]
    mlflow_artifacts: Option<amlmigrate::mlflow::artifacts::ArtifactLocation>,
    /// zstd compression level (1 fastest … 19 smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: i32,
    /// Create the repository when --repo names a new or empty location: encrypted to
    /// --encrypt-to (unless --unencrypted-repo), deduplicated. Without it, a location that
    /// holds no repository is refused.
    #[arg(long)]
    init: bool,
    /// The repository is not encrypted, on purpose: --encrypt-to then encrypts only the
    /// Secrets, and rows and manifest are stored in clear. Without it, a backup given
    /// --encrypt-to refuses a repository whose marker says it is not encrypted.
    #[arg(long)]
    unencrypted_repo: bool,
    #[command(flatten)]
    metrics: super::metrics::MetricsArgs,
}

pub async fn run(
    args: BackupArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let (metrics, repo) = (args.metrics.clone(), args.repo.repo.clone());
    let started = std::time::Instant::now();
    let result = take(args, g, cancel).await;
    metrics
        .push(&repo, Command::Backup, started, &result, Outcome::backup)
        .await;
    result.map(|_| ())
}

async fn take(
    args: BackupArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<amlmigrate::repo::manifest::Manifest> {
    let sources = mysql_sources_of(&args)?;
    if sources.is_empty() && !args.kube && args.mlflow_artifacts.is_none() {
        anyhow::bail!(amlmigrate::Error::input(
            "nothing to back up: give --mysql URL (or AMLMIGRATE_MYSQL), --kube, and/or --mlflow-artifacts"
        ));
    }
    let recipients = Recipients::parse(&args.encrypt_to)?;
    let catalog = match &args.kube_catalog {
        Some(p) => Catalog::load(p)?,
        None => Catalog::default(),
    };
    let sign_key = args.sign.key(g)?;
    let (mut repo, created) = if args.init {
        let init = amlmigrate::repo::InitOptions {
            recipients: if args.unencrypted_repo {
                Vec::new()
            } else {
                args.encrypt_to.clone()
            },
            format: None,
        };
        Repository::open_or_init(&args.repo.repo, &init).await?
    } else {
        (Repository::open(&args.repo.repo).await?, false)
    };
    repo.check_encryption_intent(&amlmigrate::repo::EncryptionIntent {
        recipients: &args.encrypt_to,
        plain: args.unencrypted_repo,
        settings: ("--encrypt-to", "--unencrypted-repo"),
    })?;
    // An encrypted repository takes the same recipients as the Secrets.
    repo.unlock(&args.encrypt_to, None)?;
    let repo = repo.with_sign_key(sign_key);
    let ui = progress_for(g);
    if created && !g.quiet {
        eprintln!("created repository {}", repo.location());
    }
    let mysql: Vec<MysqlSource> = sources
        .into_iter()
        .map(|(name, url, databases)| {
            let mut mo = MysqlBackupOptions::new(url);
            mo.databases = databases;
            mo.chunk_bytes = args.chunk_mib as usize * 1024 * 1024;
            mo.zstd_level = args.zstd_level;
            MysqlSource { name, options: mo }
        })
        .collect();
    let what = match (mysql.as_slice(), &args.mlflow_artifacts) {
        ([], Some(a)) if !args.kube => format!("MLflow artifacts {a}"),
        ([], _) => "Kubernetes".to_string(),
        ([one], _) => one.options.mysql.to_string(),
        (many, _) => format!(
            "MySQL sources {}",
            many.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let opts = BackupOptions {
        mysql,
        kube: args.kube.then(|| KubeBackupOptions {
            access: args.kube_access.options(),
            catalog,
            namespaces: args.namespaces.clone(),
            recipients: (!recipients.is_empty()).then_some(recipients),
        }),
        mlflow_artifacts: args.mlflow_artifacts,
        tags: args.tags.into_iter().collect::<BTreeMap<_, _>>(),
        zstd_level: args.zstd_level,
    };
    let result = backup(&repo, &opts, ui.clone(), cancel).await;
    ui.finish();
    let m = result.with_context(|| format!("backup of {what} into {}", repo.location()))?;
    print_result(&m, &repo, g);
    Ok(m)
}

/// The new snapshot's id on stdout (or the JSON result), the summary on stderr.
fn print_result(m: &amlmigrate::repo::manifest::Manifest, repo: &Repository, g: &GlobalArgs) {
    let elapsed = (m.finished - m.started).num_milliseconds().max(0) as f64 / 1000.0;
    let raw: u64 = m
        .mysql
        .iter()
        .flat_map(|d| &d.tables)
        .map(|t| t.bytes)
        .sum();
    if g.json {
        print_json(&json!({
            "ok": true,
            "snapshot": m.id,
            "repository": repo.location(),
            "databases": m.mysql.iter().map(|d| json!({
                "name": d.name,
                "source": source_of(d),
                "tables": d.tables.len(),
                "rows": d.tables.iter().map(|t| t.rows).sum::<u64>(),
            })).collect::<Vec<_>>(),
            "rows": m.total_rows(),
            "bytes_raw": raw,
            "bytes_stored": m.total_size(),
            "seconds": elapsed,
            "kubernetes": m.kubernetes,
            "notices": m.notices,
        }));
    } else {
        println!("{}", m.id);
        if !g.quiet {
            let tables: usize = m.mysql.iter().map(|d| d.tables.len()).sum();
            let sources = mysql_sources(m);
            let from = if sources.len() > 1 {
                format!(
                    " from {} MySQL sources ({})",
                    sources.len(),
                    sources.join(", ")
                )
            } else {
                String::new()
            };
            eprintln!(
                "snapshot {} committed: {} database(s){from}, {tables} tables, {} rows, {} {} ({} raw) in {elapsed:.1}s",
                m.id,
                m.mysql.len(),
                thousands(m.total_rows()),
                human_bytes(m.total_size()),
                if m.parts.iter().any(|p| p.chunked) {
                    "new in the repository"
                } else {
                    "stored"
                },
                human_bytes(raw),
            );
            if let Some(k) = &m.kubernetes {
                eprintln!(
                    "kubernetes: {} objects of {} kinds from {} user namespace(s), {} PVC(s) indexed, {} secret(s) encrypted, {} left out",
                    k.objects,
                    k.kinds.iter().filter(|x| x.objects > 0).count(),
                    k.namespaces.len(),
                    k.pvcs,
                    k.encrypted,
                    k.left_out.len()
                );
            }
        }
    }
}

/// `[NAME=]VALUE`: the name when the prefix before `=` is one of `names` (or, for URLs, when the
/// value does not start with a scheme).
/// The `--mysql [NAME=]URL` values as (name, URL): a bare URL is the source "mysql"; names are
/// letters, digits, - and _, each given once.
pub(super) fn named_sources(values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let bad = |m: String| anyhow::Error::from(amlmigrate::Error::input(m));
    let mut named: Vec<(String, String)> = Vec::new();
    for v in values {
        let (name, url) = if v.starts_with("mysql://") || v.starts_with("mariadb://") {
            (DEFAULT_MYSQL_SOURCE.to_string(), v.clone())
        } else {
            match v.split_once('=') {
                Some((n, u)) if !n.is_empty() => (n.to_string(), u.to_string()),
                _ => {
                    return Err(bad(format!(
                        "--mysql {}: expected a mysql:// URL or NAME=URL",
                        amlmigrate::secret::redact_url(v)
                    )));
                }
            }
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(format!(
                "--mysql {name}=…: a source name is letters, digits, - and _"
            )));
        }
        if named.iter().any(|(n, _)| *n == name) {
            return Err(bad(format!(
                "--mysql: two sources are named {name}; give each its own NAME="
            )));
        }
        named.push((name, url));
    }
    Ok(named)
}

/// The source a `[NAME=]VALUE` of `flag` belongs to, and its value: NAME= when it names one of
/// `names`; unqualified, the only source (with several, each value must be qualified).
pub(super) fn owner_of<'a>(
    v: &'a str,
    names: &[String],
    flag: &str,
) -> anyhow::Result<(String, &'a str)> {
    match (v.split_once('='), names) {
        (Some((n, rest)), _) if names.iter().any(|x| x == n) => Ok((n.to_string(), rest)),
        (_, [one]) => Ok((one.clone(), v)),
        _ => Err(amlmigrate::Error::input(format!(
            "{flag} {v}: with several --mysql sources write NAME={v} (sources: {})",
            names.join(", ")
        ))
        .into()),
    }
}

/// The MySQL sources of the command line: (name, URL with its password, databases).
type SourceArgs = Vec<(String, MysqlUrl, Option<Vec<String>>)>;

fn mysql_sources_of(args: &BackupArgs) -> anyhow::Result<SourceArgs> {
    let named = named_sources(&args.mysql)?;
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let mut databases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in &args.databases {
        let (name, list) = owner_of(v, &names, "--databases")?;
        databases
            .entry(name)
            .or_default()
            .extend(list.split(',').filter(|d| !d.is_empty()).map(String::from));
    }
    let mut files: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    for v in &args.mysql_password_file {
        let (name, file) = owner_of(v, &names, "--mysql-password-file")?;
        files.insert(name, file.into());
    }
    let mut out = Vec::new();
    for (name, raw) in named {
        let password = match files.get(&name) {
            Some(path) => Some(amlmigrate::secret::read_password_file(
                path,
                "--mysql-password-file",
            )?),
            None => std::env::var(format!(
                "AMLMIGRATE_MYSQL_PASSWORD_{}",
                name.to_ascii_uppercase().replace('-', "_")
            ))
            .or_else(|_| std::env::var("AMLMIGRATE_MYSQL_PASSWORD"))
            .ok()
            .map(Secret::new),
        };
        let url = MysqlUrl::parse(&raw)?.with_fallback_password(password);
        let dbs = databases.remove(&name);
        out.push((name, url, dbs));
    }
    Ok(out)
}
