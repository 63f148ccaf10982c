//! Step protect-pvcs: the volumes of user PVCs get reclaim policy Retain, so nothing the
//! uninstall deletes can take the data with it.

use super::{Applied, Change, Env, State, StepCheck};
use crate::error::Result;
use crate::kube::pvc::VolumeChange;

fn change(v: VolumeChange) -> Change {
    Change::new(
        format!("PersistentVolume {} ({})", v.volume, v.claim),
        "spec.persistentVolumeReclaimPolicy",
        v.from,
        v.to,
    )
}

async fn protect(env: &Env, dry_run: bool) -> Result<Vec<VolumeChange>> {
    let ns = crate::kube::pvc::user_namespaces(&env.workload, &[]).await?;
    crate::kube::pvc::protect(&env.workload, &ns, dry_run).await
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let changes = protect(env, true).await?;
    let total = changes.len();
    c.changes = changes
        .into_iter()
        .filter(|v| v.action != "unchanged")
        .map(change)
        .collect();
    if c.changes.is_empty() {
        c.why = format!("{total} volume(s) of user PVCs already Retain");
    } else {
        c.state = State::ToDo;
        c.why = format!("{} volume(s) to set to Retain", c.changes.len());
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let changes = protect(env, false).await?;
    Ok(Applied::changes(
        changes
            .into_iter()
            .filter(|v| v.action == "changed")
            .map(change)
            .collect(),
    ))
}
