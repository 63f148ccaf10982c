//! Format 1: each part is one `snapshots/<id>/parts/<part>.tar.zst` object. Still read (every
//! repository written before format 2) and still written into format 1 repositories.

use std::io;
use std::pin::Pin;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncRead;
use tokio::runtime::Handle;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::manifest::Part;
use super::upload::UploadWriter;
use super::{Repository, UPLOAD_CAPACITY, UPLOAD_CONCURRENCY};
use crate::archive::{self, EntryReader};
use crate::error::{Error, Result};

impl Repository {
    /// A blocking writer that streams one object into the repository (multipart where the store
    /// supports it). Call from a blocking thread; `finish` completes the upload.
    pub fn object_writer(&self, id: &str, rel: &str, rt: Handle) -> UploadWriter {
        let path = Self::snapshot_path(id, rel);
        self.upload_writer(path, rt)
    }

    /// A blocking writer streaming into the object at `path`; `finish` completes it.
    pub fn upload_writer(&self, path: object_store::path::Path, rt: Handle) -> UploadWriter {
        let inner = BufWriter::with_capacity(self.store.clone(), path.clone(), UPLOAD_CAPACITY)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        UploadWriter::new(self.store.clone(), path, rt, inner)
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
    pub(super) async fn read_part_v1<S, F>(
        &self,
        id: &str,
        part: &Part,
        state: S,
        mut visit: F,
    ) -> Result<S>
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
}
