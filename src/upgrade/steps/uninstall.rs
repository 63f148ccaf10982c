//! Step uninstall-plugins: deletes what the snapshot step recorded as the 1.3 installation, and
//! nothing else — the plugins in the article's order (MLFlow → Training Operator → Pipelines →
//! Base), each waited for until gone, then the kubeflow chart application. An object whose uid
//! changed since (recreated, or a 1.4 plugin under a reused name) is left alone. It runs only
//! after the operator upgrade, and re-checks that no job started since the drain.

use super::drain::running_jobs;
use super::operator::operator_at_target;
use super::{Applied, Change, Env, Journal, State, StepCheck, snapshot_of};
use crate::error::{Error, Result};
use crate::kube::{Cluster, Resource, group_of, str_at};
use crate::upgrade::journal::{Installation, Recorded};

/// A recorded object, how to reach it, and whether it is still the same object.
struct Live<'a> {
    rec: &'a Recorded,
    cluster: &'a Cluster,
    resource: Resource,
    same: bool,
}

/// The recorded objects that still exist, in deletion order, with whether their uid matches.
async fn live<'a>(env: &'a Env, inst: &'a Installation) -> Result<Vec<Live<'a>>> {
    let mut out = Vec::new();
    let mut ordered: Vec<(&Recorded, &Cluster)> = Vec::new();
    for module in &env.cfg.uninstall.plugins {
        for r in inst
            .plugins
            .iter()
            .filter(|r| r.module.as_deref() == Some(module))
        {
            ordered.push((r, &env.global));
        }
    }
    ordered.extend(inst.charts.iter().map(|r| (r, &env.workload)));
    for (rec, cluster) in ordered {
        let Some(resource) = cluster.resolve(&rec.kind, Some(group_of(&rec.api_version))) else {
            continue;
        };
        if let Some(o) = cluster
            .get(&resource, rec.namespace.as_deref(), &rec.name)
            .await?
        {
            out.push(Live {
                rec,
                cluster,
                resource,
                same: str_at(&o, "metadata.uid") == Some(rec.uid.as_str()),
            });
        }
    }
    Ok(out)
}

fn deleted(rec: &Recorded) -> Change {
    Change::new(
        rec.to_string(),
        "",
        Some("exists (recorded as 1.3)".into()),
        Some("deleted".into()),
    )
}

/// The 1.3 installation of this run, once recorded.
fn recorded(journal: Option<&Journal>) -> Option<Installation> {
    journal.and_then(|j| j.fact(|f| f.installation.clone()))
}

/// Is the recorded 1.3 installation gone (and was there one)?
pub(super) async fn done(env: &Env, journal: Option<&Journal>) -> Result<bool> {
    Ok(match recorded(journal) {
        Some(inst) => live(env, &inst).await?.iter().all(|l| !l.same),
        None => false,
    })
}

pub(super) async fn check(env: &Env, journal: Option<&Journal>, c: &mut StepCheck) -> Result<()> {
    // Named from the first plan on: a person may have to delete them before the uninstall.
    let blocking = super::block_remove::blockers(env).await?;
    c.checked
        .extend(blocking.iter().map(|b| format!("FAIL {b}")));
    let Some(inst) = recorded(journal) else {
        c.state = State::ToDo;
        c.why = if snapshot_of(env, journal).await?.is_some() {
            c.state = State::Blocked;
            "the snapshot of this run recorded no 1.3 installation (an older amlmigrate took it): nothing is deleted on a guess; start a new run (remove runs/<id> of this one from the repository) so a new snapshot records it".into()
        } else {
            "waits for the snapshot, which records the 1.3 installation".into()
        };
        return Ok(());
    };
    let pending = live(env, &inst).await?;
    for l in &pending {
        if l.same {
            c.changes.push(deleted(l.rec));
        } else {
            c.checked.push(format!(
                "ok   {} was recreated since the snapshot (uid differs): left alone",
                l.rec
            ));
        }
    }
    if c.changes.is_empty() {
        c.why = format!(
            "the recorded 1.3 installation ({} object(s)) is gone",
            inst.plugins.len() + inst.charts.len()
        );
        return Ok(());
    }
    let (at_target, what) = operator_at_target(env).await?;
    if !at_target {
        c.state = State::ToDo;
        c.why = format!(
            "waits for the operator upgrade ({what}): the article upgrades the operator first, then deletes the 1.3 installation"
        );
        return Ok(());
    }
    let refused = super::install::refusals(env).await?;
    if !refused.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "the 1.4 plugins could not be installed as configured, so nothing of 1.3 is deleted: {}",
            refused.join("; ")
        );
        return Ok(());
    }
    if !blocking.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "the platform would not remove the 1.3 plugins: {}",
            blocking.join("; ")
        );
        return Ok(());
    }
    let running = running_jobs(env).await?;
    if !running.is_empty() {
        c.state = State::Blocked;
        c.why = format!(
            "new job(s) started since the drain: {}; the article says to create no new jobs during the upgrade, and the uninstall deletes every Volcano job: wait for them to finish, then run again",
            running.join(", ")
        );
        return Ok(());
    }
    c.state = State::ToDo;
    c.why = format!(
        "delete the recorded 1.3 installation in order {} → chart application, each waited for until gone",
        env.cfg.uninstall.plugins.join(" → ")
    );
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &Journal) -> Result<Applied> {
    let inst = recorded(Some(journal)).ok_or_else(|| {
        Error::Refused(
            "no 1.3 installation recorded in this run; nothing is deleted on a guess".into(),
        )
    })?;
    let (at_target, what) = operator_at_target(env).await?;
    if !at_target {
        return Err(Error::Refused(format!(
            "the AML operator is not at 1.4 yet ({what}): the article upgrades the operator before the 1.3 installation is deleted; run step wait-operator first"
        )));
    }
    let refused = super::install::refusals(env).await?;
    if !refused.is_empty() {
        return Err(Error::Refused(format!(
            "the 1.4 plugins could not be installed as configured, so nothing of 1.3 is deleted: {}",
            refused.join("; ")
        )));
    }
    let blocking = super::block_remove::blockers(env).await?;
    if !blocking.is_empty() {
        return Err(Error::Refused(format!(
            "the platform would not remove the 1.3 plugins, so nothing of 1.3 is deleted: {}",
            blocking.join("; ")
        )));
    }
    let mut out = Vec::new();
    for l in live(env, &inst).await?.into_iter().filter(|l| l.same) {
        // Right before each delete: a job started now would be deleted with the plugins.
        let running = running_jobs(env).await?;
        if !running.is_empty() {
            return Err(Error::Refused(format!(
                "new job(s) started during the upgrade: {}; wait for them to finish, then run the same command",
                running.join(", ")
            )));
        }
        env.note(format!("deleting {}", l.rec));
        let (ns, name) = (l.rec.namespace.as_deref(), l.rec.name.as_str());
        l.cluster.delete(&l.resource, ns, name).await?;
        super::wait_gone(env, l.cluster, &l.resource, ns, name).await?;
        out.push(deleted(l.rec));
    }
    Ok(Applied::changes(out))
}
