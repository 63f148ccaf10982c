//! The snapshot repository: a location (a path, `file://…`, `s3://bucket/prefix`) behind the
//! `object_store` abstraction, one code path for all of them, laid out as
//!
//! ```text
//! <repo>/amlmigrate-repo.json                 format marker
//! <repo>/snapshots/<id>/parts/<part>.tar.zst   data, written first
//! <repo>/snapshots/<id>/manifest.json          written last, create-only: it commits the snapshot
//! ```
//!
//! A snapshot folder without a manifest does not exist for any reader.

pub mod id;
pub mod manifest;
pub mod multipart;
mod private;
mod runs;
pub mod s3;
pub mod sign;
pub mod sink;

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::archive::{self, EntryReader};
use crate::error::{Error, Result};
pub use manifest::Manifest;
use manifest::Part;

const MARKER: &str = "amlmigrate-repo.json";
const REPO_FORMAT: u32 = 1;
/// Upload buffer and parallelism: bounds memory at about `capacity * (concurrency + 1)`.
const UPLOAD_CAPACITY: usize = 6 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;
/// Far above any real manifest (a few KiB per table and entry).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: u32,
    created: chrono::DateTime<chrono::Utc>,
    tool: String,
}

#[derive(Clone)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    location: String,
    loc: Location,
    /// The bucket and endpoint of an S3 repository, for messages.
    s3: Option<s3::S3Target>,
    signing: sign::Signing,
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
    /// Opens an existing repository; a missing location or one without the marker is an error.
    pub async fn open(location: &str) -> Result<Self> {
        let loc = Location::parse(location)?;
        let repo = Self::connect(&loc, false)?;
        repo.probe().await?;
        match repo.store.head(&Path::from(MARKER)).await {
            Ok(_) => {
                repo.check_marker().await?;
                Ok(repo)
            }
            Err(object_store::Error::NotFound { .. }) => Err(Error::input(format!(
                "{} is not an amlmigrate repository ({MARKER} is missing): check --repo; `amlmigrate backup` creates a repository at a new or empty location",
                repo.location
            ))),
            Err(e) => Err(repo.store_err("reading the repository marker", e)),
        }
    }

    /// Opens a repository, creating it when the location does not exist or is empty.
    /// Returns whether it was created.
    pub async fn open_or_create(location: &str) -> Result<(Self, bool)> {
        let loc = Location::parse(location)?;
        let repo = Self::connect(&loc, true)?;
        repo.probe().await?;
        match repo.store.head(&Path::from(MARKER)).await {
            Ok(_) => {
                repo.check_marker().await?;
                return Ok((repo, false));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(repo.store_err("reading the repository marker", e)),
        }
        let mut listing = repo.store.list(None);
        if let Some(first) = listing.next().await {
            drop(listing);
            // Another backup may have created the repository since we looked: then it is one.
            if repo.store.head(&Path::from(MARKER)).await.is_ok() {
                repo.check_marker().await?;
                return Ok((repo, false));
            }
            let what = match first {
                Ok(meta) => format!("it holds {}", meta.location),
                Err(e) => format!("listing it failed: {e}"),
            };
            return Err(Error::Refused(format!(
                "{} is not empty and is not an amlmigrate repository ({what}); choose an empty folder for --repo",
                repo.location
            )));
        }
        let marker = Marker {
            format: REPO_FORMAT,
            created: chrono::Utc::now(),
            tool: tool_version(),
        };
        let body = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        match repo
            .store
            .put_opts(
                &Path::from(MARKER),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok((repo, true)),
            Err(e) => Err(repo.store_err("creating the repository marker", e)),
        }
    }

    fn connect(loc: &Location, create: bool) -> Result<Self> {
        match loc {
            Location::Local(path) => {
                if create {
                    private::create_dir_private(path).map_err(|e| {
                        Error::io(format!("creating repository folder {}", path.display()), e)
                    })?;
                } else if !path.is_dir() {
                    return Err(Error::input(format!(
                        "repository {} does not exist: check --repo (or AMLMIGRATE_REPO)",
                        path.display()
                    )));
                }
                let abs = std::fs::canonicalize(path)
                    .map_err(|e| Error::io(format!("opening repository {}", path.display()), e))?;
                let store = LocalFileSystem::new_with_prefix(&abs).map_err(|e| Error::Store {
                    repo: loc.display(),
                    context: "opening".into(),
                    source: e,
                })?;
                Ok(Repository {
                    store: Arc::new(private::PrivateFs::new(store)),
                    location: abs.display().to_string(),
                    loc: Location::Local(abs),
                    s3: None,
                    signing: Default::default(),
                })
            }
            Location::S3 { bucket, prefix } => {
                let (store, target) = s3::build(bucket)?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(PrefixStore::new(store, prefix.as_str()))
                };
                Ok(Repository {
                    store,
                    location: loc.display(),
                    loc: loc.clone(),
                    s3: Some(target),
                    signing: Default::default(),
                })
            }
        }
    }

    /// For S3: one list request, so a missing bucket, wrong credentials or an unreachable
    /// endpoint are reported as such before anything else happens.
    async fn probe(&self) -> Result<()> {
        let Some(t) = &self.s3 else {
            return Ok(());
        };
        match self.store.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                Err(s3::classify(t, &e)
                    .unwrap_or_else(|| self.store_err("listing the repository", e)))
            }
        }
    }

    async fn check_marker(&self) -> Result<()> {
        let bytes = self
            .store
            .get(&Path::from(MARKER))
            .await
            .map_err(|e| self.store_err("reading the repository marker", e))?
            .bytes()
            .await
            .map_err(|e| self.store_err("reading the repository marker", e))?;
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!(
                "{}: {MARKER} is not valid ({e}); this is not an amlmigrate repository",
                self.location
            ))
        })?;
        if marker.format > REPO_FORMAT {
            return Err(Error::input(format!(
                "{}: repository format {} is newer than this amlmigrate understands ({REPO_FORMAT}); upgrade amlmigrate",
                self.location, marker.format
            )));
        }
        Ok(())
    }

    pub fn location(&self) -> &str {
        &self.location
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

    /// Writes the manifest create-only; this is the commit point of a snapshot.
    pub async fn commit(&self, m: &Manifest) -> Result<()> {
        let body = serde_json::to_vec_pretty(m).expect("manifest serializes");
        self.sign_before_commit(&m.id, &body).await?;
        let path = Self::snapshot_path(&m.id, "manifest.json");
        match self
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
        }
    }

    /// A blocking writer that streams one object into the repository (multipart where the store
    /// supports it). Call from a blocking thread; `finish` completes the upload.
    pub fn object_writer(&self, id: &str, rel: &str, rt: Handle) -> UploadWriter {
        let path = Self::snapshot_path(id, rel);
        let inner = BufWriter::with_capacity(self.store.clone(), path, UPLOAD_CAPACITY)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        UploadWriter {
            rt,
            inner: Some(inner),
        }
    }

    /// Size and a byte stream of one object of a snapshot.
    pub async fn object_reader(
        &self,
        id: &str,
        rel: &str,
    ) -> Result<(u64, Pin<Box<dyn AsyncRead + Send>>)> {
        let path = Self::snapshot_path(id, rel);
        let got = self.store.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::damaged(
                rel,
                "(whole part)",
                format!("missing from snapshot {id} in {}", self.location),
            ),
            e => self.store_err(format!("reading {rel} of snapshot {id}"), e),
        })?;
        let size = got.meta.size;
        let stream = got.into_stream().map_err(io::Error::other);
        Ok((size, Box::pin(StreamReader::new(stream))))
    }

    /// The stored size of one object of a snapshot.
    pub async fn object_size(&self, id: &str, rel: &str) -> Result<u64> {
        let path = Self::snapshot_path(id, rel);
        match self.store.head(&path).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(Error::damaged(
                rel,
                "(whole part)",
                format!("missing from snapshot {id} in {}", self.location),
            )),
            Err(e) => Err(self.store_err(format!("reading {rel} of snapshot {id}"), e)),
        }
    }

    /// Reads one part of a snapshot on a blocking thread (tar and zstd are synchronous),
    /// checking it against the manifest as [`archive::read_part`] does; `visit` sees every entry
    /// with `state`, which is handed back at the end.
    pub async fn read_part<S, F>(&self, id: &str, part: &Part, state: S, mut visit: F) -> Result<S>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &mut EntryReader<'_>) -> Result<()> + Send + 'static,
    {
        let (_, reader) = self.object_reader(id, &part.path).await?;
        let (part, name) = (part.clone(), part.name.clone());
        tokio::task::spawn_blocking(move || {
            let mut state = state;
            archive::read_part(SyncIoBridge::new(reader), &part, |entry| {
                visit(&mut state, entry)
            })?;
            Ok(state)
        })
        .await
        .map_err(|e| Error::other(format!("the reader of part {name} failed: {e}")))?
    }

    /// Every snapshot folder, committed or not, with the time of its newest object (for prune).
    pub async fn snapshot_folders(&self) -> Result<Vec<crate::prune::SnapshotInfo>> {
        use std::collections::BTreeMap;
        let prefix = Path::from("snapshots");
        let mut by_id: BTreeMap<String, (bool, bool, chrono::DateTime<chrono::Utc>)> =
            BTreeMap::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.store_err("listing snapshots", e))?;
            let parts: Vec<_> = meta.location.parts().collect();
            let Some(id) = parts.get(1).map(|p| p.as_ref().to_string()) else {
                continue;
            };
            if !id::is_snapshot_id(&id) {
                continue;
            }
            let file = (parts.len() == 3).then(|| parts[2].as_ref().to_string());
            let e = by_id
                .entry(id)
                .or_insert((false, false, meta.last_modified));
            e.0 |= file.as_deref() == Some("manifest.json");
            e.1 |= file.as_deref() == Some(runs::VERIFIED);
            e.2 = e.2.max(meta.last_modified);
        }
        Ok(by_id
            .into_iter()
            .filter_map(|(id, (committed, verified, last_modified))| {
                Some(crate::prune::SnapshotInfo {
                    time: crate::prune::id_time(&id)?,
                    id,
                    committed,
                    verified: committed && verified,
                    last_modified,
                })
            })
            .collect())
    }

    /// Removes a snapshot: the manifest first, so that a half-removed snapshot never looks
    /// complete, then its parts.
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let manifest = Self::snapshot_path(id, "manifest.json");
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(self.store_err(format!("removing the manifest of snapshot {id}"), e));
            }
        }
        let prefix = Path::from("snapshots").join(id);
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
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

    /// Best-effort removal of an uncommitted snapshot's objects after a failed or interrupted
    /// backup. Never called on a committed snapshot.
    pub async fn discard_uncommitted(&self, id: &str) {
        let prefix = Path::from("snapshots").join(id);
        let manifest = Self::snapshot_path(id, "manifest.json");
        if self.store.head(&manifest).await.is_ok() {
            return;
        }
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        let _ = self
            .store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await;
        if let Location::Local(root) = &self.loc {
            // The local store leaves empty folders behind; remove them so nothing looks half there.
            let _ = std::fs::remove_dir_all(root.join("snapshots").join(id));
        }
    }
}

pub fn tool_version() -> String {
    format!("amlmigrate {}", env!("CARGO_PKG_VERSION"))
}

/// `std::io::Write` over an object-store upload, for the blocking archive thread.
pub struct UploadWriter {
    rt: Handle,
    inner: Option<BufWriter>,
}

impl UploadWriter {
    pub fn finish(&mut self) -> io::Result<()> {
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("upload already closed"))?;
        self.rt.block_on(inner.shutdown())
    }

    pub fn abort(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            let _ = self.rt.block_on(inner.abort());
        }
    }
}

impl Write for UploadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("upload closed"))?;
        self.rt.block_on(inner.write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        // An upload that was neither finished nor aborted is abandoned: abort it so no staging
        // object is left behind.
        self.abort();
    }
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
