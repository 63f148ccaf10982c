//! The images step: the images the article lists, and the `llm-trainer` tag that
//! `aml-image-builder-config` references, exist in the platform registry (registry HTTP API
//! v2: a HEAD on the manifest). When only the pushed tag exists, the manifest is copied to the
//! expected tag, which is what the article's `nerdctl tag` + push does.

use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use super::{Change, Env};
use crate::error::{Error, Result};
use crate::kube::str_at;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub(super) struct ImageState {
    pub checked: Vec<String>,
    pub missing: Vec<String>,
    /// Tags to copy: (from repository:tag, to tag).
    pub copies: Vec<Change>,
}

struct Registry {
    base: String,
    http: Client,
    user: Option<String>,
    password: Option<String>,
}

impl Registry {
    fn new(env: &Env) -> Result<Registry> {
        let c = &env.cfg.images;
        let http = Client::builder()
            .danger_accept_invalid_certs(c.insecure)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::other(format!("cannot build the registry client: {e}")))?;
        Ok(Registry {
            base: c.registry.trim_end_matches('/').to_string(),
            http,
            user: c.username.clone(),
            password: std::env::var("AMLMIGRATE_REGISTRY_PASSWORD").ok(),
        })
    }

    fn err(&self, what: &str, e: reqwest::Error) -> Error {
        Error::Connection(format!(
            "cannot reach the registry {} to {what}: {e}; check images.registry (and images.insecure for a self-signed certificate)",
            self.base
        ))
    }

    /// Sends with basic credentials, following a Bearer challenge (Harbor, distribution) once.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut req = build();
        if let Some(u) = &self.user {
            req = req.basic_auth(u, self.password.as_deref());
        }
        let resp = req.send().await.map_err(|e| self.err(what, e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return Err(Error::Connection(format!(
                "the registry {} refused to {what} (401): set images.username and AMLMIGRATE_REGISTRY_PASSWORD",
                self.base
            )));
        };
        let field = |k: &str| {
            params.split(',').find_map(|kv| {
                let (a, b) = kv.trim().split_once('=')?;
                (a == k).then(|| b.trim_matches('"').to_string())
            })
        };
        let realm = field("realm").unwrap_or_default();
        let mut tr = self.http.get(&realm).query(&[
            ("service", field("service").unwrap_or_default()),
            ("scope", field("scope").unwrap_or_default()),
        ]);
        if let Some(u) = &self.user {
            tr = tr.basic_auth(u, self.password.as_deref());
        }
        let tok: Value = tr
            .send()
            .await
            .map_err(|e| self.err("get a token", e))?
            .json()
            .await
            .map_err(|e| self.err("read a token", e))?;
        let token = tok["token"]
            .as_str()
            .or(tok["access_token"].as_str())
            .unwrap_or("")
            .to_string();
        build()
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| self.err(what, e))
    }

    fn url(&self, repo: &str, tag: &str) -> String {
        format!("{}/v2/{repo}/manifests/{tag}", self.base)
    }

    async fn exists(&self, repo: &str, tag: &str) -> Result<bool> {
        let url = self.url(repo, tag);
        let resp = self
            .send(&format!("check {repo}:{tag}"), || {
                self.http.head(&url).header(header::ACCEPT, ACCEPT)
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Error::Other(format!(
                "the registry {} answered {s} for {repo}:{tag}",
                self.base
            ))),
        }
    }

    async fn copy(&self, repo: &str, from: &str, to: &str) -> Result<()> {
        let url = self.url(repo, from);
        let resp = self
            .send(&format!("read {repo}:{from}"), || {
                self.http.get(&url).header(header::ACCEPT, ACCEPT)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(Error::Other(format!(
                "the registry {} answered {} reading {repo}:{from}",
                self.base,
                resp.status()
            )));
        }
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
            .to_string();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.err("read a manifest", e))?;
        let put = self.url(repo, to);
        let resp = self
            .send(&format!("tag {repo}:{to}"), || {
                self.http
                    .put(&put)
                    .header(header::CONTENT_TYPE, ctype.clone())
                    .body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(Error::Other(format!(
                "the registry {} refused to tag {repo}:{to} ({}); push rights are needed",
                self.base,
                resp.status()
            )));
        }
        Ok(())
    }
}

/// `host:port/mlops/llm-trainer:tag` → (`mlops/llm-trainer`, `tag`).
fn split_image(image: &str) -> Option<(String, String)> {
    let (path, tag) = image.rsplit_once(':')?;
    if tag.contains('/') {
        return None;
    }
    let repo = match path.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') => rest,
        _ => path,
    };
    Some((repo.to_string(), tag.to_string()))
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

pub(super) async fn image_state(env: &Env) -> Result<ImageState> {
    let reg = Registry::new(env)?;
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

pub(super) async fn copy_missing_images(env: &Env) -> Result<Vec<Change>> {
    if env.cfg.images.registry.is_empty() {
        return Ok(Vec::new());
    }
    let reg = Registry::new(env)?;
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

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(
            split_image("192.168.171.123:11443/mlops/llm-trainer:v1.3.2-rc.4.g7c1d2e9a"),
            Some(("mlops/llm-trainer".into(), "v1.3.2-rc.4.g7c1d2e9a".into()))
        );
        assert_eq!(
            split_image("mlops/buildkit:v0.15.2-aml"),
            Some(("mlops/buildkit".into(), "v0.15.2-aml".into()))
        );
        assert_eq!(split_image("registry:5000/mlops/x"), None);
    }
}
