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

use super::catalog::{DbSchema, ObjectKind};
use super::sqltext::{ident, path_segment, qualified};
use super::{MysqlUrl, SYSTEM_DATABASES, collation, connect, context, server_version};

mod objects;
mod parallel;

pub use objects::write as statement_for;
mod validate;

use objects::{Ready, ReadySchema};

use crate::error::{Error, MysqlContext, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::{Manifest, MysqlDatabase};
use parallel::Item;

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

struct Plan<'a> {
    db: &'a MysqlDatabase,
    target: String,
    /// Tables of the snapshot that already exist in the target.
    existing: BTreeSet<String>,
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
    let selected = select(&manifest, opts)?;

    let mut conn = connect(&opts.mysql).await?;
    let version = server_version(&mut conn).await?;
    let local_infile: Option<i64> = conn
        .query_first("SELECT @@GLOBAL.local_infile + 0")
        .await
        .ctx(|| "reading local_infile".into())?;
    if local_infile == Some(0) {
        return Err(Error::Refused(format!(
            "{} has local_infile=OFF, which restore needs for LOAD DATA LOCAL; enable it with SET GLOBAL local_infile = 1 (nothing was changed)",
            opts.mysql
        )));
    }
    conn.query_drop("SET NAMES utf8mb4")
        .await
        .ctx(|| "setting utf8mb4".into())?;

    let mut notices = Vec::new();
    let mut have: BTreeSet<String> = conn
        .query::<String, _>("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
        .await
        .ctx(|| "listing the target's collations".into())?
        .into_iter()
        .collect();
    // MariaDB 10.10+ lists UCA 14 collations without their charset there; the full names
    // (utf8mb4_uca1400_ai_ci) are in this column, which older servers lack.
    if let Ok(full) = conn
        .query::<String, _>(
            "SELECT FULL_COLLATION_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
        )
        .await
    {
        have.extend(full);
    }
    let mut databases: BTreeSet<String> = conn
        .query::<String, _>("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .ctx(|| "listing the target's databases".into())?
        .into_iter()
        .collect();
    // What this restore did not create, and so never drops when it stops.
    let existed = databases.clone();
    databases.extend(SYSTEM_DATABASES.iter().map(|s| s.to_string()));
    databases.extend(manifest.mysql.iter().map(|d| d.name.clone()));
    databases.extend(selected.iter().map(|(_, t)| t.clone()));
    let charsets: BTreeSet<String> = conn
        .query::<String, _>("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS")
        .await
        .ctx(|| "listing the target's character sets".into())?
        .into_iter()
        .collect();
    let mut collation_map = BTreeMap::new();
    for (db, _) in &selected {
        for c in &db.collations {
            if have.contains(c) || collation_map.contains_key(c) {
                continue;
            }
            match collation::nearest(c, &have) {
                Some(n) => {
                    let msg = format!(
                        "collation {c} (database {}) does not exist on {version}; using {n} instead",
                        db.name
                    );
                    progress.event(Event::Notice(msg.clone()));
                    notices.push(msg);
                    collation_map.insert(c.clone(), n);
                }
                None => {
                    return Err(Error::Refused(format!(
                        "collation {c} used by database {} does not exist on {} ({version}) and no collation of the same character set is close; nothing was changed",
                        db.name, opts.mysql
                    )));
                }
            }
        }
    }

    // Preflight: which snapshot tables exist, and do any hold rows?
    let mut plans = Vec::new();
    let mut non_empty = Vec::new();
    // Said after the rows a target holds, which is the first thing to fix.
    let mut trigger_refusal = None;
    for (db, target) in &selected {
        let present: BTreeSet<String> = conn
            .exec::<String, _, _>(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'",
                (target,),
            )
            .await
            .ctx(|| format!("listing tables of {}", ident(target)))?
            .into_iter()
            .collect();
        let mut existing = BTreeSet::new();
        for t in &db.tables {
            if present.contains(&t.name) {
                existing.insert(t.name.clone());
                let any: Option<i64> = conn
                    .query_first(format!(
                        "SELECT 1 FROM {} LIMIT 1",
                        qualified(target, &t.name)
                    ))
                    .await
                    .ctx(|| format!("checking {}", qualified(target, &t.name)))?;
                if any.is_some() {
                    non_empty.push(qualified(target, &t.name));
                }
            }
        }
        // A trigger on a table we fill would fire on every loaded row. The snapshot's own
        // triggers are dropped before the data and created again after it; others are refused.
        let foreign: Vec<(String, String)> = conn
            .exec::<(String, String), _, _>(
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
                (target,),
            )
            .await
            .ctx(|| format!("listing triggers of {}", ident(target)))?
            .into_iter()
            .filter(|(name, table)| existing.contains(table) && !(runs_code && db.triggers.contains(name)))
            .collect();
        if let Some((name, table)) = foreign.first() {
            let why = if db.triggers.contains(name) {
                "would fire on every restored row, and the snapshot's trigger of that name is not restored (no trusted key signed it; --trust-unsigned-code replaces it)"
            } else {
                "is not part of the snapshot and would fire on every restored row"
            };
            trigger_refusal.get_or_insert(Error::Refused(format!(
                "trigger {} on {} {why}; drop it first (nothing was changed)",
                ident(name),
                qualified(target, table)
            )));
        }
        plans.push(Plan {
            db,
            target: target.clone(),
            existing,
        });
    }
    if !non_empty.is_empty() && !opts.replace {
        let shown: Vec<&str> = non_empty.iter().take(5).map(String::as_str).collect();
        let more = if non_empty.len() > 5 {
            format!(" and {} more", non_empty.len() - 5)
        } else {
            String::new()
        };
        return Err(Error::Refused(format!(
            "the target is not empty: {}{more} already hold rows on {}; nothing was changed. \
             Restore into another database with --rename SRC=DST, or pass --replace to replace their rows",
            shown.join(", "),
            opts.mysql
        )));
    }
    if let Some(e) = trigger_refusal {
        return Err(e);
    }

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
        let databases = plans
            .iter()
            .map(|p| RestoredDatabase {
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
            })
            .collect();
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

    prepare_session(&mut conn).await?;
    let mut loaders = Vec::with_capacity(opts.jobs.max(1));
    for _ in 0..opts.jobs.max(1) {
        let mut c = connect(&opts.mysql).await?;
        prepare_session(&mut c).await?;
        loaders.push(c);
    }

    progress.event(Event::Plan {
        what: "restore",
        tables: plans.iter().map(|p| p.db.tables.len() as u64).sum(),
        est_rows: plans
            .iter()
            .flat_map(|p| &p.db.tables)
            .map(|t| t.rows)
            .sum(),
        est_bytes: plans
            .iter()
            .flat_map(|p| &p.db.tables)
            .map(|t| t.bytes)
            .sum(),
    });

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
                undo(&opts.mysql, &plans[..=i], &existed, &progress).await;
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

/// A restore that stops leaves nothing it created: databases it created are dropped, and in
/// databases that existed, the tables it created (tables that existed keep their rows, rolled
/// back per table). Best effort on a fresh connection: the error that stopped the restore is
/// what the caller reports.
async fn undo(
    url: &MysqlUrl,
    plans: &[Plan<'_>],
    existed: &BTreeSet<String>,
    progress: &ProgressRef,
) {
    let Ok(mut conn) = connect(url).await else {
        return;
    };
    let _ = conn.query_drop("SET SESSION foreign_key_checks = 0").await;
    for plan in plans {
        // A loader whose load failed may have lost its connection before dropping its
        // staging table: they all go here.
        let staging: Vec<String> = (0..plan.db.tables.len())
            .map(parallel::staging_name)
            .flat_map(|s| [format!("{s}_old"), s])
            .map(|s| qualified(&plan.target, &s))
            .collect();
        if existed.contains(&plan.target) && !staging.is_empty() {
            let _ = conn
                .query_drop(format!("DROP TABLE IF EXISTS {}", staging.join(", ")))
                .await;
        }
        let dropped = if !existed.contains(&plan.target) {
            let q = format!("DROP DATABASE IF EXISTS {}", ident(&plan.target));
            conn.query_drop(q)
                .await
                .map(|_| format!("database {}", ident(&plan.target)))
        } else {
            let created: Vec<String> = plan
                .db
                .tables
                .iter()
                .filter(|t| !plan.existing.contains(&t.name))
                .map(|t| qualified(&plan.target, &t.name))
                .collect();
            if created.is_empty() {
                continue;
            }
            let q = format!("DROP TABLE IF EXISTS {}", created.join(", "));
            conn.query_drop(q)
                .await
                .map(|_| format!("tables {}", created.join(", ")))
        };
        let msg = match dropped {
            Ok(what) => format!("restore stopped: dropped the {what} it had created"),
            Err(e) => format!(
                "restore stopped, and dropping what it created in {} failed too: {e}",
                ident(&plan.target)
            ),
        };
        progress.event(Event::Notice(msg));
    }
    let _ = conn.disconnect().await;
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

fn select<'a>(
    manifest: &'a Manifest,
    opts: &RestoreOptions,
) -> Result<Vec<(&'a MysqlDatabase, String)>> {
    if manifest.mysql.is_empty() {
        return Err(Error::input(format!(
            "snapshot {} holds no MySQL databases",
            manifest.id
        )));
    }
    let available = || {
        manifest
            .mysql
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&MysqlDatabase> = match &opts.databases {
        None => manifest.mysql.iter().collect(),
        Some(list) => {
            let mut v = Vec::new();
            for name in list {
                match manifest.mysql.iter().find(|d| &d.name == name) {
                    Some(d) => v.push(d),
                    None => {
                        return Err(Error::input(format!(
                            "database {name} is not in snapshot {}; it holds: {}",
                            manifest.id,
                            available()
                        )));
                    }
                }
            }
            v
        }
    };
    let mut renames: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in &opts.renames {
        if !chosen.iter().any(|d| &d.name == from) {
            return Err(Error::input(format!(
                "--rename {from}={to}: database {from} is not being restored (snapshot holds: {})",
                available()
            )));
        }
        renames.insert(from, to);
    }
    if let Some(url_db) = &opts.mysql.database {
        match chosen.as_slice() {
            [only] if !renames.contains_key(only.name.as_str()) => {
                renames.insert(only.name.as_str(), url_db.as_str());
            }
            [_] => {}
            _ => {
                return Err(Error::input(format!(
                    "the target URL names database {url_db}, but {} databases are being restored; use --rename SRC=DST instead",
                    chosen.len()
                )));
            }
        }
    }
    let mut targets = BTreeSet::new();
    let mut out = Vec::new();
    for d in chosen {
        let target = renames
            .get(d.name.as_str())
            .map(|s| s.to_string())
            .unwrap_or_else(|| d.name.clone());
        for (what, name) in [
            ("a snapshot database", &d.name),
            ("a restore target", &target),
        ] {
            if SYSTEM_DATABASES
                .iter()
                .any(|sys| sys.eq_ignore_ascii_case(name))
            {
                return Err(Error::Refused(format!(
                    "{} is a system database of the server and cannot be {what} of snapshot {}; nothing was run",
                    ident(name),
                    manifest.id
                )));
            }
        }
        if !targets.insert(target.clone()) {
            return Err(Error::input(format!(
                "two databases would be restored into {target}"
            )));
        }
        out.push((d, target));
    }
    Ok(out)
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

struct DbState<'c> {
    ctx: &'c DbContext<'c>,
    dbdir: String,
    schema: Option<ReadySchema>,
    /// Rows committed per table of the database, by manifest index.
    done: Vec<Option<u64>>,
}

impl<'c> DbState<'c> {
    fn new(ctx: &'c DbContext<'c>) -> Self {
        DbState {
            ctx,
            dbdir: format!("mysql/{}", path_segment(&ctx.plan.db.name)),
            schema: None,
            done: vec![None; ctx.plan.db.tables.len()],
        }
    }

    fn target(&self) -> &str {
        &self.ctx.plan.target
    }

    /// The manifest index of the table a `.tsv` entry belongs to; `None` for other entries.
    fn table_of(&self, path: &str) -> Result<Option<usize>> {
        let rel = path
            .strip_prefix(&format!("{}/", self.dbdir))
            .unwrap_or(path);
        if !rel.ends_with(".tsv") {
            return Ok(None);
        }
        let dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let index = self
            .ctx
            .plan
            .db
            .tables
            .iter()
            .position(|t| t.dir == dir)
            .ok_or_else(|| {
                Error::damaged(
                    &self.ctx.plan.db.part,
                    path,
                    "chunk of a table the manifest does not list",
                )
            })?;
        if self.schema.is_none() {
            return Err(Error::damaged(
                &self.ctx.plan.db.part,
                path,
                "data before schema.json",
            ));
        }
        Ok(Some(index))
    }

    /// An entry other than a chunk: `schema.json` runs the schema, the rest is skipped.
    async fn entry(&mut self, conn: &mut Conn, item: Item) -> Result<()> {
        let Item { path, mut data } = item;
        if path != format!("{}/schema.json", self.dbdir) {
            while data.recv().await.is_some() {}
            return Ok(());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = data.recv().await {
            bytes.extend_from_slice(&chunk.map_err(|e| Error::io("reading schema.json", e))?);
            if bytes.len() as u64 > MAX_SCHEMA_BYTES {
                return Err(schema_too_big(&self.ctx.plan.db.part, &path));
            }
        }
        let schema: DbSchema = serde_json::from_slice(&bytes).map_err(|e| {
            Error::damaged(
                &self.ctx.plan.db.part,
                &path,
                format!("not a valid schema: {e}"),
            )
        })?;
        let ready = objects::prepare(self.ctx, &schema)?;
        self.pre_data(conn, &ready).await?;
        self.schema = Some(ready);
        Ok(())
    }

    /// Creates one object in its creation context: its session settings, the database
    /// collation it was created under, and its text in its client character set. An object of
    /// a snapshot from before contexts were recorded is created in the restore's own session.
    async fn exec_object(&self, conn: &mut Conn, o: &Ready) -> Result<()> {
        let what = || {
            format!(
                "creating {} {}",
                o.kind.keyword().to_lowercase(),
                qualified(self.target(), &o.name)
            )
        };
        let Some(set) = o.context.set_sql() else {
            return run_ddl(conn, o.sql.as_bytes()).await.ctx(what);
        };
        let bytes = match o
            .context
            .charset
            .as_deref()
            .filter(|_| o.context.needs_encoding(&o.sql))
        {
            None => o.sql.clone().into_bytes(),
            Some(cs) => match context::encode(conn, &o.sql, cs).await {
                Ok(b) => b,
                Err(context::EncodeError::Server(e)) => return Err(e).ctx(what),
                Err(context::EncodeError::Lossy) => {
                    return Err(Error::Refused(format!(
                        "{} of snapshot {}: its text holds characters its character set {cs} \
                         cannot hold, so it was edited after the backup; restore from another \
                         snapshot",
                        what(),
                        self.ctx.manifest.id
                    )));
                }
            },
        };
        let collation_was = self.switch_database_collation(conn, o).await?;
        conn.query_drop(set)
            .await
            .ctx(|| format!("setting the creation context of {}", o.name))?;
        let run = run_ddl(conn, &bytes).await.ctx(what);
        conn.query_drop(format!(
            "SET NAMES utf8mb4, SESSION sql_mode = '{BASE_SQL_MODE}', time_zone = '+00:00'"
        ))
        .await
        .ctx(|| "restoring session settings".into())?;
        if let Some(c) = collation_was {
            conn.query_drop(context::alter_database_sql(self.target(), &c))
                .await
                .ctx(|| {
                    format!(
                        "restoring the collation of database {}",
                        ident(self.target())
                    )
                })?;
        }
        run
    }

    /// Sets the target database's collation to the one `o` was created under, as mysqldump
    /// does; returns the one to set back afterwards.
    async fn switch_database_collation(
        &self,
        conn: &mut Conn,
        o: &Ready,
    ) -> Result<Option<String>> {
        let Some(want) = &o.context.database_collation else {
            return Ok(None);
        };
        let target = self.target();
        let current: Option<String> = conn
            .exec_first(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (target,),
            )
            .await
            .ctx(|| format!("reading the collation of database {}", ident(target)))?;
        match current {
            Some(c) if c != *want => {
                conn.query_drop(context::alter_database_sql(target, want))
                    .await
                    .ctx(|| {
                        format!(
                            "setting database {} to collation {want}, which {} was created under",
                            ident(target),
                            o.name
                        )
                    })?;
                Ok(Some(c))
            }
            _ => Ok(None),
        }
    }

    /// Drops a routine, trigger or event of the same name, then creates the snapshot's.
    async fn replace_object(&self, conn: &mut Conn, o: &Ready) -> Result<()> {
        conn.query_drop(format!(
            "DROP {} IF EXISTS {}",
            o.kind.keyword(),
            ident(&o.name)
        ))
        .await
        .ctx(|| format!("replacing {}", qualified(self.target(), &o.name)))?;
        self.exec_object(conn, o).await
    }

    async fn pre_data(&self, conn: &mut Conn, schema: &ReadySchema) -> Result<()> {
        let target = self.target().to_string();
        conn.query_drop(schema.create_database.as_str())
            .await
            .ctx(|| format!("creating database {}", ident(&target)))?;
        conn.query_drop(format!("USE {}", ident(&target)))
            .await
            .ctx(|| format!("using database {}", ident(&target)))?;
        for o in schema.triggers() {
            conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", ident(&o.name)))
                .await
                .ctx(|| {
                    format!(
                        "dropping trigger {} until the data is in",
                        qualified(&target, &o.name)
                    )
                })?;
        }
        for o in &schema.pre_data {
            match o.kind {
                ObjectKind::Table => {
                    if !self.ctx.plan.existing.contains(&o.name) {
                        self.exec_object(conn, o).await?;
                    }
                }
                ObjectKind::View => self.exec_object(conn, o).await?,
                ObjectKind::Function
                | ObjectKind::Procedure
                | ObjectKind::Trigger
                | ObjectKind::Event => self.replace_object(conn, o).await?,
            }
        }
        Ok(())
    }

    async fn finish(mut self, conn: &mut Conn) -> Result<RestoredDatabase> {
        let target = self.target().to_string();
        let db = self.ctx.plan.db;
        for (i, t) in db.tables.iter().enumerate() {
            if self.done[i].is_some() {
                continue;
            }
            if t.rows != 0 {
                return Err(Error::damaged(
                    &db.part,
                    format!("mysql/{}/{}", path_segment(&db.name), t.dir),
                    "the table's chunks are missing",
                ));
            }
            let started = std::time::Instant::now();
            if self.ctx.replace && self.ctx.plan.existing.contains(&t.name) {
                conn.query_drop(format!("DELETE FROM {}", qualified(&target, &t.name)))
                    .await
                    .ctx(|| format!("emptying {} for --replace", qualified(&target, &t.name)))?;
            }
            self.ctx.progress.event(Event::TableFinished {
                db: target.clone(),
                table: t.name.clone(),
                rows: 0,
                bytes: 0,
                elapsed: started.elapsed(),
            });
            self.done[i] = Some(0);
        }
        let schema = self.schema.take().ok_or_else(|| {
            Error::damaged(&db.part, format!("{}/schema.json", self.dbdir), "missing")
        })?;
        conn.query_drop(format!("USE {}", ident(&target)))
            .await
            .ctx(|| format!("using database {}", ident(&target)))?;
        for o in &schema.post_data {
            self.replace_object(conn, o).await?;
        }
        let tables: Vec<RestoredTable> = db
            .tables
            .iter()
            .zip(&self.done)
            .map(|(t, rows)| RestoredTable {
                name: t.name.clone(),
                rows: rows.unwrap_or(0),
            })
            .collect();
        Ok(RestoredDatabase {
            source: db.name.clone(),
            target,
            rows: tables.iter().map(|t| t.rows).sum(),
            tables,
        })
    }
}

/// Runs one statement of a snapshot's schema as a prepared statement: the server then refuses
/// a second statement whatever the text holds (the driver always asks for multi-statement
/// support on the text protocol and cannot be told otherwise). MySQL cannot prepare
/// `CREATE TRIGGER`/`PROCEDURE`/`FUNCTION`/`EVENT` (error 1295); those run as text the tool
/// wrote from tokens [`validate::check_object`] proved to be one statement.
async fn run_ddl(conn: &mut Conn, sql: &[u8]) -> std::result::Result<(), mysql_async::Error> {
    match conn.exec_drop(sql, ()).await {
        Err(mysql_async::Error::Server(e)) if e.code == 1295 => conn.query_drop(sql).await,
        other => other,
    }
}
