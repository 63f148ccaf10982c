//! `meta.k8s.io/v1` Status objects, shaped like `k8s.io/apimachinery/pkg/api/errors`.
//!
//! Field order follows the Go structs (serde derives keep declaration order), so the HTTP bodies
//! are byte-for-byte what a real kube-apiserver sends.

use serde::Serialize;
use serde_json::Value;

use crate::discovery::ResourceType;

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Status {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub metadata: EmptyMeta,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<Details>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

/// `metadata: {}`.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct EmptyMeta {}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Cause {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl Status {
    pub fn failure(code: u16, reason: &str, message: String, details: Option<Details>) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: Default::default(),
            status: "Failure",
            message,
            reason: reason.to_string(),
            details: details.map(Box::new),
            code,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("status serializes")
    }

    pub fn success(name: &str, group: &str, kind: &str, uid: &str) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: Default::default(),
            status: "Success",
            message: String::new(),
            reason: String::new(),
            details: Some(Box::new(Details {
                name: name.into(),
                group: group.into(),
                kind: kind.into(),
                uid: uid.into(),
                causes: vec![],
            })),
            code: 0,
        }
    }

    fn gr_details(group: &str, plural: &str, name: &str) -> Option<Details> {
        Some(Details {
            name: name.into(),
            group: group.into(),
            kind: plural.into(),
            ..Default::default()
        })
    }

    /// `errors.NewNotFound(qualifiedResource, name)`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Status {
        Status::failure(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(group, plural)),
            Status::gr_details(group, plural, name),
        )
    }

    pub fn not_found_rt(rt: &ResourceType, name: &str) -> Status {
        Status::not_found(&rt.group, &rt.plural, name)
    }

    /// What the server answers for a path it has no handler for.
    pub fn no_route() -> Status {
        Status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(Details::default()),
        )
    }

    /// `errors.NewAlreadyExists`.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Status {
        Status::failure(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", rt.qualified()),
            Status::gr_details(&rt.group, &rt.plural, name),
        )
    }

    /// `errors.NewConflict` as the registry returns it for a stale resourceVersion.
    pub fn conflict_modified(rt: &ResourceType, name: &str) -> Status {
        Status::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict(rt: &ResourceType, name: &str, err: &str) -> Status {
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {err}",
                rt.qualified()
            ),
            Status::gr_details(&rt.group, &rt.plural, name),
        )
    }

    /// `errors.NewForbidden(qualifiedResource, name, err)`.
    pub fn forbidden(group: &str, plural: &str, name: &str, err: &str) -> Status {
        let q = qualified(group, plural);
        let message = if name.is_empty() {
            format!("{q} is forbidden: {err}")
        } else {
            format!("{q} {name:?} is forbidden: {err}")
        };
        Status::failure(
            403,
            "Forbidden",
            message,
            Status::gr_details(group, plural, name),
        )
    }

    pub fn unauthorized() -> Status {
        Status::failure(401, "Unauthorized", "Unauthorized".into(), None)
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::failure(400, "BadRequest", message.into(), None)
    }

    /// `errors.NewInvalid(qualifiedKind, name, errs)`; each cause is (reason, field, message).
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<(&str, &str, String)>) -> Status {
        let kind = if rt.group.is_empty() {
            rt.kind.clone()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        let msgs: Vec<String> = causes.iter().map(|(_, f, m)| format!("{f}: {m}")).collect();
        let joined = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            format!("[{}]", msgs.join(", "))
        };
        Status::failure(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {joined}"),
            Some(Details {
                name: name.into(),
                group: rt.group.clone(),
                kind: rt.kind.clone(),
                uid: String::new(),
                causes: causes
                    .into_iter()
                    .map(|(r, f, m)| Cause {
                        reason: r.into(),
                        message: m,
                        field: f.into(),
                    })
                    .collect(),
            }),
        )
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Status {
        Status::failure(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    pub fn method_not_allowed(method: &str, rt: &ResourceType) -> Status {
        Status::failure(
            405,
            "MethodNotAllowed",
            format!(
                "{method} is not supported on resources of kind {:?}",
                rt.qualified()
            ),
            Status::gr_details(&rt.group, &rt.plural, ""),
        )
    }
}

/// `schema.GroupResource.String()`: `plural.group`, or `plural` for the core group.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}
