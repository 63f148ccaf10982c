//! Decoding and admission of a body against the CRD schema, and the Rust API's in-place
//! update that goes through them too.

use serde_json::{Value, json};

use super::{Decode, Store, WriteOpts, meta, spec_part, str_of};
use crate::discovery::ResourceType;
use crate::schema::{self, FieldValidation};
use crate::status::Status;

impl Store {
    /// Decodes a body against the CRD schema of `version`: unknown fields are pruned, and
    /// reported as `opts.validation` asks (warning, or 400 under Strict, worded per request).
    pub(super) fn decode(
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
    pub(super) fn admit(
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

fn without_managed(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    o
}

fn split_version(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, v)| v)
}
