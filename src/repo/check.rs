//! A sampled check of a format 2 snapshot, for nightly runs: every entry's chunks are listed by
//! the index and add up to its size, and a random share of the packs it uses are read once,
//! whole, with every chunk in them decompressed (decrypted) and checked against its id.
//! `verify` without a sample reads every chunk of every entry instead.

use std::collections::{HashMap, HashSet};

use object_store::ObjectStoreExt;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::Repository;
use super::index::{Loc, pack_path};
use super::manifest::Manifest;
use super::pack::decode;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    pub snapshot: String,
    pub percent: f64,
    pub entries: u64,
    pub packs_used: u64,
    pub packs_read: u64,
    pub chunks_checked: u64,
    pub bytes_read: u64,
}

impl Repository {
    /// Checks snapshot `m` as the module says; the first damage is [`Error::Damaged`].
    pub async fn check_sample(&self, m: &Manifest, percent: f64) -> Result<SampleReport> {
        let index = self.index().await?;
        let mut used: HashSet<std::sync::Arc<str>> = HashSet::new();
        let mut entries = 0u64;
        for part in m.parts.iter().filter(|p| p.chunked) {
            for e in &part.entries {
                entries += 1;
                let mut size = 0u64;
                for id in &e.chunks {
                    let loc = index.chunks.get(id).ok_or_else(|| {
                        Error::damaged(
                            &part.name,
                            &e.path,
                            format!("chunk {id} is missing: no index lists it"),
                        )
                    })?;
                    size += u64::from(loc.raw);
                    used.insert(loc.pack.clone());
                }
                if size != e.size {
                    return Err(Error::damaged(
                        &part.name,
                        &e.path,
                        format!("its chunks hold {size} bytes, the manifest says {}", e.size),
                    ));
                }
            }
        }
        let mut packs: Vec<_> = used.into_iter().collect();
        let packs_used = packs.len() as u64;
        let want = ((packs.len() as f64 * percent / 100.0).ceil() as usize).min(packs.len());
        packs.shuffle(&mut rand::rng());
        packs.truncate(want);
        let mut by_pack: HashMap<&str, Vec<(&String, &Loc)>> = HashMap::new();
        for (id, loc) in &index.chunks {
            by_pack.entry(&loc.pack).or_default().push((id, loc));
        }
        let hasher = self.chunk_hasher();
        let mut report = SampleReport {
            snapshot: m.id.clone(),
            percent,
            entries,
            packs_used,
            packs_read: 0,
            chunks_checked: 0,
            bytes_read: 0,
        };
        for pack in packs {
            let meta = index.packs.get(&pack).expect("indexed pack");
            let what = format!("pack {pack}");
            let got = self
                .store
                .get(&pack_path(&pack))
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => {
                        Error::damaged("index", &what, "missing from the repository")
                    }
                    e => self.store_err(format!("reading {what}"), e),
                })?;
            if got.meta.size != meta.size {
                return Err(Error::damaged(
                    "index",
                    &what,
                    format!("{} bytes, the index says {}", got.meta.size, meta.size),
                ));
            }
            let bytes = got
                .bytes()
                .await
                .map_err(|e| self.store_err(format!("reading {what}"), e))?;
            let key = match &meta.key {
                Some(w) => Some(
                    self.keys
                        .pack_key(w)
                        .map_err(|d| Error::input(format!("{what}: {d}")))?,
                ),
                None => None,
            };
            for (id, loc) in by_pack.get(&*pack).map(Vec::as_slice).unwrap_or_default() {
                let start = loc.offset as usize;
                let stored = &bytes[start..start + loc.len as usize];
                decode(stored, loc, id, &hasher, key.as_ref())
                    .map_err(|d| Error::damaged("index", &what, d))?;
                report.chunks_checked += 1;
            }
            report.bytes_read += bytes.len() as u64;
            report.packs_read += 1;
        }
        Ok(report)
    }
}
