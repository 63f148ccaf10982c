//! An artifact tree in S3 or an S3-compatible store (MinIO, where AML's MLflow keeps its
//! artifacts), through `object_store`. Its endpoint and credentials are either those of the
//! repository (the AWS_* variables and `AWS_PROFILE`), or, with `?profile=NAME` in the
//! location, those of that profile of the shared AWS files alone, so the two stay apart.
//!
//! The calls here block: they run on blocking threads (a copy's worker, a snapshot part's
//! reader), driving the runtime through its handle.

use std::io::Read;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::{Error, Result};
use crate::repo::s3::S3Target;

/// Files up to this size are uploaded in one create-only request (an object that appeared
/// meanwhile is never replaced); larger ones as multipart uploads of this part size, after a
/// check that the name is free.
const PART: usize = 6 * 1024 * 1024;

#[derive(Clone)]
pub struct RemoteTree {
    store: Arc<dyn ObjectStore>,
    target: S3Target,
    /// `s3://bucket/prefix` (with `?profile=…`), for messages.
    pub name: String,
    /// Where the credentials come from, for messages.
    settings: String,
    handle: Handle,
}

impl RemoteTree {
    pub fn connect(
        bucket: &str,
        prefix: &str,
        profile: Option<&str>,
        name: String,
    ) -> Result<Self> {
        let (store, target, settings) = match profile {
            Some(p) => {
                let built = crate::repo::s3::build_for_profile(bucket, p).ok_or_else(|| {
                    Error::input(format!(
                        "artifact store {name}: profile {p} is in neither ~/.aws/config nor \
                         ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE); add \
                         it with endpoint_url, region, aws_access_key_id and aws_secret_access_key"
                    ))
                })??;
                (
                    built.0,
                    built.1,
                    format!("profile {p} of the shared AWS files"),
                )
            }
            None => {
                let (s, t) = crate::repo::s3::build(bucket)?;
                (s, t, "the AWS_* variables and AWS_PROFILE".to_string())
            }
        };
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(RemoteTree {
            store,
            target,
            name,
            settings,
            handle: Handle::current(),
        })
    }

    fn err(&self, context: String, e: object_store::Error) -> Error {
        let (bucket, endpoint) = (&self.target.bucket, &self.target.endpoint);
        let text = self.target.scrub(e.to_string());
        let msg = |m: String| self.target.scrub(m);
        if text.contains("169.254.169.254") {
            // With no keys at all, the client asks the EC2 instance metadata service.
            return Error::Connection(msg(format!(
                "artifact store {}: no S3 credentials found in {} (the client fell back to the EC2 \
                 instance metadata service, which refused); give the keys there",
                self.name, self.settings
            )));
        }
        if text.contains("NoSuchBucket") {
            return Error::input(msg(format!(
                "artifact store {}: bucket {bucket} does not exist at {endpoint}; create it first \
                 or correct the location",
                self.name
            )));
        }
        match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Error::Connection(msg(format!(
                "artifact store {}: {endpoint} refused access to bucket {bucket} while {context} \
                 ({text}); check the credentials of {}",
                self.name, self.settings
            ))),
            _ if text.contains("InvalidAccessKeyId") || text.contains("SignatureDoesNotMatch") => {
                Error::Connection(msg(format!(
                    "artifact store {}: {endpoint} rejected the credentials of {} for bucket \
                     {bucket}",
                    self.name, self.settings
                )))
            }
            object_store::Error::Generic { .. } => Error::Connection(msg(format!(
                "artifact store {}: cannot reach {endpoint} while {context} ({}); check the \
                 endpoint of {}",
                self.name,
                crate::error::chain_text(&e),
                self.settings
            ))),
            other => Error::Store {
                repo: self.name.clone(),
                context,
                source: other,
            },
        }
    }

    /// The object key of `rel`, as it is (`Path::from` would percent-encode non-ASCII names
    /// such as MLflow's CJK artifact names, which the store keeps verbatim).
    fn path(&self, rel: &str) -> Result<Path> {
        Path::parse(rel).map_err(|e| {
            Error::input(format!(
                "artifact {rel} in {}: not a usable object name: {e}",
                self.name
            ))
        })
    }

    /// Every object as (relative path, size), sorted.
    pub fn list(&self) -> Result<Vec<(String, u64)>> {
        let mut out: Vec<(String, u64)> = self.handle.block_on(async {
            self.store
                .list(None)
                .map_ok(|m| (m.location.to_string(), m.size))
                .try_collect()
                .await
                .map_err(|e| self.err("listing artifacts".into(), e))
        })?;
        out.sort();
        Ok(out)
    }

    /// A reader of an object and its size; `None` when there is none. Usable on any blocking
    /// thread (the bytes stream from the runtime).
    pub async fn get(&self, rel: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        let got = match self.store.get(&self.path(rel)?).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(format!("reading {rel}"), e)),
        };
        let size = got.meta.size;
        let stream = got.into_stream().map_err(std::io::Error::other);
        let reader = SyncIoBridge::new_with_handle(StreamReader::new(stream), self.handle.clone());
        Ok(Some((Box::new(reader), size)))
    }

    pub fn open(&self, rel: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        self.handle.block_on(self.get(rel))
    }

    /// Uploads a new object from `src` (create-only when small; see [`PART`]), hashing on the
    /// way. Returns size and sha256 of what was sent; the caller reads it back.
    pub fn write(&self, rel: &str, src: &mut dyn Read) -> Result<(u64, String)> {
        let path = self.path(rel)?;
        let mut hashed = crate::archive::HashingWriter::new(std::io::sink());
        let read_err = |e| Error::io(format!("reading {rel} to copy it"), e);
        let first = fill(src, PART, &mut hashed).map_err(read_err)?;
        if first.len() < PART {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            return match self.handle.block_on(self.store.put_opts(
                &path,
                PutPayload::from(first),
                opts,
            )) {
                Ok(_) => {
                    let (_, n, sum) = hashed.into_parts();
                    Ok((n, sum))
                }
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Err(Error::Refused(format!(
                    "artifact {rel} appeared in {} while it was copied; nothing there was overwritten",
                    self.name
                ))),
                Err(e) => Err(self.err(format!("writing {rel}"), e)),
            };
        }
        let mut writer = BufWriter::with_capacity(self.store.clone(), path, PART);
        let mut chunk = first;
        // Reading and sending take turns: the source may itself be a bridge onto the runtime
        // (S3 to S3), which must not be driven from inside another `block_on`.
        let sent: Result<()> = loop {
            if chunk.is_empty() {
                break self
                    .handle
                    .block_on(writer.shutdown())
                    .map_err(|e| Error::io(format!("writing {rel} into {}", self.name), e));
            }
            if let Err(e) = self.handle.block_on(writer.write_all(&chunk)) {
                break Err(Error::io(format!("writing {rel} into {}", self.name), e));
            }
            chunk = match fill(src, PART, &mut hashed) {
                Ok(c) => c,
                Err(e) => break Err(read_err(e)),
            };
        };
        if let Err(e) = sent {
            let _ = self.handle.block_on(writer.abort());
            return Err(e);
        }
        let (_, n, sum) = hashed.into_parts();
        Ok((n, sum))
    }
}

/// Reads up to `max` bytes (fewer only at the end), hashing them.
fn fill(
    src: &mut dyn Read,
    max: usize,
    hashed: &mut crate::archive::HashingWriter<std::io::Sink>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(max.min(1 << 20));
    src.take(max as u64).read_to_end(&mut buf)?;
    std::io::Write::write_all(hashed, &buf)?;
    Ok(buf)
}
