//! The snapshot manifest: small JSON, written last and create-only. Its presence commits the
//! snapshot. It never holds a password: sources are recorded through redacted locations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// 2: parts may be chunked (format 2 repositories).
pub const MANIFEST_FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// `amlmigrate <version>` that wrote the snapshot.
    pub tool: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default)]
    pub mysql: Vec<MysqlDatabase>,
    /// What the Kubernetes part holds, when the backup read a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeSummary>,
    /// Things the operator was told during the backup (non-transactional tables, ...).
    #[serde(default)]
    pub notices: Vec<String>,
}

impl Manifest {
    /// What the snapshot added to the repository: its stored objects (format 1), the chunks
    /// it was the first to store (deduplicated parts).
    pub fn total_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// The size of what it holds: every entry, uncompressed, however little of it is new.
    pub fn logical_size(&self) -> u64 {
        self.parts
            .iter()
            .flat_map(|p| &p.entries)
            .map(|e| e.size)
            .sum()
    }

    pub fn total_rows(&self) -> u64 {
        self.mysql
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| t.rows)
            .sum()
    }

    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// `mysql`, later `kubernetes`, `mlflow-artifacts`.
    pub kind: String,
    /// The name of a MySQL source (a snapshot may hold several: `aml`, `kfp`, `mlflow`). A
    /// snapshot of an older version has one unnamed MySQL source, read as `mysql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it came from, without credentials (`mysql://root@127.0.0.1:3306`).
    pub location: String,
    #[serde(default)]
    pub server_version: Option<String>,
    /// How the point-in-time consistency was obtained.
    #[serde(default)]
    pub consistency: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    /// Relative to the snapshot folder: `parts/<name>.tar.zst`.
    pub path: String,
    pub kind: String,
    /// Compressed size and sha256 of the stored object, as `sha256sum` prints it.
    pub size: u64,
    pub sha256: String,
    /// Tar entries in archive order, with their uncompressed size and sha256.
    pub entries: Vec<Entry>,
    /// Format 2: the entries are chunks in packs (`size` is what the part added to the
    /// repository, `sha256` is empty); `path` is the file name `export` writes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chunked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Format 2: the ids of its chunks, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MysqlDatabase {
    pub name: String,
    /// The name of the MySQL source it came from (absent in snapshots of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub part: String,
    pub charset: String,
    pub collation: String,
    pub tables: Vec<MysqlTable>,
    #[serde(default)]
    pub views: Vec<String>,
    #[serde(default)]
    pub triggers: Vec<String>,
    #[serde(default)]
    pub routines: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
    /// Every collation the schema names; restore maps those the target lacks.
    #[serde(default)]
    pub collations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MysqlTable {
    pub name: String,
    /// Folder of its chunks inside the part: `mysql/<db>/<dir>/<n>.tsv`.
    pub dir: String,
    pub engine: String,
    /// Stored (non-generated) columns in the order of the chunk fields.
    pub columns: Vec<String>,
    pub rows: u64,
    /// Uncompressed bytes of its chunks.
    pub bytes: u64,
    pub chunks: u32,
    /// sha256 over all of its chunks, concatenated in order.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KubeSummary {
    pub part: String,
    /// The user namespaces the backup covered (profile namespaces, or those given).
    pub namespaces: Vec<String>,
    pub objects: u64,
    pub kinds: Vec<KubeKind>,
    /// Catalog kinds the cluster does not serve (skipped, not fatal).
    #[serde(default)]
    pub not_served: Vec<String>,
    /// Secrets left out because no encryption recipient was given (`Secret ns/name`).
    #[serde(default)]
    pub left_out: Vec<String>,
    /// Secrets stored encrypted to the age recipients.
    #[serde(default)]
    pub encrypted: u64,
    /// Claims in the PVC index.
    pub pvcs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KubeKind {
    pub cluster: crate::kube::Role,
    pub kind: String,
    pub api_version: String,
    pub objects: u64,
    /// False: kept as a record only (jobs, plugin ModuleInfos).
    pub restore: bool,
}
