//! The object store and the registry semantics of every write (create, update, patch, apply,
//! delete), shared by the HTTP handlers and the Rust API.

mod apply;
mod create;
mod decode;
mod delete;
mod update;

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::discovery::{self, ResourceType};
use crate::schema::FieldValidation;
use crate::select::{self, FieldSelector, LabelSelector};
use crate::status::Status;
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
    /// Fail every write that is not a dry run (see `Handle::require_dry_run`).
    pub require_dry_run: bool,
    /// `Warning` headers for the response to the current request (unknown fields pruned).
    pub warnings: Vec<String>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
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
            require_dry_run: false,
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
}

fn ns_of(rt: &ResourceType, ns: &str) -> String {
    if rt.namespaced {
        ns.to_string()
    } else {
        String::new()
    }
}

/// The version a write is served at: the request's, else the preferred one.
fn version_of(rt: &ResourceType, opts: &WriteOpts) -> String {
    if opts.version.is_empty() {
        rt.versions[0].clone()
    } else {
        opts.version.clone()
    }
}
