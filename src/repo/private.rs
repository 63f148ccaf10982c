//! A folder repository readable by its owner only: folders 0700, files 0600, whatever the
//! umask. A snapshot holds whole databases (and Secrets, encrypted or not); object_store's
//! `LocalFileSystem` would leave them 0644 in 0755 folders.
//!
//! Folders are created 0700 before the store writes into them, so nothing is ever reachable by
//! others; each file is narrowed to 0600 once it is in place.

use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path as FsPath, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents with mode 0700.
pub fn create_dir_private(path: &FsPath) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

#[derive(Debug)]
pub(super) struct PrivateFs {
    inner: LocalFileSystem,
}

impl PrivateFs {
    pub(super) fn new(inner: LocalFileSystem) -> Self {
        PrivateFs { inner }
    }

    /// The file `location` will be, with its folder created 0700.
    fn prepare(&self, location: &Path) -> Result<PathBuf> {
        let file = self.inner.path_to_filesystem(location)?;
        if let Some(dir) = file.parent() {
            create_dir_private(dir).map_err(|e| io_error(dir, e))?;
        }
        Ok(file)
    }
}

fn io_error(path: &FsPath, e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("{}: {e}", path.display()).into(),
    }
}

fn narrow(file: &FsPath) -> Result<()> {
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| io_error(file, e))
}

impl std::fmt::Display for PrivateFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Private({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for PrivateFs {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let file = self.prepare(location)?;
        let done = self.inner.put_opts(location, payload, opts).await?;
        narrow(&file)?;
        Ok(done)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let file = self.prepare(location)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(PrivateUpload { inner, file }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let file = self.prepare(to)?;
        self.inner.copy_opts(from, to, options).await?;
        narrow(&file)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let file = self.prepare(to)?;
        self.inner.rename_opts(from, to, options).await?;
        narrow(&file)
    }
}

#[derive(Debug)]
struct PrivateUpload {
    inner: Box<dyn MultipartUpload>,
    file: PathBuf,
}

#[async_trait]
impl MultipartUpload for PrivateUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let done = self.inner.complete().await?;
        narrow(&self.file)?;
        Ok(done)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
