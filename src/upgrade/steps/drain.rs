//! Step drain: no training or Volcano job runs (and, when configured, no fine-tune record says
//! it runs); the run waits for them, since the uninstall deletes every Volcano job.

use mysql_async::prelude::Queryable;

use super::{Applied, Env, State, StepCheck};
use crate::error::{Error, Result};
use crate::kube::{name_of, namespace_of, str_at};
use crate::upgrade::wait::{self, Patience, Poll};

const TRAINING_KINDS: [&str; 5] = ["PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob"];

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let running = running_jobs(env).await?;
    if running.is_empty() {
        c.why = "no training, Volcano or fine-tune job is running".into();
    } else {
        c.state = State::ToDo;
        c.why = format!(
            "{} job(s) running: {}; the run waits for them (timeout {})",
            running.len(),
            running.join(", "),
            humantime::format_duration(env.cfg.drain.timeout)
        );
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let cfg = &env.cfg.drain;
    wait::until(
        &env.cancel,
        Patience::new(cfg.timeout, cfg.poll),
        async || {
            let running = running_jobs(env).await?;
            if running.is_empty() {
                return Ok(Poll::Ready(()));
            }
            env.note(format!(
                "waiting: {} job(s) running: {}",
                running.len(),
                running.join(", ")
            ));
            Ok(Poll::Pending(format!(
                "{} job(s) still running after {}: {}",
                running.len(),
                humantime::format_duration(cfg.timeout),
                running.join(", ")
            )))
        },
        |what| {
            Error::Other(format!(
                "{what}; wait for them or stop them, then run the same command"
            ))
        },
    )
    .await?;
    Ok(Applied::default())
}

pub(super) async fn running_jobs(env: &Env) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(r) = env.workload.resolve("Job", Some("batch.volcano.sh")) {
        for j in env.workload.list(&r, None, None, None).await? {
            let phase = str_at(&j, "status.state.phase").unwrap_or("Pending");
            if !matches!(phase, "Completed" | "Failed" | "Terminated" | "Aborted") {
                out.push(format!(
                    "vcjob {}/{} ({phase})",
                    namespace_of(&j).unwrap_or(""),
                    name_of(&j)
                ));
            }
        }
    }
    for kind in TRAINING_KINDS {
        let Some(r) = env.workload.resolve(kind, Some("kubeflow.org")) else {
            continue;
        };
        for j in env.workload.list(&r, None, None, None).await? {
            let finished = j["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    matches!(c["type"].as_str(), Some("Succeeded" | "Failed"))
                        && c["status"] == "True"
                })
            });
            if !finished {
                out.push(format!(
                    "{kind} {}/{}",
                    namespace_of(&j).unwrap_or(""),
                    name_of(&j)
                ));
            }
        }
    }
    if let Some(sql) = &env.cfg.drain.running_sql {
        let url = env.cfg.aml_url()?;
        let mut conn = crate::mysql::connect(&url).await?;
        let n: Option<i64> = conn
            .query_first(sql.as_str())
            .await
            .map_err(|e| Error::Mysql {
                context: format!("running drain.running_sql ({sql})"),
                source: e,
            })?;
        let _ = conn.disconnect().await;
        if let Some(n) = n.filter(|n| *n > 0) {
            out.push(format!(
                "{n} fine-tune record(s) running (drain.running_sql)"
            ));
        }
    }
    Ok(out)
}
