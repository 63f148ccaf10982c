//! The snapshot repository: a location (a path, `file://…`, `s3://bucket/prefix`) behind the
//! `object_store` abstraction, one code path for all of them, laid out as
//!
//! ```text
//! <repo>/amlmigrate-repo.json                  format marker (and encryption settings)
//! <repo>/data/<xx>/<pack>                      format 2: packs of compressed chunks, each ending
//!                                              with a trailer listing them; written first
//! <repo>/index/<name>.json                     format 2: chunk → pack, offset; after its packs
//! <repo>/snapshots/<id>/refs                   format 2: the chunk ids it uses, for prune
//! <repo>/snapshots/<id>/parts/<part>.tar.zst   format 1: one object per part
//! <repo>/snapshots/<id>/manifest.json          written last, create-only: it commits the snapshot
//! <repo>/locks/<id>.json                       who uses the repository (backup, readers, prune)
//! <repo>/pins/<snapshot>/<holder>              snapshots prune keeps whatever the policy
//! ```
//!
//! A snapshot folder without a manifest does not exist for any reader. The marker's format
//! says what a backup writes (1: one object per part, 2: deduplicated chunks); readers decide
//! per part, so a repository of either format reads snapshots of both.

pub mod check;
mod chunked;
pub mod chunker;
pub mod crypt;
mod format1;
pub mod id;
pub mod index;
pub mod lock;
pub mod manifest;
pub mod multipart;
mod open;
pub mod pack;
pub mod pins;
mod private;
mod refs;
mod runs;
pub mod s3;
pub mod sign;
pub mod sink;
pub mod sweep;
mod trailer;
pub mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::archive::EntryReader;
use crate::error::{Error, Result};
use crypt::{Encryption, EncryptionConfig};
pub use manifest::Manifest;
use manifest::Part;
pub use open::EncryptionIntent;

/// How old a leftover of a failed backup (an uncommitted snapshot folder, an incomplete S3
/// upload) must be before prune removes it: a younger one may belong to a running backup.
pub const LEFTOVER_AGE_HOURS: i64 = 24;

const MARKER: &str = "amlmigrate-repo.json";
/// What new repositories are: 2, deduplicated chunks in packs.
const REPO_FORMAT: u32 = 2;
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";
/// Upload buffer and parallelism: bounds memory at about `capacity * (concurrency + 1)`.
const UPLOAD_CAPACITY: usize = 6 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;
/// Far above any real manifest (a few KiB per table and entry).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// The index as last loaded, with the names of the index objects it came from.
type IndexCache = (Vec<String>, Arc<index::Index>);

/// How a repository is created.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Encrypt to these age recipients (empty: not encrypted).
    pub recipients: Vec<String>,
    /// 1 writes today's plain parts (for tools that read only those); default 2.
    pub format: Option<u32>,
}

#[derive(Clone)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    location: String,
    loc: Location,
    /// The bucket and endpoint of an S3 repository, for messages.
    s3: Option<s3::S3Target>,
    signing: sign::Signing,
    format: u32,
    encryption_config: Option<EncryptionConfig>,
    encryption: Option<Arc<Encryption>>,
    keys: Arc<crypt::Keys>,
    /// The backups of this process that have not committed yet, by snapshot id.
    sessions: Arc<Mutex<HashMap<String, Arc<pack::Session>>>>,
    index_cache: Arc<tokio::sync::Mutex<Option<IndexCache>>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.location)
    }
}

/// Where a repository lives, parsed from `--repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(std::path::PathBuf),
    /// `s3://bucket/prefix`: the prefix has no leading or trailing slash and may be empty.
    S3 {
        bucket: String,
        prefix: String,
    },
}

impl Location {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::input(
                "no repository given: pass --repo PATH (or set AMLMIGRATE_REPO)",
            ));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            return Ok(Location::Local(rest.into()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                })
                && !bucket.starts_with(['-', '.'])
                && !bucket.ends_with(['-', '.']);
            if !valid {
                return Err(Error::input(format!(
                    "repository {s}: {bucket:?} is not a valid S3 bucket name (3-63 characters: \
                     lowercase letters, digits, '-' and '.'); use s3://BUCKET/PREFIX"
                )));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|seg| seg == "." || seg == "..") || prefix.contains("//") {
                return Err(Error::input(format!(
                    "repository {s}: the prefix {prefix:?} has empty, '.' or '..' segments; use s3://BUCKET/a/b"
                )));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::input(format!(
                "repository {s}: the {scheme}:// scheme is not supported; use a local path, file://PATH or s3://BUCKET/PREFIX"
            )));
        }
        Ok(Location::Local(s.into()))
    }

    fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

impl Repository {
    pub fn location(&self) -> &str {
        &self.location
    }

    /// 1: one object per part; 2: deduplicated chunks in packs.
    pub fn format(&self) -> u32 {
        self.format
    }

    fn session(&self, snapshot: &str) -> Arc<pack::Session> {
        self.sessions
            .lock()
            .expect("sessions")
            .entry(snapshot.to_string())
            .or_insert_with(pack::Session::new)
            .clone()
    }

    fn store_err(&self, context: impl Into<String>, e: object_store::Error) -> Error {
        if let Some(t) = &self.s3 {
            if let Some(err) = s3::classify(t, &e) {
                return err;
            }
            // The message is rendered now so that the secret can be scrubbed from it.
            return Error::Connection(t.scrub(format!(
                "repository {} (endpoint {}): {}: {e}",
                self.location,
                t.endpoint,
                context.into()
            )));
        }
        Error::Store {
            repo: self.location.clone(),
            context: context.into(),
            source: e,
        }
    }

    fn snapshot_path(id: &str, rel: &str) -> Path {
        let mut p = Path::from("snapshots").join(id);
        for seg in rel.split('/') {
            p = p.join(seg);
        }
        p
    }

    /// Committed snapshot ids, oldest first.
    pub async fn snapshot_ids(&self) -> Result<Vec<String>> {
        let mut ids = self
            .folders_holding("snapshots", "manifest.json", "listing snapshots")
            .await?;
        ids.retain(|id| id::is_snapshot_id(id));
        Ok(ids)
    }

    /// Names of the folders `<top>/<name>/` that hold `file`, sorted.
    async fn folders_holding(&self, top: &str, file: &str, what: &str) -> Result<Vec<String>> {
        let prefix = Path::from(top);
        let mut names: Vec<String> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|meta| async move {
                let parts: Vec<_> = meta.location.parts().collect();
                Ok(match parts.as_slice() {
                    [_, name, f] if f.as_ref() == file => Some(name.as_ref().to_string()),
                    _ => None,
                })
            })
            .try_collect()
            .await
            .map_err(|e| self.store_err(what, e))?;
        names.sort();
        Ok(names)
    }

    /// Resolves `latest`, an id or a unique id prefix to a committed snapshot id.
    pub async fn resolve(&self, wanted: &str) -> Result<String> {
        let ids = self.snapshot_ids().await?;
        id::resolve(&ids, wanted).map(str::to_string).map_err(|e| match e {
            id::ResolveError::Empty => Error::input(format!(
                "repository {} holds no snapshots yet; create one with `amlmigrate backup`",
                self.location
            )),
            id::ResolveError::NotFound => Error::input(format!(
                "snapshot {wanted} not found in {}; `amlmigrate snapshots --repo {}` lists them",
                self.location, self.location
            )),
            id::ResolveError::Ambiguous(c) => Error::input(format!(
                "snapshot prefix {wanted} is ambiguous: it matches {}; give more characters",
                c.join(", ")
            )),
        })
    }

    /// The manifest as stored, the bytes its signature covers.
    async fn manifest_bytes(&self, id: &str) -> Result<bytes::Bytes> {
        let path = Self::snapshot_path(id, "manifest.json");
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_err(format!("reading manifest of snapshot {id}"), e))?;
        // A manifest is read whole: one of absurd size is damage, not an allocation.
        if got.meta.size > MAX_MANIFEST_BYTES {
            return Err(Error::damaged(
                format!("snapshot {id}"),
                "manifest.json",
                format!(
                    "{} bytes, more than any manifest ({MAX_MANIFEST_BYTES} at most)",
                    got.meta.size
                ),
            ));
        }
        got.bytes()
            .await
            .map_err(|e| self.store_err(format!("reading manifest of snapshot {id}"), e))
    }

    /// A snapshot's manifest; its signature is checked first when the handle trusts a key or
    /// the repository requires signatures ([`sign::check`]).
    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        let bytes = self.manifest_bytes(id).await?;
        self.check_signature(id, &bytes).await?;
        self.parse_manifest(id, &bytes)
    }

    fn parse_manifest(&self, id: &str, bytes: &[u8]) -> Result<Manifest> {
        // Encrypted repositories store the manifest age-encrypted; its signature covers the
        // stored (encrypted) bytes and was checked before this.
        let plain;
        let bytes: &[u8] = if bytes.starts_with(AGE_MAGIC) {
            let Some(enc) = self.encryption().filter(|e| e.can_read()) else {
                return Err(Error::input(format!(
                    "snapshot {id} in {} is encrypted: give --identity FILE (the age identity of a recipient of the repository)",
                    self.location
                )));
            };
            plain = enc.age_decrypt(bytes, &format!("the manifest of snapshot {id}"))?;
            &plain[..]
        } else if self.is_encrypted() {
            // An encrypting backup never writes one: whoever wrote it can write the bucket.
            return Err(Error::Untrusted(format!(
                "snapshot {id} in {}: its manifest is stored in clear, but the repository is \
                 encrypted ({MARKER}) and its backups encrypt every manifest; it was not written \
                 by a backup of this repository, so it is not read",
                self.location
            )));
        } else {
            bytes
        };
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            Error::damaged(
                format!("snapshot {id}"),
                "manifest.json",
                format!("not a valid manifest: {e}"),
            )
        })?;
        if m.id != id {
            // A signed manifest copied into another snapshot's folder is still not that snapshot.
            return Err(Error::damaged(
                format!("snapshot {id}"),
                "manifest.json",
                format!("the manifest is that of snapshot {}", m.id),
            ));
        }
        if m.format > manifest::MANIFEST_FORMAT {
            return Err(Error::input(format!(
                "snapshot {id} has manifest format {}, newer than this amlmigrate understands ({}); upgrade amlmigrate",
                m.format,
                manifest::MANIFEST_FORMAT
            )));
        }
        Ok(m)
    }

    /// sha256 of a snapshot's `manifest.json` exactly as stored (what `sha256sum` prints).
    pub async fn manifest_sha256(&self, id: &str) -> Result<String> {
        use sha2::Digest;
        let path = Self::snapshot_path(id, "manifest.json");
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_err(format!("reading manifest of snapshot {id}"), e))?
            .bytes()
            .await
            .map_err(|e| self.store_err(format!("reading manifest of snapshot {id}"), e))?;
        Ok(hex::encode(sha2::Sha256::digest(&bytes)))
    }

    pub async fn manifests(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for id in self.snapshot_ids().await? {
            out.push(self.manifest(&id).await?);
        }
        Ok(out)
    }

    /// Commits a snapshot. Format 2: the index of the packs this backup wrote (its packs are
    /// complete by now), then the chunk ids it uses (`refs`, for prune), then the manifest,
    /// encrypted in an encrypted repository. The manifest is written create-only and last: it
    /// is the commit point.
    pub async fn commit(&self, m: &Manifest) -> Result<()> {
        let session = self.sessions.lock().expect("sessions").get(&m.id).cloned();
        if let Some(session) = &session {
            let packs = session.take_packs();
            if !packs.is_empty() {
                self.write_index_file(&format!("{}.json", m.id), &index::IndexFile { packs })
                    .await?;
            }
        }
        if m.parts.iter().any(|p| p.chunked) {
            self.put_create(
                &Self::snapshot_path(&m.id, REFS),
                refs::encode(m),
                &format!("writing the chunk list of snapshot {}", m.id),
            )
            .await?;
        }
        let mut body = serde_json::to_vec_pretty(m).expect("manifest serializes");
        if let Some(enc) = self.encryption() {
            body = enc.age_encrypt(&body)?;
        }
        self.sign_before_commit(&m.id, &body).await?;
        let path = Self::snapshot_path(&m.id, "manifest.json");
        let done = match self
            .store
            .put_opts(
                &path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Refused(format!(
                "snapshot {} already has a manifest; refusing to overwrite a committed snapshot",
                m.id
            ))),
            Err(e) => Err(self.store_err(format!("committing snapshot {}", m.id), e)),
        };
        if done.is_ok() {
            self.sessions.lock().expect("sessions").remove(&m.id);
        }
        done
    }

    async fn put_create(&self, path: &Path, body: Vec<u8>, what: &str) -> Result<()> {
        self.store
            .put_opts(
                path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.store_err(what, e))
    }

    /// Reads one part of a snapshot on a blocking thread, checking every entry against the
    /// manifest as [`crate::archive::read_part`] does; `visit` sees every entry with `state`,
    /// which is handed back at the end.
    pub async fn read_part<S, F>(&self, id: &str, part: &Part, state: S, visit: F) -> Result<S>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &mut EntryReader<'_>) -> Result<()> + Send + 'static,
    {
        Ok(self.read_part_counted(id, part, state, visit).await?.0)
    }

    /// [`Self::read_part`], also giving the bytes it fetched from the store: the whole object
    /// of a format 1 part; the pack ranges of a deduplicated one, however little it added.
    pub async fn read_part_counted<S, F>(
        &self,
        id: &str,
        part: &Part,
        state: S,
        visit: F,
    ) -> Result<(S, u64)>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &mut EntryReader<'_>) -> Result<()> + Send + 'static,
    {
        if part.chunked {
            self.read_part_v2(part, state, visit).await
        } else {
            let state = self.read_part_v1(id, part, state, visit).await?;
            // The reader checked the object is exactly the manifest's size, read whole.
            Ok((state, part.size))
        }
    }

    /// Every snapshot folder, committed or not, with the time of its newest object (for prune).
    pub async fn snapshot_folders(&self) -> Result<Vec<SnapshotInfo>> {
        use std::collections::BTreeMap;
        let prefix = Path::from("snapshots");
        let mut by_id: BTreeMap<String, SnapshotInfo> = BTreeMap::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.store_err("listing snapshots", e))?;
            let parts: Vec<_> = meta.location.parts().collect();
            let Some(id) = parts.get(1).map(|p| p.as_ref().to_string()) else {
                continue;
            };
            let Some(time) = id::id_time(&id).filter(|_| id::is_snapshot_id(&id)) else {
                continue;
            };
            let file = (parts.len() == 3).then(|| parts[2].as_ref().to_string());
            let e = by_id.entry(id.clone()).or_insert(SnapshotInfo {
                id,
                time,
                committed: false,
                verified: false,
                last_modified: meta.last_modified,
                chunked: false,
            });
            e.committed |= file.as_deref() == Some("manifest.json");
            e.verified |= file.as_deref() == Some(runs::VERIFIED);
            e.chunked |= file.as_deref() == Some(REFS);
            e.last_modified = e.last_modified.max(meta.last_modified);
        }
        Ok(by_id
            .into_values()
            .map(|mut s| {
                s.verified &= s.committed;
                s
            })
            .collect())
    }

    /// Removes a snapshot: the manifest first, so that a half-removed snapshot never looks
    /// complete, then its parts. Chunks it alone used go with the next sweep of prune.
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let manifest = Self::snapshot_path(id, "manifest.json");
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(self.store_err(format!("removing the manifest of snapshot {id}"), e));
            }
        }
        let prefix = Path::from("snapshots").join(id);
        self.delete_prefix(&prefix)
            .await
            .map_err(|e| self.store_err(format!("removing the parts of snapshot {id}"), e))?;
        if let Location::Local(root) = &self.loc {
            let dir = root.join("snapshots").join(id);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io(format!("removing folder {}", dir.display()), e))?;
            }
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &Path) -> std::result::Result<(), object_store::Error> {
        let locations = self.store.list(Some(prefix)).map_ok(|m| m.location).boxed();
        self.store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Best-effort removal of an uncommitted snapshot's objects (and the packs its backup
    /// wrote) after a failed or interrupted backup. Never called on a committed snapshot.
    pub async fn discard_uncommitted(&self, id: &str) {
        let manifest = Self::snapshot_path(id, "manifest.json");
        if self.store.head(&manifest).await.is_ok() {
            return;
        }
        let session = self.sessions.lock().expect("sessions").remove(id);
        if let Some(session) = session {
            // Packs an index already lists stay (another backup may reuse their chunks from
            // now on); prune removes them when no snapshot does. The others nobody knows.
            for pack in session.pack_ids() {
                let _ = self.store.delete(&index::pack_path(&pack)).await;
            }
        }
        let _ = self.delete_prefix(&Path::from("snapshots").join(id)).await;
        if let Location::Local(root) = &self.loc {
            // The local store leaves empty folders behind; remove them so nothing looks half there.
            let _ = std::fs::remove_dir_all(root.join("snapshots").join(id));
        }
    }
}

/// Beside a format 2 snapshot's manifest: the chunk ids it uses.
const REFS: &str = "refs";

/// One snapshot folder of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: String,
    /// When the snapshot was taken (from its id).
    pub time: chrono::DateTime<chrono::Utc>,
    /// Has a manifest (a leftover of a failed or running backup has not).
    pub committed: bool,
    /// A `verify` re-read it and found it whole.
    pub verified: bool,
    /// The newest object of the folder, to age uncommitted leftovers.
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// Has a chunk list (format 2).
    pub chunked: bool,
}

pub fn tool_version() -> String {
    format!("amlmigrate {}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_paths_and_file_urls_and_reject_unknown_schemes() {
        assert_eq!(
            Location::parse("/tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("s3://my-bucket/a/b/").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            Location::parse("s3://my-bucket").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
        assert!(Location::parse("s3://My_Bucket/x").is_err());
        assert!(Location::parse("s3://bucket/a/../b").is_err());
        assert!(
            Location::parse("gs://bucket")
                .unwrap_err()
                .to_string()
                .contains("gs://")
        );
        assert!(Location::parse(" ").is_err());
    }
}
