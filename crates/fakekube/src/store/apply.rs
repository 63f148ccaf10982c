//! PATCH and server-side apply, with the managedFields ownership both rely on.

use serde_json::{Value, json};

use super::{Decode, Store, WriteOpts, meta, now, str_of, version_of};
use crate::discovery::ResourceType;
use crate::patch::{self, FieldSet};
use crate::status::{Details, Status};

impl Store {
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
        let version = version_of(rt, opts);
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
        let mut cfg = apply_config(body, name)?;
        let version = version_of(rt, opts);
        // Fields the schema does not know never become anyone's: prune the configuration first.
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
        let onto = Applying {
            opts,
            sub,
            cfg: &cfg,
            old: &old,
            applied: &applied,
        };
        let mut entries = managed_entries(&old);
        let conflicts = onto.conflicts(&entries);
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
        onto.take_ownership(&mut entries, &mut new, mine);
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
}

/// An apply configuration: JSON or YAML, naming its type and the object on the URL.
fn apply_config(body: &[u8], name: &str) -> Result<Value, Status> {
    let cfg: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let s = std::str::from_utf8(body).map_err(|e| Status::bad_request(e.to_string()))?;
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
    Ok(cfg)
}

/// One apply onto an existing object.
struct Applying<'a> {
    opts: &'a WriteOpts,
    sub: &'a str,
    cfg: &'a Value,
    old: &'a Value,
    applied: &'a FieldSet,
}

impl Applying<'_> {
    /// The applier's own earlier apply to the same subresource, which this one replaces.
    fn is_own(&self, e: &Managed) -> bool {
        e.manager == self.opts.manager && e.operation == "Apply" && e.subresource == self.sub
    }

    /// Only an applied field that changes a value can take it from its owner: applying the
    /// value someone else already set is shared ownership, not a conflict.
    fn takes(&self, p: &[String], owned: &[String]) -> bool {
        patch::overlaps(p, owned) && patch::get_path(self.old, p) != patch::get_path(self.cfg, p)
    }

    /// Who else owns fields this apply would change, as the conflict message names them.
    fn conflicts(&self, entries: &[Managed]) -> Vec<(String, FieldSet)> {
        let mut conflicts: Vec<(String, FieldSet)> = vec![];
        for e in entries.iter().filter(|e| !self.is_own(e)) {
            let clash: FieldSet = self
                .applied
                .iter()
                .filter(|p| e.fields.iter().any(|q| self.takes(p, q)))
                .cloned()
                .collect();
            if !clash.is_empty() && e.manager != self.opts.manager {
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
        conflicts
    }

    /// Gives the applier its fields (taking them from others when forced) and drops from
    /// `new` the fields it applied before, no longer applies, and nobody else owns.
    fn take_ownership(&self, entries: &mut Vec<Managed>, new: &mut Value, mut mine: Managed) {
        let mut prev = FieldSet::new();
        let mut pos = None;
        for (i, e) in entries.iter_mut().enumerate() {
            if self.is_own(e) {
                prev = std::mem::take(&mut e.fields);
                if prev == mine.fields {
                    mine.time = e.time.clone();
                }
                pos = Some(i);
            } else if self.opts.force {
                e.fields
                    .retain(|q| !self.applied.iter().any(|p| self.takes(p, q)));
            }
        }
        for p in prev.difference(self.applied) {
            let owned_elsewhere = entries
                .iter()
                .any(|e| e.fields.iter().any(|q| patch::overlaps(p, q)));
            if !owned_elsewhere && !self.applied.iter().any(|a| patch::overlaps(a, p)) {
                patch::remove_path(new, p);
            }
        }
        match pos {
            Some(i) => entries[i] = mine,
            None => entries.push(mine),
        }
        entries.retain(|e| !e.fields.is_empty());
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
pub(super) struct Managed {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) api_version: String,
    pub(super) time: String,
    pub(super) subresource: String,
    pub(super) fields: FieldSet,
}

pub(super) fn managed_entries(obj: &Value) -> Vec<Managed> {
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

pub(super) fn set_managed(obj: &mut Value, entries: &[Managed]) {
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
