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

use super::{DbContext, DbState, RestoredDatabase};
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

/// One table in one transaction on `conn`; commits only on `End` with the snapshot's count.
async fn load_table(
    conn: &mut Conn,
    ctx: &DbContext<'_>,
    mut job: Job,
    done: &mpsc::UnboundedSender<(usize, u64)>,
) -> Result<()> {
    let t = &ctx.plan.db.tables[job.index];
    let target = ctx.plan.target.as_str();
    conn.query_drop("START TRANSACTION")
        .await
        .ctx(|| "starting a transaction".into())?;
    if ctx.replace && ctx.plan.existing.contains(&t.name) {
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
        match load_chunk(conn, target, t, item).await {
            Ok((r, b)) => {
                rows += r;
                bytes += b;
            }
            Err(e) => {
                let _ = conn.query_drop("ROLLBACK").await;
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
        let _ = conn.query_drop("ROLLBACK").await;
        return Ok(());
    }
    if rows != t.rows {
        let _ = conn.query_drop("ROLLBACK").await;
        return Err(Error::other(format!(
            "{} received {rows} rows but the snapshot holds {}; the table was rolled back",
            qualified(target, &t.name),
            t.rows
        )));
    }
    conn.query_drop("COMMIT")
        .await
        .ctx(|| format!("committing {}", qualified(target, &t.name)))?;
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
    let sql = load_data_sql(&format!("amlmigrate:{path}"), target, &t.name, &t.columns);
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
