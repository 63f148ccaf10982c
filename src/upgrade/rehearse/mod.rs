//! `upgrade rehearse`: the data path of the upgrade on scratch copies, before the window.
//!
//! Every MySQL database of the snapshot is restored under a scratch name, the snapshot's MLflow
//! 2.6 database is migrated into a scratch PostgreSQL database, the upgrade's own checks run on
//! the copies, and each step's time is measured, so what would fail in the maintenance window
//! (a collation the target lacks, text PostgreSQL cannot hold, a missing privilege, a full
//! disk) fails here, and the window can be predicted from real rates.
//!
//! Scratch copies are named `amlrehearse_<repo>_<run>_<db>` (`<repo>` from the repository's
//! location): all of them are dropped at the end, whatever happened, and a rehearsal first
//! drops what an earlier one of the same repository left behind (a kill -9). A lock of its own
//! keeps two rehearsals of one repository from sweeping each other's copies, while an upgrade
//! run may be waiting for a person meanwhile.
//!
//! The record is `runs/<id>/rehearsal.json` with the usual `report.json` / `report.md` beside
//! it; `upgrade plan` and `upgrade run` look it up by snapshot id.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::config::UpgradeConfig;
use super::journal::Journal;
use super::lock::{self, RunLock};
use super::report::{self, Count, Report, ReportStep};
use crate::error::{Error, ErrorKind, Result};
use crate::mysql::MysqlUrl;
use crate::postgres::PgUrl;
use crate::progress::{self, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::Manifest;

mod scratch;

use scratch::{Names, Scratch, pg_ident, sweep_mysql, sweep_pg, table_counts};

/// The record of a rehearsal, in its run folder.
pub const RECORD: &str = "rehearsal.json";
/// Every scratch copy's name starts with this.
pub const PREFIX: &str = "amlrehearse_";

pub struct RehearseOptions {
    /// A snapshot id, prefix or `latest`; default: the upgrade run's snapshot, else the latest.
    pub snapshot: Option<String>,
    /// Restore the MySQL copies here instead of on each source's own server.
    pub scratch_mysql: Option<MysqlUrl>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rehearsal {
    pub id: String,
    pub snapshot: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<Measured>,
    /// The checks on the copies, one line each (`ok …` / `FAIL …`).
    pub checked: Vec<String>,
    /// Rows per table: the snapshot's and the copy's.
    #[serde(default)]
    pub counts: Vec<Count>,
    /// What works, but differently in the window (a collation mapped to another).
    pub warnings: Vec<String>,
    /// Copies an earlier rehearsal of this repository left behind, dropped first.
    pub swept: Vec<String>,
    /// This rehearsal's copies, dropped at its end.
    pub dropped: Vec<String>,
    pub window: Option<Window>,
}

/// One data step, timed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub step: String,
    /// The scratch copy it wrote.
    pub scratch: String,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub bytes_per_second: f64,
    /// Part of the upgrade's window (the MLflow migration); the restores are what a recovery adds.
    pub in_window: bool,
}

/// The predicted window, first uninstall → data back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// The data steps inside the window at the measured rates.
    pub data_seconds: f64,
    /// With the plugins' uninstall and install at their configured timeouts: the most the
    /// window takes unless the platform is slower than the configuration allows.
    pub at_most_seconds: f64,
    /// Data of a full recovery from this snapshot (every restore and the MLflow migration).
    pub recovery_data_seconds: f64,
    pub lines: Vec<String>,
}

/// Rehearses the data steps on scratch copies. The record is stored whether it passes or not;
/// a failure comes back as the error, naming what failed and the fix.
pub async fn rehearse(
    cfg: &UpgradeConfig,
    opts: &RehearseOptions,
    progress: ProgressRef,
    cancel: CancellationToken,
) -> Result<Rehearsal> {
    let repo = cfg
        .snapshot
        .signing(Repository::open(&cfg.repository).await?)?;
    let snapshot = choose_snapshot(&repo, opts).await?;
    let manifest = repo.manifest(&snapshot).await?;
    if manifest.mysql.is_empty() {
        return Err(Error::input(format!(
            "snapshot {snapshot} holds no MySQL database: there is nothing to rehearse; take the upgrade's snapshot first (`amlmigrate upgrade run --config … --until snapshot`)"
        )));
    }
    let lock = RunLock::acquire(&repo, lock::REHEARSE).await?;
    let started = Utc::now();
    let id = crate::repo::id::new_snapshot_id(started);
    let names = Names::new(&repo, &id);
    let mut r = Rehearsal {
        id: id.clone(),
        snapshot: snapshot.clone(),
        started,
        finished: started,
        ok: false,
        error: None,
        steps: Vec::new(),
        checked: Vec::new(),
        counts: Vec::new(),
        warnings: Vec::new(),
        swept: Vec::new(),
        dropped: Vec::new(),
        window: None,
    };
    let mut scratch = Scratch::default();
    let ctx = Ctx {
        cfg,
        repo: &repo,
        manifest: &manifest,
        names: &names,
        opts,
        progress: &progress,
        cancel: &cancel,
    };
    let result = steps(&ctx, &mut r, &mut scratch).await;
    // Whatever happened (a failure, Ctrl-C), no copy stays.
    let (dropped, left) = scratch.drop_all().await;
    r.dropped = dropped;
    for (what, e) in &left {
        r.checked.push(format!(
            "FAIL scratch copy {what} could not be dropped: {e}"
        ));
    }
    if left.is_empty() && !r.dropped.is_empty() {
        r.checked.push(format!(
            "ok   every scratch copy dropped ({})",
            r.dropped.len()
        ));
    }
    // The error says whether anything is left, so the operator knows what to clean.
    let leftovers = || {
        format!(
            "scratch copies left behind: {}; drop them by hand (they are named {PREFIX}…), or run the rehearsal again, which drops them first",
            left.iter()
                .map(|(w, e)| format!("{w} ({e})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let result = match (result, left.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err(Error::Other(leftovers())),
        (Err(e), true) => Err(same_kind(e, |t| format!("{t}; no scratch copy is left"))),
        (Err(e), false) => Err(same_kind(e, |t| format!("{t}; {}", leftovers()))),
    };
    r.finished = Utc::now();
    r.ok = result.is_ok();
    if let Err(e) = &result {
        r.error = Some(e.to_string());
    }
    if r.ok {
        r.window = Some(window(cfg, &r.steps));
    }
    let stored = store(&repo, &r).await;
    lock.release().await;
    result?;
    stored?;
    Ok(r)
}

/// The latest rehearsal of a snapshot, passed or not.
pub async fn latest_for(repo: &Repository, snapshot: &str) -> Result<Option<Rehearsal>> {
    for run in repo.runs_holding(RECORD).await?.into_iter().rev() {
        let Some(body) = repo.run_file(&run, RECORD).await? else {
            continue;
        };
        // A record this version cannot read is someone else's business, not a reason to stop.
        if let Ok(r) = serde_json::from_slice::<Rehearsal>(&body)
            && r.snapshot == snapshot
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// What `upgrade plan` and `upgrade run` say about rehearsing the snapshot they use: a warning
/// when no rehearsal passed for it, else the `ok` line naming the rehearsal.
pub(in crate::upgrade) async fn note_for(
    repo: &Repository,
    snapshot: &str,
) -> Result<std::result::Result<String, String>> {
    let offer = format!(
        "rehearse it first: `amlmigrate upgrade rehearse --config <this file> --snapshot {snapshot}` restores and migrates scratch copies, checks them and predicts the window"
    );
    Ok(match latest_for(repo, snapshot).await? {
        None => Err(format!(
            "no rehearsal was made for snapshot {snapshot}; {offer}"
        )),
        Some(r) if !r.ok => Err(format!(
            "the rehearsal {} of snapshot {snapshot} failed ({}); fix that, then {offer}",
            r.id,
            r.error.as_deref().unwrap_or("see its report")
        )),
        Some(r) => Ok(format!(
            "ok   rehearsal {} of snapshot {snapshot} passed{}",
            r.id,
            r.window
                .as_ref()
                .map(|w| format!("; predicted data window {}", seconds_text(w.data_seconds)))
                .unwrap_or_default()
        )),
    })
}

async fn choose_snapshot(repo: &Repository, opts: &RehearseOptions) -> Result<String> {
    if let Some(s) = &opts.snapshot {
        return repo.resolve(s).await;
    }
    if let Some(j) = Journal::latest(repo).await?
        && let Some(id) = j.snapshot()
        && repo.snapshot_ids().await?.iter().any(|x| x == id)
    {
        return Ok(id.to_string());
    }
    repo.resolve("latest").await
}

struct Ctx<'a> {
    cfg: &'a UpgradeConfig,
    repo: &'a Repository,
    manifest: &'a Manifest,
    names: &'a Names,
    opts: &'a RehearseOptions,
    progress: &'a ProgressRef,
    cancel: &'a CancellationToken,
}

impl Ctx<'_> {
    fn note(&self, s: impl Into<String>) {
        self.progress.event(progress::Event::Notice(s.into()));
    }

    /// The server a source's copies go to.
    fn mysql_target(&self, source: &str) -> Result<MysqlUrl> {
        match &self.opts.scratch_mysql {
            Some(u) => Ok(u.clone()),
            None => self.cfg.mysql_url(source).map_err(|e| {
                Error::input(format!(
                    "the snapshot's MySQL source {source} is not in the configuration ({e}); add [mysql.{source}] or restore the copies elsewhere with --scratch-mysql"
                ))
            }),
        }
    }
}

async fn steps(ctx: &Ctx<'_>, r: &mut Rehearsal, scratch: &mut Scratch) -> Result<()> {
    // Leftovers of a rehearsal that was killed, on every server this one uses.
    let mut servers: Vec<MysqlUrl> = Vec::new();
    for db in &ctx.manifest.mysql {
        let url = ctx.mysql_target(crate::backup::source_of(db))?;
        if !servers.iter().any(|s| s.redacted() == url.redacted()) {
            servers.push(url);
        }
    }
    let pg = if ctx.cfg.mlflow.migrate {
        Some(ctx.cfg.pg_url()?)
    } else {
        None
    };
    for s in &servers {
        r.swept
            .extend(sweep_mysql(s, &ctx.names.repo_prefix()).await?);
    }
    if let Some(pg) = &pg {
        r.swept
            .extend(sweep_pg(pg, &ctx.names.repo_prefix()).await?);
    }
    if !r.swept.is_empty() {
        ctx.note(format!(
            "dropped {} scratch copy/copies an earlier rehearsal left behind: {}",
            r.swept.len(),
            r.swept.join(", ")
        ));
    }
    for db in &ctx.manifest.mysql {
        cancelled(ctx.cancel)?;
        restore_copy(ctx, db, r, scratch).await?;
    }
    if let Some(pg) = &pg {
        cancelled(ctx.cancel)?;
        migrate_copy(ctx, pg, r, scratch).await?;
    }
    Ok(())
}

fn cancelled(cancel: &CancellationToken) -> Result<()> {
    if cancel.is_cancelled() {
        Err(Error::Interrupted("the rehearsal stopped (Ctrl-C)".into()))
    } else {
        Ok(())
    }
}

async fn restore_copy(
    ctx: &Ctx<'_>,
    db: &crate::repo::manifest::MysqlDatabase,
    r: &mut Rehearsal,
    scratch: &mut Scratch,
) -> Result<()> {
    use crate::mysql::restore::{RestoreOptions, restore};
    let source = crate::backup::source_of(db);
    let target = ctx.mysql_target(source)?;
    let name = ctx.names.mysql(&db.name);
    let step = format!("restore {source}/{}", db.name);
    ctx.note(format!(
        "rehearsal: {step} as {name} on {}",
        target.redacted()
    ));
    // Registered before anything is written: a failure half way still drops it.
    scratch.mysql.push((target.clone(), name.clone()));
    let t = Instant::now();
    let rep = restore(
        ctx.repo,
        &ctx.manifest.id,
        &RestoreOptions {
            mysql: target.clone(),
            databases: Some(vec![db.name.clone()]),
            renames: vec![(db.name.clone(), name.clone())],
            replace: false,
            dry_run: false,
            jobs: crate::mysql::restore::default_jobs(),
            trust_unsigned_code: false,
            definer: None,
        },
        ctx.progress.clone(),
        ctx.cancel.clone(),
    )
    .await
    .map_err(|e| {
        in_window(
            e,
            &format!(
                "restoring database {} of MySQL source {source} (as {name} on {})",
                db.name,
                target.redacted()
            ),
        )
    })?;
    let seconds = t.elapsed().as_secs_f64();
    for n in &rep.notices {
        r.warnings.push(format!("{step}: {n}"));
    }
    let live = table_counts(&target, &name).await?;
    for t in &db.tables {
        let now = live.get(&t.name).copied();
        r.counts.push(Count::total(
            format!(
                "MySQL {source}/{}.{} rows (snapshot → scratch copy)",
                db.name, t.name
            ),
            Some(t.rows),
            now,
        ));
        r.checked.push(if now == Some(t.rows) {
            format!(
                "ok   {source}/{}.{}: {} rows restored, as in the snapshot",
                db.name, t.name, t.rows
            )
        } else {
            format!(
                "FAIL {source}/{}.{}: {} rows in the snapshot, {} in the copy",
                db.name,
                t.name,
                t.rows,
                now.map(|n| n.to_string())
                    .unwrap_or_else(|| "no table".into())
            )
        });
    }
    let (rows, bytes) = (
        db.tables.iter().map(|t| t.rows).sum(),
        db.tables.iter().map(|t| t.bytes).sum(),
    );
    r.steps
        .push(measured(step, name, rows, bytes, seconds, false));
    fail_on_failures(r)
}

async fn migrate_copy(
    ctx: &Ctx<'_>,
    pg: &PgUrl,
    r: &mut Rehearsal,
    scratch: &mut Scratch,
) -> Result<()> {
    use crate::mlflow::migrate::{MigrateOptions, MigrateSource, migrate};
    use crate::mlflow::snapshot::SnapshotSource;
    let database = ctx.cfg.mlflow_database()?;
    let name = ctx.names.pg();
    let step = "migrate-mlflow".to_string();
    ctx.note(format!(
        "rehearsal: migrate MLflow {database} into {name} on {}",
        pg.redacted()
    ));
    let client = pg.connect().await?;
    scratch.pg.push((pg.clone(), name.clone()));
    client
        .batch_execute(&format!("CREATE DATABASE {}", pg_ident(&name)))
        .await
        .map_err(|e| {
            in_window(
                Error::Other(crate::postgres::describe(&e)),
                &format!(
                    "creating the scratch database {name} on {} (the MLflow 3.1.1 server's PostgreSQL)",
                    pg.redacted()
                ),
            )
        })?;
    drop(client);
    let t = Instant::now();
    let rep = migrate(
        &MigrateOptions {
            from: MigrateSource::Snapshot(SnapshotSource {
                repo: ctx.cfg.repository.clone(),
                snapshot: ctx.manifest.id.clone(),
                database: Some(database.clone()),
                trust: ctx.repo.trust().clone(),
                identity: ctx.cfg.restore.identity.clone(),
            }),
            to: pg.with_database(&name),
            rewrite_artifact_uri: ctx
                .cfg
                .mlflow
                .rewrite_artifact_uri
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
            // The artifact tree is files: copying it rehearses nothing the window depends on.
            artifacts_to: None,
            artifacts_from: None,
        },
        ctx.progress.clone(),
        ctx.cancel.clone(),
    )
    .await
    .map_err(|e| {
        in_window(
            e,
            &format!("migrating MLflow database {database} of the snapshot into PostgreSQL"),
        )
    })?;
    let seconds = t.elapsed().as_secs_f64();
    for t in &rep.tables {
        r.counts.push(Count::total(
            format!(
                "MLflow {} rows (2.6 snapshot → scratch PostgreSQL)",
                t.table
            ),
            Some(t.source_rows),
            Some(t.target_rows),
        ));
        r.checked.push(if t.equal {
            format!(
                "ok   MLflow {}: {} rows, checksum equal to the 2.6 source",
                t.table, t.target_rows
            )
        } else {
            format!(
                "FAIL MLflow {}: {} rows (checksum {}) in PostgreSQL, {} (checksum {}) in the 2.6 source",
                t.table, t.target_rows, t.target_checksum, t.source_rows, t.source_checksum
            )
        });
    }
    let db = ctx.manifest.mysql.iter().find(|d| d.name == database);
    let bytes = db
        .map(|d| d.tables.iter().map(|t| t.bytes).sum())
        .unwrap_or(0);
    let rows = rep.tables.iter().map(|t| t.source_rows).sum();
    r.steps
        .push(measured(step, name, rows, bytes, seconds, true));
    fail_on_failures(r)
}

fn fail_on_failures(r: &Rehearsal) -> Result<()> {
    let fails: Vec<&str> = r
        .checked
        .iter()
        .filter(|l| l.starts_with("FAIL"))
        .map(String::as_str)
        .collect();
    if fails.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "the rehearsal's checks fail:\n  {}",
            fails.join("\n  ")
        )))
    }
}

fn measured(
    step: String,
    scratch: String,
    rows: u64,
    bytes: u64,
    seconds: f64,
    in_window: bool,
) -> Measured {
    let per = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    Measured {
        step,
        scratch,
        rows,
        bytes,
        seconds,
        rows_per_second: per(rows),
        bytes_per_second: per(bytes),
        in_window,
    }
}

/// An error of a step as it would happen in the window: what failed, on which object, and the
/// fix; of the same kind (exit code) as the original.
fn in_window(e: Error, what: &str) -> Error {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let fix = if lower.contains("access denied")
        || lower.contains("command denied")
        || lower.contains("permission denied")
    {
        format!(
            "; fix: the user needs the privileges to create, fill and drop databases named {PREFIX}… (MySQL: GRANT ALL ON `{}%`.* TO the user; PostgreSQL: ALTER ROLE the user CREATEDB), or give --scratch-mysql a server where it has them",
            PREFIX.replace('_', "\\_")
        )
    } else if lower.contains("is full")
        || lower.contains("no space")
        || lower.contains("disk full")
        || lower.contains("could not extend file")
    {
        "; fix: too little space on the server for the copy; free space (the window needs at least as much), or give --scratch-mysql a server with room"
            .to_string()
    } else if matches!(e.kind(), ErrorKind::Interrupted) {
        String::new()
    } else {
        "; this would fail the same way in the maintenance window: fix it before the upgrade"
            .to_string()
    };
    same_kind(e, |_| format!("rehearsal: {what}: {text}{fix}"))
}

/// An error of the same kind (exit code) with its text rewritten.
fn same_kind(e: Error, text: impl FnOnce(String) -> String) -> Error {
    // A damaged snapshot keeps its structured error (part, entry) as it is.
    let msg = text(e.to_string());
    match e.kind() {
        ErrorKind::Input => Error::Input(msg),
        ErrorKind::Connection => Error::Connection(msg),
        ErrorKind::Damaged => e,
        ErrorKind::Refused => Error::Refused(msg),
        ErrorKind::Interrupted => Error::Interrupted(msg),
        ErrorKind::Forbidden => Error::Forbidden(msg),
        ErrorKind::Other => Error::Other(msg),
        ErrorKind::Untrusted => e,
    }
}

/// From the measured steps: the data inside the window, and its upper bound with the plugins'
/// uninstall and install at their timeouts.
fn window(cfg: &UpgradeConfig, steps: &[Measured]) -> Window {
    let data: f64 = steps
        .iter()
        .filter(|s| s.in_window)
        .map(|s| s.seconds)
        .sum();
    let recovery: f64 = steps.iter().map(|s| s.seconds).sum();
    let platform = (cfg.uninstall.timeout + cfg.install.timeout).as_secs_f64();
    let mut lines = Vec::new();
    for s in steps {
        lines.push(format!(
            "{}: {} ({} rows, {}/s; {} rows/s){}",
            s.step,
            seconds_text(s.seconds),
            s.rows,
            humansize::format_size(s.bytes_per_second as u64, humansize::BINARY),
            s.rows_per_second.round(),
            if s.in_window {
                " — inside the window"
            } else {
                " — a recovery's restore"
            }
        ));
    }
    lines.push(format!(
        "predicted data window (first uninstall → data back): {} of data steps; at most {} with the uninstall ({}) and install ({}) of the plugins at their timeouts",
        seconds_text(data),
        seconds_text(data + platform),
        humantime::format_duration(cfg.uninstall.timeout),
        humantime::format_duration(cfg.install.timeout)
    ));
    lines.push(format!(
        "a recovery from this snapshot (`amlmigrate recover`) moves its data in about {}",
        seconds_text(recovery)
    ));
    Window {
        data_seconds: data,
        at_most_seconds: data + platform,
        recovery_data_seconds: recovery,
        lines,
    }
}

pub fn seconds_text(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
    }
}

/// The record and the usual report of the run folder.
async fn store(repo: &Repository, r: &Rehearsal) -> Result<()> {
    repo.put_run_file(
        &r.id,
        RECORD,
        serde_json::to_vec_pretty(r).expect("a rehearsal serializes"),
    )
    .await?;
    report::store(repo, &r.id, &as_report(r)).await
}

fn as_report(r: &Rehearsal) -> Report {
    let mut steps: Vec<ReportStep> = r
        .steps
        .iter()
        .map(|s| ReportStep {
            step: format!("rehearse {}", s.step),
            title: format!("{} on scratch copy {}", s.step, s.scratch),
            outcome: "done".into(),
            detail: Some(format!(
                "{} in {} ({} rows/s)",
                s.rows,
                seconds_text(s.seconds),
                s.rows_per_second.round()
            )),
            changes: Vec::new(),
            checked: Vec::new(),
            warnings: Vec::new(),
            // The timeline draws each rehearsed step by its measured duration.
            seconds: Some(s.seconds),
            ..Default::default()
        })
        .collect();
    steps.push(ReportStep {
        step: "rehearse checks".into(),
        title: "The upgrade's checks on the copies, and the copies dropped".into(),
        outcome: if r.ok { "done" } else { "failed" }.into(),
        detail: r.error.clone(),
        changes: r
            .swept
            .iter()
            .map(|s| format!("{s}: left by an earlier rehearsal → dropped"))
            .chain(r.dropped.iter().map(|s| format!("{s}: created → dropped")))
            .collect(),
        checked: r.checked.clone(),
        warnings: r.warnings.clone(),
        ..Default::default()
    });
    if let Some(w) = &r.window {
        steps.push(ReportStep {
            step: "rehearse window".into(),
            title: "Predicted window at the measured rates".into(),
            outcome: "done".into(),
            detail: w.lines.last().cloned(),
            changes: Vec::new(),
            checked: w.lines.clone(),
            warnings: Vec::new(),
            ..Default::default()
        });
    }
    Report {
        kind: super::report::ReportKind::Rehearsal,
        run: r.id.clone(),
        snapshot: Some(r.snapshot.clone()),
        manifest_sha256: None,
        tables: Vec::new(),
        started: Some(r.started),
        finished: r.finished,
        steps,
        counts: r.counts.clone(),
        checklist: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_privilege_error_names_the_grant_and_keeps_its_kind() {
        let e = in_window(
            Error::Forbidden("Access denied for user 'x'@'%' to database 'amlrehearse_…'".into()),
            "restoring database aml of MySQL source aml",
        );
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        let t = e.to_string();
        assert!(
            t.contains("restoring database aml") && t.contains("GRANT ALL"),
            "{t}"
        );
    }

    #[test]
    fn the_window_holds_the_migration_and_its_bound_the_platforms_timeouts() {
        let text = include_str!("../../../examples/upgrade-1.3-to-1.4.toml");
        let cfg = UpgradeConfig::parse(text, "example").unwrap();
        let steps = [
            measured(
                "restore aml/aml".into(),
                "s1".into(),
                1000,
                4096,
                2.0,
                false,
            ),
            measured("migrate-mlflow".into(), "s2".into(), 600, 2048, 3.0, true),
        ];
        assert_eq!(steps[0].rows_per_second, 500.0);
        assert_eq!(steps[1].bytes_per_second, 2048.0 / 3.0);
        let w = window(&cfg, &steps);
        assert_eq!(w.data_seconds, 3.0);
        assert_eq!(w.recovery_data_seconds, 5.0);
        let platform = (cfg.uninstall.timeout + cfg.install.timeout).as_secs_f64();
        assert_eq!(w.at_most_seconds, 3.0 + platform);
        assert!(
            w.lines
                .iter()
                .any(|l| l.starts_with("migrate-mlflow: 3.0s") && l.ends_with("inside the window")),
            "{:?}",
            w.lines
        );
    }
}
