//! `snapshots/<id>/refs`: the distinct chunk ids a format 2 snapshot uses, sorted, one per
//! line, zstd-compressed. Written before the manifest; prune marks from it, so prune never
//! needs to read (or decrypt) a manifest. Chunk ids are keyed in an encrypted repository, so
//! the list reveals nothing.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;

use object_store::ObjectStoreExt;

use super::{REFS, Repository, manifest::Manifest};
use crate::error::{Error, Result};

/// The most a refs object may expand to (16M chunks, about 1 TB of distinct data).
const MAX_PLAIN: u64 = 16 << 20 << 6;

pub fn encode(m: &Manifest) -> Vec<u8> {
    let ids: BTreeSet<&str> = m
        .parts
        .iter()
        .flat_map(|p| &p.entries)
        .flat_map(|e| &e.chunks)
        .map(String::as_str)
        .collect();
    let mut text = String::with_capacity(ids.len() * 65);
    for id in ids {
        text.push_str(id);
        text.push('\n');
    }
    zstd::bulk::compress(text.as_bytes(), 3).expect("compressing in memory")
}

impl Repository {
    /// The chunk ids snapshot `id` uses.
    pub async fn snapshot_refs(&self, id: &str) -> Result<HashSet<String>> {
        let path = Self::snapshot_path(id, REFS);
        let what = format!("reading the chunk list of snapshot {id}");
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_err(&what, e))?
            .bytes()
            .await
            .map_err(|e| self.store_err(&what, e))?;
        let damaged = |detail: String| Error::damaged(format!("snapshot {id}"), REFS, detail);
        let mut text = String::new();
        zstd::stream::read::Decoder::new(&bytes[..])
            .and_then(|d| d.take(MAX_PLAIN).read_to_string(&mut text))
            .map_err(|e| damaged(format!("not a readable chunk list: {e}")))?;
        let mut out = HashSet::new();
        for line in text.lines() {
            if line.len() != 64 || !line.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(damaged(format!("{line:?} is not a chunk id")));
            }
            out.insert(line.to_string());
        }
        Ok(out)
    }
}
