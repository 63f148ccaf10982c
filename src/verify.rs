//! `verify`: re-reads every byte of a snapshot and checks it against the manifest: each part's
//! size and sha256, each entry's sha256, and each table's row count and checksum.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::archive::sha256_hex;
use crate::error::{Error, Result};
use crate::mysql::sqltext::{path_segment, qualified};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;

#[derive(Debug, Clone, Serialize)]
pub struct PartReport {
    pub name: String,
    /// The manifest's size: the stored object of a format 1 part, what a deduplicated part
    /// added to the repository.
    pub size: u64,
    /// What this verify fetched from the repository for the part (a deduplicated part's
    /// chunks, wherever they are stored).
    pub bytes_read: u64,
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub snapshot: String,
    pub ok: bool,
    pub parts: Vec<PartReport>,
    pub tables: u64,
    pub rows: u64,
    pub bytes_read: u64,
    pub elapsed_ms: u128,
}

struct TableCheck {
    db: String,
    name: String,
    part: String,
    dir: String,
    rows: u64,
    sha256: String,
    seen_rows: u64,
    hasher: Sha256,
    /// Time spent reading the table's entries (their chunks fetched and checked).
    elapsed: Duration,
}

/// Verifies a committed snapshot. The first damage found is returned as [`Error::Damaged`].
/// The outcome is recorded beside the manifest (`verified.json`, removed again when damage is
/// found), so `prune` knows the newest verified snapshot; a read-only repository only gets a
/// notice.
pub async fn verify(
    repo: &Repository,
    snapshot: &str,
    progress: ProgressRef,
) -> Result<VerifyReport> {
    let progress = crate::progress::logged(progress, "verify");
    tracing::info!(
        snapshot,
        repository = repo.location(),
        "verify: re-reading snapshot {snapshot}"
    );
    let result = verify_all(repo, snapshot, progress.clone()).await;
    match &result {
        Ok(r) => tracing::info!(
            snapshot,
            parts = r.parts.len(),
            bytes = r.bytes_read,
            rows = r.rows,
            elapsed_ms = r.elapsed_ms as u64,
            "verify: snapshot {snapshot} is sound"
        ),
        Err(e) => tracing::info!(snapshot, "verify: snapshot {snapshot} failed: {e}"),
    }
    let recorded = match &result {
        Ok(r) => repo.mark_verified(&r.snapshot, r.bytes_read).await,
        Err(Error::Damaged { .. }) => repo.unmark_verified(snapshot).await,
        Err(_) => Ok(()),
    };
    if let Err(e) = recorded {
        progress.event(Event::Notice(format!(
            "could not record the verification in the repository ({e}); prune will not count it"
        )));
    }
    result
}

async fn verify_all(
    repo: &Repository,
    snapshot: &str,
    progress: ProgressRef,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let manifest = repo.manifest(snapshot).await?;
    progress.event(Event::Plan {
        what: "verify",
        tables: manifest.mysql.iter().map(|d| d.tables.len() as u64).sum(),
        est_rows: manifest.total_rows(),
        est_bytes: manifest
            .mysql
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| t.bytes)
            .sum(),
    });
    let mut reports = Vec::new();
    let (mut tables, mut rows, mut bytes_read) = (0u64, 0u64, 0u64);
    for part in &manifest.parts {
        let mut checks: HashMap<String, TableCheck> = HashMap::new();
        for db in manifest.mysql.iter().filter(|d| d.part == part.name) {
            for t in &db.tables {
                let dir = format!("mysql/{}/{}", path_segment(&db.name), t.dir);
                checks.insert(
                    dir.clone(),
                    TableCheck {
                        db: db.name.clone(),
                        name: t.name.clone(),
                        part: part.name.clone(),
                        dir,
                        rows: t.rows,
                        sha256: t.sha256.clone(),
                        seen_rows: 0,
                        hasher: Sha256::new(),
                        elapsed: Duration::ZERO,
                    },
                );
            }
        }
        let size = if part.chunked {
            part.size
        } else {
            repo.object_size(&manifest.id, &part.path).await?
        };
        if size != part.size {
            return Err(Error::damaged(
                &part.name,
                "(whole part)",
                format!(
                    "stored object is {size} bytes, the manifest says {}{}",
                    part.size,
                    if size < part.size { " (truncated)" } else { "" }
                ),
            ));
        }
        let progress2 = progress.clone();
        let mut buf = vec![0u8; 256 * 1024];
        let (checks, read) = repo
            .read_part_counted(&manifest.id, part, checks, move |checks, entry| {
                let started = Instant::now();
                let path = entry.entry().path.clone();
                let mut check = path
                    .ends_with(".tsv")
                    .then(|| path.rsplit_once('/').map(|(d, _)| d.to_string()))
                    .flatten()
                    .and_then(|d| checks.get_mut(&d));
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| Error::io(format!("reading {path}"), e))?;
                    if n == 0 {
                        break;
                    }
                    if let Some(c) = check.as_mut() {
                        c.seen_rows += crate::mysql::tsv::count_rows(&buf[..n]);
                        c.hasher.update(&buf[..n]);
                    }
                }
                if let Some(c) = check {
                    c.elapsed += started.elapsed();
                    progress2.event(Event::TableProgress {
                        db: c.db.clone(),
                        table: c.name.clone(),
                        rows: c.seen_rows,
                        bytes: 0,
                    });
                }
                Ok(())
            })
            .await?;
        let mut sorted: Vec<TableCheck> = checks.into_values().collect();
        sorted.sort_by(|a, b| a.dir.cmp(&b.dir));
        for c in sorted {
            let sha = sha256_hex(c.hasher);
            if c.seen_rows != c.rows {
                return Err(Error::damaged(
                    &c.part,
                    format!("{}/ (table {})", c.dir, qualified(&c.db, &c.name)),
                    format!(
                        "{} rows in the chunks, the manifest says {}",
                        c.seen_rows, c.rows
                    ),
                ));
            }
            if sha != c.sha256 {
                return Err(Error::damaged(
                    &c.part,
                    format!("{}/ (table {})", c.dir, qualified(&c.db, &c.name)),
                    format!("table checksum is {sha}, the manifest says {}", c.sha256),
                ));
            }
            tables += 1;
            rows += c.rows;
            progress.event(Event::TableFinished {
                db: c.db,
                table: c.name,
                rows: c.rows,
                bytes: 0,
                elapsed: c.elapsed,
            });
        }
        bytes_read += read;
        reports.push(PartReport {
            name: part.name.clone(),
            size,
            bytes_read: read,
            entries: part.entries.len(),
        });
    }
    Ok(VerifyReport {
        snapshot: manifest.id,
        ok: true,
        parts: reports,
        tables,
        rows,
        bytes_read,
        elapsed_ms: started.elapsed().as_millis(),
    })
}
