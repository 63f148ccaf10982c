//! DELETE, and the namespace controller that finishes a terminating namespace.

use serde_json::json;

use super::{Deleted, Store, WriteOpts, has_finalizers, meta, now, ns_of, str_of};
use crate::discovery::ResourceType;
use crate::status::Status;

impl Store {
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

    fn ns_empty(&self, ns: &str) -> bool {
        self.types.values().filter(|t| t.namespaced).all(|t| {
            self.objects
                .get(&Store::key(t))
                .is_none_or(|m| !m.keys().any(|(n, _)| n == ns))
        })
    }

    /// The namespace controller: a terminating namespace goes once it holds nothing.
    pub(super) fn maybe_finish_namespace(&mut self, ns: &str) {
        let nst = self.ns_type();
        if let Some(n) = self.get_raw(&nst, "", ns).cloned()
            && !n["metadata"]["deletionTimestamp"].is_null()
            && !has_finalizers(&n)
            && self.ns_empty(ns)
        {
            self.remove(&nst, n);
        }
    }
}
