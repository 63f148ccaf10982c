//! `amlmigrate backup`

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::mysql::backup::{BackupOptions, DEFAULT_CHUNK_BYTES, backup};
use amlmigrate::repo::Repository;

use super::{
    GlobalArgs, MysqlArgs, RepoArg, human_bytes, parse_pair, print_json, progress_for, thousands,
};

/// Takes one consistent snapshot of MySQL databases.
///
/// All tables are read inside one REPEATABLE READ transaction started WITH CONSISTENT SNAPSHOT,
/// so every InnoDB table comes from the same point in time and writers are never blocked.
/// Each database becomes one part (tar + zstd) holding schema.sql, load.sql, post-data.sql and
/// the rows as LOAD DATA chunks; the manifest is written last and commits the snapshot. If the
/// backup fails or is interrupted, no snapshot appears.
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
    /// Also put this MLflow artifact folder (the server's --artifacts-destination) into the
    /// snapshot as its own part, so the snapshot alone can rebuild MLflow.
    #[arg(long, value_name = "PATH")]
    mlflow_artifacts: Option<std::path::PathBuf>,
    /// zstd compression level (1 fastest … 19 smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: i32,
}

pub async fn run(
    args: BackupArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let url = args.mysql.url()?;
    let (repo, created) = Repository::open_or_create(&args.repo.repo).await?;
    let ui = progress_for(g);
    if created && !g.quiet {
        eprintln!("created repository {}", repo.location());
    }
    let mut opts = BackupOptions::new(url);
    if !args.databases.is_empty() {
        opts.databases = Some(args.databases);
    }
    opts.tags = args.tags.into_iter().collect::<BTreeMap<_, _>>();
    opts.chunk_bytes = args.chunk_mib as usize * 1024 * 1024;
    opts.zstd_level = args.zstd_level;
    opts.mlflow_artifacts = args.mlflow_artifacts;
    let result = backup(&repo, &opts, ui.clone(), cancel).await;
    ui.finish();
    let m = result.with_context(|| format!("backup of {} into {}", opts.mysql, repo.location()))?;
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
        }
    }
    Ok(())
}
