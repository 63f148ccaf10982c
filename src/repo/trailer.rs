//! A pack's trailer: the list of the chunks the pack holds, written at its end by whoever wrote
//! the pack, so that prune learns what a pack holds from the pack itself and not from index
//! objects, which anyone who can add objects to the repository can add.
//!
//! ```text
//! <chunks> <zstd(JSON {"key": …, "blobs": [[id, offset, len, raw], …]})> <u32 LE length> "AMLPACK\x01"
//! ```
//!
//! Packs written before trailers existed end with a chunk; they are told apart by the magic.

use std::io::Read;

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::Repository;
use super::chunker::MAX_SIZE;
use super::index::{Blob, MAX_STORED, pack_path};

const MAGIC: &[u8; 8] = b"AMLPACK\x01";
const TAIL: u64 = 12;
/// Far above the trailer of any pack (a 32 MiB pack holds a few thousand chunks).
const MAX_TRAILER: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Trailer {
    /// The pack's data key, age-encrypted (base64), in an encrypted repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub blobs: Vec<Blob>,
}

/// What a pack says it holds.
#[derive(Debug)]
pub enum Holdings {
    Trailer(Trailer),
    /// Written before trailers: only the index says what it holds.
    Legacy,
    /// It claims a trailer that cannot be read: what it holds is unknown.
    Unreadable(String),
}

impl Trailer {
    /// The bytes to append after the pack's last chunk.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("trailer serializes");
        let mut out = zstd::bulk::compress(&json, 3).expect("compressing in memory");
        let len = u32::try_from(out.len()).expect("a trailer is far below 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(MAGIC);
        out
    }

    /// Parses a trailer's body; every chunk it lists must lie before `chunks_end`, where the
    /// trailer starts.
    fn decode(body: &[u8], chunks_end: u64) -> std::result::Result<Trailer, String> {
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(MAX_TRAILER).read_to_end(&mut json))
            .map_err(|e| format!("the trailer does not decompress: {e}"))?;
        let t: Trailer =
            serde_json::from_slice(&json).map_err(|e| format!("the trailer is not valid: {e}"))?;
        for Blob(id, offset, len, raw) in &t.blobs {
            let end = offset.checked_add(u64::from(*len));
            if end.is_none_or(|e| e > chunks_end)
                || *len as usize > MAX_STORED
                || *raw as usize > MAX_SIZE
                || id.len() != 64
                || !id.bytes().all(|c| c.is_ascii_hexdigit())
            {
                return Err(format!(
                    "the trailer's chunk {id:?} at {offset} ({len} bytes) lies outside the pack's chunks"
                ));
            }
        }
        Ok(t)
    }
}

impl Repository {
    /// What pack `id` (of `size` bytes, as the store lists it) says it holds.
    pub(crate) async fn pack_holdings(
        &self,
        id: &str,
        size: u64,
    ) -> std::result::Result<Holdings, object_store::Error> {
        if size < TAIL {
            return Ok(Holdings::Legacy);
        }
        let path = pack_path(id);
        let tail = self.store.get_range(&path, size - TAIL..size).await?;
        if tail.len() as u64 != TAIL || &tail[4..] != MAGIC {
            return Ok(Holdings::Legacy);
        }
        let len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
        if len > MAX_TRAILER || len > size - TAIL {
            return Ok(Holdings::Unreadable(format!(
                "its trailer claims {len} bytes"
            )));
        }
        let start = size - TAIL - len;
        let body = self.store.get_range(&path, start..size - TAIL).await?;
        Ok(match Trailer::decode(&body, start) {
            Ok(t) => Holdings::Trailer(t),
            Err(e) => Holdings::Unreadable(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailer_reads_back_and_refuses_chunks_beyond_the_pack() {
        let t = Trailer {
            key: None,
            blobs: vec![
                Blob("a".repeat(64), 0, 10, 20),
                Blob("b".repeat(64), 10, 5, 5),
            ],
        };
        let bytes = t.encode();
        let body = &bytes[..bytes.len() - TAIL as usize];
        assert_eq!(Trailer::decode(body, 15).unwrap(), t);
        assert!(Trailer::decode(body, 14).is_err());
        assert!(Trailer::decode(b"not zstd", 15).is_err());
        assert_eq!(&bytes[bytes.len() - 8..], MAGIC);
    }
}
