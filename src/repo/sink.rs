//! The writing end of one snapshot part: entries go to a blocking thread that tars, compresses,
//! hashes and uploads them. The channel is bounded, so a slow repository slows the producer
//! instead of filling memory.

use std::io::Read;
use std::sync::Arc;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::Repository;
use super::chunker;
use super::manifest::Entry;
use super::pack::{PackWriter, Session};
use crate::archive::{HashingReader, PartInfo, PartWriter};
use crate::error::{Error, Result};

const ARCHIVE_GONE: &str = "the archive writer stopped early";

fn archive_gone() -> Error {
    Error::other(ARCHIVE_GONE)
}

pub enum Msg {
    Entry {
        path: String,
        data: Vec<u8>,
    },
    /// `size` bytes streamed from `reader` (a file opened without following links, an object
    /// in S3); a reader that ends early or holds more is an error.
    Reader {
        path: String,
        size: u64,
        reader: Box<dyn std::io::Read + Send>,
    },
    Finish,
}

/// The writing end of one part: entries go to a blocking thread that tars, compresses, hashes
/// and uploads them; bounded, so a slow repository slows the reader instead of filling memory.
pub struct PartSink {
    tx: mpsc::Sender<Msg>,
    archiver: tokio::task::JoinHandle<Result<PartInfo>>,
}

impl PartSink {
    /// A part of snapshot `id`: one object at `rel` in a format 1 repository, chunks in packs
    /// in a format 2 one.
    pub fn open(repo: &Repository, id: &str, rel: &str, level: i32) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>(2);
        let rt = tokio::runtime::Handle::current();
        let archiver = if repo.format() >= 2 {
            let (repo, session) = (repo.clone(), repo.session(id));
            tokio::task::spawn_blocking(move || chunk_thread(rx, repo, session, level, rt))
        } else {
            let writer = repo.object_writer(id, rel, rt);
            let mtime = Utc::now().timestamp().max(0) as u64;
            tokio::task::spawn_blocking(move || archive_thread(rx, writer, level, mtime))
        };
        PartSink { tx, archiver }
    }

    pub async fn send(&self, msg: Msg) -> Result<()> {
        self.tx.send(msg).await.map_err(|_| archive_gone())
    }

    pub async fn entry(&self, path: String, data: Vec<u8>) -> Result<()> {
        self.send(Msg::Entry { path, data }).await
    }

    /// Completes the part when `produced` is Ok, aborts its upload otherwise.
    pub async fn close<T>(self, produced: Result<T>) -> Result<(T, PartInfo)> {
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
fn chunk_thread(
    mut rx: mpsc::Receiver<Msg>,
    repo: Repository,
    session: Arc<Session>,
    level: i32,
    rt: tokio::runtime::Handle,
) -> Result<PartInfo> {
    let io_err = |e| Error::io("writing the part to the repository", e);
    let mut packs = PackWriter::new(repo, rt, session, level)?;
    let mut entries = Vec::new();
    loop {
        match rx.blocking_recv() {
            Some(Msg::Entry { path, data }) => {
                let mut chunks = Vec::new();
                chunker::for_each_slice(&data, |c| {
                    chunks.push(packs.add(c)?);
                    Ok(())
                })
                .map_err(io_err)?;
                entries.push(Entry {
                    path,
                    size: data.len() as u64,
                    sha256: hex::encode(Sha256::digest(&data)),
                    chunks,
                });
            }
            Some(Msg::Reader { path, size, reader }) => {
                let mut hashing = HashingReader::new(reader.take(size));
                let mut chunks = Vec::new();
                chunker::for_each_chunk(&mut hashing, |c| {
                    chunks.push(packs.add(c)?);
                    Ok(())
                })
                .map_err(|e| Error::io(format!("archiving {path}"), e))?;
                let (count, sha256) = hashing.into_parts();
                if count != size {
                    return Err(Error::io(
                        format!("archiving {path}"),
                        std::io::Error::other(format!(
                            "{path} changed while it was read ({count} of {size} bytes)"
                        )),
                    ));
                }
                entries.push(Entry {
                    path,
                    size,
                    sha256,
                    chunks,
                });
            }
            Some(Msg::Finish) => {
                let size = packs.finish().map_err(io_err)?;
                return Ok(PartInfo {
                    size,
                    sha256: String::new(),
                    entries,
                    chunked: true,
                });
            }
            None => {
                packs.abort();
                return Err(Error::Interrupted("part not completed".into()));
            }
        }
    }
}

fn archive_thread(
    mut rx: mpsc::Receiver<Msg>,
    writer: super::upload::UploadWriter,
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
            Some(Msg::Reader { path, size, reader }) => {
                if let Err(e) = pw.append_reader(&path, size, reader) {
                    pw.sink_mut().abort();
                    return Err(Error::io(format!("archiving {path}"), e));
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
