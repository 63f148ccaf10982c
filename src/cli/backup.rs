//! `amlmigrate backup`

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::backup::{BackupOptions, backup};
use amlmigrate::kube::backup::KubeBackupOptions;
use amlmigrate::kube::catalog::Catalog;
use amlmigrate::kube::secrets::Recipients;
use amlmigrate::mysql::backup::{DEFAULT_CHUNK_BYTES, MysqlBackupOptions};
use amlmigrate::repo::Repository;

use super::{
    GlobalArgs, KubeArgs, MysqlArgs, RepoArg, human_bytes, parse_pair, print_json, progress_for,
    thousands,
};

/// Takes one snapshot of MySQL databases and/or the Kubernetes objects of an AML cluster.
///
/// MySQL (--mysql): all tables are read inside one REPEATABLE READ transaction started WITH
/// CONSISTENT SNAPSHOT, so every InnoDB table comes from the same point in time and writers are
/// never blocked. Each database becomes one part (tar + zstd) holding schema.sql, load.sql,
/// post-data.sql and the rows as LOAD DATA chunks.
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
/// The repository is created when the folder does not exist or is empty.
/// Prints the new snapshot id on stdout; the summary goes to stderr.
#[derive(Args)]
#[command(
    after_long_help = "Examples:\n  amlmigrate backup --repo /backups/aml --mysql mysql://root@127.0.0.1:3306\n  \
AMLMIGRATE_MYSQL_PASSWORD=… amlmigrate backup --repo /backups/aml --mysql mysql://backup@mysql.aml:3306 \\\n      \
--databases aml,mlpipeline,cachedb,metadb --tag reason=pre-upgrade\n  id=$(amlmigrate backup --quiet --repo R --mysql URL)"
)]
pub struct BackupArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    mysql: MysqlArgs,
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
    /// Databases to back up, comma-separated. Default: the URL's database, or every non-system database.
    #[arg(long, value_delimiter = ',', value_name = "DB,...")]
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
}

pub async fn run(
    args: BackupArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let url = args.mysql.url_opt()?;
    if url.is_none() && !args.kube && args.mlflow_artifacts.is_none() {
        anyhow::bail!(amlmigrate::Error::input(
            "nothing to back up: give --mysql URL (or AMLMIGRATE_MYSQL), --kube, and/or --mlflow-artifacts"
        ));
    }
    let recipients = Recipients::parse(&args.encrypt_to)?;
    let catalog = match &args.kube_catalog {
        Some(p) => Catalog::load(p)?,
        None => Catalog::default(),
    };
    let (repo, created) = Repository::open_or_create(&args.repo.repo).await?;
    let ui = progress_for(g);
    if created && !g.quiet {
        eprintln!("created repository {}", repo.location());
    }
    let mysql = url.map(|url| {
        let mut mo = MysqlBackupOptions::new(url);
        if !args.databases.is_empty() {
            mo.databases = Some(args.databases.clone());
        }
        mo.chunk_bytes = args.chunk_mib as usize * 1024 * 1024;
        mo.zstd_level = args.zstd_level;
        mo
    });
    let what = match (&mysql, &args.mlflow_artifacts) {
        (Some(mo), _) => mo.mysql.to_string(),
        (None, Some(a)) if !args.kube => format!("MLflow artifacts {a}"),
        (None, _) => "Kubernetes".to_string(),
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
            eprintln!(
                "snapshot {} committed: {} database(s), {tables} tables, {} rows, {} stored ({} raw) in {elapsed:.1}s",
                m.id,
                m.mysql.len(),
                thousands(m.total_rows()),
                human_bytes(m.total_size()),
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
    Ok(())
}
