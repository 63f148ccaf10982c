//! PUT, and the common tail of every write to an existing object: registry rules,
//! managedFields bookkeeping, storing and removing.

use serde_json::{Value, json};

use super::apply::{Managed, managed_entries, set_managed};
use super::{
    Decode, Store, WriteOpts, has_finalizers, meta, now, ns_of, spec_part, str_of, version_of,
};
use crate::discovery::{self, ResourceType};
use crate::patch::{self, FieldSet};
use crate::status::Status;

impl Store {
    /// managedFields bookkeeping of an Update operation: the manager takes the changed fields.
    pub(super) fn record_update(
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
    pub(super) fn commit_update(
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
        let version = version_of(rt, opts);
        new["apiVersion"] = json!(rt.api_version(&version));
        new["kind"] = json!(rt.kind);
        if rt.has_status {
            split_status(&old, &mut new, opts.status);
        }
        keep_server_metadata(rt, ns, &name, &old, &mut new);
        self.admit(rt, &version, &name, &mut new, opts, how)?;
        check_finalizers(rt, &name, &old, &new)?;
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
    pub(super) fn store(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut new: Value,
    ) -> Result<Value, Status> {
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

    pub(super) fn remove(&mut self, rt: &ResourceType, mut obj: Value) {
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
}

/// With a status subresource, a write to the main resource keeps the stored status and a
/// write to `status` changes nothing else (managedFields aside).
fn split_status(old: &Value, new: &mut Value, to_status: bool) {
    if to_status {
        let status = new.get("status").cloned();
        let managed = new["metadata"].get("managedFields").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                new.as_object_mut().unwrap().remove("status");
            }
        }
        if let Some(mf) = managed {
            meta(new).insert("managedFields".into(), mf);
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

/// Identity and lifecycle metadata are the server's: a write cannot change them.
fn keep_server_metadata(rt: &ResourceType, ns: &str, name: &str, old: &Value, new: &mut Value) {
    let om = &old["metadata"];
    let m = meta(new);
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
}

/// Finalizers may only go once deletion has started, so nothing can hold a deleted object
/// forever.
fn check_finalizers(rt: &ResourceType, name: &str, old: &Value, new: &Value) -> Result<(), Status> {
    let om = &old["metadata"];
    if om["deletionTimestamp"].is_null() {
        return Ok(());
    }
    let before: Vec<Value> = om["finalizers"].as_array().cloned().unwrap_or_default();
    if new["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| !before.contains(f))
    {
        return Err(Status::invalid(
            rt,
            name,
            vec![(
                "FieldValueForbidden",
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted".into(),
            )],
        ));
    }
    Ok(())
}
