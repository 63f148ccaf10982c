//! The object store and the registry semantics of every write (create, update, patch, apply,
//! delete), shared by the HTTP handlers and the Rust API.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::discovery::{self, ResourceType};
use crate::patch::{self, FieldSet};
use crate::schema::{self, FieldValidation};
use crate::select::{self, FieldSelector, LabelSelector};
use crate::status::{Details, Status};
use crate::{Change, ChangeKind, RequestRecord};

/// One watch event, kept in a bounded history so watches can resume from a resourceVersion.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub etype: &'static str,
    pub object: Value,
}

const HISTORY: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub manager: String,
    /// The request targets the `status` subresource.
    pub status: bool,
    pub force: bool,
    /// The API version of the request (defaults to the preferred one).
    pub version: String,
    /// What to do with fields the CRD schema does not know.
    pub validation: FieldValidation,
}

/// Which request a body came with: the strict-decoding error reads differently for each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Create,
    Update,
    Patch,
    Apply,
}

pub enum Deleted {
    /// Still there (finalizers, a terminating namespace): the object is returned.
    Pending(Value),
    /// Gone: a `Success` Status is returned.
    Gone(Status),
}

#[derive(Default)]
pub struct ListQuery {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
    pub limit: Option<usize>,
    pub cont: Option<String>,
}

type Key = (String, String);

pub struct Store {
    pub types: BTreeMap<Key, ResourceType>,
    objects: BTreeMap<Key, BTreeMap<Key, Value>>,
    pub rv: u64,
    pub history: VecDeque<Event>,
    pub tx: broadcast::Sender<Event>,
    /// Changes since the last drain; fired to hooks after the lock is released.
    pub changes: Vec<Change>,
    pub tokens: HashMap<String, String>,
    /// (user, verb, group, resource) rules that answer 403.
    pub denies: Vec<[String; 4]>,
    pub requests: Vec<RequestRecord>,
    /// `Warning` headers for the response to the current request (unknown fields pruned).
    pub warnings: Vec<String>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn str_of<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().unwrap()
}

fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

/// Everything but metadata and status: what bumps metadata.generation.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

fn without_managed(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    o
}

fn valid_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Store {
    pub fn new(tx: broadcast::Sender<Event>) -> Store {
        let mut s = Store {
            types: BTreeMap::new(),
            objects: BTreeMap::new(),
            rv: 1000,
            history: VecDeque::new(),
            tx,
            changes: vec![],
            tokens: HashMap::new(),
            denies: vec![],
            requests: vec![],
            warnings: vec![],
        };
        for rt in discovery::builtins() {
            s.register(rt);
        }
        let ns = s.types[&(String::new(), "namespaces".to_string())].clone();
        for name in ["default", "kube-system"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            s.create(&ns, "", obj, &WriteOpts::default(), "Update")
                .expect("namespace");
        }
        s.changes.clear();
        s
    }

    pub fn register(&mut self, rt: ResourceType) {
        let key = (rt.group.clone(), rt.plural.clone());
        self.objects.entry(key.clone()).or_default();
        self.types.insert(key, rt);
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .get(&(group.to_string(), plural.to_string()))
            .filter(|rt| rt.serves(version))
            .cloned()
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.types
            .values()
            .find(|rt| rt.group == group && rt.kind == kind && rt.serves(version))
            .cloned()
    }

    fn key(rt: &ResourceType) -> Key {
        (rt.group.clone(), rt.plural.clone())
    }

    fn emit(&mut self, etype: &'static str, rt: &ResourceType, obj: &Value) {
        let ev = Event {
            rv: self.rv,
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            etype,
            object: obj.clone(),
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        let _ = self.tx.send(ev);
        let kind = match etype {
            "ADDED" => ChangeKind::Added,
            "MODIFIED" => ChangeKind::Modified,
            _ => ChangeKind::Deleted,
        };
        self.changes.push(Change {
            kind,
            object: obj.clone(),
        });
    }

    /// The object as a client sees it at `version`.
    pub fn present(rt: &ResourceType, obj: &Value, version: &str) -> Value {
        let mut o = obj.clone();
        let v = if version.is_empty() {
            rt.versions[0].as_str()
        } else {
            version
        };
        o["apiVersion"] = json!(rt.api_version(v));
        o["kind"] = json!(rt.kind);
        o
    }

    pub fn get_raw(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        let ns = if rt.namespaced { ns } else { "" };
        self.objects
            .get(&Store::key(rt))?
            .get(&(ns.to_string(), name.to_string()))
    }

    pub fn get(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        version: &str,
    ) -> Result<Value, Status> {
        self.get_raw(rt, ns, name)
            .map(|o| Store::present(rt, o, version))
            .ok_or_else(|| Status::not_found_rt(rt, name))
    }

    pub fn all(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        let Some(m) = self.objects.get(&Store::key(rt)) else {
            return vec![];
        };
        m.iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| !rt.namespaced || n == ns))
            .map(|(_, o)| Store::present(rt, o, ""))
            .collect()
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        q: &ListQuery,
        version: &str,
    ) -> Result<Value, Status> {
        let empty = BTreeMap::new();
        let m = self.objects.get(&Store::key(rt)).unwrap_or(&empty);
        let start: Option<Key> = match &q.cont {
            Some(tok) => {
                let s = select::decode_continue(tok)?;
                Some(match s.split_once('/') {
                    Some((a, b)) if rt.namespaced => (a.to_string(), b.to_string()),
                    _ => (String::new(), s),
                })
            }
            None => None,
        };
        let matching: Vec<(&Key, &Value)> = m
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k > s))
            .filter(|((n, _), _)| ns.is_none_or(|ns| n == ns))
            .filter(|(_, o)| q.labels.as_ref().is_none_or(|l| l.matches(o)))
            .filter(|(_, o)| q.fields.as_ref().is_none_or(|f| f.matches(o)))
            .collect();
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page = &matching[..matching.len().min(limit)];
        let items: Vec<Value> = page
            .iter()
            .map(|(_, o)| {
                let mut o = Store::present(rt, o, version);
                if !rt.crd {
                    // Typed lists of built-ins carry no TypeMeta on their items.
                    let m = o.as_object_mut().unwrap();
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        let mut md = json!({"resourceVersion": self.rv.to_string()});
        if matching.len() > page.len() {
            let ((n, name), _) = page.last().unwrap();
            let key = if rt.namespaced {
                format!("{n}/{name}")
            } else {
                name.clone()
            };
            md["continue"] = json!(select::encode_continue(self.rv, &key));
            md["remainingItemCount"] = json!(matching.len() - page.len());
        }
        let v = if version.is_empty() {
            rt.versions[0].as_str()
        } else {
            version
        };
        Ok(
            json!({"apiVersion": rt.api_version(v), "kind": format!("{}List", rt.kind), "metadata": md, "items": items}),
        )
    }

    fn ns_type(&self) -> ResourceType {
        self.types[&(String::new(), "namespaces".to_string())].clone()
    }

    /// POST. `op` is the managedFields operation ("Update", or "Apply" for server-side apply).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
        op: &str,
    ) -> Result<Value, Status> {
        if !obj.is_object() {
            return Err(Status::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let version = if opts.version.is_empty() {
            rt.versions[0].clone()
        } else {
            opts.version.clone()
        };
        let expected = rt.api_version(&version);
        if let Some(av) = obj["apiVersion"].as_str()
            && !av.is_empty()
            && av != expected
        {
            return Err(Status::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected})"
            )));
        }
        obj["apiVersion"] = json!(expected);
        obj["kind"] = json!(rt.kind);
        let m = meta(&mut obj);
        if rt.namespaced {
            let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(Status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let generate = m.get("generateName").and_then(Value::as_str).unwrap_or("");
            if generate.is_empty() {
                return Err(Status::invalid(
                    rt,
                    "",
                    vec![(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
                .collect();
            name = format!("{generate}{suffix}");
            m.insert("name".into(), json!(name));
        }
        if !valid_name(&name) {
            return Err(Status::invalid(
                rt,
                &name,
                vec![(
                    "FieldValueInvalid",
                    "metadata.name",
                    format!(
                        "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                    ),
                )],
            ));
        }
        let how = if op == "Apply" {
            Decode::Apply
        } else {
            Decode::Create
        };
        self.admit(rt, &version, &name, &mut obj, opts, how)?;
        if rt.namespaced {
            let nst = self.ns_type();
            match self.get_raw(&nst, "", ns) {
                None => return Err(Status::not_found("", "namespaces", ns)),
                Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                    return Err(Status::forbidden(
                        &rt.group,
                        &rt.plural,
                        &name,
                        &format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                    ));
                }
                _ => {}
            }
        }
        if self.get_raw(rt, ns, &name).is_some() {
            return Err(Status::already_exists(rt, &name));
        }
        let is_crd = rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions";
        let crd_type = if is_crd {
            let t = discovery::from_crd(&obj).map_err(|e| {
                Status::invalid(
                    rt,
                    &name,
                    vec![("FieldValueRequired", "spec", format!("Required value: {e}"))],
                )
            })?;
            if name != format!("{}.{}", t.plural, t.group) {
                return Err(Status::invalid(
                    rt,
                    &name,
                    vec![(
                        "FieldValueInvalid",
                        "metadata.name",
                        format!(
                            "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                        ),
                    )],
                ));
            }
            Some(t)
        } else {
            None
        };
        let m = meta(&mut obj);
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(k);
        }
        if op == "Update" {
            m.remove("managedFields");
        }
        m.insert("uid".into(), json!(uid()));
        m.insert("creationTimestamp".into(), json!(now()));
        if rt.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if rt.has_status {
            obj.as_object_mut().unwrap().remove("status");
        }
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "namespaces") => {
                meta(&mut obj)
                    .entry("labels")
                    .or_insert(json!({}))
                    .as_object_mut()
                    .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name)));
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "persistentvolumes") | ("", "persistentvolumeclaims") => {
                obj["status"] = json!({"phase": "Pending"});
            }
            ("", "secrets") if obj["type"].is_null() => obj["type"] = json!("Opaque"),
            _ => {}
        }
        if let Some(t) = &crd_type {
            let names = &mut obj["spec"]["names"];
            names["singular"] = json!(t.singular);
            if names["listKind"].is_null() {
                names["listKind"] = json!(format!("{}List", t.kind));
            }
            let ts = now();
            obj["status"] = json!({
                "acceptedNames": obj["spec"]["names"].clone(),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "lastTransitionTime": ts, "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "lastTransitionTime": ts, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                ],
                "storedVersions": [t.versions[0].clone()],
            });
        }
        if op == "Update" {
            Self::record_update(rt, None, &mut obj, opts, &version);
        }
        if opts.dry_run {
            return Ok(obj);
        }
        if let Some(t) = crd_type {
            self.register(t);
        }
        self.rv += 1;
        meta(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects
            .entry(Store::key(rt))
            .or_default()
            .insert((ns_of(rt, ns), name), obj.clone());
        self.emit("ADDED", rt, &obj);
        Ok(obj)
    }

    /// managedFields bookkeeping of an Update operation: the manager takes the changed fields.
    fn record_update(
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
        opts: &WriteOpts,
        version: &str,
    ) {
        let skip_status = rt.has_status && !opts.status;
        let changed = match old {
            Some(old) => patch::changed_paths(old, new, opts.status, skip_status),
            None => patch::field_set(new, opts.status, skip_status),
        };
        if changed.is_empty() {
            return;
        }
        let mut entries = managed_entries(old.unwrap_or(&Value::Null));
        let sub = if opts.status { "status" } else { "" };
        let present: FieldSet = changed
            .iter()
            .filter(|p| patch::get_path(new, p).is_some())
            .cloned()
            .collect();
        let mut mine = FieldSet::new();
        entries.retain_mut(|e| {
            if e.manager == opts.manager && e.operation == "Update" && e.subresource == sub {
                mine = std::mem::take(&mut e.fields);
                return false;
            }
            e.fields
                .retain(|p| !changed.iter().any(|c| patch::overlaps(c, p)));
            !e.fields.is_empty()
        });
        mine.retain(|p| !changed.iter().any(|c| patch::overlaps(c, p)));
        mine.extend(present);
        if !mine.is_empty() {
            entries.push(Managed {
                manager: opts.manager.clone(),
                operation: "Update".into(),
                api_version: rt.api_version(version),
                time: now(),
                subresource: sub.into(),
                fields: mine,
            });
        }
        set_managed(new, &entries);
    }

    /// PUT.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, Status> {
        let old = self
            .get_raw(rt, ns, name)
            .cloned()
            .ok_or_else(|| Status::not_found_rt(rt, name))?;
        let body_name = str_of(&obj, "/metadata/name");
        if !body_name.is_empty() && body_name != name {
            return Err(Status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let rv = str_of(&obj, "/metadata/resourceVersion");
        if !rv.is_empty() && rv != str_of(&old, "/metadata/resourceVersion") {
            return Err(Status::conflict_modified(rt, name));
        }
        self.commit_update(rt, ns, old, obj, opts, Decode::Update)
    }

    /// The common tail of PUT/PATCH/apply: registry rules, bookkeeping, storing.
    fn commit_update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        old: Value,
        mut new: Value,
        opts: &WriteOpts,
        how: Decode,
    ) -> Result<Value, Status> {
        let record = how != Decode::Apply;
        if !new.is_object() {
            return Err(Status::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let name = str_of(&old, "/metadata/name").to_string();
        let version = if opts.version.is_empty() {
            rt.versions[0].clone()
        } else {
            opts.version.clone()
        };
        new["apiVersion"] = json!(rt.api_version(&version));
        new["kind"] = json!(rt.kind);
        if rt.has_status {
            if opts.status {
                let status = new.get("status").cloned();
                let managed = new["metadata"].get("managedFields").cloned();
                new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        new.as_object_mut().unwrap().remove("status");
                    }
                }
                if let Some(mf) = managed {
                    meta(&mut new).insert("managedFields".into(), mf);
                }
            } else {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().unwrap().remove("status");
                    }
                }
            }
        }
        let om = old["metadata"].clone();
        let m = meta(&mut new);
        m.insert("name".into(), json!(name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match om.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        if rt.plural == "namespaces" && rt.group.is_empty() {
            let labels = m.entry("labels").or_insert(json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
        self.admit(rt, &version, &name, &mut new, opts, how)?;
        if !om["deletionTimestamp"].is_null() {
            let before: Vec<Value> = om["finalizers"].as_array().cloned().unwrap_or_default();
            if new["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| !before.contains(f))
            {
                return Err(Status::invalid(
                    rt,
                    &name,
                    vec![(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .into(),
                    )],
                ));
            }
        }
        if rt.generation && spec_part(&old) != spec_part(&new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta(&mut new).insert("generation".into(), json!(g));
        }
        // A client that rewrites managedFields itself (kubectl's client-side to server-side
        // apply migration) gets them as sent; otherwise the Update manager is recorded.
        if record
            && new["metadata"]
                .get("managedFields")
                .is_none_or(|mf| *mf == old["metadata"]["managedFields"])
        {
            match old["metadata"].get("managedFields") {
                Some(mf) => meta(&mut new).insert("managedFields".into(), mf.clone()),
                None => meta(&mut new).remove("managedFields"),
            };
            Self::record_update(rt, Some(&old), &mut new, opts, &version);
        }
        if new == Store::present(rt, &old, &version) {
            return Ok(new);
        }
        if opts.dry_run {
            return Ok(new);
        }
        self.store(rt, ns, new)
    }

    /// Stores a changed object (or finishes its deletion when its last finalizer went).
    fn store(&mut self, rt: &ResourceType, ns: &str, mut new: Value) -> Result<Value, Status> {
        if !new["metadata"]["deletionTimestamp"].is_null() && !has_finalizers(&new) {
            self.remove(rt, new.clone());
            return Ok(new);
        }
        self.rv += 1;
        meta(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let name = str_of(&new, "/metadata/name").to_string();
        self.objects
            .entry(Store::key(rt))
            .or_default()
            .insert((ns_of(rt, ns), name), new.clone());
        self.emit("MODIFIED", rt, &new);
        Ok(new)
    }

    fn remove(&mut self, rt: &ResourceType, mut obj: Value) {
        let ns = str_of(&obj, "/metadata/namespace").to_string();
        let name = str_of(&obj, "/metadata/name").to_string();
        if let Some(m) = self.objects.get_mut(&Store::key(rt)) {
            m.remove(&(ns.clone(), name.clone()));
        }
        self.rv += 1;
        meta(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.emit("DELETED", rt, &obj);
        if rt.group == "apiextensions.k8s.io"
            && rt.plural == "customresourcedefinitions"
            && let Ok(t) = discovery::from_crd(&obj)
        {
            let key = Store::key(&t);
            for (_, o) in self.objects.remove(&key).unwrap_or_default() {
                self.rv += 1;
                self.emit("DELETED", &t, &o);
            }
            self.types.remove(&key);
        }
        if rt.namespaced {
            self.maybe_finish_namespace(&ns);
        }
    }

    fn ns_empty(&self, ns: &str) -> bool {
        self.types.values().filter(|t| t.namespaced).all(|t| {
            self.objects
                .get(&Store::key(t))
                .is_none_or(|m| !m.keys().any(|(n, _)| n == ns))
        })
    }

    /// The namespace controller: a terminating namespace goes once it holds nothing.
    fn maybe_finish_namespace(&mut self, ns: &str) {
        let nst = self.ns_type();
        if let Some(n) = self.get_raw(&nst, "", ns).cloned()
            && !n["metadata"]["deletionTimestamp"].is_null()
            && !has_finalizers(&n)
            && self.ns_empty(ns)
        {
            self.remove(&nst, n);
        }
    }

    /// PATCH (every type but apply).
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        opts: &WriteOpts,
    ) -> Result<Value, Status> {
        let old = self
            .get_raw(rt, ns, name)
            .cloned()
            .ok_or_else(|| Status::not_found_rt(rt, name))?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
        let version = if opts.version.is_empty() {
            rt.versions[0].clone()
        } else {
            opts.version.clone()
        };
        let mut new = Store::present(rt, &old, &version);
        match content_type {
            "application/merge-patch+json" => patch::merge_patch(&mut new, &patch),
            "application/json-patch+json" => patch::json_patch(&mut new, &patch).map_err(|e| {
                Status::failure(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                )
            })?,
            "application/strategic-merge-patch+json" if !rt.crd => {
                patch::strategic_merge(&mut new, &patch, "")
            }
            _ => {
                let mut accepted = vec![
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ];
                if !rt.crd {
                    accepted.insert(2, "application/strategic-merge-patch+json");
                }
                return Err(Status::unsupported_media_type(&accepted));
            }
        }
        let rv = str_of(&new, "/metadata/resourceVersion");
        if !rv.is_empty() && rv != str_of(&old, "/metadata/resourceVersion") {
            return Err(Status::conflict_modified(rt, name));
        }
        self.commit_update(rt, ns, old, new, opts, Decode::Patch)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: &[u8],
        opts: &WriteOpts,
    ) -> Result<(Value, bool), Status> {
        if opts.manager.is_empty() {
            return Err(Status::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let cfg: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let s =
                    std::str::from_utf8(body).map_err(|e| Status::bad_request(e.to_string()))?;
                serde_saphyr::from_str(s)
                    .map_err(|e| Status::bad_request(format!("error decoding YAML: {e}")))?
            }
        };
        if !cfg.is_object() {
            return Err(Status::bad_request(
                "the body of the request must be an object",
            ));
        }
        if str_of(&cfg, "/apiVersion").is_empty() || str_of(&cfg, "/kind").is_empty() {
            return Err(Status::bad_request(
                "apiVersion and kind must be set in an apply configuration",
            ));
        }
        let body_name = str_of(&cfg, "/metadata/name");
        if body_name != name {
            return Err(Status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let version = if opts.version.is_empty() {
            rt.versions[0].clone()
        } else {
            opts.version.clone()
        };
        // Fields the schema does not know never become anyone's: prune the configuration first.
        let mut cfg = cfg;
        self.decode(rt, &version, &mut cfg, opts, Decode::Apply)?;
        let sub = if opts.status { "status" } else { "" };
        let applied = patch::field_set(&cfg, opts.status, rt.has_status && !opts.status);
        let mine = Managed {
            manager: opts.manager.clone(),
            operation: "Apply".into(),
            api_version: rt.api_version(&version),
            time: now(),
            subresource: sub.into(),
            fields: applied.clone(),
        };
        let Some(old) = self.get_raw(rt, ns, name).cloned() else {
            if opts.status {
                return Err(Status::not_found_rt(rt, name));
            }
            let mut obj = cfg.clone();
            set_managed(&mut obj, &[mine]);
            return self.create(rt, ns, obj, opts, "Apply").map(|o| (o, true));
        };
        let mut entries = managed_entries(&old);
        let mut conflicts: Vec<(String, FieldSet)> = vec![];
        for e in entries.iter().filter(|e| {
            !(e.manager == opts.manager && e.operation == "Apply" && e.subresource == sub)
        }) {
            let clash: FieldSet = applied
                .iter()
                .filter(|p| {
                    e.fields.iter().any(|q| patch::overlaps(p, q))
                        && patch::get_path(&old, p) != patch::get_path(&cfg, p)
                })
                .cloned()
                .collect();
            if !clash.is_empty() && e.manager != opts.manager {
                let mut who = format!("{:?}", e.manager);
                if !e.subresource.is_empty() {
                    who = format!("{who} with subresource {:?}", e.subresource);
                }
                if e.operation == "Update" {
                    who = format!("{who} using {}", e.api_version);
                }
                conflicts.push((who, clash));
            }
        }
        if !conflicts.is_empty() && !opts.force {
            return Err(apply_conflict(rt, name, conflicts));
        }
        let mut new = Store::present(rt, &old, &version);
        for p in &applied {
            patch::set_path(
                &mut new,
                p,
                patch::get_path(&cfg, p).cloned().unwrap_or(Value::Null),
            );
        }
        let mut prev = FieldSet::new();
        let mut mine = mine;
        let mut pos = None;
        for (i, e) in entries.iter_mut().enumerate() {
            if e.manager == opts.manager && e.operation == "Apply" && e.subresource == sub {
                prev = std::mem::take(&mut e.fields);
                if prev == mine.fields {
                    mine.time = e.time.clone();
                }
                pos = Some(i);
            } else if opts.force {
                e.fields.retain(|q| {
                    !applied.iter().any(|p| {
                        patch::overlaps(p, q)
                            && patch::get_path(&old, p) != patch::get_path(&cfg, p)
                    })
                });
            }
        }
        for p in prev.difference(&applied) {
            let owned_elsewhere = entries
                .iter()
                .any(|e| e.fields.iter().any(|q| patch::overlaps(p, q)));
            if !owned_elsewhere && !applied.iter().any(|a| patch::overlaps(a, p)) {
                patch::remove_path(&mut new, p);
            }
        }
        match pos {
            Some(i) => entries[i] = mine,
            None => entries.push(mine),
        }
        entries.retain(|e| !e.fields.is_empty());
        set_managed(&mut new, &entries);
        let rv = str_of(&cfg, "/metadata/resourceVersion");
        if !rv.is_empty() && rv != str_of(&old, "/metadata/resourceVersion") {
            return Err(Status::conflict_modified(rt, name));
        }
        meta(&mut new).insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
        self.commit_update(rt, ns, old, new, opts, Decode::Apply)
            .map(|o| (o, false))
    }

    /// DELETE.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &WriteOpts,
    ) -> Result<Deleted, Status> {
        let old = self
            .get_raw(rt, ns, name)
            .cloned()
            .ok_or_else(|| Status::not_found_rt(rt, name))?;
        let is_ns = rt.group.is_empty() && rt.plural == "namespaces";
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Ok(Deleted::Pending(Store::present(rt, &old, &opts.version)));
        }
        if has_finalizers(&old) || is_ns {
            let mut new = old.clone();
            let m = meta(&mut new);
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if is_ns {
                new["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok(Deleted::Pending(Store::present(rt, &new, &opts.version)));
            }
            self.rv += 1;
            meta(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
            self.objects
                .entry(Store::key(rt))
                .or_default()
                .insert((ns_of(rt, ns), name.to_string()), new.clone());
            self.emit("MODIFIED", rt, &new);
            if is_ns {
                let types: Vec<ResourceType> = self
                    .types
                    .values()
                    .filter(|t| t.namespaced)
                    .cloned()
                    .collect();
                for t in types {
                    let names: Vec<String> = self
                        .all(&t, Some(name))
                        .iter()
                        .map(|o| str_of(o, "/metadata/name").to_string())
                        .collect();
                    for n in names {
                        let _ = self.delete(&t, name, &n, &WriteOpts::default());
                    }
                }
                self.maybe_finish_namespace(name);
            }
            return Ok(Deleted::Pending(Store::present(rt, &new, &opts.version)));
        }
        let status = Status::success(name, &rt.group, &rt.plural, str_of(&old, "/metadata/uid"));
        if !opts.dry_run {
            self.remove(rt, old);
        }
        Ok(Deleted::Gone(status))
    }

    /// Decodes a body against the CRD schema of `version`: unknown fields are pruned, and
    /// reported as `opts.validation` asks (warning, or 400 under Strict, worded per request).
    fn decode(
        &mut self,
        rt: &ResourceType,
        version: &str,
        obj: &mut Value,
        opts: &WriteOpts,
        how: Decode,
    ) -> Result<(), Status> {
        let Some(schema) = rt.schema(version) else {
            return Ok(());
        };
        let unknown = schema::prune(schema, obj);
        if unknown.is_empty() {
            return Ok(());
        }
        match opts.validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Warn => {
                self.warnings
                    .extend(unknown.iter().map(|p| format!("unknown field {p:?}")));
                Ok(())
            }
            FieldValidation::Strict => {
                let v = if version.is_empty() {
                    rt.versions[0].as_str()
                } else {
                    version
                };
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|p| format!("unknown field {p:?}"))
                    .collect();
                let strict = format!("strict decoding error: {}", fields.join(", "));
                Err(Status::bad_request(match how {
                    Decode::Create | Decode::Update => format!(
                        "{} in version {v:?} cannot be handled as a {}: {strict}",
                        rt.kind, rt.kind
                    ),
                    Decode::Patch => strict,
                    Decode::Apply => {
                        let paths: Vec<String> = unknown
                            .iter()
                            .map(|p| format!(".{p}: field not declared in schema"))
                            .collect();
                        format!(
                            "failed to create typed patch object ({}, Kind={}): {}",
                            rt.api_version(v),
                            rt.kind,
                            paths.join(", ")
                        )
                    }
                }))
            }
        }
    }

    /// What a CRD write goes through before storage: decoding (pruning), defaulting, then
    /// validation against the structural schema (422 Invalid naming every failing field).
    fn admit(
        &mut self,
        rt: &ResourceType,
        version: &str,
        name: &str,
        obj: &mut Value,
        opts: &WriteOpts,
        how: Decode,
    ) -> Result<(), Status> {
        self.decode(rt, version, obj, opts, how)?;
        let Some(schema) = rt.schema(version) else {
            return Ok(());
        };
        schema::apply_defaults(schema, obj);
        let failures = schema::validate(schema, obj);
        if failures.is_empty() {
            return Ok(());
        }
        Err(Status::invalid(
            rt,
            name,
            failures
                .iter()
                .map(|(r, f, m)| (*r, f.as_str(), m.clone()))
                .collect(),
        ))
    }

    /// The Rust API's in-place update: any change incl. status, no precondition.
    pub fn replace_raw(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        old: &Value,
        mut new: Value,
    ) -> bool {
        let name = str_of(old, "/metadata/name").to_string();
        let m = meta(&mut new);
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), old["metadata"]["uid"].clone());
        let version = split_version(str_of(&new, "/apiVersion")).to_string();
        let opts = WriteOpts {
            validation: FieldValidation::Ignore,
            ..Default::default()
        };
        // A controller's write goes through the same schema as a client's.
        if let Err(e) = self.admit(rt, &version, &name, &mut new, &opts, Decode::Update) {
            eprintln!(
                "fakekube: in-place update of {} {name} refused: {}",
                rt.kind, e.message
            );
            return false;
        }
        if rt.generation && spec_part(old) != spec_part(&new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta(&mut new).insert("generation".into(), json!(g));
        }
        if without_managed(&new) == without_managed(old) {
            return true;
        }
        self.store(rt, ns, new).is_ok()
    }
}

fn split_version(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, v)| v)
}

fn ns_of(rt: &ResourceType, ns: &str) -> String {
    if rt.namespaced {
        ns.to_string()
    } else {
        String::new()
    }
}

fn apply_conflict(rt: &ResourceType, name: &str, conflicts: Vec<(String, FieldSet)>) -> Status {
    let n: usize = conflicts.iter().map(|(_, s)| s.len()).sum();
    let mut causes = vec![];
    for (who, set) in &conflicts {
        for p in set {
            causes.push(crate::status::Cause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with {who}"),
                field: patch::path_string(p),
            });
        }
    }
    let message = if n == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0, causes[0].field
        )
    } else {
        let mut sorted = conflicts.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut lines = vec![];
        for (who, set) in &sorted {
            lines.push(format!("conflicts with {who}:"));
            lines.extend(set.iter().map(|p| format!("- {}", patch::path_string(p))));
        }
        format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
    };
    let _ = (rt, name);
    Status::failure(
        409,
        "Conflict",
        message,
        Some(Details {
            causes,
            ..Default::default()
        }),
    )
}

#[derive(Clone, Debug)]
struct Managed {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

fn managed_entries(obj: &Value) -> Vec<Managed> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Managed {
            manager: str_of(e, "/manager").into(),
            operation: str_of(e, "/operation").into(),
            api_version: str_of(e, "/apiVersion").into(),
            time: str_of(e, "/time").into(),
            subresource: str_of(e, "/subresource").into(),
            fields: patch::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn set_managed(obj: &mut Value, entries: &[Managed]) {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": patch::to_fields_v1(&e.fields)});
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    meta(obj).insert("managedFields".into(), Value::Array(list));
}
