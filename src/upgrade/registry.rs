//! A small registry HTTP API v2 client: does `repository:tag` exist (HEAD on the manifest), and
//! copy a manifest to another tag (what the article's `nerdctl tag` + push does).

use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use super::config::Images;
use crate::error::{Error, Result};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub(super) struct Registry {
    base: String,
    http: Client,
    user: Option<String>,
    password: Option<String>,
}

impl Registry {
    pub fn new(c: &Images) -> Result<Registry> {
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

    pub async fn exists(&self, repo: &str, tag: &str) -> Result<bool> {
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

    pub async fn copy(&self, repo: &str, from: &str, to: &str) -> Result<()> {
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
pub(super) fn split_image(image: &str) -> Option<(String, String)> {
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
