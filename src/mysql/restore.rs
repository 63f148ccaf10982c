//! Restore: snapshot part → schema, `LOAD DATA LOCAL INFILE` per chunk → MySQL.
//!
//! Safety rules: nothing is written before every check passed (databases exist in the snapshot,
//! the target accepts `LOCAL INFILE`, every collation has a home, no table we would fill holds
//! rows unless `--replace`). Each table is filled inside one transaction that commits only
//! when its row count matches the manifest and the server raised no warning, so an interrupted
//! or damaged restore never leaves a table looking complete.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::{DbSchema, ObjectKind, SchemaObject, load_data_sql};
use super::sqltext::{ident, literal, path_segment, qualified, rewrite_db_qualifier};
use super::{MysqlUrl, collation, connect, server_version, text};
use crate::error::{Error, MysqlContext, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::{Manifest, MysqlDatabase};

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
            .filter(|(name, table)| existing.contains(table) && !db.triggers.contains(name))
            .collect();
        if let Some((name, table)) = foreign.first() {
            return Err(Error::Refused(format!(
                "trigger {} on {} is not part of the snapshot and would fire on every restored row; drop it first (nothing was changed)",
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
        });
    }

    conn.query_drop(format!(
        "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = '{BASE_SQL_MODE}', \
         time_zone = '+00:00', net_read_timeout = 86400, net_write_timeout = 86400, wait_timeout = 86400"
    ))
    .await
    .ctx(|| "preparing the restore session".into())?;

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
    for plan in &plans {
        let ctx = DbContext {
            manifest: &manifest,
            plan,
            collation_map: &collation_map,
            replace: opts.replace,
            progress: &progress,
            cancel: &cancel,
        };
        restored.push(restore_database(repo, &mut conn, &ctx).await?);
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
    })
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
    replace: bool,
    progress: &'a ProgressRef,
    cancel: &'a CancellationToken,
}

struct Item {
    path: String,
    data: mpsc::Receiver<std::io::Result<Bytes>>,
}

async fn restore_database(
    repo: &Repository,
    conn: &mut Conn,
    ctx: &DbContext<'_>,
) -> Result<RestoredDatabase> {
    let db = ctx.plan.db;
    let part = ctx
        .manifest
        .part(&db.part)
        .ok_or_else(|| {
            Error::damaged(
                &db.part,
                "(manifest)",
                "part listed by a database is missing from the manifest",
            )
        })?
        .clone();
    let (itx, mut irx) = mpsc::channel::<Item>(1);
    let (repo2, id) = (repo.clone(), ctx.manifest.id.clone());
    let reader_task = tokio::spawn(async move {
        repo2
            .read_part(&id, &part, (), move |(), entry| {
                let (dtx, drx) = mpsc::channel::<std::io::Result<Bytes>>(4);
                let stopped = || Error::Interrupted("restore stopped reading the part".into());
                itx.blocking_send(Item {
                    path: entry.entry().path.clone(),
                    data: drx,
                })
                .map_err(|_| stopped())?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match entry.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => dtx
                            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                            .map_err(|_| stopped())?,
                        Err(e) => {
                            let _ = dtx
                                .blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
                            return Err(Error::io("reading the part", e));
                        }
                    }
                }
            })
            .await
    });

    let mut state = DbState::new(ctx);
    let consumed = async {
        while let Some(item) = irx.recv().await {
            if ctx.cancel.is_cancelled() {
                return Err(Error::Interrupted(format!(
                    "restore of {} stopped: tables finished before the stop are restored, the one in progress was rolled back; run the same restore with --replace to finish it",
                    ident(&ctx.plan.target)
                )));
            }
            state.entry(conn, item).await?;
        }
        Ok(())
    }
    .await;
    drop(irx);
    let read = reader_task
        .await
        .map_err(|e| Error::other(format!("part reader failed: {e}")))?;
    match (consumed, read) {
        (_, Err(e @ Error::Damaged { .. })) | (Err(e), _) | (Ok(()), Err(e)) => {
            let _ = conn.query_drop("ROLLBACK").await;
            Err(e)
        }
        (Ok(()), Ok(())) => state.finish(conn).await,
    }
}

struct Current {
    index: usize,
    rows: u64,
    bytes: u64,
    started: Instant,
}

struct DbState<'c> {
    ctx: &'c DbContext<'c>,
    dbdir: String,
    schema: Option<DbSchema>,
    current: Option<Current>,
    done: Vec<Option<u64>>,
}

impl<'c> DbState<'c> {
    fn new(ctx: &'c DbContext<'c>) -> Self {
        DbState {
            ctx,
            dbdir: format!("mysql/{}", path_segment(&ctx.plan.db.name)),
            schema: None,
            current: None,
            done: vec![None; ctx.plan.db.tables.len()],
        }
    }

    fn target(&self) -> &str {
        &self.ctx.plan.target
    }

    /// DDL as it must run on the target: renamed database, mapped collations.
    fn adapt(&self, sql: &str) -> String {
        let mut s = if self.ctx.plan.db.name != self.ctx.plan.target {
            rewrite_db_qualifier(sql, &self.ctx.plan.db.name, &self.ctx.plan.target)
        } else {
            sql.to_string()
        };
        for (from, to) in self.ctx.collation_map {
            s = collation::rewrite(&s, from, to);
        }
        s
    }

    async fn entry(&mut self, conn: &mut Conn, item: Item) -> Result<()> {
        let Item { path, mut data } = item;
        let rel = path
            .strip_prefix(&format!("{}/", self.dbdir))
            .unwrap_or(&path)
            .to_string();
        match rel.as_str() {
            "schema.json" => {
                let mut bytes = Vec::new();
                while let Some(chunk) = data.recv().await {
                    bytes.extend_from_slice(
                        &chunk.map_err(|e| Error::io("reading schema.json", e))?,
                    );
                }
                let schema: DbSchema = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::damaged(
                        &self.ctx.plan.db.part,
                        &path,
                        format!("not a valid schema: {e}"),
                    )
                })?;
                self.pre_data(conn, &schema).await?;
                self.schema = Some(schema);
                Ok(())
            }
            r if r.ends_with(".tsv") => {
                let dir = r.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
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
                            &path,
                            "chunk of a table the manifest does not list",
                        )
                    })?;
                if self.schema.is_none() {
                    return Err(Error::damaged(
                        &self.ctx.plan.db.part,
                        &path,
                        "data before schema.json",
                    ));
                }
                if self.current.as_ref().map(|c| c.index) != Some(index) {
                    self.end_table(conn).await?;
                    self.begin_table(conn, index).await?;
                }
                self.load_chunk(conn, &path, data).await
            }
            _ => {
                while data.recv().await.is_some() {}
                Ok(())
            }
        }
    }

    async fn exec_object(&self, conn: &mut Conn, o: &SchemaObject, sql: &str) -> Result<()> {
        if let Some(mode) = &o.sql_mode {
            conn.query_drop(format!("SET SESSION sql_mode = {}", literal(mode)))
                .await
                .ctx(|| format!("setting sql_mode for {}", o.name))?;
        }
        if let Some(tz) = &o.time_zone {
            conn.query_drop(format!("SET SESSION time_zone = {}", literal(tz)))
                .await
                .ctx(|| format!("setting time_zone for {}", o.name))?;
        }
        let run = conn.query_drop(sql).await.ctx(|| {
            format!(
                "creating {} {}",
                o.kind.keyword().to_lowercase(),
                qualified(self.target(), &o.name)
            )
        });
        if o.sql_mode.is_some() || o.time_zone.is_some() {
            conn.query_drop(format!(
                "SET SESSION sql_mode = '{BASE_SQL_MODE}', time_zone = '+00:00'"
            ))
            .await
            .ctx(|| "restoring session settings".into())?;
        }
        run
    }

    /// Drops a routine, trigger or event of the same name, then creates the snapshot's.
    async fn replace_object(&self, conn: &mut Conn, o: &SchemaObject) -> Result<()> {
        conn.query_drop(format!(
            "DROP {} IF EXISTS {}",
            o.kind.keyword(),
            ident(&o.name)
        ))
        .await
        .ctx(|| format!("replacing {}", qualified(self.target(), &o.name)))?;
        self.exec_object(conn, o, &self.adapt(&o.sql)).await
    }

    async fn pre_data(&self, conn: &mut Conn, schema: &DbSchema) -> Result<()> {
        let target = self.target().to_string();
        let coll = self
            .ctx
            .collation_map
            .get(&schema.collation)
            .cloned()
            .unwrap_or_else(|| schema.collation.clone());
        conn.query_drop(schema.create_database_sql(&target, &schema.charset, &coll))
            .await
            .ctx(|| format!("creating database {}", ident(&target)))?;
        conn.query_drop(format!("USE {}", ident(&target)))
            .await
            .ctx(|| format!("using database {}", ident(&target)))?;
        for o in &schema.post_data {
            if o.kind == ObjectKind::Trigger {
                conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", ident(&o.name)))
                    .await
                    .ctx(|| {
                        format!(
                            "dropping trigger {} until the data is in",
                            qualified(&target, &o.name)
                        )
                    })?;
            }
        }
        for o in &schema.pre_data {
            match o.kind {
                ObjectKind::Table => {
                    if !self.ctx.plan.existing.contains(&o.name) {
                        self.exec_object(conn, o, &self.adapt(&o.sql)).await?;
                    }
                }
                ObjectKind::View => {
                    let sql = self.adapt(&o.sql);
                    let sql = match sql.strip_prefix("CREATE ") {
                        Some(rest) => format!("CREATE OR REPLACE {rest}"),
                        None => sql,
                    };
                    self.exec_object(conn, o, &sql).await?;
                }
                ObjectKind::Function
                | ObjectKind::Procedure
                | ObjectKind::Trigger
                | ObjectKind::Event => self.replace_object(conn, o).await?,
            }
        }
        Ok(())
    }

    async fn begin_table(&mut self, conn: &mut Conn, index: usize) -> Result<()> {
        let t = &self.ctx.plan.db.tables[index];
        let target = self.target().to_string();
        conn.query_drop("START TRANSACTION")
            .await
            .ctx(|| "starting a transaction".into())?;
        if self.ctx.replace && self.ctx.plan.existing.contains(&t.name) {
            conn.query_drop(format!("DELETE FROM {}", qualified(&target, &t.name)))
                .await
                .ctx(|| format!("emptying {} for --replace", qualified(&target, &t.name)))?;
        }
        self.ctx.progress.event(Event::TableStarted {
            db: target,
            table: t.name.clone(),
            est_rows: t.rows,
        });
        self.current = Some(Current {
            index,
            rows: 0,
            bytes: 0,
            started: Instant::now(),
        });
        Ok(())
    }

    async fn load_chunk(
        &mut self,
        conn: &mut Conn,
        path: &str,
        mut data: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<()> {
        let target = self.target().to_string();
        let cur = self.current.as_mut().expect("table begun");
        let t = &self.ctx.plan.db.tables[cur.index];
        let (counter_tx, mut counter_rx) = mpsc::unbounded_channel::<u64>();
        let stream = futures::stream::poll_fn(move |cx| {
            let polled = data.poll_recv(cx);
            if let std::task::Poll::Ready(Some(Ok(b))) = &polled {
                let _ = counter_tx.send(b.len() as u64);
            }
            polled
        });
        conn.set_infile_handler(async move { Ok(stream.boxed()) });
        let sql = load_data_sql(&format!("amlmigrate:{path}"), &target, &t.name, &t.columns);
        conn.query_drop(sql)
            .await
            .ctx(|| format!("loading {path} into {}", qualified(&target, &t.name)))?;
        let loaded = conn.affected_rows();
        let warnings = conn.get_warnings();
        while let Ok(n) = counter_rx.try_recv() {
            cur.bytes += n;
        }
        cur.rows += loaded;
        if warnings > 0 {
            let rows: Vec<mysql_async::Row> = conn
                .query("SHOW WARNINGS LIMIT 5")
                .await
                .unwrap_or_default();
            let msgs: Vec<String> = rows.iter().filter_map(|r| text(r, 2)).collect();
            return Err(Error::other(format!(
                "loading {path} into {} raised {warnings} warning(s), so the values would not be exact: {}; the table was rolled back",
                qualified(&target, &t.name),
                msgs.join("; ")
            )));
        }
        self.ctx.progress.event(Event::TableProgress {
            db: target,
            table: t.name.clone(),
            rows: cur.rows,
            bytes: cur.bytes,
        });
        Ok(())
    }

    async fn end_table(&mut self, conn: &mut Conn) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let t = &self.ctx.plan.db.tables[cur.index];
        let target = self.target().to_string();
        if cur.rows != t.rows {
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(Error::other(format!(
                "{} received {} rows but the snapshot holds {}; the table was rolled back",
                qualified(&target, &t.name),
                cur.rows,
                t.rows
            )));
        }
        conn.query_drop("COMMIT")
            .await
            .ctx(|| format!("committing {}", qualified(&target, &t.name)))?;
        self.ctx.progress.event(Event::TableFinished {
            db: target,
            table: t.name.clone(),
            rows: cur.rows,
            bytes: cur.bytes,
            elapsed: cur.started.elapsed(),
        });
        self.done[cur.index] = Some(cur.rows);
        Ok(())
    }

    async fn finish(mut self, conn: &mut Conn) -> Result<RestoredDatabase> {
        self.end_table(conn).await?;
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
                elapsed: std::time::Duration::ZERO,
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
