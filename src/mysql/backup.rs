//! The MySQL half of a backup: tables → `LOAD DATA` chunks → one tar+zstd part per database.
//!
//! Consistency: every table of every database is read through one connection inside one
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` at REPEATABLE READ, so all InnoDB tables come
//! from the same point in time without locking writers. Non-transactional tables are named in
//! the notices.
//!
//! Flow per database: this task reads rows (binary protocol) and encodes them into bounded
//! chunks; a blocking thread tars, compresses and hashes; the repository writer uploads. Bounded
//! channels between them give backpressure, so memory stays flat whatever the table size.

use std::time::Instant;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::catalog::{self, DbCatalog, ObjectKind, render_load_sql};
use super::sqltext::{ident, path_segment, qualified};
use super::tsv::{ColumnFormat, write_value};
use super::{MysqlUrl, SYSTEM_DATABASES, connect, server_version};
use crate::archive::{PartInfo, sha256_hex};
use crate::error::{Error, MysqlContext, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::{MysqlDatabase, MysqlTable, Part, Source};
use crate::repo::sink::PartSink;

pub const DEFAULT_CHUNK_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct MysqlBackupOptions {
    pub mysql: MysqlUrl,
    /// Databases to back up; `None` means every non-system database (or the URL's database).
    pub databases: Option<Vec<String>>,
    /// Uncompressed size at which a table's data is cut into the next chunk.
    pub chunk_bytes: usize,
    pub zstd_level: i32,
}

impl MysqlBackupOptions {
    pub fn new(mysql: MysqlUrl) -> Self {
        MysqlBackupOptions {
            mysql,
            databases: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            zstd_level: 3,
        }
    }
}

/// What the MySQL half of a backup wrote into snapshot `id`.
pub struct MysqlBackup {
    pub parts: Vec<Part>,
    pub databases: Vec<MysqlDatabase>,
    pub source: Source,
    pub notices: Vec<String>,
}

/// Writes one part per database into snapshot `id` (uncommitted). The caller commits the
/// manifest, or discards the snapshot on error.
pub async fn backup_mysql(
    repo: &Repository,
    id: &str,
    opts: &MysqlBackupOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<MysqlBackup> {
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

    let mut parts = Vec::new();
    let mut dbs = Vec::new();
    for cat in &catalogs {
        let (part, db) = backup_database(repo, id, &mut conn, cat, opts, progress, cancel).await?;
        parts.push(part);
        dbs.push(db);
    }
    conn.query_drop("COMMIT")
        .await
        .ctx(|| "ending the snapshot transaction".into())?;
    let _ = conn.disconnect().await;
    let mut location = opts.mysql.clone();
    location.database = None;
    Ok(MysqlBackup {
        parts,
        databases: dbs,
        source: Source {
            kind: "mysql".into(),
            name: None,
            location: location.redacted(),
            server_version: Some(version),
            consistency: Some(
                "one REPEATABLE READ transaction WITH CONSISTENT SNAPSHOT on one connection for all tables".into(),
            ),
        },
        notices,
    })
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
    opts: &MysqlBackupOptions,
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
            cat.schema.render_schema_sql(id, &cat.encoded),
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
            cat.schema.render_post_data_sql(id, &cat.encoded),
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
        chunked: info.chunked,
    };
    let dbm = MysqlDatabase {
        name: db.clone(),
        source: None,
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

#[allow(clippy::too_many_arguments)]
async fn dump_table(
    conn: &mut Conn,
    db: &str,
    dbdir: &str,
    t: &catalog::TableInfo,
    sink: &PartSink,
    opts: &MysqlBackupOptions,
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
        let row_start = buf.len();
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
        if buf.len() >= chunk_bytes
            || (buf.len() >= chunk_bytes / 2 && row_ends_file(&buf[row_start..], chunk_bytes / 4))
        {
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

/// Whether a chunk file may end after this row, decided by the row's content (FNV-1a) with a
/// probability of its length over `mean`: file boundaries then follow the rows, not byte
/// counts, so a row inserted early in a table does not shift every later file (and every chunk
/// at a file's start and end in a deduplicated repository). A file still ends at the size limit.
fn row_ends_file(row: &[u8], mean: usize) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in row {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let threshold = (u64::MAX / mean.max(1) as u64).saturating_mul(row.len() as u64);
    h < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ends_follow_row_content_at_about_the_mean_size() {
        let rows: Vec<String> = (0..100_000)
            .map(|i| format!("run-{i}\t{}\n", i * 7))
            .collect();
        let cuts = rows
            .iter()
            .filter(|r| row_ends_file(r.as_bytes(), 10_000))
            .count();
        let bytes: usize = rows.iter().map(String::len).sum();
        let expected = bytes / 10_000;
        assert!(
            cuts > expected / 2 && cuts < expected * 2,
            "{cuts} cuts, about {expected} expected"
        );
    }

    #[test]
    fn part_names_are_safe_and_unique() {
        assert_eq!(part_name("aml"), "mysql-aml");
        let a = part_name("my db");
        let b = part_name("my_db");
        assert!(a.starts_with("mysql-my_db-"));
        assert_ne!(a, b);
    }
}
