//! Step images: the images the article lists (llm-trainer, buildkit, buildkit-gitlfs) are pushed
//! to the platform registry. Pushing is a person's step (nerdctl load/tag/push); the run says
//! what is missing and waits until the registry has it.

use super::{Applied, Env, Journal, State, StepCheck, StepId, skip};
use crate::error::{Error, Result};
use crate::upgrade::registry::{Registry, split_image};
use crate::upgrade::wait::Patience;

pub(super) fn registry(env: &Env) -> Result<Registry> {
    Registry::new(&env.cfg.images, env.cfg.registry_password()?)
}

/// `ok`/`FAIL` lines and the images not there.
async fn missing(env: &Env, checked: &mut Vec<String>) -> Result<Vec<String>> {
    let reg = registry(env)?;
    let mut missing = Vec::new();
    for img in &env.cfg.images.required {
        let (repo, tag) = split_image(img).ok_or_else(|| {
            Error::input(format!("images.required: {img:?} is not repository:tag"))
        })?;
        if reg.exists(&repo, &tag).await? {
            checked.push(format!("ok   {repo}:{tag}"));
        } else {
            checked.push(format!("FAIL {repo}:{tag} not in the registry"));
            missing.push(format!("{repo}:{tag}"));
        }
    }
    Ok(missing)
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    if env.cfg.images.registry.is_empty() {
        skip(
            c,
            "no registry configured (images.registry): push the article's images and tag llm-trainer by hand",
        );
        return Ok(());
    }
    let missing = missing(env, &mut c.checked).await?;
    if missing.is_empty() {
        c.why = format!("{} image(s) present", c.checked.len());
    } else {
        c.state = State::Manual;
        c.why = format!(
            "not in {}: {}; push them (nerdctl load/tag/push, as the article says); the run waits until they are there",
            env.cfg.images.registry,
            missing.join(", ")
        );
    }
    Ok(())
}

pub(super) async fn apply(env: &Env, journal: &mut Journal) -> Result<Applied> {
    let cfg = &env.cfg.images;
    super::wait_for_person(
        env,
        journal,
        StepId::Images,
        &format!("push the missing images to {}", cfg.registry),
        Patience::new(cfg.timeout, cfg.poll),
        async || {
            let m = missing(env, &mut Vec::new()).await?;
            Ok((!m.is_empty()).then(|| m.join(", ")))
        },
    )
    .await?;
    Ok(Applied::default())
}
