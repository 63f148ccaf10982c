//! Step wait-operator: the article's "general AML operator upgrade 1.3 → 1.4" is a person's
//! step in OperatorHub; the run tells them and waits until the operator reports 1.4.

use super::{Applied, Change, Env, Journal, State, StepCheck, StepId};
use crate::error::Result;
use crate::kube::{group_of, str_at};
use crate::upgrade::wait::Patience;

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    let (ok, what) = operator_at_target(env).await?;
    if ok {
        c.why = what;
    } else {
        c.state = State::Manual;
        c.why = format!(
            "{what}. Upgrade the Alauda AI operator to 1.4: Marketplace → OperatorHub → \
             Alauda AI → Upgrade; the run waits until {} {} {} starts with {}",
            env.cfg.operator.kind,
            env.cfg.operator.name,
            env.cfg.operator.field,
            env.cfg.operator.version_prefix
        );
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &mut Journal) -> Result<Applied> {
    let op = &env.cfg.operator;
    super::wait_for_person(
        env,
        journal,
        StepId::WaitOperator,
        &format!(
            "upgrade the Alauda AI operator to 1.4 (Marketplace → OperatorHub → Alauda AI → Upgrade) until {} {} {} starts with {}",
            op.kind, op.name, op.field, op.version_prefix
        ),
        Patience::new(op.timeout, op.poll),
        async || {
            let (ok, what) = operator_at_target(env).await?;
            Ok((!ok).then_some(what))
        },
    )
    .await?;
    let (_, what) = operator_at_target(env).await?;
    Ok(Applied::changes(vec![Change::new(
        format!("{} {}", op.kind, op.name),
        op.field.clone(),
        None,
        Some(what),
    )]))
}

pub(super) async fn operator_at_target(env: &Env) -> Result<(bool, String)> {
    let op = &env.cfg.operator;
    let Some(r) = env
        .workload
        .resolve(&op.kind, Some(group_of(&op.api_version)))
    else {
        return Ok((false, format!("{} is not served yet", op.kind)));
    };
    let Some(o) = env
        .workload
        .get(&r, op.namespace.as_deref(), &op.name)
        .await?
    else {
        return Ok((false, format!("{} {} does not exist yet", op.kind, op.name)));
    };
    let v = str_at(&o, &op.field).unwrap_or("");
    Ok((
        v.starts_with(&op.version_prefix),
        format!(
            "{} {} {} is {}",
            op.kind,
            op.name,
            op.field,
            if v.is_empty() { "empty" } else { v }
        ),
    ))
}
