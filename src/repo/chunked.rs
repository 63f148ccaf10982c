//! Format 2 parts: every entry is a list of chunk ids. Reading fetches the chunks in order
//! (runs of consecutive chunks of a pack with one ranged read) and hands each entry to the
//! visitor through the same checking reader as a format 1 part.

use std::io::{self, Read};
use std::sync::Arc;

use tokio::runtime::Handle;

use super::Repository;
use super::index::Index;
use super::manifest::Part;
use super::pack::Fetcher;
use crate::archive::{self, EntryReader};
use crate::error::{Error, Result};

struct ChunkedEntry<'f, 'a, I> {
    fetcher: &'f mut Fetcher<'a>,
    ids: I,
    buf: Vec<u8>,
    pos: usize,
}

impl<'f, 'a, I: Iterator<Item = &'a String>> Read for ChunkedEntry<'f, 'a, I> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            self.buf = self
                .fetcher
                .next(id)
                .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Repository {
    /// The index, reloaded only when the set of index objects changed since the last call.
    pub(crate) async fn index(&self) -> Result<Arc<Index>> {
        let names = self.index_names().await?;
        let mut cache = self.index_cache.lock().await;
        if let Some((cached, index)) = cache.as_ref()
            && *cached == names
        {
            return Ok(index.clone());
        }
        let index = Arc::new(self.load_index().await?);
        *cache = Some((names, index.clone()));
        Ok(index)
    }

    /// The state, and the bytes fetched from packs.
    pub(super) async fn read_part_v2<S, F>(
        &self,
        part: &Part,
        state: S,
        mut visit: F,
    ) -> Result<(S, u64)>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &mut EntryReader<'_>) -> Result<()> + Send + 'static,
    {
        let index = self.index().await?;
        let keys = self.keys.clone();
        let repo = self.clone();
        let part = part.clone();
        let name = part.name.clone();
        tokio::task::spawn_blocking(move || {
            let rt = Handle::current();
            let ids = part.entries.iter().flat_map(|e| e.chunks.iter());
            let mut fetcher = Fetcher::new(&repo, rt, &index, &keys, ids, &part.name)?;
            let mut state = state;
            for e in &part.entries {
                let mut r = ChunkedEntry {
                    fetcher: &mut fetcher,
                    ids: e.chunks.iter(),
                    buf: Vec::new(),
                    pos: 0,
                };
                archive::visit_entry(&part.name, &mut r, e, &mut |entry| visit(&mut state, entry))?;
            }
            Ok((state, fetcher.fetched()))
        })
        .await
        .map_err(|e| Error::other(format!("the reader of part {name} failed: {e}")))?
    }
}
