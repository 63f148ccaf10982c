//! POST: what the registry checks and sets before an object first exists.

use serde_json::{Value, json};

use super::{Decode, Store, WriteOpts, meta, now, ns_of, version_of};
use crate::discovery::{self, ResourceType};
use crate::status::Status;

impl Store {
    /// POST. `op` is the managedFields operation ("Update", or "Apply" for server-side apply).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
        op: &str,
    ) -> Result<Value, Status> {
        let version = version_of(rt, opts);
        check_identity(rt, ns, &mut obj, &version)?;
        let name = name_or_generate(rt, &mut obj)?;
        check_name(rt, &name)?;
        let how = if op == "Apply" {
            Decode::Apply
        } else {
            Decode::Create
        };
        self.admit(rt, &version, &name, &mut obj, opts, how)?;
        self.admit_namespace(rt, ns, &name)?;
        if self.get_raw(rt, ns, &name).is_some() {
            return Err(Status::already_exists(rt, &name));
        }
        let crd_type = crd_type(rt, &name, &obj)?;
        set_server_fields(rt, &name, &mut obj, op);
        if let Some(t) = &crd_type {
            accept_names(t, &mut obj);
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

    /// Nothing new goes into a namespace that is missing or being terminated.
    fn admit_namespace(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<(), Status> {
        if !rt.namespaced {
            return Ok(());
        }
        let nst = self.ns_type();
        match self.get_raw(&nst, "", ns) {
            None => Err(Status::not_found("", "namespaces", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => Err(Status::forbidden(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The body's type and namespace must agree with the request's; the server's win.
fn check_identity(
    rt: &ResourceType,
    ns: &str,
    obj: &mut Value,
    version: &str,
) -> Result<(), Status> {
    if !obj.is_object() {
        return Err(Status::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let expected = rt.api_version(version);
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
    let m = meta(obj);
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
    Ok(())
}

/// metadata.name, or generateName plus a random suffix drawn as the apiserver draws it.
fn name_or_generate(rt: &ResourceType, obj: &mut Value) -> Result<String, Status> {
    let m = meta(obj);
    let name = m.get("name").and_then(Value::as_str).unwrap_or("");
    if !name.is_empty() {
        return Ok(name.to_string());
    }
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
    let name = format!("{generate}{suffix}");
    m.insert("name".into(), json!(name));
    Ok(name)
}

fn check_name(rt: &ResourceType, name: &str) -> Result<(), Status> {
    if valid_name(name) {
        return Ok(());
    }
    Err(Status::invalid(
        rt,
        name,
        vec![(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        )],
    ))
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

/// For a CRD, the type it will serve; its name must be `<plural>.<group>`.
fn crd_type(rt: &ResourceType, name: &str, obj: &Value) -> Result<Option<ResourceType>, Status> {
    if rt.group != "apiextensions.k8s.io" || rt.plural != "customresourcedefinitions" {
        return Ok(None);
    }
    let t = discovery::from_crd(obj).map_err(|e| {
        Status::invalid(
            rt,
            name,
            vec![("FieldValueRequired", "spec", format!("Required value: {e}"))],
        )
    })?;
    if name != format!("{}.{}", t.plural, t.group) {
        return Err(Status::invalid(
            rt,
            name,
            vec![(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            )],
        ));
    }
    Ok(Some(t))
}

/// What the server owns on a new object: whatever the client sent there is replaced.
fn set_server_fields(rt: &ResourceType, name: &str, obj: &mut Value, op: &str) {
    let m = meta(obj);
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
            meta(obj)
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
}

/// The apiextensions controller's answer, given at once: names accepted, CRD established.
fn accept_names(t: &ResourceType, obj: &mut Value) {
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
