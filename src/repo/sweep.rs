//! The sweep of prune (mark-and-sweep, under the exclusive lock): given every chunk id a kept
//! snapshot uses (the mark), packs holding none of them are removed, packs mostly unused are
//! repacked (their live chunks copied into a new pack), and the index is rewritten to list only
//! live chunks.
//!
//! Order, so that a crash anywhere leaves a readable repository: new packs, then the new index
//! (create-only), then the old index objects are removed, then the old packs. What a pack holds
//! is what its own trailer says (see [`Repository::sweep`]); a pack holding no live chunk goes,
//! whether or not an index lists it (the exclusive lock means no backup is writing one).

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
use super::trailer::{Holdings, Trailer};
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
    /// Packs whose trailer does not read: kept as they are, whatever they hold.
    pub packs_unreadable: u64,
}

/// What the index objects say one pack holds.
#[derive(Default)]
struct Claim {
    key: Option<String>,
    blobs: Vec<Blob>,
}

struct PackPlan {
    id: String,
    /// The pack object's size.
    size: u64,
    key: Option<String>,
    /// Bytes of the chunks it holds.
    held_bytes: u64,
    held: usize,
    live: Vec<Blob>,
    live_bytes: u64,
    /// What it holds is unknown (a trailer that does not read): it stays as it is.
    unknown: bool,
    /// An index object says it holds a chunk its trailer does not list.
    contradicted: bool,
}

impl PackPlan {
    fn index_entry(self) -> PackIndex {
        PackIndex {
            id: self.id,
            size: self.size,
            key: self.key,
            blobs: self.live,
        }
    }
}

impl Repository {
    /// Sweeps every chunk not in `live`. `dry_run` only counts.
    ///
    /// What a pack holds comes from the pack itself (its trailer); index objects, which anyone
    /// who can add objects could add, only speak for packs written before trailers, and only
    /// about those packs, so an added index can make prune keep more but never remove a pack.
    /// A pack goes only when none of the chunks it holds is live.
    pub async fn sweep(&self, live: &HashSet<String>, dry_run: bool) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let names = self.index_names().await?;
        let claims = self.index_claims(&names).await?;
        let stored = self.stored_packs().await?;
        report.packs_before = stored.len() as u64;
        report.bytes_before = stored.iter().map(|(_, size, _)| size).sum();

        let mut placed: HashSet<String> = HashSet::new();
        let mut plans: Vec<PackPlan> = Vec::new();
        for (id, size, _) in stored {
            let plan = self.plan_pack(id, size, &claims, live, &mut report).await?;
            placed.extend(plan.live.iter().map(|b| b.0.clone()));
            plans.push(plan);
        }
        report.chunks_live = placed.len() as u64;
        if let Some(id) = live.iter().find(|id| !placed.contains(*id)) {
            return Err(Error::damaged(
                "index",
                format!("chunk {id}"),
                "a kept snapshot uses a chunk no pack holds; nothing was swept (run verify on \
                 each snapshot to find the damaged ones)",
            ));
        }

        let mut keep: Vec<PackIndex> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        let mut to_repack: Vec<PackPlan> = Vec::new();
        // Index entries for packs that are not stored, or that their packs contradict, are
        // dropped by rewriting the index from what the packs hold.
        let stored_ids: HashSet<&str> = plans.iter().map(|p| p.id.as_str()).collect();
        let mut changed = plans.iter().any(|p| p.contradicted)
            || claims.keys().any(|id| !stored_ids.contains(id.as_str()));
        for plan in plans {
            if plan.unknown {
                keep.push(plan.index_entry());
            } else if plan.live.is_empty() {
                if claims.contains_key(&plan.id) {
                    report.packs_removed += 1;
                } else {
                    report.orphan_packs += 1;
                }
                gone.push(plan.id);
                changed = true;
            } else if (plan.live_bytes as f64) < REPACK_BELOW * plan.held_bytes as f64 {
                changed = true;
                if plan.key.is_some() {
                    report.repack_skipped += 1;
                    keep.push(plan.index_entry());
                } else {
                    report.packs_repacked += 1;
                    to_repack.push(plan);
                }
            } else {
                changed |= plan.live.len() != plan.held;
                keep.push(plan.index_entry());
            }
        }
        if dry_run || !changed {
            report.bytes_after = keep.iter().map(|p| p.size).sum::<u64>()
                + to_repack.iter().map(|p| p.live_bytes).sum::<u64>();
            return Ok(report);
        }
        let kept: HashSet<&str> = keep
            .iter()
            .flat_map(|p| p.blobs.iter().map(|b| b.0.as_str()))
            .collect();
        let written = self.repack(&to_repack, &kept).await?;
        report.packs_written = written.len() as u64;
        gone.extend(to_repack.into_iter().map(|p| p.id));
        // Repacked chunks were read back and checked: their copies come first in the index.
        let mut packs = written;
        packs.extend(keep);
        report.bytes_after = packs.iter().map(|p| p.size).sum();

        self.write_swept_index(packs).await?;
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

    /// What the index objects say each pack holds (its key from the first that names one).
    async fn index_claims(&self, names: &[String]) -> Result<HashMap<String, Claim>> {
        let mut claims: HashMap<String, Claim> = HashMap::new();
        for name in names {
            for p in self.read_index_file(name).await?.packs {
                let c = claims.entry(p.id).or_default();
                if c.key.is_none() {
                    c.key = p.key;
                }
                c.blobs.extend(p.blobs);
            }
        }
        Ok(claims)
    }

    /// Every stored pack with its size, oldest first: where two packs hold the same chunk,
    /// the rewritten index lists the older copy first (an added pack is never older).
    async fn stored_packs(&self) -> Result<Vec<(String, u64, chrono::DateTime<chrono::Utc>)>> {
        let mut stored: Vec<_> = self
            .store
            .list(Some(&Path::from("data")))
            .map_ok(|m| {
                (
                    m.location.filename().unwrap_or_default().to_string(),
                    m.size,
                    m.last_modified,
                )
            })
            .try_collect()
            .await
            .map_err(|e| self.store_err("listing packs", e))?;
        stored.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        Ok(stored)
    }

    /// What one pack holds (its trailer; the index only for a pack older than trailers) and
    /// which of that is live.
    async fn plan_pack(
        &self,
        id: String,
        size: u64,
        claims: &HashMap<String, Claim>,
        live: &HashSet<String>,
        report: &mut SweepReport,
    ) -> Result<PackPlan> {
        let holdings = self
            .pack_holdings(&id, size)
            .await
            .map_err(|e| self.store_err(format!("reading the trailer of pack {id}"), e))?;
        let claim = claims.get(&id);
        let mut contradicted = false;
        let (key, mut blobs, unknown) = match holdings {
            Holdings::Trailer(t) => {
                if let Some(c) = claim {
                    let held: HashSet<(&str, u64)> =
                        t.blobs.iter().map(|b| (b.0.as_str(), b.1)).collect();
                    contradicted = c.blobs.iter().any(|b| !held.contains(&(b.0.as_str(), b.1)));
                }
                (t.key, t.blobs, false)
            }
            Holdings::Legacy => (
                claim.and_then(|c| c.key.clone()),
                claim.map(|c| c.blobs.clone()).unwrap_or_default(),
                false,
            ),
            Holdings::Unreadable(why) => {
                tracing::warn!(pack = id, "prune: pack {id} is kept as it is: {why}");
                report.packs_unreadable += 1;
                (
                    claim.and_then(|c| c.key.clone()),
                    claim.map(|c| c.blobs.clone()).unwrap_or_default(),
                    true,
                )
            }
        };
        blobs.sort_by_key(|b| b.1);
        blobs.dedup_by(|a, b| a.0 == b.0);
        let mut plan = PackPlan {
            id,
            size,
            key,
            held_bytes: blobs.iter().map(|b| u64::from(b.2)).sum(),
            held: blobs.len(),
            live: Vec::new(),
            live_bytes: 0,
            unknown,
            contradicted,
        };
        for b in blobs {
            if unknown || live.contains(&b.0) {
                plan.live_bytes += u64::from(b.2);
                plan.live.push(b);
            }
        }
        Ok(plan)
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
    /// A chunk that does not decode where a pack claims it (an added pack's claims are not
    /// trusted) is skipped when a kept pack or another copy provides it, else nothing is swept.
    async fn repack(&self, plans: &[PackPlan], kept: &HashSet<&str>) -> Result<Vec<PackIndex>> {
        let hasher = self.chunk_hasher();
        let mut out = Vec::new();
        let mut cur: Option<(String, BufWriter, PackIndex)> = None;
        let mut copied: HashSet<String> = HashSet::new();
        let mut failed: Vec<(String, String, String)> = Vec::new();
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
                if copied.contains(&b.0) {
                    continue;
                }
                let loc = Loc {
                    pack: Arc::from(plan.id.as_str()),
                    offset: b.1,
                    len: b.2,
                    raw: b.3,
                };
                if let Err(detail) = decode(&data, &loc, &b.0, &hasher, None) {
                    failed.push((b.0.clone(), plan.id.clone(), detail));
                    continue;
                }
                copied.insert(b.0.clone());
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
                    out.push(close_pack(cur.take().expect("open pack")).await?);
                }
            }
        }
        if let Some(open) = cur.take() {
            out.push(close_pack(open).await?);
        }
        for (chunk, pack, detail) in failed {
            if copied.contains(&chunk) || kept.contains(chunk.as_str()) {
                tracing::warn!(
                    pack,
                    "prune: pack {pack} does not hold chunk {chunk} as it claims ({detail}); another copy is kept"
                );
                continue;
            }
            return Err(Error::damaged("index", format!("pack {pack}"), detail));
        }
        Ok(out)
    }
}

/// Ends a pack written by the repack with its trailer.
async fn close_pack((id, mut w, mut idx): (String, BufWriter, PackIndex)) -> Result<PackIndex> {
    let trailer = Trailer {
        key: None,
        blobs: idx.blobs.clone(),
    }
    .encode();
    w.write_all(&trailer)
        .await
        .map_err(|e| Error::io(format!("writing pack {id}"), e))?;
    w.shutdown()
        .await
        .map_err(|e| Error::io(format!("writing pack {id}"), e))?;
    idx.size += trailer.len() as u64;
    Ok(idx)
}
