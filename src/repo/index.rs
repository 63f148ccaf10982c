//! The chunk index: `index/<id>.json` objects, each listing packs and the chunks in them. A
//! backup writes one after its packs and before its manifest; prune rewrites them.
//!
//! ```text
//! {"packs": [{"id": "<32 hex>", "size": 33554432, "blobs": [["<chunk id>", offset, len, raw], …]}]}
//! ```
//!
//! Nothing read here is trusted: offsets and lengths are checked against the pack size and the
//! chunk size limits before anything is allocated from them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::Repository;
use super::chunker::MAX_SIZE;
use crate::error::{Error, Result};

/// The most a stored chunk can take: zstd's bound for the largest chunk plus the AEAD tag.
pub const MAX_STORED: usize = MAX_SIZE + MAX_SIZE / 128 + 1024;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct IndexFile {
    pub packs: Vec<PackIndex>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackIndex {
    pub id: String,
    pub size: u64,
    /// The pack's data key, age-encrypted to the repository's recipients (base64), in an
    /// encrypted repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub blobs: Vec<Blob>,
}

/// One chunk in a pack: id, offset, stored length, plain length.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Blob(pub String, pub u64, pub u32, pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub pack: Arc<str>,
    pub offset: u64,
    pub len: u32,
    pub raw: u32,
}

#[derive(Debug, Clone)]
pub struct PackMeta {
    pub size: u64,
    pub key: Option<String>,
    /// The index file that lists it.
    pub file: String,
}

/// Every index file of a repository, merged. A chunk stored twice (two backups at the same
/// moment) keeps its first location.
#[derive(Debug, Default)]
pub struct Index {
    pub chunks: HashMap<String, Loc>,
    pub packs: HashMap<Arc<str>, PackMeta>,
    pub files: BTreeSet<String>,
}

impl Index {
    pub fn add(&mut self, file: &str, f: IndexFile) -> std::result::Result<(), String> {
        for p in f.packs {
            if p.id.len() != 32 || !p.id.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("pack id {:?} is not 32 hex digits", p.id));
            }
            let pack: Arc<str> = Arc::from(p.id.as_str());
            for Blob(id, offset, len, raw) in p.blobs {
                let end = offset.checked_add(u64::from(len));
                if end.is_none_or(|e| e > p.size)
                    || len as usize > MAX_STORED
                    || raw as usize > MAX_SIZE
                    || id.len() != 64
                {
                    return Err(format!(
                        "chunk {id} in pack {}: offset {offset} length {len} (plain {raw}) is out of bounds",
                        p.id
                    ));
                }
                self.chunks.entry(id).or_insert(Loc {
                    pack: pack.clone(),
                    offset,
                    len,
                    raw,
                });
            }
            self.packs.insert(
                pack,
                PackMeta {
                    size: p.size,
                    key: p.key,
                    file: file.to_string(),
                },
            );
        }
        self.files.insert(file.to_string());
        Ok(())
    }
}

pub fn pack_path(id: &str) -> Path {
    Path::from("data").join(&id[..2]).join(id)
}

pub fn index_path(name: &str) -> Path {
    Path::from("index").join(name)
}

impl Repository {
    /// Names of the index objects.
    pub(crate) async fn index_names(&self) -> Result<Vec<String>> {
        let prefix = Path::from("index");
        let mut names: Vec<String> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .map_err(|e| self.store_err("listing the chunk index", e))?;
        names.retain(|n| n.ends_with(".json"));
        names.sort();
        Ok(names)
    }

    pub(crate) async fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let bytes = self
            .store
            .get(&index_path(name))
            .await
            .map_err(|e| self.store_err(format!("reading index/{name}"), e))?
            .bytes()
            .await
            .map_err(|e| self.store_err(format!("reading index/{name}"), e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::damaged(
                "index",
                format!("index/{name}"),
                format!("not a valid index: {e}"),
            )
        })
    }

    /// The whole index, as the repository holds it now.
    pub(crate) async fn load_index(&self) -> Result<Index> {
        let mut index = Index::default();
        for name in self.index_names().await? {
            let f = self.read_index_file(&name).await?;
            index
                .add(&name, f)
                .map_err(|detail| Error::damaged("index", format!("index/{name}"), detail))?;
        }
        Ok(index)
    }

    /// Writes an index object create-only.
    pub(crate) async fn write_index_file(&self, name: &str, f: &IndexFile) -> Result<()> {
        let body = serde_json::to_vec(f).expect("index serializes");
        self.store
            .put_opts(
                &index_path(name),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.store_err(format!("writing index/{name}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(size: u64, blobs: Vec<Blob>) -> IndexFile {
        IndexFile {
            packs: vec![PackIndex {
                id: "a".repeat(32),
                size,
                key: None,
                blobs,
            }],
        }
    }

    #[test]
    fn a_chunk_beyond_its_pack_or_larger_than_the_limits_is_refused() {
        let id = "c".repeat(64);
        let mut i = Index::default();
        assert!(
            i.add("x.json", pack(100, vec![Blob(id.clone(), 90, 20, 20)]))
                .is_err()
        );
        assert!(
            i.add(
                "x.json",
                pack(u64::MAX, vec![Blob(id.clone(), 0, u32::MAX, 1)])
            )
            .is_err()
        );
        assert!(
            i.add("x.json", pack(100, vec![Blob(id.clone(), u64::MAX, 2, 2)]))
                .is_err()
        );
        assert!(
            i.add("x.json", pack(100, vec![Blob(id, 0, 100, 80)]))
                .is_ok()
        );
        assert_eq!(i.chunks.len(), 1);
    }
}
