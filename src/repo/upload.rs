//! A blocking `std::io::Write` over an object-store upload (multipart where the store supports
//! it), for the threads that tar, chunk and compress.

use std::io::{self, Write};

use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

/// `std::io::Write` over an object-store upload, for the blocking archive thread.
pub struct UploadWriter {
    pub(super) rt: Handle,
    pub(super) inner: Option<BufWriter>,
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
