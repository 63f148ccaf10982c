//! A blocking `std::io::Write` over an object-store upload (multipart where the store supports
//! it), for the threads that tar, chunk and compress.

use std::io::{self, Write};
use std::sync::Arc;

use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

/// `std::io::Write` over an object-store upload, for the blocking archive thread.
pub struct UploadWriter {
    rt: Handle,
    inner: Option<BufWriter>,
    store: Arc<dyn ObjectStore>,
    path: Path,
    written: u64,
}

impl UploadWriter {
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        rt: Handle,
        inner: BufWriter,
    ) -> Self {
        UploadWriter {
            rt,
            inner: Some(inner),
            store,
            path,
            written: 0,
        }
    }

    pub fn finish(&mut self) -> io::Result<()> {
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("upload already closed"))?;
        let Err(e) = self.rt.block_on(inner.shutdown()) else {
            return Ok(());
        };
        // The client retries a completion whose answer was lost (a dropped connection), and S3
        // answers the retry "no such upload" because the first one completed; the library then
        // reports that as a failure. The object being there, whole, says which it was.
        match self.rt.block_on(self.store.head(&self.path)) {
            Ok(meta) if meta.size == self.written => {
                tracing::debug!(
                    object = %self.path,
                    bytes = self.written,
                    "upload: completed although its confirmation was lost ({e})"
                );
                Ok(())
            }
            _ => Err(e),
        }
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
        self.written += buf.len() as u64;
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
