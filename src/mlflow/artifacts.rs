//! Copying an MLflow artifact tree between stores with checksums. Local folders now; S3 comes
//! through the same `object_store` abstraction.
//!
//! Every file is streamed, hashed on the way, and read back from the destination to compare.
//! A destination file that already holds the same bytes is skipped (so a re-run after an
//! interruption resumes); one that holds different bytes stops the copy, never overwritten.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::archive::sha256_hex;
use crate::error::{Error, Result};
use crate::progress::{Event, ProgressRef};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ArtifactReport {
    pub from: String,
    pub to: String,
    pub files: u64,
    pub bytes: u64,
    /// Files the destination already held with the same content.
    pub already_there: u64,
}

fn local(location: &str, create: bool) -> Result<(Arc<dyn ObjectStore>, String)> {
    let path = location.strip_prefix("file://").unwrap_or(location);
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(Error::input(format!(
            "artifact store {location}: the {scheme}:// scheme is not supported by this version; use a local path"
        )));
    }
    if create {
        std::fs::create_dir_all(path).map_err(|e| Error::io(format!("creating {path}"), e))?;
    } else if !std::path::Path::new(path).is_dir() {
        return Err(Error::input(format!(
            "artifact folder {path} does not exist: check --artifacts-from"
        )));
    }
    let store = LocalFileSystem::new_with_prefix(path).map_err(|e| Error::Store {
        repo: path.to_string(),
        context: "opening the artifact folder".into(),
        source: e,
    })?;
    Ok((Arc::new(store), path.to_string()))
}

async fn hash_of(store: &Arc<dyn ObjectStore>, path: &Path, name: &str) -> Result<(u64, String)> {
    let got = store.get(path).await.map_err(|e| Error::Store {
        repo: name.to_string(),
        context: format!("reading {path}"),
        source: e,
    })?;
    let mut stream = got.into_stream();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.try_next().await.map_err(|e| Error::Store {
        repo: name.to_string(),
        context: format!("reading {path}"),
        source: e,
    })? {
        h.update(&chunk);
        n += chunk.len() as u64;
    }
    Ok((n, sha256_hex(h)))
}

pub async fn copy_tree(
    from: &str,
    to: &str,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<ArtifactReport> {
    let (src, src_name) = local(from, false)?;
    let (dst, dst_name) = local(to, true)?;
    let started = std::time::Instant::now();
    let mut report = ArtifactReport {
        from: src_name.clone(),
        to: dst_name.clone(),
        ..Default::default()
    };
    progress.event(Event::TableStarted {
        db: "mlflow".into(),
        table: "artifacts".into(),
        est_rows: 0,
    });
    let mut listing = src.list(None);
    while let Some(meta) = listing.try_next().await.map_err(|e| Error::Store {
        repo: src_name.clone(),
        context: "listing artifacts".into(),
        source: e,
    })? {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted(
                "artifact copy stopped; files copied so far are complete and a re-run skips them"
                    .into(),
            ));
        }
        let path = meta.location;
        if dst.head(&path).await.is_ok() {
            let (a, b) = (
                hash_of(&src, &path, &src_name).await?,
                hash_of(&dst, &path, &dst_name).await?,
            );
            if a != b {
                return Err(Error::Refused(format!(
                    "artifact {path} already exists in {dst_name} with different content; nothing there was overwritten"
                )));
            }
            report.already_there += 1;
            report.files += 1;
            report.bytes += a.0;
            continue;
        }
        let got = src.get(&path).await.map_err(|e| Error::Store {
            repo: src_name.clone(),
            context: format!("reading {path}"),
            source: e,
        })?;
        let mut stream = got.into_stream();
        let mut writer = BufWriter::with_capacity(dst.clone(), path.clone(), 6 * 1024 * 1024);
        let mut h = Sha256::new();
        let mut n = 0u64;
        let copied: Result<()> = async {
            while let Some(chunk) = stream.try_next().await.map_err(|e| Error::Store {
                repo: src_name.clone(),
                context: format!("reading {path}"),
                source: e,
            })? {
                h.update(&chunk);
                n += chunk.len() as u64;
                writer
                    .write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(format!("writing {path} into {dst_name}"), e))?;
            }
            writer
                .shutdown()
                .await
                .map_err(|e| Error::io(format!("writing {path} into {dst_name}"), e))
        }
        .await;
        if let Err(e) = copied {
            let _ = writer.abort().await;
            return Err(e);
        }
        let want = sha256_hex(h);
        let (m, got) = hash_of(&dst, &path, &dst_name).await?;
        if m != n || got != want {
            return Err(Error::damaged(
                "artifacts",
                path.to_string(),
                format!(
                    "the copy in {dst_name} reads back as {got} ({m} bytes), the source is {want} ({n} bytes)"
                ),
            ));
        }
        report.files += 1;
        report.bytes += n;
        progress.event(Event::TableProgress {
            db: "mlflow".into(),
            table: "artifacts".into(),
            rows: report.files,
            bytes: report.bytes,
        });
    }
    progress.event(Event::TableFinished {
        db: "mlflow".into(),
        table: "artifacts".into(),
        rows: report.files,
        bytes: report.bytes,
        elapsed: started.elapsed(),
    });
    Ok(report)
}
