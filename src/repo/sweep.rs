//! The sweep of prune (mark-and-sweep, under the exclusive lock): given every chunk id a kept
//! snapshot uses (the mark), packs holding none of them are removed, packs mostly unused are
//! repacked (their live chunks copied into a new pack), and the index is rewritten to list only
//! live chunks.
//!
//! Order, so that a crash anywhere leaves a readable repository: new packs, then the new index
//! (create-only), then the old index objects are removed, then the old packs. A pack no index
//! lists is garbage (the exclusive lock means no backup is writing one) and goes too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::index::{Blob, IndexFile, Loc, PackIndex, index_path, pack_path};
use super::pack::{PACK_TARGET, decode};
use super::{Repository, UPLOAD_CAPACITY};
use crate::error::{Error, Result};

/// A pack whose live bytes are below this share of its size is repacked.
pub const REPACK_BELOW: f64 = 0.5;
/// Index objects the sweep writes hold at most this many chunks each.
const INDEX_FILE_CHUNKS: usize = 100_000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub packs_before: u64,
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    /// Packs no index listed (left by a backup that died before it committed).
    pub orphan_packs: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub chunks_live: u64,
    /// Mostly unused packs left as they are (an encrypted repository is not repacked: that
    /// would need every recipient).
    pub repack_skipped: u64,
}

struct PackPlan {
    id: String,
    size: u64,
    key: Option<String>,
    live: Vec<Blob>,
    live_bytes: u64,
}

impl Repository {
    /// Sweeps every chunk not in `live`. `dry_run` only counts.
    pub async fn sweep(&self, live: &HashSet<String>, dry_run: bool) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let names = self.index_names().await?;
        let mut files = Vec::new();
        for name in &names {
            files.push(self.read_index_file(name).await?);
        }
        // Every stored pack, with its size as the store says.
        let stored: HashMap<String, u64> = self
            .store
            .list(Some(&Path::from("data")))
            .map_ok(|m| {
                (
                    m.location.filename().unwrap_or_default().to_string(),
                    m.size,
                )
            })
            .try_collect()
            .await
            .map_err(|e| self.store_err("listing packs", e))?;
        report.packs_before = stored.len() as u64;
        report.bytes_before = stored.values().sum();

        // Each live chunk counts once, in the first pack that holds it.
        let mut placed: HashSet<String> = HashSet::new();
        let mut plans: Vec<PackPlan> = Vec::new();
        for f in files {
            for p in f.packs {
                if !stored.contains_key(&p.id) {
                    continue;
                }
                let mut plan = PackPlan {
                    id: p.id,
                    size: p.size,
                    key: p.key,
                    live: Vec::new(),
                    live_bytes: 0,
                };
                for b in p.blobs {
                    if live.contains(&b.0) && placed.insert(b.0.clone()) {
                        plan.live_bytes += u64::from(b.2);
                        plan.live.push(b);
                    }
                }
                plans.push(plan);
            }
        }
        let indexed: HashSet<&str> = plans.iter().map(|p| p.id.as_str()).collect();
        let orphans: Vec<String> = stored
            .keys()
            .filter(|id| !indexed.contains(id.as_str()))
            .cloned()
            .collect();
        report.orphan_packs = orphans.len() as u64;
        report.chunks_live = placed.len() as u64;
        let missing = live.iter().find(|id| !placed.contains(*id));
        if let Some(id) = missing {
            return Err(Error::damaged(
                "index",
                format!("chunk {id}"),
                "a kept snapshot uses a chunk no pack holds; nothing was swept (run verify on \
                 each snapshot to find the damaged ones)",
            ));
        }

        let mut keep: Vec<PackIndex> = Vec::new();
        let mut gone: Vec<String> = orphans;
        let mut to_repack: Vec<PackPlan> = Vec::new();
        let mut changed = !gone.is_empty();
        for plan in plans {
            let all_live = plan.live_bytes == plan.size;
            if plan.live.is_empty() {
                report.packs_removed += 1;
                gone.push(plan.id);
                changed = true;
            } else if (plan.live_bytes as f64) < REPACK_BELOW * plan.size as f64 {
                if plan.key.is_some() {
                    report.repack_skipped += 1;
                    changed = true;
                    keep.push(PackIndex {
                        id: plan.id,
                        size: plan.size,
                        key: plan.key,
                        blobs: plan.live,
                    });
                } else {
                    report.packs_repacked += 1;
                    to_repack.push(plan);
                    changed = true;
                }
            } else {
                changed |= !all_live;
                keep.push(PackIndex {
                    id: plan.id,
                    size: plan.size,
                    key: plan.key,
                    blobs: plan.live,
                });
            }
        }
        if dry_run || !changed {
            report.bytes_after = keep.iter().map(|p| p.size).sum::<u64>()
                + to_repack.iter().map(|p| p.live_bytes).sum::<u64>();
            return Ok(report);
        }
        let written = self.repack(&to_repack).await?;
        report.packs_written = written.len() as u64;
        gone.extend(to_repack.into_iter().map(|p| p.id));
        keep.extend(written);
        report.bytes_after = keep.iter().map(|p| p.size).sum();

        self.write_swept_index(keep).await?;
        for name in &names {
            match self.store.delete(&index_path(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.store_err(format!("removing index/{name}"), e)),
            }
        }
        for id in &gone {
            match self.store.delete(&pack_path(id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.store_err(format!("removing pack {id}"), e)),
            }
        }
        *self.index_cache.lock().await = None;
        Ok(report)
    }

    async fn write_swept_index(&self, packs: Vec<PackIndex>) -> Result<()> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let mut file = IndexFile::default();
        let mut chunks = 0usize;
        let mut n = 0;
        for p in packs {
            chunks += p.blobs.len();
            file.packs.push(p);
            if chunks >= INDEX_FILE_CHUNKS {
                self.write_index_file(&format!("{stamp}-prune-{n:04}.json"), &file)
                    .await?;
                file = IndexFile::default();
                chunks = 0;
                n += 1;
            }
        }
        if !file.packs.is_empty() {
            self.write_index_file(&format!("{stamp}-prune-{n:04}.json"), &file)
                .await?;
        }
        Ok(())
    }

    /// Copies the live chunks of `plans` (unencrypted packs) into new packs, checking each.
    async fn repack(&self, plans: &[PackPlan]) -> Result<Vec<PackIndex>> {
        let hasher = self.chunk_hasher();
        let mut out = Vec::new();
        let mut cur: Option<(String, BufWriter, PackIndex)> = None;
        for plan in plans {
            let ranges: Vec<_> = plan
                .live
                .iter()
                .map(|b| b.1..b.1 + u64::from(b.2))
                .collect();
            let src = pack_path(&plan.id);
            let datas =
                self.store.get_ranges(&src, &ranges).await.map_err(|e| {
                    self.store_err(format!("reading pack {} to repack it", plan.id), e)
                })?;
            for (b, data) in plan.live.iter().zip(datas) {
                let loc = Loc {
                    pack: Arc::from(plan.id.as_str()),
                    offset: b.1,
                    len: b.2,
                    raw: b.3,
                };
                decode(&data, &loc, &b.0, &hasher, None).map_err(|detail| {
                    Error::damaged("index", format!("pack {}", plan.id), detail)
                })?;
                if cur.is_none() {
                    let mut rnd = [0u8; 16];
                    rand::fill(&mut rnd);
                    let id = hex::encode(rnd);
                    let w = BufWriter::with_capacity(
                        self.store.clone(),
                        pack_path(&id),
                        UPLOAD_CAPACITY,
                    );
                    cur = Some((
                        id.clone(),
                        w,
                        PackIndex {
                            id,
                            size: 0,
                            key: None,
                            blobs: Vec::new(),
                        },
                    ));
                }
                let (id, w, idx) = cur.as_mut().expect("open pack");
                w.write_all(&data)
                    .await
                    .map_err(|e| Error::io(format!("writing pack {id}"), e))?;
                idx.blobs.push(Blob(b.0.clone(), idx.size, b.2, b.3));
                idx.size += u64::from(b.2);
                if idx.size >= PACK_TARGET {
                    let (id, mut w, idx) = cur.take().expect("open pack");
                    w.shutdown()
                        .await
                        .map_err(|e| Error::io(format!("writing pack {id}"), e))?;
                    out.push(idx);
                }
            }
        }
        if let Some((id, mut w, idx)) = cur.take() {
            w.shutdown()
                .await
                .map_err(|e| Error::io(format!("writing pack {id}"), e))?;
            out.push(idx);
        }
        Ok(out)
    }
}
