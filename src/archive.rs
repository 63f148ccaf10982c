//! Parts: a tar archive compressed with zstd, with a sha256 of the stored bytes and of every
//! entry. Operators can check a part with `sha256sum` and unpack it with
//! `tar -I zstd -xf part.tar.zst`.
//!
//! Both directions are synchronous (tar and zstd are): run them on a blocking thread.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::repo::manifest::{Entry, Part};

pub fn sha256_hex(h: Sha256) -> String {
    hex::encode(h.finalize())
}

/// Counts and hashes what passes through to the inner writer.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_parts(self) -> (W, u64, String) {
        (self.inner, self.count, sha256_hex(self.hasher))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a finished part is: its stored size and sha256, and its entries.
#[derive(Debug, Clone)]
pub struct PartInfo {
    pub size: u64,
    pub sha256: String,
    pub entries: Vec<Entry>,
    /// Stored as chunks in packs (format 2), not as one object.
    pub chunked: bool,
}

/// Writes one part: entries go into a tar stream, compressed with zstd, hashed on the way out.
pub struct PartWriter<W: Write> {
    tar: tar::Builder<zstd::stream::write::Encoder<'static, HashingWriter<W>>>,
    entries: Vec<Entry>,
    mtime: u64,
}

impl<W: Write> PartWriter<W> {
    pub fn new(sink: W, level: i32, mtime: u64) -> io::Result<Self> {
        let mut enc = zstd::stream::write::Encoder::new(HashingWriter::new(sink), level)?;
        enc.include_checksum(true)?;
        // One worker compresses while this thread keeps building the tar stream.
        enc.multithread(1)?;
        let mut tar = tar::Builder::new(enc);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(PartWriter {
            tar,
            entries: Vec::new(),
            mtime,
        })
    }

    pub fn append(&mut self, path: &str, data: &[u8]) -> io::Result<Entry> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, path, data)?;
        let mut h = Sha256::new();
        h.update(data);
        let entry = Entry {
            path: path.to_string(),
            size: data.len() as u64,
            sha256: sha256_hex(h),
            chunks: Vec::new(),
        };
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// Appends `size` bytes streamed from `reader` (artifacts can be far larger than memory).
    /// A source that changes size while it is read is an error, never a silently short entry.
    pub fn append_reader(&mut self, path: &str, size: u64, f: impl Read) -> io::Result<Entry> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let mut reader = HashingReader {
            inner: f.take(size),
            hasher: Sha256::new(),
            count: 0,
        };
        self.tar.append_data(&mut header, path, &mut reader)?;
        if reader.count != size {
            return Err(io::Error::other(format!(
                "{path} changed while it was read ({} of {size} bytes)",
                reader.count
            )));
        }
        let entry = Entry {
            path: path.to_string(),
            size,
            sha256: sha256_hex(reader.hasher),
            chunks: Vec::new(),
        };
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// The sink, for aborting an upload.
    pub fn sink_mut(&mut self) -> &mut W {
        self.tar.get_mut().get_mut().get_mut()
    }

    pub fn finish(self) -> io::Result<(W, PartInfo)> {
        let PartWriter { tar, entries, .. } = self;
        let enc = tar.into_inner()?;
        let hashing = enc.finish()?;
        let (sink, size, sha256) = hashing.into_parts();
        Ok((
            sink,
            PartInfo {
                size,
                sha256,
                entries,
                chunked: false,
            },
        ))
    }
}

/// Hashes and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn into_parts(self) -> (u64, String) {
        (self.count, sha256_hex(self.hasher))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// One entry's bytes. At end of data it checks size and sha256 against the manifest and
/// returns an `InvalidData` error instead of EOF when they differ, so a consumer that streams
/// the bytes somewhere (a `LOAD DATA`) fails before it can commit damaged data.
pub struct EntryReader<'a> {
    inner: &'a mut dyn Read,
    part: &'a str,
    expected: &'a Entry,
    hasher: Sha256,
    count: u64,
    checked: bool,
    damage: Rc<RefCell<Option<String>>>,
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let msg = format!("unreadable after {} bytes: {e}", self.count);
                *self.damage.borrow_mut() = Some(msg.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
        };
        if n == 0 {
            if self.checked {
                return Ok(0);
            }
            let problem = if self.count != self.expected.size {
                Some(format!(
                    "truncated: {} bytes, the manifest says {}",
                    self.count, self.expected.size
                ))
            } else {
                let got = sha256_hex(std::mem::take(&mut self.hasher));
                // An empty hash in the manifest is a mismatch like any other, never "nothing
                // to check": whoever can edit the manifest could otherwise blank it out.
                (got != self.expected.sha256).then(|| {
                    format!(
                        "sha256 mismatch: content is {got}, the manifest says {}",
                        self.expected.sha256
                    )
                })
            };
            self.checked = true;
            if let Some(msg) = problem {
                *self.damage.borrow_mut() = Some(msg.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl EntryReader<'_> {
    pub fn entry(&self) -> &Entry {
        self.expected
    }

    /// The whole entry in memory, when the manifest declares at most `limit` bytes for it.
    /// The declared size is checked before anything is read, and no more than it is read: a
    /// forged entry that compresses a GiB of zeros into a few KiB is refused before it can
    /// fill memory.
    pub fn read_bounded(&mut self, limit: u64) -> Result<Vec<u8>> {
        let declared = self.expected.size;
        let path = self.expected.path.clone();
        if declared > limit {
            return Err(Error::damaged(
                self.part,
                &path,
                format!(
                    "the manifest declares {declared} bytes, more than the {limit} a reader \
                     holds in memory for one entry; no backup writes one that large, so the \
                     snapshot was altered"
                ),
            ));
        }
        let mut buf = Vec::with_capacity(declared as usize);
        let part = self.part;
        (&mut *self)
            .take(declared + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::damaged(part, &path, e.to_string()))?;
        if buf.len() as u64 > declared {
            return Err(Error::damaged(
                part,
                &path,
                format!("longer than the {declared} bytes the manifest declares"),
            ));
        }
        Ok(buf)
    }
}

/// The most a reader holds in memory of one stored Kubernetes object (the API server stores
/// at most 1.5 MiB per object).
pub const MAX_OBJECT_ENTRY: u64 = 16 << 20;
/// The most a reader holds in memory of one index entry (`objects.json`, `pvc-index.json`).
pub const MAX_INDEX_ENTRY: u64 = 256 << 20;
/// The most a reader holds in memory of all the entries of one part it reads whole.
pub const MAX_PART_IN_MEMORY: u64 = 1 << 30;

/// Refuses a part whose entries together declare more than `limit` bytes, before reading it
/// into memory.
pub fn check_part_size(part: &Part, limit: u64) -> Result<()> {
    let total: u64 = part
        .entries
        .iter()
        .map(|e| e.size)
        .fold(0, u64::saturating_add);
    if total > limit {
        return Err(Error::damaged(
            &part.name,
            "(all)",
            format!(
                "its entries declare {total} bytes, more than the {limit} a reader holds in \
                 memory for one part; no backup writes one that large, so the snapshot was \
                 altered"
            ),
        ));
    }
    Ok(())
}

/// Hands one entry's bytes (`inner`) to `visit` through an [`EntryReader`] that checks them
/// against `want`, drains what the visitor leaves, and reports damage naming part and entry.
pub fn visit_entry<F>(part: &str, inner: &mut dyn Read, want: &Entry, visit: &mut F) -> Result<()>
where
    F: FnMut(&mut EntryReader<'_>) -> Result<()>,
{
    let damage = Rc::new(RefCell::new(None));
    let mut reader = EntryReader {
        inner,
        part,
        expected: want,
        hasher: Sha256::new(),
        count: 0,
        checked: false,
        damage: damage.clone(),
    };
    let visited = visit(&mut reader);
    let drained = visited.and_then(|_| {
        io::copy(&mut reader, &mut io::sink())
            .map(|_| ())
            .map_err(|e| Error::io("reading", e))
    });
    if let Some(msg) = damage.borrow_mut().take() {
        return Err(Error::damaged(part, &want.path, msg));
    }
    drained
}

/// Reads a part from `raw`, checking every entry and the whole part against the manifest, and
/// hands each entry to `visit` in archive order. The visitor should read the entry to its end
/// (that is when its checksum is checked); whatever it leaves is read and checked afterwards.
///
/// Damage is reported as [`Error::Damaged`] naming the part and the first damaged entry.
pub fn read_part<R, F>(raw: R, part: &Part, mut visit: F) -> Result<()>
where
    R: Read,
    F: FnMut(&mut EntryReader<'_>) -> Result<()>,
{
    let hashing = HashingReader {
        inner: raw,
        hasher: Sha256::new(),
        count: 0,
    };
    let name = part.name.as_str();
    let decoder = zstd::stream::read::Decoder::new(hashing)
        .map_err(|e| Error::damaged(name, "(start)", format!("cannot start decompression: {e}")))?;
    let mut archive = tar::Archive::new(decoder);
    let mut expected = part.entries.iter();
    let mut last = String::from("(start)");
    {
        let entries = archive
            .entries()
            .map_err(|e| Error::damaged(name, &last, format!("not a readable tar stream: {e}")))?;
        for item in entries {
            let mut entry = item.map_err(|e| {
                Error::damaged(name, format!("after {last}"), format!("unreadable: {e}"))
            })?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(want) = expected.next() else {
                return Err(Error::damaged(
                    name,
                    &path,
                    "entry is not listed in the manifest",
                ));
            };
            if want.path != path {
                return Err(Error::damaged(
                    name,
                    &path,
                    format!("expected entry {} at this position", want.path),
                ));
            }
            visit_entry(name, &mut entry, want, &mut visit)?;
            last = path;
        }
    }
    if let Some(missing) = expected.next() {
        return Err(Error::damaged(
            name,
            &missing.path,
            format!("missing: the archive ends after {last}"),
        ));
    }
    let decoder = archive.into_inner();
    let mut rest = decoder.finish();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| Error::damaged(name, "(end)", format!("unreadable: {e}")))?;
    let hashing = rest.into_inner();
    if hashing.count != part.size {
        return Err(Error::damaged(
            name,
            "(whole part)",
            format!(
                "size is {} bytes, the manifest says {}",
                hashing.count, part.size
            ),
        ));
    }
    let sha = sha256_hex(hashing.hasher);
    if sha != part.sha256 {
        return Err(Error::damaged(
            name,
            "(whole part)",
            format!("sha256 is {sha}, the manifest says {}", part.sha256),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[(&str, &[u8])]) -> (Vec<u8>, Part) {
        let mut w = PartWriter::new(Vec::new(), 3, 0).unwrap();
        for (p, d) in entries {
            w.append(p, d).unwrap();
        }
        let (bytes, info) = w.finish().unwrap();
        let part = Part {
            name: "test".into(),
            path: "parts/test.tar.zst".into(),
            kind: "mysql".into(),
            size: info.size,
            sha256: info.sha256,
            entries: info.entries,
            chunked: false,
        };
        (bytes, part)
    }

    fn read_all(bytes: &[u8], part: &Part) -> Result<Vec<(String, Vec<u8>)>> {
        let mut seen = Vec::new();
        read_part(bytes, part, |r| {
            let mut data = Vec::new();
            r.read_to_end(&mut data).map_err(|e| Error::io("test", e))?;
            seen.push((r.entry().path.clone(), data));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn a_part_round_trips_its_entries_and_checksums() {
        let long = "mysql/db/".to_string() + &"t".repeat(150) + "/000001.tsv";
        let (bytes, part) = build(&[("mysql/db/schema.sql", b"CREATE"), (&long, b"1\t\\N\n")]);
        assert_eq!(part.size, bytes.len() as u64);
        let seen = read_all(&bytes, &part).unwrap();
        assert_eq!(
            seen[0],
            ("mysql/db/schema.sql".to_string(), b"CREATE".to_vec())
        );
        assert_eq!(seen[1].0, long);
    }

    #[test]
    fn a_flipped_byte_names_the_part_and_entry() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let (mut bytes, part) = build(&[("a.sql", b"x"), ("mysql/db/t/000001.tsv", &data)]);
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        match read_all(&bytes, &part) {
            Err(Error::Damaged { part, entry, .. }) => {
                assert_eq!(part, "test");
                assert_eq!(entry, "mysql/db/t/000001.tsv");
            }
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn a_truncated_part_is_damage() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_be_bytes()).collect();
        let (bytes, part) = build(&[("mysql/db/t/000001.tsv", &data), ("z.sql", b"end")]);
        let cut = &bytes[..bytes.len() - 100];
        assert!(matches!(read_all(cut, &part), Err(Error::Damaged { .. })));
    }

    #[test]
    fn a_manifest_that_disagrees_with_the_content_names_the_entry() {
        let (bytes, mut part) = build(&[("a.sql", b"one"), ("b.sql", b"two")]);
        part.entries[1].sha256 = "0".repeat(64);
        match read_all(&bytes, &part) {
            Err(Error::Damaged { entry, detail, .. }) => {
                assert_eq!(entry, "b.sql");
                assert!(detail.contains("sha256"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_entry_hash_in_the_manifest_is_a_mismatch_not_a_pass() {
        let (bytes, mut part) = build(&[("a.sql", b"one"), ("b.sql", b"two")]);
        part.entries[0].sha256 = String::new();
        match read_all(&bytes, &part) {
            Err(Error::Damaged { entry, detail, .. }) => {
                assert_eq!(entry, "a.sql");
                assert!(detail.contains("sha256"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
