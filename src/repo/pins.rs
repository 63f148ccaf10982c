//! Pins: `pins/<snapshot>/<holder>` objects holding the reason, so that prune keeps a snapshot
//! something still depends on (an unfinished upgrade run pins its pre-upgrade snapshot) without
//! knowing what that something is.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::Repository;
use crate::error::Result;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PinFile {
    reason: String,
    created: chrono::DateTime<chrono::Utc>,
}

impl Repository {
    /// Pins `snapshot` for `holder` (an upgrade run id); `reason` is what prune reports.
    pub async fn pin(&self, snapshot: &str, holder: &str, reason: &str) -> Result<()> {
        let body = PinFile {
            reason: reason.to_string(),
            created: chrono::Utc::now(),
        };
        self.store
            .put(
                &Path::from("pins").join(snapshot).join(holder),
                PutPayload::from(serde_json::to_vec_pretty(&body).expect("pin serializes")),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.store_err(format!("pinning snapshot {snapshot} for {holder}"), e))
    }

    pub async fn unpin(&self, snapshot: &str, holder: &str) -> Result<()> {
        match self
            .store
            .delete(&Path::from("pins").join(snapshot).join(holder))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err(format!("unpinning snapshot {snapshot} for {holder}"), e)),
        }
    }

    /// Every pin: snapshot id → reasons, one per holder.
    pub async fn pins(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from("pins")))
            .try_collect()
            .await
            .map_err(|e| self.store_err("listing pins", e))?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for meta in metas {
            let parts: Vec<String> = meta
                .location
                .parts()
                .map(|p| p.as_ref().to_string())
                .collect();
            let [_, snapshot, holder] = parts.as_slice() else {
                continue;
            };
            let reason = match self.store.get(&meta.location).await {
                Ok(g) => g
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<PinFile>(&b).ok())
                    .map(|p| p.reason),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.store_err("reading pins", e)),
            };
            out.entry(snapshot.clone())
                .or_default()
                .push(reason.unwrap_or_else(|| format!("pinned by {holder}")));
        }
        Ok(out)
    }
}
