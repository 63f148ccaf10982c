//! The backup job: one snapshot from any mix of sources (MySQL databases, a Kubernetes cluster,
//! an MLflow artifact folder). Each source writes its own parts; the manifest is committed last,
//! so a failed or interrupted backup leaves no snapshot, and its partial upload is removed.

use std::collections::BTreeMap;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::kube::backup::{KubeBackup, KubeBackupOptions, backup_kube};
use crate::mysql::backup::{MysqlBackupOptions, backup_mysql};
use crate::progress::ProgressRef;
use crate::repo::manifest::{Manifest, Source};
use crate::repo::{Repository, id::new_snapshot_id, tool_version};

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub mysql: Option<MysqlBackupOptions>,
    pub kube: Option<KubeBackupOptions>,
    /// An MLflow artifact tree (a folder or S3) to put into the snapshot as its own part, so
    /// that the snapshot alone can rebuild MLflow.
    pub mlflow_artifacts: Option<crate::mlflow::artifacts::ArtifactLocation>,
    pub tags: BTreeMap<String, String>,
    pub zstd_level: i32,
}

/// Runs a backup and commits the snapshot. On error or cancellation nothing is committed and
/// the partial upload is removed.
pub async fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: ProgressRef,
    cancel: CancellationToken,
) -> Result<Manifest> {
    if opts.mysql.is_none() && opts.kube.is_none() && opts.mlflow_artifacts.is_none() {
        return Err(Error::input(
            "nothing to back up: give --mysql, --kube and/or --mlflow-artifacts",
        ));
    }
    let started = Utc::now();
    let id = new_snapshot_id(started);
    match write_parts(repo, &id, opts, &progress, &cancel).await {
        Ok(mut manifest) => {
            if cancel.is_cancelled() {
                repo.discard_uncommitted(&id).await;
                return Err(Error::Interrupted(
                    "backup stopped before commit; no snapshot was written".into(),
                ));
            }
            manifest.started = started;
            manifest.finished = Utc::now();
            if let Err(e) = repo.commit(&manifest).await {
                repo.discard_uncommitted(&id).await;
                return Err(e);
            }
            Ok(manifest)
        }
        Err(e) => {
            repo.discard_uncommitted(&id).await;
            Err(e)
        }
    }
}

async fn write_parts(
    repo: &Repository,
    id: &str,
    opts: &BackupOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<Manifest> {
    let mut m = Manifest {
        format: crate::repo::manifest::MANIFEST_FORMAT,
        id: id.to_string(),
        started: Utc::now(),
        finished: Utc::now(),
        tool: tool_version(),
        hostname: hostname(),
        tags: opts.tags.clone(),
        sources: Vec::new(),
        parts: Vec::new(),
        mysql: Vec::new(),
        kubernetes: None,
        notices: Vec::new(),
    };
    if let Some(mo) = &opts.mysql {
        let b = backup_mysql(repo, id, mo, progress, cancel).await?;
        m.parts.extend(b.parts);
        m.mysql = b.databases;
        m.sources.push(b.source);
        m.notices.extend(b.notices);
    }
    if let Some(dir) = &opts.mlflow_artifacts {
        let part =
            crate::mlflow::artifacts::backup_part(repo, id, dir, opts.zstd_level, progress, cancel)
                .await?;
        m.sources.push(Source {
            kind: "mlflow-artifacts".into(),
            location: dir.to_string(),
            server_version: None,
            consistency: Some("files read after the database transaction ended".into()),
        });
        m.parts.push(part);
    }
    if let Some(ko) = &opts.kube {
        let KubeBackup {
            part,
            summary,
            sources,
            notices,
        } = backup_kube(repo, id, ko, opts.zstd_level, progress, cancel).await?;
        m.parts.push(part);
        m.sources.extend(sources);
        m.notices.extend(notices);
        m.kubernetes = Some(summary);
    }
    Ok(m)
}

pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The name of the part that holds an MLflow artifact tree, and the folder its entries live in.
pub const ARTIFACTS_PART: &str = crate::mlflow::artifacts::PART_NAME;
