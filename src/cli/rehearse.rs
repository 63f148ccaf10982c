//! `amlmigrate upgrade rehearse`

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::upgrade::UpgradeConfig;
use amlmigrate::upgrade::rehearse::{self, RehearseOptions};

use super::{GlobalArgs, human_bytes, print_json, progress_for, thousands};

/// Rehearse the upgrade's data path on scratch copies, before the maintenance window.
///
/// Every MySQL database of the snapshot is restored under a scratch name
/// (amlrehearse_<repo>_<run>_<db>, on each source's own server or on --scratch-mysql), the
/// snapshot's MLflow 2.6 database is migrated into a scratch PostgreSQL database on the
/// configured MLflow 3.1.1 server, and the upgrade's own checks run on the copies (row counts
/// per table, MLflow checksums per table). Each step is timed, and the predicted window (first
/// uninstall → data back) is printed from the measured rates. Whatever happens (a failure,
/// Ctrl-C), every scratch copy is dropped; copies an earlier rehearsal of the same repository
/// left behind (kill -9) are dropped first.
///
/// It fails the way the window would, naming the object and the fix: a collation the target
/// lacks, text PostgreSQL cannot hold (a NUL byte), a missing privilege, too little space.
/// Nothing of the 1.3 or 1.4 installation is changed. The record is runs/<id>/rehearsal.json
/// with report.md and report.json beside it; `upgrade plan` and `upgrade run` warn when the
/// snapshot they use has no passed rehearsal.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
amlmigrate upgrade run --config upgrade.toml --until snapshot\n  \
amlmigrate upgrade rehearse --config upgrade.toml\n  \
amlmigrate upgrade rehearse --config upgrade.toml --snapshot 20261130T0200 \\\n      \
--scratch-mysql mysql://root@scratch-db:3306")]
pub struct RehearseArgs {
    /// The upgrade configuration (TOML).
    #[arg(long, value_name = "FILE", env = "AMLMIGRATE_UPGRADE_CONFIG")]
    config: PathBuf,
    /// The snapshot to rehearse (id, unique prefix, or `latest`). Default: the upgrade run's
    /// snapshot, else the latest.
    #[arg(long, value_name = "ID")]
    snapshot: Option<String>,
    /// Restore the MySQL copies on this server instead of each source's own
    /// (mysql://user@host:port; the user needs to create and drop databases).
    #[arg(long, value_name = "URL")]
    scratch_mysql: Option<String>,
    /// The password of --scratch-mysql (else AMLMIGRATE_MYSQL_PASSWORD).
    #[arg(long, value_name = "FILE")]
    scratch_mysql_password_file: Option<PathBuf>,
}

pub async fn run(a: RehearseArgs, g: &GlobalArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let cfg = UpgradeConfig::load(&a.config)?;
    let scratch_mysql = match &a.scratch_mysql {
        None => None,
        Some(raw) => Some(
            amlmigrate::mysql::MysqlUrl::parse(raw)?.with_fallback_password(super::password(
                a.scratch_mysql_password_file.as_deref(),
                "--scratch-mysql-password-file",
                "AMLMIGRATE_MYSQL_PASSWORD",
            )?),
        ),
    };
    let ui = progress_for(g);
    let r = rehearse::rehearse(
        &cfg,
        &RehearseOptions {
            snapshot: a.snapshot,
            scratch_mysql,
        },
        ui.clone(),
        cancel,
    )
    .await;
    ui.finish();
    let r = r.context("rehearsing the upgrade's data steps")?;
    if g.json {
        print_json(&json!({"ok": true, "rehearsal": r}));
        return Ok(());
    }
    println!("rehearsal {} of snapshot {}: passed", r.id, r.snapshot);
    for s in &r.steps {
        println!(
            "  {:<40} {:>12} rows {:>10} in {} ({} rows/s, {}/s)",
            s.step,
            thousands(s.rows),
            human_bytes(s.bytes),
            rehearse::seconds_text(s.seconds),
            thousands(s.rows_per_second.round() as u64),
            human_bytes(s.bytes_per_second as u64)
        );
    }
    // Every line is in --json and report.md; here the count, and anything not ok.
    let ok = r.checked.iter().filter(|l| l.starts_with("ok")).count();
    println!(
        "  {ok} check(s) passed on the copies (rows per table, MLflow checksums per table; each listed in runs/{}/report.md)",
        r.id
    );
    for l in r.checked.iter().filter(|l| !l.starts_with("ok")) {
        println!("  {l}");
    }
    for w in &r.warnings {
        println!("  WARNING: {w}");
    }
    if let Some(w) = &r.window {
        println!();
        for l in w.lines.iter().skip(r.steps.len()) {
            println!("{l}");
        }
    }
    if !g.quiet {
        eprintln!(
            "report stored as runs/{}/report.md and report.json in {}",
            r.id, cfg.repository
        );
    }
    Ok(())
}
