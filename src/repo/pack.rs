//! Pack files: `data/<2 hex>/<32 hex>`, distinct chunks zstd-compressed (and encrypted in an
//! encrypted repository) one after another, tens of MiB each so that S3 sees few requests.
//! A pack ends with a trailer listing its chunks ([`super::trailer`]), for prune; readers go
//! by the index. Packs are streamed through the bounded upload writer and completed before
//! the index that references them is written.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::ObjectStoreExt;
use tokio::runtime::Handle;

use super::chunker::{Hasher, MAX_SIZE};
use super::crypt::PackKey;
use super::index::{Blob, Index, Loc, MAX_STORED, PackIndex, pack_path};
use super::trailer::Trailer;
use super::upload::UploadWriter;
use super::{Encryption, Repository};
use crate::error::{Error, Result};

/// A pack is closed once it holds this much.
pub const PACK_TARGET: u64 = 32 * 1024 * 1024;
/// The most one ranged read fetches (consecutive chunks of one pack).
const READ_RUN: u64 = 8 * 1024 * 1024;

/// What one backup shares between its parts: the chunks the repository (and this backup)
/// already holds, and the packs it wrote.
pub struct Session {
    known: Mutex<Option<HashSet<String>>>,
    packs: Mutex<Vec<PackIndex>>,
}

impl Session {
    pub fn new() -> Arc<Self> {
        Arc::new(Session {
            known: Mutex::new(None),
            packs: Mutex::new(Vec::new()),
        })
    }

    pub fn take_packs(&self) -> Vec<PackIndex> {
        std::mem::take(&mut *self.packs.lock().expect("session lock"))
    }

    /// Pack ids written so far (to remove them when the backup fails).
    pub fn pack_ids(&self) -> Vec<String> {
        let packs = self.packs.lock().expect("session lock");
        packs.iter().map(|p| p.id.clone()).collect()
    }
}

fn new_pack_id() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    hex::encode(b)
}

struct OpenPack {
    id: String,
    w: UploadWriter,
    offset: u64,
    blobs: Vec<Blob>,
    key: Option<PackKey>,
}

enum ToPacker {
    Chunk(String, Vec<u8>),
    Finish,
}

/// How many new chunks may wait for compression (at most 256 KiB each).
const PACKER_QUEUE: usize = 8;

/// Writes the new chunks of one part into packs. Blocking: runs on the part's thread, which
/// cuts and hashes; compression, encryption and the upload run on a second thread, as zstd's
/// worker does for a plain part, so that the two halves overlap.
pub struct PackWriter {
    session: Arc<Session>,
    hasher: Hasher,
    tx: Option<std::sync::mpsc::SyncSender<ToPacker>>,
    worker: Option<std::thread::JoinHandle<io::Result<u64>>>,
}

impl PackWriter {
    pub fn new(repo: Repository, rt: Handle, session: Arc<Session>, level: i32) -> Result<Self> {
        {
            let mut known = session.known.lock().expect("session lock");
            if known.is_none() {
                let index = rt.block_on(repo.load_index())?;
                *known = Some(index.chunks.into_keys().collect());
            }
        }
        let hasher = repo.chunk_hasher();
        let (tx, rx) = std::sync::mpsc::sync_channel(PACKER_QUEUE);
        let packer = Packer {
            repo,
            rt,
            session: session.clone(),
            level,
            open: None,
            stored: 0,
        };
        let worker = std::thread::Builder::new()
            .name("amlmigrate-packer".into())
            .spawn(move || packer.run(rx))
            .map_err(|e| Error::io("starting the pack writer", e))?;
        Ok(PackWriter {
            session,
            hasher,
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    /// Stores `data` unless the repository holds it already; returns its id.
    pub fn add(&mut self, data: &[u8]) -> io::Result<String> {
        let id = self.hasher.id(data);
        {
            let mut known = self.session.known.lock().expect("session lock");
            if !known.as_mut().expect("loaded").insert(id.clone()) {
                return Ok(id);
            }
        }
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(ToPacker::Chunk(id.clone(), data.to_vec())));
        match sent {
            Some(Ok(())) => Ok(id),
            // The packer stopped: its error is the cause.
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the pack writer stopped"))),
        }
    }

    fn join(&mut self) -> io::Result<u64> {
        self.tx = None;
        match self.worker.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the pack writer panicked"))),
            None => Err(io::Error::other("the pack writer stopped")),
        }
    }

    /// Completes the open pack; returns the compressed bytes this part added.
    pub fn finish(mut self) -> io::Result<u64> {
        if let Some(tx) = &self.tx {
            let _ = tx.send(ToPacker::Finish);
        }
        self.join()
    }

    /// Aborts the open pack's upload; completed packs are removed with the failed backup.
    pub fn abort(&mut self) {
        if self.worker.is_some() {
            let _ = self.join();
        }
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The second half of a [`PackWriter`]: compresses, seals and uploads.
struct Packer {
    repo: Repository,
    rt: Handle,
    session: Arc<Session>,
    level: i32,
    open: Option<OpenPack>,
    stored: u64,
}

impl Packer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<ToPacker>) -> io::Result<u64> {
        let mut comp = zstd::bulk::Compressor::new(self.level)?;
        for msg in rx {
            let done = match msg {
                ToPacker::Chunk(id, data) => self.put(&mut comp, &id, &data).map(|()| false),
                ToPacker::Finish => self.close_pack().map(|()| true),
            };
            match done {
                Ok(true) => return Ok(self.stored),
                Ok(false) => {}
                Err(e) => {
                    self.abort();
                    return Err(e);
                }
            }
        }
        // The part ended without finishing: nothing of the open pack may stay.
        self.abort();
        Err(io::Error::other("part not completed"))
    }

    fn put(
        &mut self,
        comp: &mut zstd::bulk::Compressor<'_>,
        id: &str,
        data: &[u8],
    ) -> io::Result<()> {
        let compressed = comp.compress(data)?;
        if self.open.is_none() {
            let id = new_pack_id();
            let w = self.repo.upload_writer(pack_path(&id), self.rt.clone());
            let key = self.repo.encryption().map(PackKey::generate);
            self.open = Some(OpenPack {
                id,
                w,
                offset: 0,
                blobs: Vec::new(),
                key,
            });
        }
        let pack = self.open.as_mut().expect("open pack");
        let stored = match &pack.key {
            Some(k) => k.seal(pack.offset, &compressed)?,
            None => compressed,
        };
        pack.w.write_all(&stored)?;
        pack.blobs.push(Blob(
            id.to_string(),
            pack.offset,
            stored.len() as u32,
            data.len() as u32,
        ));
        pack.offset += stored.len() as u64;
        self.stored += stored.len() as u64;
        if pack.offset >= PACK_TARGET {
            self.close_pack()?;
        }
        Ok(())
    }

    fn close_pack(&mut self) -> io::Result<()> {
        let Some(mut p) = self.open.take() else {
            return Ok(());
        };
        let key = p.key.as_ref().map(PackKey::wrapped);
        let trailer = Trailer {
            key: key.clone(),
            blobs: p.blobs.clone(),
        }
        .encode();
        p.w.write_all(&trailer)?;
        p.w.finish()?;
        self.session
            .packs
            .lock()
            .expect("session lock")
            .push(PackIndex {
                id: p.id,
                size: p.offset + trailer.len() as u64,
                key,
                blobs: p.blobs,
            });
        Ok(())
    }

    fn abort(&mut self) {
        if let Some(mut p) = self.open.take() {
            p.w.abort();
        }
    }
}

/// Decodes one stored chunk, checking its length and id; nothing is allocated beyond the
/// limits whatever the index says.
pub fn decode(
    stored: &[u8],
    loc: &Loc,
    id: &str,
    hasher: &Hasher,
    key: Option<&PackKey>,
) -> std::result::Result<Vec<u8>, String> {
    if stored.len() > MAX_STORED {
        return Err(format!("chunk {id} is {} bytes stored", stored.len()));
    }
    let plain_stored;
    let compressed = match key {
        Some(k) => {
            plain_stored = k
                .open(loc.offset, stored)
                .ok_or_else(|| format!("chunk {id} does not decrypt (damaged or forged)"))?;
            &plain_stored[..]
        }
        None => stored,
    };
    let data = zstd::bulk::decompress(compressed, MAX_SIZE)
        .map_err(|e| format!("chunk {id} does not decompress: {e}"))?;
    if data.len() != loc.raw as usize {
        return Err(format!(
            "chunk {id} holds {} bytes, the index says {}",
            data.len(),
            loc.raw
        ));
    }
    let got = hasher.id(&data);
    if got != id {
        return Err(format!("chunk {id} has the content of {got}"));
    }
    Ok(data)
}

/// Reads chunks in a known order, fetching runs of consecutive chunks of one pack with one
/// ranged read each (at most [`READ_RUN`] bytes). Blocking.
pub struct Fetcher<'a> {
    repo: &'a Repository,
    rt: Handle,
    index: &'a Index,
    keys: &'a super::crypt::Keys,
    plan: Vec<(String, Loc)>,
    pos: usize,
    run: Bytes,
    run_base: u64,
    run_end: usize,
    fetched: u64,
}

impl<'a> Fetcher<'a> {
    /// `ids` are every chunk the reader will ask for, in order.
    pub fn new(
        repo: &'a Repository,
        rt: Handle,
        index: &'a Index,
        keys: &'a super::crypt::Keys,
        ids: impl Iterator<Item = &'a String>,
        part: &str,
    ) -> Result<Self> {
        let mut plan = Vec::new();
        for id in ids {
            let loc = index.chunks.get(id).ok_or_else(|| {
                Error::damaged(
                    part,
                    format!("chunk {id}"),
                    "missing: no index lists it (the repository lost a pack or its index)",
                )
            })?;
            plan.push((id.clone(), loc.clone()));
        }
        Ok(Fetcher {
            repo,
            rt,
            index,
            keys,
            plan,
            pos: 0,
            run: Bytes::new(),
            run_base: 0,
            run_end: 0,
            fetched: 0,
        })
    }

    /// Bytes read from packs so far.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// The next chunk of the plan; `id` must be the one planned.
    pub fn next(&mut self, id: &str) -> std::result::Result<Vec<u8>, String> {
        let Some((want, loc)) = self.plan.get(self.pos).cloned() else {
            return Err(format!("chunk {id} was not planned"));
        };
        if want != id {
            return Err(format!("chunk {id} read out of order"));
        }
        if self.pos >= self.run_end {
            self.fetch_run()?;
        }
        self.pos += 1;
        let start = (loc.offset - self.run_base) as usize;
        let stored = &self.run[start..start + loc.len as usize];
        let key = self
            .index
            .packs
            .get(&loc.pack)
            .and_then(|p| p.key.as_deref());
        let key = match key {
            Some(wrapped) => Some(self.keys.pack_key(wrapped)?),
            None if self.repo.is_encrypted() => {
                return Err(format!(
                    "chunk {id} is stored in clear in pack {}, but the repository is encrypted: \
                     it was not written by a backup of this repository",
                    loc.pack
                ));
            }
            None => None,
        };
        decode(stored, &loc, id, &self.repo.chunk_hasher(), key.as_ref())
    }

    fn fetch_run(&mut self) -> std::result::Result<(), String> {
        let first = &self.plan[self.pos].1;
        let mut end = self.pos + 1;
        let mut stop = first.offset + u64::from(first.len);
        while let Some((_, l)) = self.plan.get(end) {
            if l.pack != first.pack || l.offset != stop || stop - first.offset >= READ_RUN {
                break;
            }
            stop += u64::from(l.len);
            end += 1;
        }
        let path = pack_path(&first.pack);
        let bytes = self
            .rt
            .block_on(self.repo.store.get_range(&path, first.offset..stop))
            .map_err(|e| format!("reading pack {}: {e}", first.pack))?;
        if bytes.len() as u64 != stop - first.offset {
            return Err(format!(
                "pack {} is shorter than its index says ({} bytes at {})",
                first.pack,
                bytes.len(),
                first.offset
            ));
        }
        self.fetched += bytes.len() as u64;
        self.run = bytes;
        self.run_base = first.offset;
        self.run_end = end;
        Ok(())
    }
}

impl Repository {
    pub(crate) fn chunk_hasher(&self) -> Hasher {
        match self.encryption() {
            Some(Encryption { id_key, .. }) => Hasher::Keyed(*id_key),
            None => Hasher::Plain,
        }
    }
}
