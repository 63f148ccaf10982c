//! Step retag-llm-trainer: the article's "check which llm-trainer tag aml-image-builder-config
//! uses, and tag the pushed image with it" (`nerdctl tag … llm-trainer:v1.4.3 …:<that tag>`).
//! The tag is the one the *1.4* ConfigMap references, so it is read after the operator
//! upgrade (the 1.4 operator rewrites that ConfigMap); the copy is a manifest PUT under the new
//! tag through the registry API.

use super::images::registry;
use super::operator::operator_at_target;
use super::{Applied, Change, Env, State, StepCheck, skip};
use crate::error::{Error, Result};
use crate::upgrade::registry::split_image;

/// The llm-trainer image `aml-image-builder-config` references: (ConfigMap key, repo, tag).
pub(super) async fn referenced_llm_trainer(env: &Env) -> Result<Option<(String, String, String)>> {
    let cm = env.workload.need("ConfigMap", "")?;
    let Some(o) = env
        .workload
        .get(
            &cm,
            Some(&env.cfg.images.config_namespace),
            "aml-image-builder-config",
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(o["data"].as_object().and_then(|d| {
        d.iter().find_map(|(k, v)| {
            let (repo, tag) = split_image(v.as_str()?)?;
            (repo.rsplit('/').next() == Some("llm-trainer")).then(|| (k.clone(), repo, tag))
        })
    }))
}

/// What the step would do: `Ok(None)` when the referenced tag exists.
struct Plan {
    why: String,
    copy: Option<Change>,
}

async fn plan(env: &Env, c: &mut StepCheck) -> Result<Option<Plan>> {
    let ns = &env.cfg.images.config_namespace;
    c.assumptions.push(format!(
        "the llm-trainer image is the value of ConfigMap {ns}/aml-image-builder-config that names an image …/llm-trainer:<tag>"
    ));
    let Some((key, repo, tag)) = referenced_llm_trainer(env).await? else {
        c.state = State::Blocked;
        c.why = format!(
            "ConfigMap {ns}/aml-image-builder-config names no llm-trainer image: is the AML 1.4 operator running? (images.config_namespace)"
        );
        return Ok(None);
    };
    let reg = registry(env)?;
    if reg.exists(&repo, &tag).await? {
        c.checked.push(format!(
            "ok   {repo}:{tag} (referenced by {ns}/aml-image-builder-config {key})"
        ));
        c.why = format!("{repo}:{tag}, which the 1.4 aml-image-builder-config references, exists");
        return Ok(None);
    }
    let (prepo, ptag) = split_image(&env.cfg.images.llm_trainer).ok_or_else(|| {
        Error::input(format!(
            "images.llm_trainer {:?} is not repository:tag",
            env.cfg.images.llm_trainer
        ))
    })?;
    if prepo != repo {
        c.state = State::Blocked;
        c.why = format!(
            "the 1.4 aml-image-builder-config references {repo}:{tag}, but the pushed llm-trainer is {prepo}:{ptag}: push it to {repo} (or set images.llm_trainer)"
        );
        return Ok(None);
    }
    if !reg.exists(&prepo, &ptag).await? {
        c.state = State::Blocked;
        c.why = format!(
            "neither {repo}:{tag} (referenced by the 1.4 aml-image-builder-config) nor the pushed {prepo}:{ptag} is in the registry: push llm-trainer (step images), then run again"
        );
        return Ok(None);
    }
    Ok(Some(Plan {
        why: format!(
            "the 1.4 aml-image-builder-config references {repo}:{tag}: tag the pushed {ptag} as {tag}"
        ),
        copy: Some(Change::new(
            format!("image {repo}"),
            "tag",
            Some(ptag),
            Some(tag),
        )),
    }))
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    if env.cfg.images.registry.is_empty() {
        skip(
            c,
            "no registry configured (images.registry): tag the pushed llm-trainer image with the tag aml-image-builder-config references by hand",
        );
        return Ok(());
    }
    let (at_target, what) = operator_at_target(env).await?;
    if !at_target {
        c.state = State::ToDo;
        c.why = format!(
            "waits for the operator upgrade ({what}): the tag to copy to is the one the 1.4 operator writes into aml-image-builder-config"
        );
        return Ok(());
    }
    if let Some(p) = plan(env, c).await? {
        c.state = State::ToDo;
        c.why = p.why;
        c.changes.extend(p.copy);
    }
    Ok(())
}

pub(super) async fn apply(env: &Env) -> Result<Applied> {
    let mut c = super::new_check(super::StepId::RetagLlmTrainer);
    let Some(p) = plan(env, &mut c).await? else {
        if c.state == State::Blocked {
            return Err(Error::Refused(c.why));
        }
        return Ok(Applied::default());
    };
    let reg = registry(env)?;
    let mut out = Vec::new();
    if let Some(ch) = p.copy {
        let repo = ch.object.trim_start_matches("image ");
        reg.copy(
            repo,
            ch.old.as_deref().unwrap_or_default(),
            ch.new.as_deref().unwrap_or_default(),
        )
        .await?;
        out.push(ch);
    }
    Ok(Applied::changes(out))
}

/// Does the image the 1.4 aml-image-builder-config references resolve in the registry?
pub(super) async fn llm_trainer_line(env: &Env) -> Result<String> {
    if env.cfg.images.registry.is_empty() {
        return Ok("skip llm-trainer image: no registry configured (images.registry)".into());
    }
    Ok(match referenced_llm_trainer(env).await? {
        None => format!(
            "FAIL ConfigMap {}/aml-image-builder-config names no llm-trainer image",
            env.cfg.images.config_namespace
        ),
        Some((_, repo, tag)) => {
            if registry(env)?.exists(&repo, &tag).await? {
                format!(
                    "ok   llm-trainer {repo}:{tag} (referenced by aml-image-builder-config) resolves in the registry"
                )
            } else {
                format!(
                    "FAIL llm-trainer {repo}:{tag} (referenced by aml-image-builder-config) is not in the registry: run step retag-llm-trainer"
                )
            }
        }
    })
}
