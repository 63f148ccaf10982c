//! Content-defined chunking (FastCDC 2020) and chunk ids.
//!
//! Sizes come from measurements on a 10M-row metrics TSV with 1 % new rows the next night
//! (notes/rust-crates.md): a 64 KiB average stored 1.2 % new bytes, 1 MiB 3 %, a fixed 1 MiB
//! split 88 %. Smaller averages dedup slightly better but multiply index entries and per-chunk
//! overhead; 64 KiB keeps a 10 GB artifact tree at about 160 000 index entries.

use std::io::{self, Read};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const MIN_SIZE: usize = 16 * 1024;
pub const AVG_SIZE: usize = 64 * 1024;
pub const MAX_SIZE: usize = 256 * 1024;

/// A chunk id: sha256 of the plain bytes, or a keyed hash (HMAC-SHA256) in an encrypted
/// repository, so that ids do not reveal content.
#[derive(Clone)]
pub enum Hasher {
    Plain,
    Keyed([u8; 32]),
}

impl Hasher {
    pub fn id(&self, data: &[u8]) -> String {
        match self {
            Hasher::Plain => hex::encode(Sha256::digest(data)),
            Hasher::Keyed(key) => hex::encode(hmac_sha256(key, data)),
        }
    }
}

/// HMAC-SHA256 (RFC 2104): the keyed chunk ids of an encrypted repository, and the check value
/// of its key.
pub fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Cuts `reader` into chunks and hands each to `f`; returns the bytes read.
pub fn for_each_chunk(
    reader: impl Read,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut total = 0u64;
    for chunk in fastcdc::v2020::StreamCDC::new(reader, MIN_SIZE, AVG_SIZE, MAX_SIZE) {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        total += chunk.data.len() as u64;
        f(&chunk.data)?;
    }
    Ok(total)
}

/// The same cut points for bytes already in memory, without copying them.
pub fn for_each_slice(data: &[u8], mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    for c in fastcdc::v2020::FastCDC::new(data, MIN_SIZE, AVG_SIZE, MAX_SIZE) {
        f(&data[c.offset..c.offset + c.length])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts_of(data: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        for_each_slice(data, |c| {
            v.push(Hasher::Plain.id(c));
            Ok(())
        })
        .unwrap();
        v
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn an_insertion_changes_only_the_chunks_around_it() {
        let data = pseudo_random(4 << 20, 7);
        let mut changed = data.clone();
        changed.splice(2_000_000..2_000_000, b"a new row\n".iter().copied());
        let (a, b) = (cuts_of(&data), cuts_of(&changed));
        let same = b.iter().filter(|id| a.contains(id)).count();
        assert!(a.len() > 30, "{}", a.len());
        assert!(same + 3 >= b.len(), "{same} of {} chunks kept", b.len());
    }

    #[test]
    fn streaming_and_in_memory_cut_the_same_chunks() {
        let data = pseudo_random(1 << 20, 3);
        let mut streamed = Vec::new();
        let n = for_each_chunk(&data[..], |c| {
            streamed.push(Hasher::Plain.id(c));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(streamed, cuts_of(&data));
    }

    #[test]
    fn keyed_ids_differ_from_plain_ones_and_match_openssl_hmac() {
        let data = b"same bytes";
        assert_ne!(Hasher::Plain.id(data), Hasher::Keyed([1; 32]).id(data));
        // The value `openssl dgst -sha256 -mac HMAC -macopt hexkey:0b…0b` prints.
        let mac = hmac_sha256(&[0x0b; 32], b"Hi There");
        assert_eq!(
            hex::encode(mac),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }
}
