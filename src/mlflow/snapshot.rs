//! The MLflow database inside a snapshot as a migration source: its chunks are read straight
//! from the part (one pass, checked against the manifest as they stream) and their rows go into
//! the same table copier as rows read live from MySQL.
//!
//! A snapshot is untrusted input, and nothing of it is run as SQL here: table names are MLflow's
//! own (`SHARED_TABLES`), every column name must be one of the target's columns before it is
//! used (quoted), and the rows go through COPY as values.

use std::collections::HashMap;
use std::io::Read;

use bytes::Bytes;
use mysql_async::Value;
use tokio::sync::mpsc;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::copier::TableCopier;
use super::rows::{TableSpec, TableSum};
use crate::error::{Error, Result};
use crate::mysql::sqltext::path_segment;
use crate::progress::ProgressRef;
use crate::repo::Repository;
use crate::repo::manifest::{MysqlDatabase, Part};

/// How much of a chunk is read at a time: a chunk is handed on in pieces of whole rows, so
/// memory stays bounded whatever size an entry has or the manifest declares.
const PIECE: usize = 8 * 1024 * 1024;
/// The longest row a piece may hold (MLflow's longest values are a few KiB).
const MAX_ROW: usize = 64 * 1024 * 1024;

/// Where the MLflow 2.6 database of a snapshot is.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    pub repo: String,
    /// An id, a unique prefix or `latest`.
    pub snapshot: String,
    /// The database inside the snapshot; found by its MLflow tables when not given.
    pub database: Option<String>,
    /// Public keys the snapshot's signature is checked with (see `repo::sign`).
    pub trust: crate::repo::sign::Trust,
    /// The age identity that reads an encrypted repository (not needed otherwise).
    pub identity: Option<std::path::PathBuf>,
}

pub(super) struct OpenSnapshot {
    repo: Repository,
    id: String,
    db: MysqlDatabase,
    part: Part,
    /// The artifact tree, when the snapshot was taken with `--mlflow-artifacts`.
    artifacts: Option<Part>,
    pub display: String,
}

impl OpenSnapshot {
    pub async fn open(src: &SnapshotSource) -> Result<Self> {
        let mut repo = Repository::open(&src.repo).await?;
        repo.unlock(&[], src.identity.as_deref())?;
        let repo = repo.with_trust(src.trust.clone());
        let id = repo.resolve(&src.snapshot).await?;
        let manifest = repo.manifest(&id).await?;
        let looks_like_mlflow = |d: &&MysqlDatabase| {
            ["alembic_version", "metrics", "runs", "experiments"]
                .iter()
                .all(|t| d.tables.iter().any(|x| x.name == *t))
        };
        let db = match &src.database {
            Some(name) => manifest
                .mysql
                .iter()
                .find(|d| &d.name == name)
                .cloned()
                .ok_or_else(|| Error::input(format!("snapshot {id} holds no database {name}")))?,
            None => {
                let found: Vec<&MysqlDatabase> =
                    manifest.mysql.iter().filter(looks_like_mlflow).collect();
                match found.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        return Err(Error::input(format!(
                            "snapshot {id} holds no MLflow database"
                        )));
                    }
                    many => {
                        let names: Vec<&str> = many.iter().map(|d| d.name.as_str()).collect();
                        return Err(Error::input(format!(
                            "snapshot {id} holds several MLflow databases ({}); name one with --from-database",
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        let part = manifest.part(&db.part).cloned().ok_or_else(|| {
            Error::damaged(&db.part, "(manifest)", "part missing from the manifest")
        })?;
        let display = format!("snapshot {id} ({}) database {}", repo.location(), db.name);
        let artifacts = manifest.part(crate::backup::ARTIFACTS_PART).cloned();
        Ok(OpenSnapshot {
            repo,
            id,
            db,
            part,
            artifacts,
            display,
        })
    }

    /// Source columns of a table, in chunk order (no key information is kept in a snapshot).
    pub fn columns(&self, table: &str) -> Result<Vec<(String, bool)>> {
        let t = self
            .db
            .tables
            .iter()
            .find(|t| t.name == table)
            .ok_or_else(|| {
                Error::input(format!(
                    "{} has no table {table}; it is not an MLflow 2.6 database",
                    self.display
                ))
            })?;
        Ok(t.columns.iter().map(|c| (c.clone(), false)).collect())
    }

    pub fn rows(&self, table: &str) -> u64 {
        self.db
            .tables
            .iter()
            .find(|t| t.name == table)
            .map(|t| t.rows)
            .unwrap_or(0)
    }

    /// Streams the chunks of `tables` in archive order as `(table, chunk)`; the reader thread's
    /// outcome (damage included) comes from the returned handle.
    fn stream(
        &self,
        tables: &[&str],
    ) -> (
        mpsc::Receiver<(String, Bytes)>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let dbdir = format!("mysql/{}/", path_segment(&self.db.name));
        let dirs: HashMap<String, String> = self
            .db
            .tables
            .iter()
            .filter(|t| tables.contains(&t.name.as_str()))
            .map(|t| (format!("{dbdir}{}", t.dir), t.name.clone()))
            .collect();
        let (tx, rx) = mpsc::channel::<(String, Bytes)>(2);
        let (repo, id, part) = (self.repo.clone(), self.id.clone(), self.part.clone());
        let part_name = part.name.clone();
        let handle = tokio::spawn(async move {
            repo.read_part(&id, &part, (), move |(), entry| {
                let path = entry.entry().path.clone();
                let Some(table) = path
                    .rsplit_once('/')
                    .and_then(|(d, f)| f.ends_with(".tsv").then_some(d))
                    .and_then(|d| dirs.get(d))
                else {
                    return Ok(());
                };
                for_each_piece(entry, &part_name, &path, |piece| {
                    tx.blocking_send((table.clone(), Bytes::from(piece)))
                        .map_err(|_| Error::Interrupted("stopped reading the snapshot".into()))
                })
            })
            .await
        });
        (rx, handle)
    }

    /// Calls `f(table, line)` for every row of `tables`, in archive order, in one pass.
    pub async fn for_each_line(
        &self,
        tables: &[&str],
        mut f: impl FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let (mut rx, handle) = self.stream(tables);
        let mut seen = Ok(());
        while let Some((table, chunk)) = rx.recv().await {
            if chunk.is_empty() {
                continue;
            }
            // Every row ends with the one unescaped newline, chunks included.
            let body = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
            if let Err(e) = body.split(|b| *b == b'\n').try_for_each(|l| f(&table, l)) {
                seen = Err(e);
                break;
            }
        }
        drop(rx);
        let read = handle
            .await
            .map_err(|e| Error::other(format!("snapshot reader failed: {e}")))?;
        match (seen, read) {
            (_, Err(e @ Error::Damaged { .. })) | (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// The alembic revision recorded in the snapshot.
    pub async fn revision(&self) -> Result<String> {
        let (mut rx, handle) = self.stream(&["alembic_version"]);
        let first = rx.recv().await;
        drop(rx);
        let _ = handle.await;
        let (_, chunk) = first.ok_or_else(|| {
            Error::input(format!(
                "{}: alembic_version is empty; not an MLflow database",
                self.display
            ))
        })?;
        let line = chunk.split(|b| *b == b'\n').next().unwrap_or_default();
        Ok(String::from_utf8_lossy(line).into_owned())
    }

    /// Copies (or with `pg` None only sums) every table of `specs` in one pass over the part;
    /// returns the source checksums in `specs` order.
    pub async fn copy_all(
        &self,
        pg: Option<&Client>,
        specs: &[TableSpec],
        rules: &[(String, String)],
        progress: &ProgressRef,
        cancel: &CancellationToken,
    ) -> Result<Vec<TableSum>> {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let (mut rx, handle) = self.stream(&names);
        let mut sums = vec![TableSum::default(); specs.len()];
        let copied = async {
            let mut current: Option<(usize, TableCopier<'_>)> = None;
            while let Some((table, chunk)) = rx.recv().await {
                let index = specs
                    .iter()
                    .position(|s| s.name == table)
                    .expect("streamed tables are specs");
                if current.as_ref().map(|(i, _)| *i) != Some(index) {
                    if let Some((i, c)) = current.take() {
                        sums[i] = c.finish().await?;
                    }
                    current = Some((
                        index,
                        TableCopier::start(pg, &specs[index], rules, progress, cancel).await?,
                    ));
                }
                let copier = &mut current.as_mut().expect("set above").1;
                // Every row ends with the one unescaped newline, chunks included.
                let body = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
                if !chunk.is_empty() {
                    for line in body.split(|b| *b == b'\n') {
                        copier.row(parse_line(line)).await?;
                    }
                }
            }
            if let Some((i, c)) = current.take() {
                sums[i] = c.finish().await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        drop(rx);
        let read = handle
            .await
            .map_err(|e| Error::other(format!("snapshot reader failed: {e}")))?;
        match (copied, read) {
            (_, Err(e @ Error::Damaged { .. })) | (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(sums),
        }
    }
}

impl OpenSnapshot {
    /// Unpacks the snapshot's artifact part into `to` (see `artifacts::extract_part`).
    pub async fn extract_artifacts(
        &self,
        to: &super::artifacts::ArtifactLocation,
        progress: &ProgressRef,
        cancel: &CancellationToken,
    ) -> Result<super::artifacts::ArtifactReport> {
        let part = self.artifacts.clone().ok_or_else(|| {
            Error::input(format!(
                "{} holds no MLflow artifacts (take the snapshot with --mlflow-artifacts, or give --artifacts-from)",
                self.display
            ))
        })?;
        let from = format!("{} part {}", self.display, part.name);
        super::artifacts::extract_part(&self.repo, &self.id, &part, from, to, progress, cancel)
            .await
    }
}

/// One `LOAD DATA` line back into values: `\N` is NULL, escapes are undone, everything else is
/// text (numbers too; the copier parses them for the checksum).
pub fn parse_line(line: &[u8]) -> Vec<Value> {
    line.split(|b| *b == b'\t')
        .map(|f| {
            if f == b"\\N" {
                return Value::NULL;
            }
            let mut out = Vec::with_capacity(f.len());
            let mut it = f.iter();
            while let Some(&c) = it.next() {
                if c != b'\\' {
                    out.push(c);
                    continue;
                }
                match it.next() {
                    Some(b'0') => out.push(0),
                    Some(b't') => out.push(b'\t'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(8),
                    Some(b'Z') => out.push(0x1a),
                    Some(&other) => out.push(other),
                    None => out.push(b'\\'),
                }
            }
            Value::Bytes(out)
        })
        .collect()
}

/// Hands `entry` to `f` in pieces of whole rows (each ends with its newline) of about
/// [`PIECE`] bytes; a row longer than [`MAX_ROW`] is refused as damage.
fn for_each_piece(
    entry: &mut crate::archive::EntryReader<'_>,
    part: &str,
    path: &str,
    mut f: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    let mut sent = false;
    loop {
        let mut piece = std::mem::take(&mut carry);
        let n = (&mut *entry)
            .take(PIECE as u64)
            .read_to_end(&mut piece)
            .map_err(|e| Error::io(format!("reading {path}"), e))?;
        if n == 0 {
            // An empty chunk still says its table is there.
            return if piece.is_empty() && sent {
                Ok(())
            } else {
                f(piece)
            };
        }
        match piece.iter().rposition(|b| *b == b'\n') {
            Some(end) => {
                carry = piece.split_off(end + 1);
                sent = true;
                f(piece)?;
            }
            None if piece.len() > MAX_ROW => {
                return Err(Error::damaged(
                    part,
                    path,
                    format!("a row longer than {MAX_ROW} bytes; no MLflow row is that long"),
                ));
            }
            None => carry = piece,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::tsv::escape_into;

    #[test]
    fn parsing_undoes_the_chunk_escaping() {
        let mut line = Vec::new();
        escape_into(&mut line, b"a\tb\nc\\d\0e\r\x1a");
        line.extend_from_slice(b"\t\\N\t\t\\\\N\t-1.5e-7");
        assert_eq!(
            parse_line(&line),
            vec![
                Value::Bytes(b"a\tb\nc\\d\0e\r\x1a".to_vec()),
                Value::NULL,
                Value::Bytes(Vec::new()),
                Value::Bytes(b"\\N".to_vec()),
                Value::Bytes(b"-1.5e-7".to_vec()),
            ]
        );
    }
}
