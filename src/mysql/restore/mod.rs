//! Restore: snapshot part → schema, `LOAD DATA LOCAL INFILE` per chunk → MySQL.
//!
//! Safety rules: nothing is written before every check passed (databases exist in the snapshot,
//! the target accepts `LOCAL INFILE`, every collation has a home, no table we would fill holds
//! rows unless `--replace`). Each table is filled inside one transaction that commits only
//! when its row count matches the manifest and the server raised no warning, so an interrupted
//! or damaged restore never leaves a table looking complete.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::MysqlUrl;
use super::catalog::DbSchema;
use super::connect;
use super::sqltext::path_segment;

mod objects;
mod parallel;
mod state;
mod target;

pub use objects::write as statement_for;
mod validate;

use crate::error::{Error, MysqlContext, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::{Manifest, MysqlDatabase};
use target::{Plan, Target};

/// The largest `schema.json` restore reads: the schema of thousands of tables is a few MiB,
/// and a forged part may claim (and hold) gigabytes.
const MAX_SCHEMA_BYTES: u64 = 64 << 20;

fn schema_too_big(part: &str, path: &str) -> Error {
    Error::damaged(
        part,
        path,
        format!(
            "larger than the {} MiB a schema.json may hold; not read",
            MAX_SCHEMA_BYTES >> 20
        ),
    )
}

const BASE_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub mysql: MysqlUrl,
    /// Databases of the snapshot to restore; `None` means all.
    pub databases: Option<Vec<String>>,
    /// `(source, target)` database renames.
    pub renames: Vec<(String, String)>,
    /// Replace the rows of tables that hold rows (atomically per table) instead of refusing.
    pub replace: bool,
    /// Run every check and report what would be restored, without writing anything.
    pub dry_run: bool,
    /// Connections loading tables at the same time (each table is still one transaction).
    pub jobs: usize,
    /// Create the triggers, routines, events and `SQL SECURITY DEFINER` views of a snapshot no
    /// trusted key signed (they run with their definer's privileges).
    pub trust_unsigned_code: bool,
    /// `(user, host)` every restored code object is defined by, instead of the snapshot's.
    pub definer: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoredTable {
    pub name: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoredDatabase {
    pub source: String,
    pub target: String,
    pub tables: Vec<RestoredTable>,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub target: String,
    pub server_version: String,
    pub databases: Vec<RestoredDatabase>,
    /// Collations the target lacked, and what was used instead.
    pub collation_map: BTreeMap<String, String>,
    /// Tables that held rows and had them replaced (`--replace`).
    pub replaced: Vec<String>,
    /// True when nothing was written (`--dry-run`); the counts are what would be restored.
    pub dry_run: bool,
    pub notices: Vec<String>,
    /// Code objects left out: they run with their definer's privileges, and nobody vouched for
    /// the snapshot (no trusted signature, no `--trust-unsigned-code`).
    pub not_restored: Vec<String>,
}

pub async fn restore(
    repo: &Repository,
    snapshot: &str,
    opts: &RestoreOptions,
    progress: ProgressRef,
    cancel: CancellationToken,
) -> Result<RestoreReport> {
    let progress = crate::progress::logged(progress, "restore");
    let manifest = repo.manifest(snapshot).await?;
    let runs_code = opts.trust_unsigned_code || repo.signed_by(&manifest.id).await?.is_some();
    let selected = target::select(&manifest, opts)?;
    let (mut conn, t) = target::survey(opts, &manifest, &selected).await?;
    let mut notices = Vec::new();
    let collation_map = target::map_collations(&selected, &t, opts, &progress, &mut notices)?;
    let (plans, non_empty) = target::preflight(&mut conn, &selected, runs_code, opts).await?;
    let Target {
        version,
        collations: have,
        charsets,
        databases,
        existed,
    } = t;

    let context = |plan| DbContext {
        manifest: &manifest,
        plan,
        collation_map: &collation_map,
        charsets: &charsets,
        collations: &have,
        databases: &databases,
        server: crate::mysql::sqlparse::lex::version_id(&version),
        replace: opts.replace,
        code: objects::CodePolicy {
            run: runs_code,
            definer: opts.definer.clone(),
        },
        progress: &progress,
        cancel: &cancel,
    };
    // Every database's schema is checked before the first write, dry run included.
    let mut not_restored = Vec::new();
    for plan in &plans {
        let schema = read_schema(repo, &manifest, plan.db).await?;
        not_restored.extend(objects::prepare(&context(plan), &schema)?.skipped);
    }
    if !not_restored.is_empty() {
        let msg = format!(
            "{} code object(s) not restored: they run with their definer's privileges and snapshot {} is not signed by a key you trust: {}",
            not_restored.len(),
            manifest.id,
            not_restored.join(", ")
        );
        progress.event(Event::Notice(msg.clone()));
        notices.push(msg);
    }

    if opts.dry_run {
        let databases = plans.iter().map(planned).collect();
        let _ = conn.disconnect().await;
        return Ok(RestoreReport {
            snapshot: manifest.id.clone(),
            target: opts.mysql.redacted(),
            server_version: version,
            databases,
            collation_map,
            replaced: non_empty,
            dry_run: true,
            notices,
            not_restored,
        });
    }

    let mut loaders = open_loaders(opts, &mut conn).await?;
    announce(&plans, &progress);

    let mut restored = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let ctx = context(plan);
        match parallel::restore_database(repo, &mut conn, &mut loaders, &ctx).await {
            Ok(r) => restored.push(r),
            Err(e) => {
                for c in loaders {
                    let _ = c.disconnect().await;
                }
                let _ = conn.disconnect().await;
                target::undo(&opts.mysql, &plans[..=i], &existed, &progress).await;
                return Err(e);
            }
        }
    }
    for c in loaders {
        let _ = c.disconnect().await;
    }
    let _ = conn.disconnect().await;
    Ok(RestoreReport {
        snapshot: manifest.id.clone(),
        target: opts.mysql.redacted(),
        server_version: version,
        databases: restored,
        collation_map,
        replaced: non_empty,
        dry_run: false,
        notices,
        not_restored,
    })
}

/// What a dry run reports for a database: the snapshot's tables and rows.
fn planned(p: &Plan<'_>) -> RestoredDatabase {
    RestoredDatabase {
        source: p.db.name.clone(),
        target: p.target.clone(),
        tables: p
            .db
            .tables
            .iter()
            .map(|t| RestoredTable {
                name: t.name.clone(),
                rows: t.rows,
            })
            .collect(),
        rows: p.db.tables.iter().map(|t| t.rows).sum(),
    }
}

/// Prepares the control connection's session and opens `--jobs` loader connections.
async fn open_loaders(opts: &RestoreOptions, control: &mut Conn) -> Result<Vec<Conn>> {
    prepare_session(control).await?;
    let mut loaders = Vec::with_capacity(opts.jobs.max(1));
    for _ in 0..opts.jobs.max(1) {
        let mut c = connect(&opts.mysql).await?;
        prepare_session(&mut c).await?;
        loaders.push(c);
    }
    Ok(loaders)
}

/// The progress plan: every table and row the restore loads.
fn announce(plans: &[Plan<'_>], progress: &ProgressRef) {
    let tables = || plans.iter().flat_map(|p| &p.db.tables);
    progress.event(Event::Plan {
        what: "restore",
        tables: tables().count() as u64,
        est_rows: tables().map(|t| t.rows).sum(),
        est_bytes: tables().map(|t| t.bytes).sum(),
    });
}

/// Session settings of every restore connection: no foreign-key checks (tables load in any
/// order), the snapshot's SQL mode and time zone, and timeouts long enough for any table.
/// Unique checks stay on: with them off, MariaDB 10.6+ "bulk-loads" an empty table by sorting
/// every row again at commit, but a backup reads rows in primary-key order already; measured on
/// a 1M-row MLflow `metrics` table, loading with checks on took 2.9 s of server CPU instead of
/// 6.5 s (and a duplicate key fails the load instead of being sorted away).
async fn prepare_session(conn: &mut Conn) -> Result<()> {
    conn.query_drop(format!(
        "SET NAMES utf8mb4, SESSION foreign_key_checks = 0, unique_checks = 1, sql_mode = '{BASE_SQL_MODE}', \
         time_zone = '+00:00', net_read_timeout = 86400, net_write_timeout = 86400, wait_timeout = 86400"
    ))
    .await
    .ctx(|| "preparing the restore session".into())
}

/// Loader connections when `--jobs` is not given: two per core, at most four (each is a server
/// thread loading one table; more only queue on the server's I/O).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).min(4)
}

struct DbContext<'a> {
    manifest: &'a Manifest,
    plan: &'a Plan<'a>,
    collation_map: &'a BTreeMap<String, String>,
    /// What the target server knows, to check the snapshot's database options against.
    charsets: &'a BTreeSet<String>,
    collations: &'a BTreeSet<String>,
    /// Every database name known (the target's, the snapshot's, the system ones).
    databases: &'a BTreeSet<String>,
    /// The target's version as a number, for versioned comments.
    server: u32,
    replace: bool,
    code: objects::CodePolicy,
    progress: &'a ProgressRef,
    cancel: &'a CancellationToken,
}

/// Reads only the `schema.json` of a database's part (the part's second entry; its hash is
/// checked as it is read) and stops.
async fn read_schema(
    repo: &Repository,
    manifest: &Manifest,
    db: &MysqlDatabase,
) -> Result<DbSchema> {
    let part = manifest.part(&db.part).ok_or_else(|| {
        Error::damaged(
            &db.part,
            "(manifest)",
            "part listed by a database is missing from the manifest",
        )
    })?;
    let want = format!("mysql/{}/schema.json", path_segment(&db.name));
    let found = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let slot = found.clone();
    let path = want.clone();
    let part_name = db.part.clone();
    let read = repo
        .read_part(&manifest.id, part, (), move |(), entry| {
            if entry.entry().path != path {
                return Ok(());
            }
            if entry.entry().size > MAX_SCHEMA_BYTES {
                return Err(schema_too_big(&part_name, &path));
            }
            let mut bytes = Vec::new();
            entry
                .take(MAX_SCHEMA_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(format!("reading {path}"), e))?;
            if bytes.len() as u64 > MAX_SCHEMA_BYTES {
                return Err(schema_too_big(&part_name, &path));
            }
            *slot.lock().expect("not poisoned") = Some(bytes);
            Err(Error::Interrupted("schema.json read".into()))
        })
        .await;
    let bytes = found.lock().expect("not poisoned").take();
    match (bytes, read) {
        (_, Err(e @ Error::Damaged { .. })) => Err(e),
        (Some(bytes), _) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::damaged(&db.part, &want, format!("not a valid schema: {e}"))),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(Error::damaged(&db.part, &want, "missing")),
    }
}
