//! Step delete-notebooks (optional, the article's "delete Notebooks and Tensorboards"): their
//! specs are in the snapshot, their PVCs stay.

use serde_json::Value;

use super::{Applied, Change, Env, Journal, State, StepCheck, describe, skip};
use crate::error::Result;

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    if !env.cfg.notebooks.delete {
        skip(
            c,
            "not asked (notebooks.delete = false): Notebooks and Tensorboards stay; after the upgrade they may not work, as the article warns",
        );
        return Ok(());
    }
    if super::uninstall::done(env, journal).await? {
        // Past the uninstall, Notebooks that exist are 1.4's (recreated or new).
        c.why = "the 1.3 plugins are gone; Notebooks now belong to 1.4".into();
        return Ok(());
    }
    for o in notebooks(env).await? {
        c.changes.push(Change::new(
            describe(&o),
            "",
            Some("exists".into()),
            Some("deleted".into()),
        ));
    }
    if c.changes.is_empty() {
        c.why = "no Notebook or Tensorboard left".into();
    } else {
        c.state = State::ToDo;
        c.why = format!("{} Notebook(s)/Tensorboard(s) to delete", c.changes.len());
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mut out = Vec::new();
    for o in notebooks(env).await? {
        out.push(super::delete_and_wait(env, &o).await?);
    }
    Ok(Applied::changes(out))
}

async fn notebooks(env: &Env) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (kind, group) in [
        ("Notebook", "kubeflow.org"),
        ("Tensorboard", "tensorboard.kubeflow.org"),
    ] {
        if let Some(r) = env.workload.resolve(kind, Some(group)) {
            out.extend(env.workload.list(&r, None, None, None).await?);
        }
    }
    Ok(out)
}
