//! Backup: MySQL tables → `LOAD DATA` chunks → one tar+zstd part per database → repository.
//!
//! Consistency: every table of every database is read through one connection inside one
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` at REPEATABLE READ, so all InnoDB tables come
//! from the same point in time without locking writers. Non-transactional tables are named in
//! the notices.
//!
//! Flow per database: this task reads rows (binary protocol) and encodes them into bounded
//! chunks; a blocking thread tars, compresses and hashes; the repository writer uploads. Bounded
//! channels between them give backpressure, so memory stays flat whatever the table size.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, DbCatalog, ObjectKind, render_load_sql};
use super::sqltext::{ident, path_segment, qualified};
use super::tsv::{ColumnFormat, write_value};
use super::{MysqlUrl, SYSTEM_DATABASES, connect, server_version};
use crate::archive::{PartInfo, PartWriter, sha256_hex};
use crate::error::{Error, MysqlContext, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::manifest::{Manifest, MysqlDatabase, MysqlTable, Part, Source};
use crate::repo::{Repository, id::new_snapshot_id, tool_version};

pub const DEFAULT_CHUNK_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub mysql: MysqlUrl,
    /// Databases to back up; `None` means every non-system database (or the URL's database).
    pub databases: Option<Vec<String>>,
    pub tags: BTreeMap<String, String>,
    /// Uncompressed size at which a table's data is cut into the next chunk.
    pub chunk_bytes: usize,
    pub zstd_level: i32,
    /// An MLflow artifact folder to put into the snapshot as its own part, so that the snapshot
    /// alone can rebuild MLflow.
    pub mlflow_artifacts: Option<std::path::PathBuf>,
}

impl BackupOptions {
    pub fn new(mysql: MysqlUrl) -> Self {
        BackupOptions {
            mysql,
            databases: None,
            tags: BTreeMap::new(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            zstd_level: 3,
            mlflow_artifacts: None,
        }
    }
}

enum Msg {
    Entry {
        path: String,
        data: Vec<u8>,
    },
    File {
        path: String,
        file: std::path::PathBuf,
    },
    Finish,
}

/// Runs a backup and commits the snapshot. On error or cancellation nothing is committed and
/// the partial upload is removed.
pub async fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: ProgressRef,
    cancel: CancellationToken,
) -> Result<Manifest> {
    let started = Utc::now();
    let mut conn = connect(&opts.mysql).await?;
    let version = server_version(&mut conn).await?;
    conn.query_drop(
        "SET SESSION net_write_timeout = 86400, net_read_timeout = 86400, wait_timeout = 86400, \
         time_zone = '+00:00', sql_mode = '', sql_quote_show_create = 1",
    )
    .await
    .ctx(|| "preparing the backup session".into())?;
    conn.query_drop("SET NAMES utf8mb4")
        .await
        .ctx(|| "setting utf8mb4".into())?;

    let all = catalog::list_databases(&mut conn).await?;
    let wanted: Vec<String> = match (&opts.databases, &opts.mysql.database) {
        (Some(list), _) => list.clone(),
        (None, Some(db)) => vec![db.clone()],
        (None, None) => all
            .iter()
            .map(|d| d.name.clone())
            .filter(|n| !SYSTEM_DATABASES.contains(&n.to_ascii_lowercase().as_str()))
            .collect(),
    };
    let mut selected = Vec::new();
    for w in &wanted {
        match all.iter().find(|d| &d.name == w) {
            Some(d) => selected.push(d.clone()),
            None => {
                let have: Vec<&str> = all
                    .iter()
                    .map(|d| d.name.as_str())
                    .filter(|n| !SYSTEM_DATABASES.contains(n))
                    .collect();
                return Err(Error::input(format!(
                    "database {w} not found on {}; it has: {}",
                    opts.mysql,
                    if have.is_empty() {
                        "(none)".to_string()
                    } else {
                        have.join(", ")
                    }
                )));
            }
        }
    }
    if selected.is_empty() {
        return Err(Error::input(format!(
            "{} has no databases to back up; name them with --databases",
            opts.mysql
        )));
    }

    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .ctx(|| "setting the isolation level".into())?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .ctx(|| "starting the consistent-snapshot transaction".into())?;

    let mut catalogs = Vec::new();
    for db in &selected {
        catalogs.push(catalog::read(&mut conn, db).await?);
    }
    let mut notices: Vec<String> = Vec::new();
    for c in &catalogs {
        for n in &c.notices {
            progress.event(Event::Notice(n.clone()));
            notices.push(n.clone());
        }
    }
    progress.event(Event::Plan {
        what: "backup",
        tables: catalogs.iter().map(|c| c.tables.len() as u64).sum(),
        est_rows: catalogs
            .iter()
            .flat_map(|c| &c.tables)
            .map(|t| t.est_rows)
            .sum(),
        est_bytes: catalogs
            .iter()
            .flat_map(|c| &c.tables)
            .map(|t| t.est_bytes)
            .sum(),
    });

    let id = new_snapshot_id(started);
    let mut parts = Vec::new();
    let mut dbs = Vec::new();
    for cat in &catalogs {
        match backup_database(repo, &id, &mut conn, cat, opts, &progress, &cancel).await {
            Ok((part, db)) => {
                parts.push(part);
                dbs.push(db);
            }
            Err(e) => {
                repo.discard_uncommitted(&id).await;
                return Err(e);
            }
        }
    }
    if let Err(e) = conn.query_drop("COMMIT").await {
        repo.discard_uncommitted(&id).await;
        return Err(Error::mysql("ending the snapshot transaction", e));
    }
    let _ = conn.disconnect().await;
    let mut sources_extra = Vec::new();
    if let Some(dir) = &opts.mlflow_artifacts {
        match backup_artifacts(repo, &id, dir, opts.zstd_level, &progress, &cancel).await {
            Ok(part) => {
                sources_extra.push(Source {
                    kind: "mlflow-artifacts".into(),
                    location: dir.display().to_string(),
                    server_version: None,
                    consistency: Some("files read after the database transaction ended".into()),
                });
                parts.push(part);
            }
            Err(e) => {
                repo.discard_uncommitted(&id).await;
                return Err(e);
            }
        }
    }
    if cancel.is_cancelled() {
        repo.discard_uncommitted(&id).await;
        return Err(Error::Interrupted(
            "backup stopped before commit; no snapshot was written".into(),
        ));
    }

    let manifest = Manifest {
        format: crate::repo::manifest::MANIFEST_FORMAT,
        id: id.clone(),
        started,
        finished: Utc::now(),
        tool: tool_version(),
        hostname: hostname(),
        tags: opts.tags.clone(),
        sources: [Source {
            kind: "mysql".into(),
            location: {
                let mut u = opts.mysql.clone();
                u.database = None;
                u.redacted()
            },
            server_version: Some(version),
            consistency: Some(
                "one REPEATABLE READ transaction WITH CONSISTENT SNAPSHOT on one connection for all tables".into(),
            ),
        }]
        .into_iter()
        .chain(sources_extra)
        .collect(),
        parts,
        mysql: dbs,
        notices,
    };
    if let Err(e) = repo.commit(&manifest).await {
        repo.discard_uncommitted(&id).await;
        return Err(e);
    }
    Ok(manifest)
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The part name of a database: readable, and unique even when sanitising changed the name.
pub fn part_name(db: &str) -> String {
    let clean: String = db
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == db {
        format!("mysql-{db}")
    } else {
        let mut h = Sha256::new();
        h.update(db.as_bytes());
        format!("mysql-{clean}-{}", &sha256_hex(h)[..8])
    }
}

async fn backup_database(
    repo: &Repository,
    id: &str,
    conn: &mut Conn,
    cat: &DbCatalog,
    opts: &BackupOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<(Part, MysqlDatabase)> {
    let db = &cat.schema.name;
    let name = part_name(db);
    let rel = format!("parts/{name}.tar.zst");
    let dbdir = format!("mysql/{}", path_segment(db));
    let sink = PartSink::open(repo, id, &rel, opts.zstd_level);

    let result = async {
        sink.entry(
            format!("{dbdir}/schema.sql"),
            cat.schema.render_schema_sql(id).into_bytes(),
        )
        .await?;
        let json = serde_json::to_vec_pretty(&cat.schema).expect("schema serializes");
        sink.entry(format!("{dbdir}/schema.json"), json).await?;
        conn.query_drop("SET character_set_results = binary")
            .await
            .ctx(|| "switching to binary results".into())?;
        let mut tables = Vec::new();
        let mut load_chunks = Vec::new();
        for t in &cat.tables {
            let (table, files) =
                dump_table(conn, db, &dbdir, t, &sink, opts, progress, cancel).await?;
            load_chunks.push((t.name.clone(), t.columns.clone(), files));
            tables.push(table);
        }
        conn.query_drop("SET character_set_results = utf8mb4")
            .await
            .ctx(|| "switching back to utf8mb4 results".into())?;
        sink.entry(
            format!("{dbdir}/load.sql"),
            render_load_sql(id, db, &load_chunks).into_bytes(),
        )
        .await?;
        sink.entry(
            format!("{dbdir}/post-data.sql"),
            cat.schema.render_post_data_sql(id).into_bytes(),
        )
        .await?;
        Ok::<_, Error>(tables)
    }
    .await;
    let (tables, info): (Vec<MysqlTable>, PartInfo) = sink.close(result).await?;
    let part = Part {
        name: name.clone(),
        path: rel,
        kind: "mysql".into(),
        size: info.size,
        sha256: info.sha256,
        entries: info.entries,
    };
    let dbm = MysqlDatabase {
        name: db.clone(),
        part: name,
        charset: cat.schema.charset.clone(),
        collation: cat.schema.collation.clone(),
        tables,
        views: cat.names_of(ObjectKind::View),
        triggers: cat.names_of(ObjectKind::Trigger),
        routines: [
            cat.names_of(ObjectKind::Function),
            cat.names_of(ObjectKind::Procedure),
        ]
        .concat(),
        events: cat.names_of(ObjectKind::Event),
        collations: cat.collations.iter().cloned().collect(),
    };
    Ok((part, dbm))
}

const ARCHIVE_GONE: &str = "the archive writer stopped early";

/// The name of the part that holds an MLflow artifact tree, and the folder its entries live in.
pub const ARTIFACTS_PART: &str = "mlflow-artifacts";

/// Every file under `dir` (relative paths with `/`), sorted, not following symlinks out.
fn walk(dir: &std::path::Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    while let Some((rel, path)) = stack.pop() {
        let entries = std::fs::read_dir(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = e
                .file_type()
                .map_err(|err| Error::io(format!("reading {}", e.path().display()), err))?;
            if kind.is_dir() {
                stack.push((child, e.path()));
            } else if kind.is_file() {
                out.push((child, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn backup_artifacts(
    repo: &Repository,
    id: &str,
    dir: &std::path::Path,
    level: i32,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<Part> {
    if !dir.is_dir() {
        return Err(Error::input(format!(
            "--mlflow-artifacts {}: no such folder (give the MLflow server's --artifacts-destination)",
            dir.display()
        )));
    }
    let files = walk(dir)?;
    let rel = format!("parts/{ARTIFACTS_PART}.tar.zst");
    let sink = PartSink::open(repo, id, &rel, level);
    let started = Instant::now();
    progress.event(Event::TableStarted {
        db: "mlflow".into(),
        table: "artifacts".into(),
        est_rows: files.len() as u64,
    });
    let sent = async {
        for (n, (path, file)) in files.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted(
                    "backup stopped while archiving artifacts; no snapshot was written".into(),
                ));
            }
            sink.send(Msg::File {
                path: format!("{ARTIFACTS_PART}/{path}"),
                file: file.clone(),
            })
            .await?;
            progress.event(Event::TableProgress {
                db: "mlflow".into(),
                table: "artifacts".into(),
                rows: n as u64 + 1,
                bytes: 0,
            });
        }
        Ok(())
    }
    .await;
    let ((), info) = sink.close(sent).await?;
    progress.event(Event::TableFinished {
        db: "mlflow".into(),
        table: "artifacts".into(),
        rows: info.entries.len() as u64,
        bytes: info.entries.iter().map(|e| e.size).sum(),
        elapsed: started.elapsed(),
    });
    Ok(Part {
        name: ARTIFACTS_PART.into(),
        path: rel,
        kind: ARTIFACTS_PART.into(),
        size: info.size,
        sha256: info.sha256,
        entries: info.entries,
    })
}

fn archive_gone() -> Error {
    Error::other(ARCHIVE_GONE)
}

/// The writing end of one part: entries go to a blocking thread that tars, compresses, hashes
/// and uploads them; bounded, so a slow repository slows the reader instead of filling memory.
struct PartSink {
    tx: mpsc::Sender<Msg>,
    archiver: tokio::task::JoinHandle<Result<PartInfo>>,
}

impl PartSink {
    fn open(repo: &Repository, id: &str, rel: &str, level: i32) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>(2);
        let writer = repo.object_writer(id, rel, tokio::runtime::Handle::current());
        let mtime = Utc::now().timestamp().max(0) as u64;
        let archiver =
            tokio::task::spawn_blocking(move || archive_thread(rx, writer, level, mtime));
        PartSink { tx, archiver }
    }

    async fn send(&self, msg: Msg) -> Result<()> {
        self.tx.send(msg).await.map_err(|_| archive_gone())
    }

    async fn entry(&self, path: String, data: Vec<u8>) -> Result<()> {
        self.send(Msg::Entry { path, data }).await
    }

    /// Completes the part when `produced` is Ok, aborts its upload otherwise.
    async fn close<T>(self, produced: Result<T>) -> Result<(T, PartInfo)> {
        let produced = match produced {
            Ok(v) => self.send(Msg::Finish).await.map(|()| v),
            Err(e) => Err(e),
        };
        drop(self.tx);
        let archived = self
            .archiver
            .await
            .map_err(|e| Error::other(format!("archive thread failed: {e}")))?;
        match (produced, archived) {
            (Ok(v), Ok(info)) => Ok((v, info)),
            // When the archive thread failed first, its error is the cause; ours only says so.
            (Err(e), Err(cause)) if e.to_string() == ARCHIVE_GONE => Err(cause),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn dump_table(
    conn: &mut Conn,
    db: &str,
    dbdir: &str,
    t: &catalog::TableInfo,
    sink: &PartSink,
    opts: &BackupOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<(MysqlTable, Vec<String>)> {
    let start = Instant::now();
    progress.event(Event::TableStarted {
        db: db.to_string(),
        table: t.name.clone(),
        est_rows: t.est_rows,
    });
    let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
    let sql = format!("SELECT {} FROM {}", cols.join(", "), qualified(db, &t.name));
    let what = || format!("reading rows of {}", qualified(db, &t.name));
    let mut result = conn.exec_iter(sql, ()).await.ctx(what)?;
    let formats: Vec<ColumnFormat> = result.columns_ref().iter().map(ColumnFormat::of).collect();
    let dir = format!("{dbdir}/{}", t.dir());
    let chunk_bytes = opts.chunk_bytes.max(1024);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + 64 * 1024);
    let mut hasher = Sha256::new();
    let mut files = Vec::new();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut last_report = Instant::now();

    loop {
        let row = result.next().await.ctx(what)?;
        let Some(row) = row else { break };
        for (i, fmt) in formats.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            let v = row.as_ref(i).expect("column in range");
            write_value(&mut buf, v, *fmt).map_err(|e| {
                Error::other(format!(
                    "{} column {}: {e}",
                    qualified(db, &t.name),
                    t.columns[i]
                ))
            })?;
        }
        buf.push(b'\n');
        rows += 1;
        if buf.len() >= chunk_bytes {
            let data = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
            bytes += data.len() as u64;
            hasher.update(&data);
            let path = format!("{dir}/{:06}.tsv", files.len() + 1);
            files.push(path.clone());
            sink.entry(path, data).await?;
        }
        if rows % 4096 == 0 {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted(format!(
                    "backup stopped while reading {}; no snapshot was written",
                    qualified(db, &t.name)
                )));
            }
            if last_report.elapsed().as_millis() >= 200 {
                last_report = Instant::now();
                progress.event(Event::TableProgress {
                    db: db.to_string(),
                    table: t.name.clone(),
                    rows,
                    bytes: bytes + buf.len() as u64,
                });
            }
        }
    }
    drop(result);
    if !buf.is_empty() {
        bytes += buf.len() as u64;
        hasher.update(&buf);
        let path = format!("{dir}/{:06}.tsv", files.len() + 1);
        files.push(path.clone());
        sink.entry(path, buf).await?;
    }
    progress.event(Event::TableFinished {
        db: db.to_string(),
        table: t.name.clone(),
        rows,
        bytes,
        elapsed: start.elapsed(),
    });
    let rel_files = files.clone();
    Ok((
        MysqlTable {
            name: t.name.clone(),
            dir: t.dir(),
            engine: t.engine.clone(),
            columns: t.columns.clone(),
            rows,
            bytes,
            chunks: files.len() as u32,
            sha256: sha256_hex(hasher),
        },
        rel_files,
    ))
}

fn archive_thread(
    mut rx: mpsc::Receiver<Msg>,
    writer: crate::repo::UploadWriter,
    level: i32,
    mtime: u64,
) -> Result<PartInfo> {
    let io_err = |e| Error::io("writing the part to the repository", e);
    let mut pw = PartWriter::new(writer, level, mtime).map_err(io_err)?;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Entry { path, data }) => {
                if let Err(e) = pw.append(&path, &data) {
                    pw.sink_mut().abort();
                    return Err(io_err(e));
                }
            }
            Some(Msg::File { path, file }) => {
                if let Err(e) = pw.append_file(&path, &file) {
                    pw.sink_mut().abort();
                    return Err(Error::io(format!("archiving {}", file.display()), e));
                }
            }
            Some(Msg::Finish) => {
                let (mut w, info) = pw.finish().map_err(io_err)?;
                w.finish().map_err(io_err)?;
                return Ok(info);
            }
            None => {
                pw.sink_mut().abort();
                return Err(Error::Interrupted("part not completed".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_safe_and_unique() {
        assert_eq!(part_name("aml"), "mysql-aml");
        let a = part_name("my db");
        let b = part_name("my_db");
        assert!(a.starts_with("mysql-my_db-"));
        assert_ne!(a, b);
    }
}
