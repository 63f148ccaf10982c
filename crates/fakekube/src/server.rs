//! HTTP: routing, authentication, authorization, the verbs, watch.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::discovery::{self, ResourceType};
use crate::schema::FieldValidation;
use crate::select::{FieldSelector, LabelSelector};
use crate::status::Status;
use crate::store::{Deleted, ListQuery, Store, WriteOpts};
use crate::{Handle, RequestRecord, openapi, table};

type Body = BoxBody<Bytes, Infallible>;

/// The test CA (its certificate goes into kubeconfigs) and the server certificate it signed
/// (SANs 127.0.0.1 and localhost, valid until 2126). Test-only key material.
pub const CA_CERT_PEM: &str = include_str!("tls/ca.crt");
const SERVER_CERT_PEM: &str = include_str!("tls/server.crt");
const SERVER_KEY_PEM: &str = include_str!("tls/server.key");

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![
        CertificateDer::from_pem_slice(SERVER_CERT_PEM.as_bytes()).expect("server cert"),
        CertificateDer::from_pem_slice(CA_CERT_PEM.as_bytes()).expect("ca cert"),
    ];
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).expect("server key");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("tls config");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg))
}

/// Serves HTTP and HTTPS on the same port (a TLS ClientHello starts with byte 0x16).
pub async fn serve(
    listener: tokio::net::TcpListener,
    h: Handle,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let acceptor = tls_acceptor();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else { continue };
                let h = h.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    if stream.peek(&mut first).await.is_err() {
                        return;
                    }
                    if first[0] == 0x16 {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            serve_conn(tls, h).await;
                        }
                    } else {
                        serve_conn(stream, h).await;
                    }
                });
            }
        }
    }
}

async fn serve_conn<I>(io: I, h: Handle)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let h = h.clone();
        async move { Ok::<_, Infallible>(handle(h, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    bytes_response(code, "application/json", serde_json::to_vec(v).unwrap())
}

fn bytes_response(code: u16, ctype: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("Content-Type", ctype)
        .header("Cache-Control", "no-cache, private")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap()
}

fn status_response(s: &Status) -> Response<Body> {
    bytes_response(s.code, "application/json", serde_json::to_vec(s).unwrap())
}

/// A parsed resource path.
struct ResPath {
    group: String,
    version: String,
    ns: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

fn parse_res(group: &str, version: &str, rest: &[&str]) -> Option<ResPath> {
    let mut rest = rest;
    let mut watch = false;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest = &rest[1..];
    }
    let mut ns = None;
    if rest.len() > 2 && rest[0] == "namespaces" && !matches!(rest[2], "status" | "finalize") {
        ns = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    if rest.is_empty() || rest.len() > 3 || rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(ResPath {
        group: group.into(),
        version: version.into(),
        ns,
        plural: rest[0].into(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
        watch,
    })
}

/// `forbiddenMessage` of k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go.
fn forbidden(user: &str, verb: &str, p: &ResPath) -> Status {
    let mut resource = p.plural.clone();
    if let Some(s) = &p.sub {
        resource = format!("{resource}/{s}");
    }
    let msg = match &p.ns {
        Some(ns) => format!(
            "User {user:?} cannot {verb} resource {resource:?} in API group {:?} in the namespace {ns:?}",
            p.group
        ),
        None => format!(
            "User {user:?} cannot {verb} resource {resource:?} in API group {:?} at the cluster scope",
            p.group
        ),
    };
    Status::forbidden(&p.group, &p.plural, p.name.as_deref().unwrap_or(""), &msg)
}

async fn handle(h: Handle, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (accept, ctype, ua) = (
        header("accept"),
        header("content-type"),
        header("user-agent"),
    );
    let token = header("authorization")
        .strip_prefix("Bearer ")
        .map(|s| s.trim().to_string());
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let q: HashMap<String, String> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();

    let (user, record) = {
        let mut s = h.lock();
        let user = token.and_then(|t| s.tokens.get(&t).cloned());
        let record = RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: raw_query.clone(),
            user: user.clone().unwrap_or_default(),
            content_type: ctype.clone(),
            user_agent: ua.clone(),
        };
        s.requests.push(record.clone());
        (user, record)
    };
    if user.is_some() {
        h.request_received(&record);
    }
    // Like Go's net/http, routing sees the decoded path: `%2F` in a name is a separator there.
    let Some(decoded) = percent_decode(&path) else {
        return status_response(&Status::bad_request(format!("invalid URL path {path:?}")));
    };
    let segs: Vec<&str> = decoded.trim_matches('/').split('/').collect();
    if matches!(segs.as_slice(), ["healthz"] | ["livez"] | ["readyz"]) {
        return bytes_response(200, "text/plain; charset=utf-8", b"ok".to_vec());
    }
    let Some(user) = user else {
        return status_response(&Status::unauthorized());
    };
    let host = h.shared.addr.to_string();
    let res = {
        let s = h.lock();
        match segs.as_slice() {
            ["version"] => return json_response(200, &discovery::version()),
            ["api"] => return json_response(200, &discovery::api_versions(&host)),
            ["api", "v1"] => {
                return json_response(
                    200,
                    &discovery::api_resource_list("", "v1", s.types.values()),
                );
            }
            ["apis"] => return json_response(200, &discovery::api_group_list(s.types.values())),
            ["apis", g] => {
                return match discovery::group_versions(s.types.values()).get(*g) {
                    Some(vs) => json_response(200, &discovery::api_group(g, vs)),
                    None => status_response(&Status::no_route()),
                };
            }
            ["apis", g, v] => {
                return if s.types.values().any(|t| t.group == *g && t.serves(v)) {
                    json_response(200, &discovery::api_resource_list(g, v, s.types.values()))
                } else {
                    status_response(&Status::no_route())
                };
            }
            ["openapi", "v3"] => return json_response(200, &openapi::root(s.types.values())),
            ["openapi", "v3", gv @ ..] => {
                return match openapi::group_version(&gv.join("/"), s.types.values()) {
                    Some(doc) => json_response(200, &doc),
                    None => status_response(&Status::no_route()),
                };
            }
            ["api", "v1", rest @ ..] => parse_res("", "v1", rest),
            ["apis", g, v, rest @ ..] => parse_res(g, v, rest),
            _ => None,
        }
    };
    let Some(p) = res else {
        return status_response(&Status::no_route());
    };
    // `ContextBasedNaming` of k8s.io/apiserver: a name or namespace in the path must be a
    // valid path segment.
    for (what, v) in [("namespace", &p.ns), ("resource name", &p.name)] {
        if let Some(v) = v
            && let Err(e) = path_segment_name(v)
        {
            return status_response(&Status::bad_request(format!("invalid {what} {v:?}: {e}")));
        }
    }
    let verb = match (method.as_str(), &p.name) {
        ("GET", None) if p.watch || q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            "watch"
        }
        ("GET", Some(_)) if p.watch => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => {
            return status_response(&Status::failure(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".into(),
                None,
            ));
        }
    };
    {
        let s = h.lock();
        let resource = match &p.sub {
            Some(sub) => format!("{}/{sub}", p.plural),
            None => p.plural.clone(),
        };
        let hit = |rule: &str, v: &str| rule == "*" || rule == v;
        if s.denies.iter().any(|[u, v, g, r]| {
            hit(u, &user) && hit(v, verb) && hit(g, &p.group) && hit(r, &resource)
        }) {
            return status_response(&forbidden(&user, verb, &p));
        }
        let attrs = crate::rbac::Attributes {
            user: &user,
            verb,
            group: &p.group,
            resource: &resource,
            namespace: p.ns.as_deref(),
            name: p.name.as_deref(),
            field_selector: q.get("fieldSelector").map(String::as_str),
        };
        if !crate::rbac::allows(&s, &attrs) {
            return status_response(&forbidden(&user, verb, &p));
        }
    }
    let Some(rt) = h.lock().resolve(&p.group, &p.version, &p.plural) else {
        return status_response(&Status::no_route());
    };
    // Namespaced kinds are reachable without a namespace only for list/watch; cluster-scoped
    // kinds never under one.
    if (rt.namespaced && p.ns.is_none() && !matches!(verb, "list" | "watch"))
        || (!rt.namespaced && p.ns.is_some())
        || p.sub
            .as_deref()
            .is_some_and(|s| s != "status" || !rt.has_status)
        || (p.name.is_some() && verb == "create")
    {
        return status_response(&Status::no_route());
    }
    let validation = match FieldValidation::parse(q.get("fieldValidation").map(String::as_str)) {
        Ok(v) => v,
        Err(e) => return status_response(&Status::bad_request(e)),
    };
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    if h.lock().require_dry_run && !dry_run && !matches!(verb, "get" | "list" | "watch") {
        return status_response(&Status::failure(
            400,
            "BadRequest",
            format!(
                "fakekube: this test allows only dry-run writes; {method} {path} has no dryRun=All"
            ),
            None,
        ));
    }
    let field_manager = q.get("fieldManager").cloned().unwrap_or_default();
    let opts = WriteOpts {
        dry_run,
        manager: if field_manager.is_empty() {
            ua.split('/').next().unwrap_or("").to_string()
        } else {
            field_manager.clone()
        },
        status: p.sub.is_some(),
        force: q.get("force").is_some_and(|f| f == "true"),
        version: p.version.clone(),
        validation,
    };
    let ns = p.ns.clone().unwrap_or_default();
    let name = p.name.clone().unwrap_or_default();
    let wants_table = accept.contains("as=Table");
    let include = q.get("includeObject").cloned().unwrap_or_default();
    let mut warnings: Vec<String> = vec![];
    let result: Result<(u16, Value), Status> = match verb {
        "get" => h.lock().get(&rt, &ns, &name, &p.version).map(|o| {
            if wants_table {
                let rv = o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                (200, table::table(&rt, &[o], &rv, None, &include))
            } else {
                (200, o)
            }
        }),
        "list" => list_query(&q)
            .and_then(|lq| h.lock().list(&rt, p.ns.as_deref(), &lq, &p.version))
            .map(|l| {
                if wants_table {
                    let items: Vec<Value> = l["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| Store::present(&rt, o, &p.version))
                        .collect();
                    let rv = l["metadata"]["resourceVersion"].as_str().unwrap_or("");
                    (
                        200,
                        table::table(&rt, &items, rv, l["metadata"].get("continue"), &include),
                    )
                } else {
                    (200, l)
                }
            }),
        "watch" => {
            let name_filter = p.name.clone();
            return match list_query(&q) {
                Ok(lq) => watch(
                    h,
                    rt,
                    p.ns.clone(),
                    name_filter,
                    lq,
                    &q,
                    wants_table,
                    include,
                    p.version.clone(),
                ),
                Err(e) => status_response(&e),
            };
        }
        "create" => parse_body(&body, &ctype).and_then(|obj| {
            let (r, w) = h.with_store_warned(|s| s.create(&rt, &ns, obj, &opts, "Update"));
            warnings = w;
            r.map(|o| (201, o))
        }),
        "update" => parse_body(&body, &ctype).and_then(|obj| {
            let (r, w) = h.with_store_warned(|s| s.update(&rt, &ns, &name, obj, &opts));
            warnings = w;
            r.map(|o| (200, o))
        }),
        "patch" => {
            let ct = ctype.split(';').next().unwrap_or("").trim().to_string();
            let (r, w) = if ct == "application/apply-patch+yaml" {
                let opts = WriteOpts {
                    manager: field_manager,
                    ..opts
                };
                let (r, w) = h.with_store_warned(|s| s.apply(&rt, &ns, &name, &body, &opts));
                (
                    r.map(|(o, created)| (if created { 201 } else { 200 }, o)),
                    w,
                )
            } else {
                let (r, w) = h.with_store_warned(|s| s.patch(&rt, &ns, &name, &ct, &body, &opts));
                (r.map(|o| (200, o)), w)
            };
            warnings = w;
            r
        }
        "delete" => h
            .with_store(|s| s.delete(&rt, &ns, &name, &opts))
            .map(|d| match d {
                Deleted::Pending(o) => (200, o),
                Deleted::Gone(st) => (200, st.to_value()),
            }),
        "deletecollection" => list_query(&q).map(|lq| {
            h.with_store(|s| {
                let l = s
                    .list(&rt, p.ns.as_deref(), &lq, &p.version)
                    .unwrap_or(json!({"items": []}));
                let mut items = vec![];
                for o in l["items"].as_array().unwrap() {
                    let n = o["metadata"]["name"].as_str().unwrap_or("");
                    let ons = o["metadata"]["namespace"].as_str().unwrap_or("");
                    let before = Store::present(&rt, o, &p.version);
                    if s.delete(&rt, ons, n, &opts).is_ok() {
                        items.push(before);
                    }
                }
                let mut l = l;
                l["items"] = json!(items);
                (200, l)
            })
        }),
        _ => Err(Status::no_route()),
    };
    let mut resp = match result {
        Ok((code, v)) => json_response(code, &v),
        Err(s) => status_response(&s),
    };
    // `Warning: 299 - "<text>"`, one header per warning, as k8s.io/apiserver/pkg/warning does.
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(&w).unwrap_or_default());
        if let Ok(v) = hyper::header::HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

fn parse_body(body: &[u8], ctype: &str) -> Result<Value, Status> {
    if ctype.contains("protobuf") {
        return Err(Status::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ]));
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if ctype.contains("yaml") => {
            let s = std::str::from_utf8(body).map_err(|_| Status::bad_request(e.to_string()))?;
            serde_saphyr::from_str(s)
                .map_err(|e| Status::bad_request(format!("error decoding YAML: {e}")))
        }
        Err(e) => Err(Status::bad_request(format!(
            "couldn't get version/kind; json parse error: {e}"
        ))),
    }
}

fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, Status> {
    let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            LabelSelector::parse(s)
                .map_err(|e| Status::bad_request(format!("unable to parse requirement: {e}")))?,
        ),
        None => None,
    };
    let fields = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(FieldSelector::parse(s)?),
        None => None,
    };
    let limit = q.get("limit").and_then(|l| l.parse().ok());
    let cont = q.get("continue").filter(|c| !c.is_empty()).cloned();
    Ok(ListQuery {
        labels,
        fields,
        limit,
        cont,
    })
}

#[allow(clippy::too_many_arguments)]
fn watch(
    h: Handle,
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    lq: ListQuery,
    q: &HashMap<String, String>,
    table: bool,
    include: String,
    version: String,
) -> Response<Body> {
    let rv_param: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let initial_events = q.get("sendInitialEvents").is_some_and(|s| s == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800u64);
    let matches = {
        let rt = rt.clone();
        move |obj: &Value| {
            ns.as_ref()
                .is_none_or(|n| obj["metadata"]["namespace"].as_str() == Some(n))
                && name
                    .as_ref()
                    .is_none_or(|n| obj["metadata"]["name"].as_str() == Some(n))
                && lq.labels.as_ref().is_none_or(|l| l.matches(obj))
                && lq.fields.as_ref().is_none_or(|f| f.matches(obj))
                && !rt.plural.is_empty()
        }
    };
    let (mut initial, mut rx, current_rv) = {
        let s = h.lock();
        let rx = s.tx.subscribe();
        let mut initial: Vec<(&'static str, Value)> = vec![];
        if rv_param == 0 || initial_events {
            for o in s.all(&rt, None) {
                if matches(&o) {
                    initial.push(("ADDED", o));
                }
            }
        } else {
            for ev in s
                .history
                .iter()
                .filter(|e| e.rv > rv_param && e.group == rt.group && e.plural == rt.plural)
            {
                if matches(&ev.object) {
                    initial.push((ev.etype, ev.object.clone()));
                }
            }
        }
        (initial, rx, s.rv)
    };
    if initial_events {
        initial.push((
            "BOOKMARK",
            json!({"kind": rt.kind, "apiVersion": rt.api_version(&version),
                   "metadata": {"resourceVersion": current_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}),
        ));
    }
    let key = (rt.group.clone(), rt.plural.clone());
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(256);
    let encode = move |etype: &str, obj: &Value| -> Bytes {
        let obj = if etype == "BOOKMARK" {
            obj.clone()
        } else {
            let o = Store::present(&rt, obj, &version);
            if table {
                let rv = o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                table::table(&rt, &[o], &rv, None, &include)
            } else {
                o
            }
        };
        let mut line = serde_json::to_vec(&json!({"type": etype, "object": obj})).unwrap();
        line.push(b'\n');
        Bytes::from(line)
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        for (t, o) in initial {
            if tx.send(encode(t, &o)).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        let same = ev.group == key.0 && ev.plural == key.1;
                        if same && matches(&ev.object) && tx.send(encode(ev.etype, &ev.object)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(
            out,
            |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
        )
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap()
}

/// Percent-decodes a request path; `None` when an escape is broken or the result not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `IsValidPathSegmentName` of k8s.io/apimachinery/pkg/api/validation/path.
fn path_segment_name(s: &str) -> Result<(), String> {
    if s == "." || s == ".." {
        return Err(format!("may not be '{s}'"));
    }
    for c in ["/", "%"] {
        if s.contains(c) {
            return Err(format!("may not contain '{c}'"));
        }
    }
    Ok(())
}
