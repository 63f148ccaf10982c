//! Step images: the images the article lists, and the `llm-trainer` tag that
//! `aml-image-builder-config` references, exist in the platform registry. Missing ones are a
//! person's push (the run waits); when only the pushed llm-trainer tag exists, it is copied to
//! the referenced one (the article's `nerdctl tag`).

use serde_json::Value;

use super::{Applied, Change, Env, Journal, State, StepCheck, StepId};
use crate::error::{Error, Result};
use crate::kube::str_at;
use crate::upgrade::registry::{Registry, split_image};
use crate::upgrade::wait::Patience;

struct ImageState {
    checked: Vec<String>,
    missing: Vec<String>,
    /// Tags to copy: image repo, from tag → to tag.
    copies: Vec<Change>,
}

pub(super) async fn check(env: &Env, c: &mut StepCheck) -> Result<()> {
    if env.cfg.images.registry.is_empty() {
        c.why = "no registry configured (images.registry); not checked".into();
        return Ok(());
    }
    let st = image_state(env).await?;
    c.checked = st.checked;
    c.changes = st.copies;
    if !st.missing.is_empty() {
        c.state = State::Manual;
        c.why = format!(
            "not in {}: {}; push them (nerdctl load/tag/push, as the article says); the run waits until they are there",
            env.cfg.images.registry,
            st.missing.join(", ")
        );
    } else if !c.changes.is_empty() {
        c.state = State::ToDo;
        c.why = "tag the pushed llm-trainer image with the tag aml-image-builder-config references"
            .into();
    } else {
        c.why = format!("{} image(s) present", c.checked.len());
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
            let st = image_state(env).await?;
            Ok((!st.missing.is_empty()).then(|| st.missing.join(", ")))
        },
    )
    .await?;
    Ok(Applied::changes(copy_missing_images(env).await?))
}

/// The llm-trainer image aml-image-builder-config references.
async fn referenced_llm_trainer(env: &Env) -> Result<Option<(String, String)>> {
    let Some(cm) = env.workload.resolve("ConfigMap", Some("")) else {
        return Ok(None);
    };
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
    Ok(o["data"]
        .as_object()
        .and_then(|d| {
            d.values()
                .filter_map(Value::as_str)
                .find(|v| v.contains("llm-trainer:"))
        })
        .and_then(split_image)
        .or_else(|| str_at(&o, "data.LLM_TRAINER_IMAGE").and_then(split_image)))
}

async fn image_state(env: &Env) -> Result<ImageState> {
    let reg = Registry::new(&env.cfg.images)?;
    let mut st = ImageState {
        checked: Vec::new(),
        missing: Vec::new(),
        copies: Vec::new(),
    };
    for img in &env.cfg.images.required {
        let Some((repo, tag)) = split_image(img) else {
            return Err(Error::input(format!(
                "images.required: {img:?} is not repository:tag"
            )));
        };
        if reg.exists(&repo, &tag).await? {
            st.checked.push(format!("ok   {repo}:{tag}"));
        } else {
            st.missing.push(format!("{repo}:{tag}"));
            st.checked
                .push(format!("FAIL {repo}:{tag} not in the registry"));
        }
    }
    if let Some((repo, tag)) = referenced_llm_trainer(env).await? {
        if reg.exists(&repo, &tag).await? {
            st.checked.push(format!(
                "ok   {repo}:{tag} (referenced by aml-image-builder-config)"
            ));
        } else {
            let pushed = split_image(&env.cfg.images.llm_trainer);
            match pushed {
                Some((prepo, ptag)) if prepo == repo && reg.exists(&prepo, &ptag).await? => {
                    st.copies.push(Change::new(
                        format!("image {repo}"),
                        "tag",
                        Some(ptag),
                        Some(tag.clone()),
                    ));
                }
                _ => {
                    st.missing.push(format!("{repo}:{tag}"));
                    st.checked.push(format!(
                        "FAIL {repo}:{tag} (referenced by aml-image-builder-config) not in the registry"
                    ));
                }
            }
        }
    }
    Ok(st)
}

async fn copy_missing_images(env: &Env) -> Result<Vec<Change>> {
    if env.cfg.images.registry.is_empty() {
        return Ok(Vec::new());
    }
    let reg = Registry::new(&env.cfg.images)?;
    let st = image_state(env).await?;
    if !st.missing.is_empty() {
        return Err(Error::Refused(format!(
            "images missing from {}: {}; push them first",
            env.cfg.images.registry,
            st.missing.join(", ")
        )));
    }
    for c in &st.copies {
        let repo = c.object.trim_start_matches("image ");
        reg.copy(
            repo,
            c.old.as_deref().unwrap_or_default(),
            c.new.as_deref().unwrap_or_default(),
        )
        .await?;
    }
    Ok(st.copies)
}
