//! A small registry HTTP API v2 client: does `repository:tag` exist (HEAD on the manifest), and
//! copy a manifest to another tag (what the article's `nerdctl tag` + push does).
//!
//! Credentials are sent only when the registry asks (a 401 challenge): Basic to the registry
//! itself over https, or to a Bearer token realm that is https and on the registry's host or a
//! host `images.token_hosts` names. The registry's certificate is checked against
//! `images.ca_file` alone when given (else the system roots); `insecure` turns checking off.

use std::sync::Mutex;

use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use super::config::Images;
use crate::error::{Error, Result};
use crate::secret::Secret;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub(super) struct Registry {
    base: String,
    host: String,
    https: bool,
    http: Client,
    user: Option<String>,
    password: Option<Secret>,
    token_hosts: Vec<String>,
    /// The last bearer token, tried first on the next request (one scope per run mostly).
    token: Mutex<Option<String>>,
}

impl Registry {
    pub fn new(c: &Images, password: Option<Secret>) -> Result<Registry> {
        let url = url::Url::parse(&c.registry).map_err(|e| {
            Error::input(format!(
                "images.registry {:?} is not a URL like https://host:port: {e}",
                crate::secret::redact_url(&c.registry)
            ))
        })?;
        let mut b = Client::builder().timeout(std::time::Duration::from_secs(30));
        if c.insecure {
            b = b.danger_accept_invalid_certs(true);
        } else if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::input(format!("cannot read images.ca_file {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::input(format!(
                    "images.ca_file {} holds no PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            b = b.tls_certs_only(certs);
        }
        let http = b
            .build()
            .map_err(|e| Error::other(format!("cannot build the registry client: {e}")))?;
        Ok(Registry {
            base: c.registry.trim_end_matches('/').to_string(),
            host: url.host_str().unwrap_or("").to_string(),
            https: url.scheme() == "https",
            http,
            user: c.username.clone(),
            password,
            token_hosts: c.token_hosts.clone(),
            token: Mutex::new(None),
        })
    }

    fn err(&self, what: &str, e: reqwest::Error) -> Error {
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push_str(&format!(": {s}"));
            src = s.source();
        }
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            return Error::Connection(format!(
                "the registry {} presented a certificate this machine does not trust ({chain}) while trying to {what}: set images.ca_file to the CA that signed it",
                self.base
            ));
        }
        Error::Connection(format!(
            "cannot reach the registry {} to {what}: {chain}; check images.registry",
            self.base
        ))
    }

    fn refused(&self, what: &str) -> Error {
        match &self.user {
            Some(u) => Error::Connection(format!(
                "the registry {} refused the credentials of user {u} to {what} (401): check images.username and the password (images.password_file or $AMLMIGRATE_REGISTRY_PASSWORD)",
                self.base
            )),
            None => Error::Connection(format!(
                "the registry {} needs credentials to {what} (401): set images.username and the password (images.password_file or $AMLMIGRATE_REGISTRY_PASSWORD)",
                self.base
            )),
        }
    }

    /// Sends anonymously (or with the last token); answers a 401 challenge once with the
    /// configured credentials.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let cached = self.token.lock().expect("token lock").clone();
        let first = match &cached {
            Some(t) => build().bearer_auth(t),
            None => build(),
        };
        let resp = first.send().await.map_err(|e| self.err(what, e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (Some(user), Some(password)) = (&self.user, &self.password) else {
            return Err(self.refused(what));
        };
        let (scheme, params) = parse_challenge(&challenge);
        let answered = match scheme.as_str() {
            "basic" => {
                if !self.https {
                    return Err(Error::Refused(format!(
                        "the registry {} asks for a password over plain http: credentials are sent only over https; use an https URL in images.registry",
                        self.base
                    )));
                }
                build()
                    .basic_auth(user, Some(password.expose()))
                    .send()
                    .await
                    .map_err(|e| self.err(what, e))?
            }
            "bearer" => {
                let token = self.token_for(what, &params, user, password).await?;
                *self.token.lock().expect("token lock") = Some(token.clone());
                build()
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| self.err(what, e))?
            }
            _ => {
                return Err(Error::Connection(format!(
                    "the registry {} asks for an authentication this tool does not speak ({challenge:?}) to {what}",
                    self.base
                )));
            }
        };
        if answered.status() == StatusCode::UNAUTHORIZED {
            return Err(self.refused(what));
        }
        Ok(answered)
    }

    /// A token from the challenge's realm, which must be https on the registry's host or a
    /// configured one: credentials never go anywhere else.
    async fn token_for(
        &self,
        what: &str,
        params: &[(String, String)],
        user: &str,
        password: &Secret,
    ) -> Result<String> {
        let field = |k: &str| {
            params
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let realm = field("realm").unwrap_or_default();
        let url = url::Url::parse(&realm).ok();
        let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or("");
        let allowed = url.as_ref().is_some_and(|u| u.scheme() == "https")
            && (host == self.host || self.token_hosts.iter().any(|h| h == host));
        if !allowed {
            return Err(Error::Refused(format!(
                "the registry {} sends credentials to the token realm {realm:?}, which is not https on {} or a host of images.token_hosts; nothing was sent. Add the realm's host to images.token_hosts if you trust it",
                self.base, self.host
            )));
        }
        let resp = self
            .http
            .get(&realm)
            .query(&[
                ("service", field("service").unwrap_or_default()),
                ("scope", field("scope").unwrap_or_default()),
            ])
            .basic_auth(user, Some(password.expose()))
            .send()
            .await
            .map_err(|e| self.err("get a token", e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.refused(what));
        }
        let tok: Value = resp.json().await.map_err(|e| self.err("read a token", e))?;
        Ok(tok["token"]
            .as_str()
            .or(tok["access_token"].as_str())
            .unwrap_or("")
            .to_string())
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
            StatusCode::FORBIDDEN => Err(Error::Forbidden(format!(
                "the registry {} does not let {} read {repo} (403): grant pull rights",
                self.base,
                self.user.as_deref().unwrap_or("anonymous")
            ))),
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

/// `host:port/mlops/llm-trainer:tag` → (`mlops/llm-trainer`, `tag`): the repository on
/// `images.registry` and the manifest reference to ask for. The grammar is the distribution
/// reference's (`oci-spec`): a first component with `.` or `:` (or `localhost`) is a host; a
/// tag is the reference when present (it is what gets checked and copied), else the digest. A
/// reference without either is refused rather than read as `latest`: the tag matters here.
/// A name without a host is relative to `images.registry`, so Docker Hub's `library/` is added
/// only when the reference names Docker Hub itself.
pub(super) fn split_image(image: &str) -> Option<(String, String)> {
    let r: oci_spec::distribution::Reference = image.parse().ok()?;
    let tag = r.tag().filter(|t| {
        let name_end = image.find('@').unwrap_or(image.len());
        image[..name_end].ends_with(&format!(":{t}"))
    });
    let reference = tag.or(r.digest())?;
    let named_host = image
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
    let repo = match r.repository().strip_prefix("library/") {
        Some(bare) if !named_host && !image.starts_with("library/") => bare,
        _ => r.repository(),
    };
    Some((repo.to_string(), reference.to_string()))
}

/// The auth-params of a `WWW-Authenticate` challenge (RFC 7235, parsed by `http-auth`): its
/// scheme, lowercased, and `key=token` or `key="quoted string"` params, where a quoted value
/// may hold commas (`scope="repository:x:pull,push"`) and `\"` escapes. Of several
/// challenges the first is answered; an unparsable header yields its first word as the scheme
/// and no params, so the caller names what it cannot speak.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    match http_auth::parse_challenges(header) {
        Ok(cs) if !cs.is_empty() => (
            cs[0].scheme.to_ascii_lowercase(),
            cs[0]
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_unescaped()))
                .collect(),
        ),
        _ => (
            header
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase(),
            Vec::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn split(image: &str) -> Option<(String, String)> {
        split_image(image)
    }

    fn pair(repo: &str, reference: &str) -> Option<(String, String)> {
        Some((repo.into(), reference.into()))
    }

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(
            split("192.168.171.123:11443/mlops/llm-trainer:v1.3.2-rc.4.g7c1d2e9a"),
            pair("mlops/llm-trainer", "v1.3.2-rc.4.g7c1d2e9a")
        );
        assert_eq!(
            split("mlops/buildkit:v0.15.2-aml"),
            pair("mlops/buildkit", "v0.15.2-aml")
        );
        assert_eq!(split("localhost/mlops/x:v1"), pair("mlops/x", "v1"));
    }

    #[test]
    fn a_port_in_the_host_is_not_a_tag() {
        // Without a tag the port would look like one to a split at the last colon.
        assert_eq!(split("registry:5000/mlops/x"), None);
        assert_eq!(split("registry:5000/x:5000"), pair("x", "5000"));
    }

    #[test]
    fn a_tag_is_the_reference_beside_a_digest_and_a_digest_alone_is_one() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            split(&format!("h.example:443/mlops/x:v1@{digest}")),
            pair("mlops/x", "v1")
        );
        assert_eq!(
            split(&format!("h.example/mlops/x@{digest}")),
            pair("mlops/x", &digest)
        );
        // A digest of the wrong length is no reference at all.
        assert_eq!(split("h.example/mlops/x@sha256:abc"), None);
    }

    #[test]
    fn library_is_added_only_for_docker_hub_itself() {
        // A name without a host lives on images.registry, as written.
        assert_eq!(split("trainer:v1"), pair("trainer", "v1"));
        assert_eq!(split("library/trainer:v1"), pair("library/trainer", "v1"));
        // Docker Hub's official images live under library/.
        assert_eq!(
            split("docker.io/busybox:1.36"),
            pair("library/busybox", "1.36")
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "Mlops/X:v1",
            "mlops/x:",
            "mlops//x:v1",
            "mlops/x:bad tag",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }

    /// A listener that answers every request with 401 and `challenge`, recording the request
    /// heads it got: what a client sends before and after it is asked.
    async fn challenger(challenge: String) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = vec![0; 8192];
                let n = c.read(&mut buf).await.unwrap_or(0);
                s.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase());
                let resp = format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = c.write_all(resp.as_bytes()).await;
            }
        });
        (url, seen)
    }

    fn client(url: &str) -> Registry {
        let cfg = Images {
            registry: url.into(),
            username: Some("ops".into()),
            ..Default::default()
        };
        Registry::new(&cfg, Some(Secret::new("s3cret-pw"))).unwrap()
    }

    #[test]
    fn a_quoted_challenge_value_keeps_its_commas() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://h/token",service="r", scope="repository:x:pull,push",error=insufficient_scope,q="a\"b""#
            ),
            (
                "bearer".to_string(),
                vec![
                    ("realm".to_string(), "https://h/token".to_string()),
                    ("service".into(), "r".into()),
                    ("scope".into(), "repository:x:pull,push".into()),
                    ("error".into(), "insufficient_scope".into()),
                    ("q".into(), "a\"b".into()),
                ]
            )
        );
    }

    #[test]
    fn of_several_challenges_the_first_is_answered() {
        let (scheme, params) =
            parse_challenge(r#"Bearer realm="https://h/t",scope="a,b", Basic realm="r""#);
        assert_eq!(scheme, "bearer");
        assert_eq!(params[1], ("scope".to_string(), "a,b".to_string()));
        // What cannot be parsed is named by its first word and answered by nobody.
        assert_eq!(
            parse_challenge("Negotiate ===,"),
            ("negotiate".into(), vec![])
        );
    }

    #[tokio::test]
    async fn credentials_go_only_where_they_may_and_only_when_asked() {
        // A Bearer realm on plain http (on the registry's host), and one on another host:
        // nothing is sent to either.
        for realm in [
            "http://127.0.0.1:1/token",
            "https://elsewhere.invalid/token",
        ] {
            let (url, seen) = challenger(format!(
                "Bearer realm=\"{realm}\",service=\"r\",scope=\"x\""
            ))
            .await;
            let e = client(&url).exists("mlops/x", "v1").await.unwrap_err();
            assert!(matches!(e, Error::Refused(_)), "{e}");
            assert!(e.to_string().contains("nothing was sent"), "{e}");
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert!(
                !seen[0].contains("authorization"),
                "sent before asked: {seen:?}"
            );
        }
        // Basic over plain http: refused, the password never leaves.
        let (url, seen) = challenger("Basic realm=\"registry\"".into()).await;
        let e = client(&url).exists("mlops/x", "v1").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("credentials are sent only over https"),
            "{e}"
        );
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|r| !r.contains("authorization")),
        );
    }
}
