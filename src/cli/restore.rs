//! `amlmigrate restore`

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use amlmigrate::mysql::restore::{RestoreOptions, restore};
use amlmigrate::repo::Repository;

use super::{GlobalArgs, MysqlArgs, RepoArg, parse_pair, print_json, progress_for, thousands};

/// Restores databases of a snapshot into a MySQL or MariaDB server, exactly.
///
/// Before writing anything it checks that the snapshot holds the databases, that the target
/// accepts LOAD DATA LOCAL (local_infile=ON), that every collation exists on the target (a
/// MySQL 8 collation the target lacks, such as utf8mb4_0900_ai_ci on MariaDB or 5.7, is mapped
/// to the nearest one and the output says so), and that no table it would fill holds rows.
/// Each table is loaded in one transaction that commits only when its row count matches the
/// snapshot and the server raised no warning. Triggers and events are created after the data.
///
/// SNAPSHOT is an id, a unique id prefix, or `latest`.
#[derive(Args)]
#[command(
    after_long_help = "Examples:\n  amlmigrate restore --repo /backups/aml latest --mysql mysql://root@127.0.0.1:3306\n  \
amlmigrate restore --repo /backups/aml 20261128T0200 --mysql mysql://root@db:3306 --databases aml --rename aml=aml_check\n  \
amlmigrate restore --repo /backups/aml latest --mysql mysql://root@db:3306 --replace"
)]
pub struct RestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Snapshot to restore: an id, a unique id prefix, or `latest`.
    snapshot: String,
    #[command(flatten)]
    mysql: MysqlArgs,
    /// Databases of the snapshot to restore, comma-separated. Default: all of them.
    #[arg(long, value_delimiter = ',', value_name = "DB,...")]
    databases: Vec<String>,
    /// Restore database SRC under the name DST (repeatable).
    #[arg(long = "rename", value_name = "SRC=DST", value_parser = parse_pair)]
    renames: Vec<(String, String)>,
    /// Replace the rows of tables that already hold rows (atomically per transactional table)
    /// instead of refusing.
    #[arg(long)]
    replace: bool,
    /// Run every check (snapshot, target, collations, non-empty tables) and print what would be
    /// restored, without writing anything.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(
    args: RestoreArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let url = args.mysql.url()?;
    let repo = Repository::open(&args.repo.repo).await?;
    let id = repo.resolve(&args.snapshot).await?;
    let opts = RestoreOptions {
        mysql: url,
        databases: (!args.databases.is_empty()).then_some(args.databases),
        renames: args.renames,
        replace: args.replace,
        dry_run: args.dry_run,
    };
    let ui = progress_for(g);
    let result = restore(&repo, &id, &opts, ui.clone(), cancel).await;
    ui.finish();
    let report = result.with_context(|| format!("restore of snapshot {id} into {}", opts.mysql))?;
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "restore": report }));
    } else if !g.quiet {
        let verb = if report.dry_run {
            "would restore"
        } else {
            "restored"
        };
        for d in &report.databases {
            let arrow = if d.source == d.target {
                d.target.clone()
            } else {
                format!("{} -> {}", d.source, d.target)
            };
            println!(
                "{verb} {arrow}: {} tables, {} rows",
                d.tables.len(),
                thousands(d.rows)
            );
        }
        for (from, to) in &report.collation_map {
            println!("collation {from} mapped to {to} (the target has no {from})");
        }
        for t in &report.replaced {
            let done = if report.dry_run {
                "would be replaced"
            } else {
                "replaced"
            };
            println!("rows of {t} {done} (--replace)");
        }
        if report.dry_run {
            println!(
                "dry run: every check passed against {} ({}); nothing was written",
                report.target, report.server_version
            );
            return Ok(());
        }
        println!(
            "snapshot {} restored into {} ({})",
            report.snapshot, report.target, report.server_version
        );
    }
    Ok(())
}
