//! The backup job: one snapshot from any mix of sources (named MySQL servers, a Kubernetes
//! cluster, an MLflow artifact folder). Each source writes its own parts; the manifest is
//! committed last, so a failed or interrupted backup leaves no snapshot, and its partial upload
//! is removed.

use std::collections::BTreeMap;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::kube::backup::{KubeBackup, KubeBackupOptions, backup_kube};
use crate::mysql::backup::{MysqlBackupOptions, backup_mysql};
use crate::progress::ProgressRef;
use crate::repo::lock::{LockKind, RepoLock};
use crate::repo::manifest::{Manifest, MysqlDatabase, Source};
use crate::repo::{Repository, id::new_snapshot_id, tool_version};

/// The name a MySQL source has when none was given, and the name of the one MySQL source of a
/// snapshot written before sources had names.
pub const DEFAULT_MYSQL_SOURCE: &str = "mysql";

/// One named MySQL server of a backup (the article names three: the AML job records, Kubeflow
/// Pipelines' MySQL, MLflow 2.6's MySQL).
#[derive(Debug, Clone)]
pub struct MysqlSource {
    pub name: String,
    pub options: MysqlBackupOptions,
}

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// MySQL sources, each with its own URL and databases; a database name appears in one only.
    pub mysql: Vec<MysqlSource>,
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
    if opts.mysql.is_empty() && opts.kube.is_none() && opts.mlflow_artifacts.is_none() {
        return Err(Error::input(
            "nothing to back up: give --mysql, --kube and/or --mlflow-artifacts",
        ));
    }
    repo.check_signing_ready().await?;
    let started = Utc::now();
    // Every MySQL source answers and holds its databases before anything is written.
    let mysql = resolve_sources(&opts.mysql).await?;
    let opts = &BackupOptions {
        mysql,
        ..opts.clone()
    };
    repo.check_writable()?;
    // Prune must not sweep the packs of this backup before it commits, nor chunks it reuses.
    let lock = if repo.format() >= 2 {
        Some(
            repo.lock(LockKind::Shared, "backup", LOCK_WAIT, &cancel)
                .await?,
        )
    } else {
        None
    };
    let id = new_snapshot_id(started);
    let progress = crate::progress::logged(progress, "backup");
    tracing::info!(
        snapshot = %id,
        repository = repo.location(),
        "backup: writing snapshot {id} into {}",
        repo.location()
    );
    let result =
        write_and_commit(repo, &id, started, opts, &progress, &cancel, lock.as_ref()).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

/// How long a backup waits for a running prune.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

async fn write_and_commit(
    repo: &Repository,
    id: &str,
    started: chrono::DateTime<Utc>,
    opts: &BackupOptions,
    progress: &ProgressRef,
    cancel: &CancellationToken,
    lock: Option<&RepoLock>,
) -> Result<Manifest> {
    let id = id.to_string();
    match write_parts(repo, &id, opts, progress, cancel).await {
        Ok(mut manifest) => {
            if cancel.is_cancelled() {
                repo.discard_uncommitted(&id).await;
                return Err(Error::Interrupted(
                    "backup stopped before commit; no snapshot was written".into(),
                ));
            }
            manifest.started = started;
            manifest.finished = Utc::now();
            if let Err(e) = lock.map_or(Ok(()), RepoLock::check) {
                repo.discard_uncommitted(&id).await;
                return Err(e);
            }
            if let Err(e) = repo.commit(&manifest).await {
                repo.discard_uncommitted(&id).await;
                return Err(e);
            }
            tracing::info!(
                snapshot = %id,
                parts = manifest.parts.len(),
                bytes = manifest.total_size(),
                rows = manifest.total_rows(),
                "backup: committed snapshot {id}: {} part(s), {} bytes, {} rows",
                manifest.parts.len(),
                manifest.total_size(),
                manifest.total_rows()
            );
            Ok(manifest)
        }
        Err(e) => {
            tracing::info!(snapshot = %id, "backup: failed; removing the uncommitted parts of {id}");
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
        format: repo.format().min(crate::repo::manifest::MANIFEST_FORMAT),
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
    for src in &opts.mysql {
        tracing::info!(
            source = src.name,
            databases = ?src.options.databases,
            "backup: MySQL source {} ({})",
            src.name,
            src.options.mysql
        );
        let mut b = backup_mysql(repo, id, &src.options, progress, cancel).await?;
        for p in &b.parts {
            tracing::info!(
                part = p.name,
                bytes = p.size,
                "backup: wrote part {}",
                p.path
            );
        }
        for db in &mut b.databases {
            db.source = Some(src.name.clone());
        }
        b.source.name = Some(src.name.clone());
        m.parts.extend(b.parts);
        m.mysql.extend(b.databases);
        m.sources.push(b.source);
        m.notices.extend(b.notices);
    }
    if let Some(dir) = &opts.mlflow_artifacts {
        let part =
            crate::mlflow::artifacts::backup_part(repo, id, dir, opts.zstd_level, progress, cancel)
                .await?;
        m.sources.push(Source {
            kind: "mlflow-artifacts".into(),
            name: None,
            location: dir.to_string(),
            server_version: None,
            consistency: Some("files read after the database transaction ended".into()),
        });
        m.parts.push(part);
    }
    if let Some(ko) = &opts.kube {
        tracing::info!("backup: Kubernetes objects of the catalog");
        let KubeBackup {
            part,
            summary,
            sources,
            notices,
        } = backup_kube(repo, id, ko, opts.zstd_level, progress, cancel).await?;
        tracing::info!(
            part = part.name,
            bytes = part.size,
            objects = summary.objects,
            namespaces = ?summary.namespaces,
            "backup: wrote part {} ({} objects)",
            part.path,
            summary.objects
        );
        m.parts.push(part);
        m.sources.extend(sources);
        m.notices.extend(notices);
        m.kubernetes = Some(summary);
    }
    Ok(m)
}

/// Connects to each MySQL source and settles its database list: the databases it names must
/// exist there (the error names the source, the database and the closest it has), unnamed ones
/// mean every non-system database (or the URL's). No database may come from two sources (their
/// parts would collide), and names are unique.
async fn resolve_sources(sources: &[MysqlSource]) -> Result<Vec<MysqlSource>> {
    use crate::mysql::SYSTEM_DATABASES;
    let mut out: Vec<MysqlSource> = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for src in sources {
        if out.iter().any(|o| o.name == src.name) {
            return Err(Error::input(format!(
                "two MySQL sources are named {}; give each its own name (--mysql NAME=URL)",
                src.name
            )));
        }
        let url = &src.options.mysql;
        let mut conn = crate::mysql::connect(url).await?;
        let all: Vec<String> = crate::mysql::catalog::list_databases(&mut conn)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let _ = mysql_async::Conn::disconnect(conn).await;
        let user = || {
            all.iter()
                .map(String::as_str)
                .filter(|n| !SYSTEM_DATABASES.contains(&n.to_ascii_lowercase().as_str()))
        };
        let wanted: Vec<String> = match (&src.options.databases, &url.database) {
            (Some(list), _) => list.clone(),
            (None, Some(db)) => vec![db.clone()],
            (None, None) => all
                .iter()
                .filter(|n| !SYSTEM_DATABASES.contains(&n.to_ascii_lowercase().as_str()))
                .cloned()
                .collect(),
        };
        for db in &wanted {
            if !all.contains(db) {
                return Err(Error::input(format!(
                    "MySQL source {} ({url}): database {db} not found; {}",
                    src.name,
                    near(db, user())
                )));
            }
            if let Some(first) = owner.insert(db.clone(), src.name.clone()) {
                return Err(Error::input(format!(
                    "database {db} is in MySQL sources {first} and {}; a snapshot holds each database name once: take them in two snapshots",
                    src.name
                )));
            }
        }
        let mut options = src.options.clone();
        options.databases = Some(wanted);
        out.push(MysqlSource {
            name: src.name.clone(),
            options,
        });
    }
    Ok(out)
}

/// What to say about a database name the server does not have: the few names closest to it,
/// never every database on the server.
fn near<'a>(db: &str, user: impl Iterator<Item = &'a str> + Clone) -> String {
    let close = crate::closest::closest(db, user.clone(), 3);
    if !close.is_empty() {
        return format!("the closest it has: {}", close.join(", "));
    }
    match user.count() {
        0 => "it has no databases besides the system ones".to_string(),
        n => format!(
            "none of its {n} database(s) has a name close to it; list them with SHOW DATABASES"
        ),
    }
}

/// The MySQL source a database of a snapshot came from.
pub fn source_of(db: &MysqlDatabase) -> &str {
    db.source.as_deref().unwrap_or(DEFAULT_MYSQL_SOURCE)
}

/// The names of a snapshot's MySQL sources, in snapshot order.
pub fn mysql_sources(m: &Manifest) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for db in &m.mysql {
        if !out.contains(&source_of(db)) {
            out.push(source_of(db));
        }
    }
    out
}

/// The databases of one MySQL source of a snapshot; an unknown source is bad input naming the
/// sources it has.
pub fn databases_of<'a>(m: &'a Manifest, source: &str) -> Result<Vec<&'a MysqlDatabase>> {
    let dbs: Vec<&MysqlDatabase> = m.mysql.iter().filter(|d| source_of(d) == source).collect();
    if dbs.is_empty() {
        return Err(Error::input(format!(
            "snapshot {} has no MySQL source {source}; its sources: {}",
            m.id,
            mysql_sources(m).join(", ")
        )));
    }
    Ok(dbs)
}

pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The name of the part that holds an MLflow artifact tree, and the folder its entries live in.
pub const ARTIFACTS_PART: &str = crate::mlflow::artifacts::PART_NAME;
