//! Loading a database's tables on several connections at once.
//!
//! A part is one stream, read once: a dispatcher hands each table to the next free loader
//! connection through bounded channels, and the reader runs at most about two chunks ahead of
//! each loader, so memory stays bounded whatever the table sizes. Each table is still
//! one transaction on one connection that commits only when its row count matches the snapshot
//! and the server raised no warning; it commits only once the dispatcher has seen the table's
//! last chunk go by (the next table, or the end of a fully checked part). Schema objects run on
//! a separate control connection: tables before any row, views/triggers/events after all rows.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::state::DbState;
use super::{DbContext, RestoredDatabase};
use crate::error::{Error, MysqlContext, Result};
use crate::mysql::catalog::load_data_sql;
use crate::mysql::sqltext::{ident, qualified};
use crate::mysql::text;
use crate::progress::Event;
use crate::repo::Repository;

/// Buffers of 256 KiB an entry may run ahead of its loader: a whole chunk (8 MiB and the end
/// of its last row), so the reader moves on to the next table while this one still loads.
/// Memory: per loader one chunk loading and one queued, plus the one being read.
const READ_AHEAD: usize = 34;

/// One entry of the part as it streams by.
pub(super) struct Item {
    pub path: String,
    pub data: mpsc::Receiver<std::io::Result<Bytes>>,
}

enum Msg {
    Chunk(Item),
    /// Every chunk of the table went by: commit if the count matches.
    End,
}

struct Job {
    index: usize,
    chunks: mpsc::Receiver<Msg>,
}

/// Restores one database: schema on `control`, rows on `loaders` (one table each at a time).
pub(super) async fn restore_database(
    repo: &Repository,
    control: &mut Conn,
    loaders: &mut [Conn],
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
    let (itx, irx) = mpsc::channel::<Item>(1);
    let (repo2, id) = (repo.clone(), ctx.manifest.id.clone());
    let reader_task = tokio::spawn(async move {
        repo2
            .read_part(&id, &part, (), move |(), entry| {
                let (dtx, drx) = mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
                let stopped = || Error::Interrupted("restore stopped reading the part".into());
                itx.blocking_send(Item {
                    path: entry.entry().path.clone(),
                    data: drx,
                })
                .map_err(|_| stopped())?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match std::io::Read::read(entry, &mut buf) {
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
    let (job_tx, job_rx) = mpsc::channel::<Job>(1);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, u64)>();

    // Set by a loader that failed, so the dispatcher stops handing out the remaining tables.
    let failed = CancellationToken::new();
    let dispatch = dispatch(&mut state, control, irx, job_tx, reader_task, &failed);
    let workers = futures::future::join_all(loaders.iter_mut().map(|conn| {
        let (job_rx, done_tx, failed) = (&job_rx, done_tx.clone(), &failed);
        async move {
            loop {
                let job = job_rx.lock().await.recv().await;
                let Some(job) = job else { return Ok(()) };
                if let Err(e) = load_table(conn, ctx, job, &done_tx).await {
                    failed.cancel();
                    return Err(e);
                }
            }
        }
    }));
    drop(done_tx);
    let (dispatched, loaded) = tokio::join!(dispatch, workers);
    while let Ok((index, rows)) = done_rx.try_recv() {
        state.done[index] = Some(rows);
    }
    let loaded: Result<Vec<()>> = loaded.into_iter().collect();
    match (dispatched, loaded) {
        (Err(e @ Error::Damaged { .. }), _) => Err(e),
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(_)) => state.finish(control).await,
    }
}

/// Reads the part's entries in order: runs the schema, hands chunks to loaders. Returns the
/// reader's damage first, then its own failure.
async fn dispatch(
    state: &mut DbState<'_>,
    control: &mut Conn,
    mut irx: mpsc::Receiver<Item>,
    job_tx: mpsc::Sender<Job>,
    reader_task: tokio::task::JoinHandle<Result<()>>,
    failed: &CancellationToken,
) -> Result<()> {
    let ctx = state.ctx;
    let stopped = || Error::other("a loader connection stopped (its error follows)");
    let mut current: Option<(usize, mpsc::Sender<Msg>)> = None;
    let consumed = async {
        while let Some(item) = irx.recv().await {
            if failed.is_cancelled() {
                return Err(stopped());
            }
            if ctx.cancel.is_cancelled() {
                return Err(Error::Interrupted(format!(
                    "restore of {} stopped: tables finished before the stop are restored, those in progress were rolled back; run the same restore with --replace to finish it",
                    ident(&ctx.plan.target)
                )));
            }
            let Some(index) = state.table_of(&item.path)? else {
                state.entry(control, item).await?;
                continue;
            };
            if current.as_ref().map(|(i, _)| *i) != Some(index) {
                if let Some((_, tx)) = current.take() {
                    tx.send(Msg::End).await.map_err(|_| stopped())?;
                }
                let (tx, chunks) = mpsc::channel::<Msg>(1);
                job_tx
                    .send(Job { index, chunks })
                    .await
                    .map_err(|_| stopped())?;
                current = Some((index, tx));
            }
            let tx = &current.as_ref().expect("set above").1;
            tx.send(Msg::Chunk(item)).await.map_err(|_| stopped())?;
        }
        Ok(())
    }
    .await;
    drop(irx);
    let read = reader_task
        .await
        .map_err(|e| Error::other(format!("part reader failed: {e}")))?;
    match (consumed, read) {
        (_, Err(e @ Error::Damaged { .. })) | (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => {
            // The last table ends only once the whole part was read and checked.
            if let Some((_, tx)) = current.take() {
                tx.send(Msg::End).await.map_err(|_| stopped())?;
            }
            Ok(())
        }
    }
}

/// Engines whose rows a `ROLLBACK` takes back.
fn transactional(engine: &str) -> bool {
    engine.eq_ignore_ascii_case("InnoDB") || engine.eq_ignore_ascii_case("RocksDB")
}

/// The scratch name of the staging table of the database's `index`-th table, and of the table
/// it replaces while the two are swapped.
pub(super) fn staging_name(index: usize) -> String {
    format!("_amlmigrate_staging_{index}")
}

/// Where a table's rows go until they are proven: the table itself when its engine is
/// transactional (the transaction commits only on `End`), else a staging table of the same
/// definition under a scratch name, renamed into place only on `End` (MyISAM, Aria and the like
/// keep every row at once, whatever happens after).
struct Destination {
    table: String,
    staging: Option<String>,
}

impl Destination {
    async fn open(conn: &mut Conn, target: &str, table: &str, index: usize) -> Result<Self> {
        let engine: Option<String> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (target, table),
            )
            .await
            .ctx(|| format!("reading the engine of {}", qualified(target, table)))?;
        if engine.as_deref().is_none_or(transactional) {
            return Ok(Destination {
                table: table.to_string(),
                staging: None,
            });
        }
        let staging = staging_name(index);
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS {0}; CREATE TABLE {0} LIKE {1}",
            qualified(target, &staging),
            qualified(target, table)
        ))
        .await
        .ctx(|| format!("creating a staging table for {}", qualified(target, table)))?;
        Ok(Destination {
            table: table.to_string(),
            staging: Some(staging),
        })
    }

    /// The table the rows are loaded into.
    fn loading(&self) -> &str {
        self.staging.as_deref().unwrap_or(&self.table)
    }

    /// Rolls back, and drops the staging table: the table itself was not touched.
    async fn abandon(&self, conn: &mut Conn, target: &str) {
        let _ = conn.query_drop("ROLLBACK").await;
        if let Some(s) = &self.staging {
            let _ = conn
                .query_drop(format!("DROP TABLE IF EXISTS {}", qualified(target, s)))
                .await;
        }
    }

    /// Commits, and puts staged rows in place in one atomic rename.
    async fn commit(&self, conn: &mut Conn, target: &str) -> Result<()> {
        let what = || format!("committing {}", qualified(target, &self.table));
        conn.query_drop("COMMIT").await.ctx(what)?;
        let Some(s) = &self.staging else {
            return Ok(());
        };
        let old = format!("{s}_old");
        conn.query_drop(format!(
            "RENAME TABLE {table} TO {old}, {staging} TO {table}; DROP TABLE {old}",
            table = qualified(target, &self.table),
            old = qualified(target, &old),
            staging = qualified(target, s)
        ))
        .await
        .ctx(what)
    }
}

/// One table in one transaction on `conn`; commits only on `End` with the snapshot's count.
async fn load_table(
    conn: &mut Conn,
    ctx: &DbContext<'_>,
    mut job: Job,
    done: &mpsc::UnboundedSender<(usize, u64)>,
) -> Result<()> {
    let t = &ctx.plan.db.tables[job.index];
    let target = ctx.plan.target.as_str();
    let dest = Destination::open(conn, target, &t.name, job.index).await?;
    conn.query_drop("START TRANSACTION")
        .await
        .ctx(|| "starting a transaction".into())?;
    // A staging table starts empty, and replaces the table's rows whole.
    if ctx.replace && ctx.plan.existing.contains(&t.name) && dest.staging.is_none() {
        conn.query_drop(format!("DELETE FROM {}", qualified(target, &t.name)))
            .await
            .ctx(|| format!("emptying {} for --replace", qualified(target, &t.name)))?;
    }
    ctx.progress.event(Event::TableStarted {
        db: target.to_string(),
        table: t.name.clone(),
        est_rows: t.rows,
    });
    let started = Instant::now();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut ended = false;
    while let Some(msg) = job.chunks.recv().await {
        let item = match msg {
            Msg::End => {
                ended = true;
                break;
            }
            Msg::Chunk(item) => item,
        };
        match load_chunk(conn, target, dest.loading(), t, item).await {
            Ok((r, b)) => {
                rows += r;
                bytes += b;
            }
            Err(e) => {
                dest.abandon(conn, target).await;
                return Err(e);
            }
        }
        ctx.progress.event(Event::TableProgress {
            db: target.to_string(),
            table: t.name.clone(),
            rows,
            bytes,
        });
    }
    if !ended {
        // The dispatcher stopped (an error elsewhere, or Ctrl-C): it reports why.
        dest.abandon(conn, target).await;
        return Ok(());
    }
    if rows != t.rows {
        dest.abandon(conn, target).await;
        return Err(Error::other(format!(
            "{} received {rows} rows but the snapshot holds {}; the table was rolled back",
            qualified(target, &t.name),
            t.rows
        )));
    }
    dest.commit(conn, target).await?;
    ctx.progress.event(Event::TableFinished {
        db: target.to_string(),
        table: t.name.clone(),
        rows,
        bytes,
        elapsed: started.elapsed(),
    });
    let _ = done.send((job.index, rows));
    Ok(())
}

/// One chunk through `LOAD DATA LOCAL`; returns (rows, bytes).
async fn load_chunk(
    conn: &mut Conn,
    target: &str,
    into: &str,
    t: &crate::repo::manifest::MysqlTable,
    item: Item,
) -> Result<(u64, u64)> {
    let Item { path, mut data } = item;
    let (counter_tx, mut counter_rx) = mpsc::unbounded_channel::<u64>();
    let stream = futures::stream::poll_fn(move |cx| {
        let polled = data.poll_recv(cx);
        if let std::task::Poll::Ready(Some(Ok(b))) = &polled {
            let _ = counter_tx.send(b.len() as u64);
        }
        polled
    });
    conn.set_infile_handler(async move { Ok(stream.boxed()) });
    let sql = load_data_sql(&format!("amlmigrate:{path}"), target, into, &t.columns);
    conn.query_drop(sql)
        .await
        .ctx(|| format!("loading {path} into {}", qualified(target, &t.name)))?;
    let loaded = conn.affected_rows();
    let warnings = conn.get_warnings();
    let mut bytes = 0;
    while let Ok(n) = counter_rx.try_recv() {
        bytes += n;
    }
    if warnings > 0 {
        let rows: Vec<mysql_async::Row> = conn
            .query("SHOW WARNINGS LIMIT 5")
            .await
            .unwrap_or_default();
        let msgs: Vec<String> = rows.iter().filter_map(|r| text(r, 2)).collect();
        return Err(Error::other(format!(
            "loading {path} into {} raised {warnings} warning(s), so the values would not be exact: {}; the table was rolled back",
            qualified(target, &t.name),
            msgs.join("; ")
        )));
    }
    Ok((loaded, bytes))
}
