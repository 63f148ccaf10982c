//! The verbs on objects (list, get, apply, merge patch, create, delete), each request built
//! here segment by segment. Names and namespaces can come from a snapshot; `kube::Api` puts
//! them into the path as they are, so `kube-system/rolebindings/x#` would add segments and cut
//! off the query (`dryRun=All` with it). Here every segment must be a valid path segment
//! (what the API server requires, and it decodes `%2F` back into `/`), is percent-escaped,
//! and the query is encoded pair by pair: nothing in a name can add a segment, a query or a
//! fragment.

use kube::api::DynamicObject;
use kube::core::ObjectList;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Cluster, FIELD_MANAGER, Resource, api_error, names, object_name, to_value, where_};
use crate::error::{Error, Result};

/// Everything but RFC 3986's unreserved characters and `:` (RBAC names hold it) is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// A request URL (path and query), built from parts that are each escaped.
#[derive(Debug)]
pub(crate) struct Url {
    path: String,
    query: Vec<(String, String)>,
}

impl Url {
    /// The collection of `r` (in `namespace` when namespaced), or the object `name` in it.
    pub(crate) fn new(r: &Resource, namespace: Option<&str>, name: Option<&str>) -> Result<Url> {
        let mut segments: Vec<&str> = Vec::new();
        if r.ar.group.is_empty() {
            segments.push("api");
        } else {
            segments.extend(["apis", r.ar.group.as_str()]);
        }
        segments.push(&r.ar.version);
        if let (true, Some(ns)) = (r.namespaced, namespace) {
            segments.extend(["namespaces", ns]);
        }
        segments.push(&r.ar.plural);
        segments.extend(name);
        let mut path = String::new();
        for s in segments {
            names::path_segment(s).map_err(|e| {
                Error::Refused(format!(
                    "refusing to send a request for {}: {s:?} cannot be part of a request \
                     path ({e})",
                    object_name(r, namespace, name.unwrap_or(""))
                ))
            })?;
            path.push('/');
            path.extend(utf8_percent_encode(s, SEGMENT));
        }
        Ok(Url {
            path,
            query: Vec::new(),
        })
    }

    pub(crate) fn param(mut self, key: &str, value: &str) -> Url {
        self.query.push((key.into(), value.into()));
        self
    }

    /// `dryRun=All` when `dry_run`: the one place a write's dry run is said.
    pub(crate) fn dry_run(self, dry_run: bool) -> Url {
        if dry_run {
            self.param("dryRun", "All")
        } else {
            self
        }
    }

    pub(crate) fn build(self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        if query.is_empty() {
            self.path
        } else {
            format!("{}?{query}", self.path)
        }
    }
}

fn request(
    method: http::Method,
    url: Url,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<http::Request<Vec<u8>>> {
    let mut b = http::Request::builder().method(method).uri(url.build());
    if let Some(ct) = content_type {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    b.body(body)
        .map_err(|e| Error::other(format!("cannot build a Kubernetes request: {e}")))
}

fn json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serializes")
}

impl Cluster {
    async fn send<T: DeserializeOwned>(&self, req: http::Request<Vec<u8>>) -> kube::Result<T> {
        tracing::trace!(method = %req.method(), uri = %req.uri(), "kube: request");
        self.client.request(req).await
    }

    /// Every object of a resource (in one namespace, or all), page by page.
    pub async fn list(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = Url::new(r, namespace, None)?.param("limit", "500");
            if let Some(l) = labels {
                url = url.param("labelSelector", l);
            }
            if let Some(f) = fields {
                url = url.param("fieldSelector", f);
            }
            if let Some(t) = &token {
                url = url.param("continue", t);
            }
            let page: ObjectList<DynamicObject> = self
                .send(request(http::Method::GET, url, None, Vec::new())?)
                .await
                .map_err(|e| api_error(e, &self.server, "list", &where_(r, namespace)))?;
            for obj in page.items {
                out.push(to_value(obj, r));
            }
            match page.metadata.continue_ {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        tracing::debug!(
            kind = r.ar.kind,
            namespace,
            labels,
            count = out.len(),
            "kube: listed {} {}",
            out.len(),
            where_(r, namespace)
        );
        Ok(out)
    }

    pub async fn get(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let url = Url::new(r, namespace, Some(name))?;
        match self
            .send::<DynamicObject>(request(http::Method::GET, url, None, Vec::new())?)
            .await
        {
            Ok(o) => Ok(Some(to_value(o, r))),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(api_error(
                e,
                &self.server,
                "get",
                &object_name(r, namespace, name),
            )),
        }
    }

    /// Server-side apply with our field manager; `force` takes over fields other managers own.
    pub async fn apply(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        obj: &Value,
        force: bool,
        dry_run: bool,
    ) -> Result<Value> {
        let mut url = Url::new(r, namespace, Some(name))?
            .param("fieldManager", FIELD_MANAGER)
            .dry_run(dry_run);
        if force {
            url = url.param("force", "true");
        }
        tracing::debug!(
            kind = r.ar.kind,
            namespace,
            name,
            dry_run,
            "kube: apply {}",
            object_name(r, namespace, name)
        );
        let req = request(
            http::Method::PATCH,
            url,
            Some("application/apply-patch+yaml"),
            json(obj),
        )?;
        self.send::<DynamicObject>(req)
            .await
            .map(|o| to_value(o, r))
            .map_err(|e| api_error(e, &self.server, "apply", &object_name(r, namespace, name)))
    }

    /// JSON merge patch (RFC 7386) with our field manager.
    pub async fn merge_patch(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        dry_run: bool,
    ) -> Result<Value> {
        let url = Url::new(r, namespace, Some(name))?
            .param("fieldManager", FIELD_MANAGER)
            .dry_run(dry_run);
        tracing::debug!(
            kind = r.ar.kind,
            namespace,
            name,
            dry_run,
            "kube: merge patch {}",
            object_name(r, namespace, name)
        );
        let req = request(
            http::Method::PATCH,
            url,
            Some("application/merge-patch+json"),
            json(patch),
        )?;
        self.send::<DynamicObject>(req)
            .await
            .map(|o| to_value(o, r))
            .map_err(|e| api_error(e, &self.server, "patch", &object_name(r, namespace, name)))
    }

    /// Creates an object; `Ok(None)` when one of that name already exists.
    pub async fn create(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Result<Option<Value>> {
        let name = super::name_of(obj).to_string();
        let what = if name.is_empty() {
            format!("a new {}", r.ar.kind)
        } else {
            object_name(r, namespace, &name)
        };
        let url = Url::new(r, namespace, None)?.param("fieldManager", FIELD_MANAGER);
        tracing::debug!(kind = r.ar.kind, namespace, "kube: create {what}");
        let req = request(http::Method::POST, url, Some("application/json"), json(obj))?;
        match self.send::<DynamicObject>(req).await {
            Ok(o) => Ok(Some(to_value(o, r))),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(api_error(e, &self.server, "create", &what)),
        }
    }

    /// Deletes an object (dependents in the background, as kubectl does); `false` when it did
    /// not exist. The object may live on while finalizers run: wait for it to be gone.
    pub async fn delete(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<bool> {
        tracing::debug!(
            kind = r.ar.kind,
            namespace,
            name,
            "kube: delete {}",
            object_name(r, namespace, name)
        );
        let url = Url::new(r, namespace, Some(name))?;
        let body = serde_json::json!({
            "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"
        });
        let req = request(
            http::Method::DELETE,
            url,
            Some("application/json"),
            json(&body),
        )?;
        match self.send::<Value>(req).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_error(
                e,
                &self.server,
                "delete",
                &object_name(r, namespace, name),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::discovery::ApiResource;

    fn res(group: &str, plural: &str, namespaced: bool) -> Resource {
        Resource {
            ar: ApiResource {
                group: group.into(),
                version: "v1".into(),
                api_version: if group.is_empty() {
                    "v1".into()
                } else {
                    format!("{group}/v1")
                },
                kind: "K".into(),
                plural: plural.into(),
            },
            namespaced,
        }
    }

    #[test]
    fn urls_escape_every_segment_and_refuse_what_would_split_one() {
        let rb = res("rbac.authorization.k8s.io", "rolebindings", true);
        let u = Url::new(&rb, Some("team-a"), Some("system:x#y?z"))
            .unwrap()
            .param("fieldManager", "amlmigrate")
            .dry_run(true)
            .build();
        assert_eq!(
            u,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/\
             system:x%23y%3Fz?fieldManager=amlmigrate&dryRun=All"
        );
        for (ns, name) in [
            ("kube-system/rolebindings/x#", "n"),
            ("team-a", "a/b"),
            ("team-a", ".."),
            ("team-a", "a%2Fb"),
            ("", "n"),
        ] {
            let e = Url::new(&rb, Some(ns), Some(name)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Refused, "{ns} {name}");
        }
        let pv = res("", "persistentvolumes", false);
        assert_eq!(
            Url::new(&pv, Some("ignored"), Some("pv-1"))
                .unwrap()
                .param("labelSelector", "a=b,c in (d)")
                .build(),
            "/api/v1/persistentvolumes/pv-1?labelSelector=a%3Db%2Cc+in+%28d%29"
        );
    }
}
